"""What every reader shares: paths, errors, counts and the last checking stage.

`resolve_paths` turns paths and globs into files (`SourceError` when none),
`open_text`/`open_binary` open local or `gs://` files, `generator_batches`
gathers Python records into `tf.data` batches, and `finish` checks them
(invalid UTF-8 under `on_decode_error`, empty documents), counts them into
a `SourceStats` and unbatches them. `field_spec` reads the declared types
of extra fields. Readers tag each record with where it came from
(`FILE_KEY`, `RECORD_KEY`) so that errors name the file and line; `finish`
drops those keys.
"""

import io
import os

import numpy as np
import tensorflow as tf

from tfmask.data import features as F
from tfmask.guards import guarded

AUTOTUNE = tf.data.AUTOTUNE
DECODE_ERROR_MODES = ("fail", "replace", "skip")

# Internal keys that carry where a document came from until it is checked.
FILE_KEY = "_source_file"
"""Record key of the file (or TFDS split) a record came from; dropped by `finish`."""
RECORD_KEY = "_source_record"
"""Record key of the record's 1-based line (record, example) number; dropped by `finish`."""
_GLOB_CHARS = "*?["

# Records per internal batch. Every check runs vectorised once per batch: a
# per-record `map` or generator costs tens of microseconds a call, batches
# make the sources 5-50x faster. Results are unbatched again.
BATCH_SIZE = 512
"""Records per internal batch (readers read it at call time, so tests can shrink it)."""


class SourceError(ValueError):
    """A source cannot be read: missing file, no documents, missing field..."""


class SourceStats:
    """Counts of what a source yielded, dropped and repaired.

    Attributes (Python ints, read from live counters):
        documents: documents yielded.
        empty: empty or whitespace-only documents dropped.
        skipped: documents dropped for invalid UTF-8 (`on_decode_error="skip"`).
        replaced: documents whose invalid bytes became U+FFFD
            (`on_decode_error="replace"`).

    The counters are CPU `tf.Variable`s updated inside the `tf.data`
    pipeline, so they also count elements that were prefetched but not yet
    consumed; read them after iteration has ended. They add up over epochs
    and over every iterator of the dataset; `reset()` sets them to zero.
    Build sources outside a distribution strategy's scope, as input
    pipelines usually are, so that the counters stay plain host variables.
    """

    FIELDS = ("documents", "empty", "skipped", "replaced")

    def __init__(self):
        # init_scope: the counters must outlive a tf.function that builds
        # the source; CPU: tf.data functions run on the host.
        with tf.init_scope(), tf.device("/CPU:0"):
            self._counts = tf.Variable(
                tf.zeros([len(self.FIELDS)], tf.int64),
                trainable=False,
                name="source_stats",
            )

    def _add(self, documents, empty, skipped, replaced):
        """Graph-side update; each argument is a bool or int scalar tensor."""
        increments = [tf.cast(v, tf.int64) for v in (documents, empty, skipped, replaced)]
        return self._counts.assign_add(tf.stack(increments))

    def as_dict(self):
        return dict(zip(self.FIELDS, (int(v) for v in self._counts.numpy())))

    def reset(self):
        self._counts.assign(tf.zeros_like(self._counts))

    @property
    def documents(self):
        return self.as_dict()["documents"]

    @property
    def empty(self):
        return self.as_dict()["empty"]

    @property
    def skipped(self):
        return self.as_dict()["skipped"]

    @property
    def replaced(self):
        return self.as_dict()["replaced"]

    def __str__(self):
        c = self.as_dict()
        return (
            f"{c['documents']:,} documents (dropped: {c['empty']:,} empty, "
            f"{c['skipped']:,} undecodable; {c['replaced']:,} with replaced bytes)"
        )

    def __repr__(self):
        fields = ", ".join(f"{k}={v}" for k, v in self.as_dict().items())
        return f"SourceStats({fields})"



# --------------------------------------------------------------------------
# Paths and files


def resolve_paths(paths):
    """A path, glob or list of them -> list of existing files, in order.

    Globs are expanded and sorted; plain paths keep the order given.

    Example:
    >>> resolve_paths("/no/such/dir/*.txt")
    Traceback (most recent call last):
    ...
    tfmask.data.sources.core.SourceError: No file matches '/no/such/dir/*.txt'; check ...
    """
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    paths = [os.fsdecode(p) for p in paths]
    if not paths:
        raise SourceError(
            "No input paths were given; pass a file, a glob such as "
            "'data/*.txt', or a list of them."
        )
    files = []
    for path in paths:
        if any(c in path for c in _GLOB_CHARS):
            matches = sorted(tf.io.gfile.glob(path))
            matches = [m for m in matches if not tf.io.gfile.isdir(m)]
            if not matches:
                raise SourceError(
                    f"No file matches {path!r}; check the directory and the pattern."
                )
            files.extend(matches)
        elif not tf.io.gfile.exists(path):
            raise SourceError(f"File not found: {path!r}; check the path.")
        elif tf.io.gfile.isdir(path):
            raise SourceError(
                f"{path!r} is a directory; pass a glob such as "
                f"{os.path.join(path, '*')!r} instead."
            )
        else:
            files.append(path)
    return files


class _GFileReader(io.RawIOBase):
    """`tf.io.gfile.GFile` as a raw stream, so `io` can buffer and decode it."""

    def __init__(self, path):
        super().__init__()
        self._file = tf.io.gfile.GFile(path, "rb")

    def readable(self):
        return True

    def readinto(self, buffer):
        data = self._file.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self):
        self._file.close()
        super().close()


def open_binary(path):
    """Binary stream: local files through Python's own reader (faster), URLs through GFile."""
    if "://" not in path:
        return open(path, "rb")
    return io.BufferedReader(_GFileReader(path))


def open_text(path):
    """Text stream that keeps invalid bytes as surrogates (round-trippable)."""
    return io.TextIOWrapper(
        open_binary(path), encoding="utf-8-sig", errors="surrogateescape", newline=""
    )


def to_bytes(text):
    """str (possibly holding surrogate-escaped bad bytes) -> original bytes."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        # Lone surrogates written as JSON escapes: keep them as invalid bytes
        # so that `on_decode_error` sees and handles them.
        return text.encode("utf-8", "surrogatepass")


def check_mode(on_decode_error):
    """ValueError unless `on_decode_error` is one of `DECODE_ERROR_MODES`."""
    if on_decode_error not in DECODE_ERROR_MODES:
        raise ValueError(
            f"on_decode_error={on_decode_error!r} is not one of {DECODE_ERROR_MODES}."
        )


def describe(files):
    """The files of a source for an error message: the path, or the count and the first."""
    return repr(files[0]) if len(files) == 1 else f"{len(files)} files ({files[0]!r}, ...)"



# --------------------------------------------------------------------------
# The shared last stage: decode check, empty check, counting


def finish(batches, on_decode_error, record_word, element_spec=None, has_text=True):
    """Batches of records -> checked, counted, unbatched documents.

    `batches` holds dicts of [B, ...] tensors: `text`, `FILE_KEY` and `RECORD_KEY`
    (where each record came from, for error messages) and the extra
    features. `element_spec`, when given, is the per-record spec to restore
    after unbatching (batching turns variable-shaped tensors ragged).
    """
    stats = SourceStats()

    def check(batch):
        batch = dict(batch)
        where_file, where_record = batch.pop(FILE_KEY), batch.pop(RECORD_KEY)
        if not has_text:
            size = tf.shape(where_record)[0]
            return guarded(batch, stats._add(size, 0, 0, 0))
        text = batch[F.TEXT]
        repaired = tf.strings.unicode_transcode(
            text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
        )
        # Transcoding changes a string exactly when it holds invalid UTF-8.
        invalid = tf.not_equal(repaired, text)
        none = tf.zeros_like(invalid)
        checks = []
        if on_decode_error == "fail":
            checks.append(tf.debugging.Assert(
                tf.logical_not(tf.reduce_any(invalid)),
                [_decode_error_message(invalid, where_file, where_record, record_word)],
            ))
        skipped = invalid if on_decode_error == "skip" else none
        replaced = invalid if on_decode_error == "replace" else none
        if on_decode_error == "replace":
            text = repaired
        empty = tf.logical_not(skipped) & tf.equal(tf.strings.length(tf.strings.strip(text)), 0)
        keep = tf.logical_not(skipped | empty)
        count = lambda flags: tf.reduce_sum(tf.cast(flags, tf.int64))  # noqa: E731
        checks.append(stats._add(count(keep), count(empty), count(skipped), count(replaced)))
        keep = guarded(keep, *checks)
        batch[F.TEXT] = text
        return tf.nest.map_structure(lambda x: _rows(x, keep), batch)

    dataset = batches.map(check, num_parallel_calls=AUTOTUNE, deterministic=True).unbatch()
    dataset = _restore_dense(dataset, element_spec)
    dataset.stats = stats
    return dataset


def _decode_error_message(invalid, files, records, record_word):
    def message():
        first = tf.argmax(tf.cast(invalid, tf.int32))
        return tf.strings.join([
            "invalid UTF-8 in ", files[first], f" {record_word} ",
            tf.strings.as_string(records[first]),
            "; fix the file or pass on_decode_error='replace' or 'skip'",
        ])

    # Only build it when needed: an empty batch has no record to name.
    return tf.cond(tf.reduce_any(invalid), message, lambda: tf.constant(""))


def _rows(tensor, keep):
    if isinstance(tensor, tf.RaggedTensor):
        return tf.ragged.boolean_mask(tensor, keep)
    return tf.boolean_mask(tensor, keep)


def _restore_dense(dataset, element_spec=None):
    """Undoes what batching did to variable-shaped tensors, if anything.

    Unbatching a ragged batch gives `RaggedTensorSpec(ragged_rank=0)` for
    1-D records (a plain tensor in a ragged spec) and real ragged tensors
    for higher ranks; both become the dense tensors the records were. This
    per-record map only runs when such a feature exists.
    """
    specs = dataset.element_spec
    flat = tf.nest.flatten(specs, expand_composites=False)
    wanted = (tf.nest.flatten(element_spec, expand_composites=False)
              if element_spec is not None else [None] * len(flat))

    def needs_dense(spec, original):
        if not isinstance(spec, tf.RaggedTensorSpec):
            return False
        return spec.ragged_rank == 0 or isinstance(original, tf.TensorSpec)

    dense = [needs_dense(s, w) for s, w in zip(flat, wanted)]
    if not any(dense):
        return dataset

    def to_dense(example):
        values = tf.nest.flatten(example, expand_composites=False)
        values = [v.to_tensor() if d and isinstance(v, tf.RaggedTensor) else v
                  for v, d in zip(values, dense)]
        return tf.nest.pack_sequence_as(example, values, expand_composites=False)

    return dataset.map(to_dense, num_parallel_calls=AUTOTUNE, deterministic=True)


def files_dataset(files):
    """A dataset of the file paths, to `flat_map` a per-file reader over."""
    return tf.data.Dataset.from_tensor_slices(tf.constant(files, tf.string))


def numbered_batches(records, path):
    """Batches records of one file -> (batch, 1-based record numbers, the path per record)."""

    def number(index, batch):
        size = tf.shape(batch)[0]
        first = index * BATCH_SIZE + 1
        return batch, tf.range(first, first + tf.cast(size, tf.int64)), tf.fill([size], path)

    return records.batch(BATCH_SIZE).enumerate().map(number)



# --------------------------------------------------------------------------
# Python-side sources: records gathered into batches


def generator_batches(records, spec, where):
    """A dataset of [B, ...] batches from a Python iterator of record dicts.

    `records()` yields one dict per record; `spec` maps every key to the
    per-record `tf.TensorSpec`: scalars, fixed shapes, or `[None]` lists
    (batched as ragged). Batching in Python is what makes this fast:
    `from_generator` pays a large fixed cost per element.
    """
    for name, s in spec.items():
        known = s.shape.is_fully_defined() or s.shape.as_list() == [None]
        if s.shape.rank is None or not known:
            raise ValueError(
                f"Field {name!r} has shape {s.shape}; sources support scalars, fixed "
                "shapes and 1-D lists ([None])."
            )

    def is_list(s):
        return s.shape.as_list() == [None]

    signature = {
        name: (tf.RaggedTensorSpec([None, None], s.dtype, ragged_rank=1, row_splits_dtype=tf.int64)
               if is_list(s) else tf.TensorSpec([None] + s.shape.as_list(), s.dtype))
        for name, s in spec.items()
    }

    def column(name, values, files, numbers):
        s = spec[name]
        try:
            if is_list(s):
                flat = [v for row in values for v in row]
                return tf.RaggedTensor.from_row_lengths(
                    tf.constant(flat, s.dtype, shape=[len(flat)]),
                    tf.constant([len(row) for row in values], tf.int64),
                )
            return np.asarray(values, dtype=s.dtype.as_numpy_dtype)
        except (ValueError, TypeError, OverflowError) as e:
            raise SourceError(
                f"Field {name!r} in {files[0]} {where} {numbers[0]}-{numbers[-1]} does not "
                f"fit {s.dtype.name}{s.shape.as_list()} ({e}); declare its type explicitly."
            ) from None

    def batch(columns):
        files, numbers = columns[FILE_KEY], columns[RECORD_KEY]
        return {name: column(name, values, files, numbers) for name, values in columns.items()}

    def generate():
        columns = {name: [] for name in spec}
        for record in records():
            for name, values in columns.items():
                values.append(record[name])
            if len(columns[RECORD_KEY]) == BATCH_SIZE:
                yield batch(columns)
                columns = {name: [] for name in spec}
        if columns[RECORD_KEY]:
            yield batch(columns)

    return tf.data.Dataset.from_generator(generate, output_signature=signature)


def base_spec():
    """Per-record spec of what every generator-read record holds: text, file and number."""
    return {F.TEXT: tf.TensorSpec([], tf.string), FILE_KEY: tf.TensorSpec([], tf.string),
            RECORD_KEY: tf.TensorSpec([], tf.int64)}


def first_document(records, text_of, files):
    """The first record with non-blank text; SourceError when there is none.

    Reads only up to that record, so it is cheap except on an empty source.
    """
    for record in records:
        text = text_of(record[-1])
        if text is not None and (not isinstance(text, str) or text.strip()):
            return record
    raise SourceError(
        f"No documents in {describe(files)}: every record is empty or blank; "
        "check the paths and the text field/column."
    )



# --------------------------------------------------------------------------
# Declared fields


LIST_SUFFIXES = ("[None]", "[]")


def field_spec(name, declared):
    """One declared extra field -> its per-record `tf.TensorSpec`.

    The declaration is what `jsonl_files`, `csv_files` and `tfrecord_features`
    take as the value of `extra_fields`: a `tf.TensorSpec`, a dtype, or a
    dtype name ("int64", "float32", "bool", "string"), with "[None]" (or
    "[]") appended for a variable-length list, as `list()` prints features:

    >>> field_spec("tags", "string[None]")
    TensorSpec(shape=(None,), dtype=tf.string, name=None)
    >>> field_spec("stars", "int64")
    TensorSpec(shape=(), dtype=tf.int64, name=None)
    """
    if isinstance(declared, tf.TensorSpec):
        return declared
    shape = []
    if isinstance(declared, str):
        for suffix in LIST_SUFFIXES:
            if declared.endswith(suffix):
                declared, shape = declared[: -len(suffix)], [None]
                break
    try:
        dtype = tf.as_dtype(declared)
    except TypeError:
        raise SourceError(
            f"extra field {name!r} is declared as {declared!r}, which is not a type; use "
            "string, int64, float32 or bool, with [None] for a list (e.g. string[None])."
        ) from None
    return tf.TensorSpec(shape, dtype)



def signature(spec):
    """A `tf.TensorSpec` as a declaration reads in messages: "int64", "string[None]"..."""
    return spec.dtype.name + ("[None]" if spec.shape.as_list() == [None] else
                              "" if spec.shape.rank == 0 else str(spec.shape.as_list()))



def check_names(names, text_name, argument):
    """Extra fields must not clash with `text` or the internal keys. The text
    field itself may be kept too (e.g. `words`, a list that is also the text)."""
    reserved = [n for n in names if n.startswith("_source") or (n == F.TEXT != text_name)]
    if reserved or (text_name == F.TEXT and F.TEXT in names):
        raise ValueError(f"{argument} {names} repeats the text field or a reserved name.")


def document_spec(spec):
    """A record spec without `FILE_KEY` and `RECORD_KEY`: the spec of the documents."""
    return {k: v for k, v in spec.items() if k not in (FILE_KEY, RECORD_KEY)}

