"""Documents into `tf.data`: text, JSONL, CSV, TFRecord files and TFDS.

Every source returns a `tf.data.Dataset` of dicts with the document in
`text` (tf.string, see `tfmask.data.features`) plus the extra fields asked
for, one document per element, files read in the order given.

| source           | one document per                  | reader |
|------------------|-----------------------------------|--------|
| `text_files`     | line, or blank-line separated paragraph | `TextLineDataset` |
| `jsonl_files`    | JSON object per line              | Python generator |
| `csv_files`      | row (with a header line)          | Python generator |
| `tfrecord_files` | `tf.train.Example` record         | `TFRecordDataset` |
| `tfmask.datasets.formats.conll.conll_files` | sentence of a CoNLL column file | Python generator |
| `tfds_source`    | example of a TFDS split           | `tfds.load` |

What every source does the same way:

- `paths` is a path, a glob or a list of them (`gs://...` works too). A
  missing file, a glob that matches nothing, or a source with no document
  at all raises `SourceError` (a `ValueError`) when the source is built,
  not an empty dataset at training time. The check reads only up to the
  first real document.
- Empty and whitespace-only documents are dropped and counted.
- Invalid UTF-8 is handled by `on_decode_error`: "fail" (default) stops
  iteration with an error naming the file and line (record) number;
  "replace" writes U+FFFD for the bad bytes; "skip" drops the document.
  Replaced and skipped documents are counted.
- The counts live in `dataset.stats`, a `SourceStats` attached to the
  returned dataset (keep a reference to it: `dataset.map(...)` returns a new
  dataset without the attribute). They are exact once iteration has ended
  and accumulate over epochs (`stats.reset()` starts again).

Example:
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "a.txt")
>>> _ = open(path, "wb").write(b"first doc\\n\\nsecond doc\\n")
>>> docs = text_files(path)
>>> [d["text"].numpy() for d in docs]
[b'first doc', b'second doc']
>>> str(docs.stats)
'2 documents (dropped: 1 empty, 0 undecodable; 0 with replaced bytes)'
"""

import csv
import io
import json
import os

import numpy as np
import tensorflow as tf

from tfmask.data import features as F

AUTOTUNE = tf.data.AUTOTUNE
DECODE_ERROR_MODES = ("fail", "replace", "skip")
TEXT_UNITS = ("line", "paragraph")

# Internal keys that carry where a document came from until it is checked.
_FILE = "_source_file"
_RECORD = "_source_record"
_GLOB_CHARS = "*?["
_BOM = b"\xef\xbb\xbf"


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
    tfmask.data.sources.SourceError: No file matches '/no/such/dir/*.txt'; check ...
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


def _open_binary(path):
    # Local files through Python's own reader (faster); URLs through GFile.
    if "://" not in path:
        return open(path, "rb")
    return io.BufferedReader(_GFileReader(path))


def _open_text(path):
    """Text stream that keeps invalid bytes as surrogates (round-trippable)."""
    return io.TextIOWrapper(
        _open_binary(path), encoding="utf-8-sig", errors="surrogateescape", newline=""
    )


def _to_bytes(text):
    """str (possibly holding surrogate-escaped bad bytes) -> original bytes."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        # Lone surrogates written as JSON escapes: keep them as invalid bytes
        # so that `on_decode_error` sees and handles them.
        return text.encode("utf-8", "surrogatepass")


def _check_mode(on_decode_error):
    if on_decode_error not in DECODE_ERROR_MODES:
        raise ValueError(
            f"on_decode_error={on_decode_error!r} is not one of {DECODE_ERROR_MODES}."
        )


# --------------------------------------------------------------------------
# The shared last stage: decode check, empty check, counting

# Records per internal batch. Every check runs vectorised once per batch: a
# per-record `map` or generator costs tens of microseconds a call, batches
# make the sources 5-50x faster. Results are unbatched again.
_BATCH = 512


def _finish(batches, on_decode_error, record_word, element_spec=None, has_text=True):
    """Batches of records -> checked, counted, unbatched documents.

    `batches` holds dicts of [B, ...] tensors: `text`, `_FILE` and `_RECORD`
    (where each record came from, for error messages) and the extra
    features. `element_spec`, when given, is the per-record spec to restore
    after unbatching (batching turns variable-shaped tensors ragged).
    """
    stats = SourceStats()

    def check(batch):
        batch = dict(batch)
        where_file, where_record = batch.pop(_FILE), batch.pop(_RECORD)
        if not has_text:
            size = tf.shape(where_record)[0]
            with tf.control_dependencies([stats._add(size, 0, 0, 0)]):
                return tf.nest.map_structure(tf.identity, batch)
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
        with tf.control_dependencies(checks):
            keep = tf.identity(keep)
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


def _files_dataset(files):
    return tf.data.Dataset.from_tensor_slices(tf.constant(files, tf.string))


def _numbered_batches(records, path):
    """Batches records of one file -> dicts with `_FILE` and `_RECORD` (1-based)."""

    def number(index, batch):
        size = tf.shape(batch)[0]
        first = index * _BATCH + 1
        return batch, tf.range(first, first + tf.cast(size, tf.int64)), tf.fill([size], path)

    return records.batch(_BATCH).enumerate().map(number)


def _strip_bom(lines, numbers):
    # A UTF-8 byte order mark is not text; only a file's first line has one.
    has_bom = tf.equal(numbers, 1) & tf.equal(tf.strings.substr(lines, 0, 3), _BOM)
    length = tf.strings.length(lines)
    return tf.strings.substr(lines, tf.where(has_bom, 3, 0), tf.where(has_bom, length - 3, length))


# --------------------------------------------------------------------------
# Text files


def _has_text(path, chunk_size=1 << 16):
    """True when the file holds a non-whitespace byte (reads up to the first)."""
    with _open_binary(path) as f:
        while True:
            chunk = f.read(chunk_size)
            if not chunk:
                return False
            if chunk.replace(_BOM, b"").strip():
                return True


def text_files(paths, unit="line", on_decode_error="fail"):
    """Plain-text files: one document per line, or per paragraph.

    Args:
        paths: a path, glob or list of them.
        unit: "line" (default): every non-blank line is a document.
            "paragraph": blank-line separated blocks are documents; their
            lines are joined with "\\n".
        on_decode_error: "fail", "replace" or "skip" (see the module doc).

    CRLF line endings and a UTF-8 byte order mark are handled. Returns a
    dataset of `{"text": tf.string}` with a `.stats` `SourceStats`.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "p.txt")
    >>> _ = open(path, "wb").write(b"a b\\r\\nc\\r\\n\\r\\nd\\r\\n")
    >>> [d["text"].numpy() for d in text_files(path, unit="paragraph")]
    [b'a b\\nc', b'd']
    """
    if unit not in TEXT_UNITS:
        raise ValueError(f"unit={unit!r} is not one of {TEXT_UNITS}.")
    _check_mode(on_decode_error)
    files = resolve_paths(paths)
    if not any(_has_text(f) for f in files):
        raise SourceError(
            f"No text in {_describe(files)}: every file is empty or blank; "
            "check the paths."
        )

    def lines_of(path):
        batches = _numbered_batches(tf.data.TextLineDataset(path), path)
        return batches.map(
            lambda lines, numbers, where: (_strip_bom(lines, numbers), numbers, where)
        )

    if unit == "line":
        def read(path):
            return lines_of(path).map(
                lambda lines, numbers, where: {F.TEXT: lines, _RECORD: numbers, _FILE: where}
            )
        record_word = "line"
    else:
        def read(path):
            # A blank sentinel line closes the file's last paragraph.
            end = tf.data.Dataset.from_tensors(
                (tf.constant([""]), tf.constant([0], tf.int64), tf.reshape(path, [1]))
            )
            return lines_of(path).concatenate(end).scan(_no_paragraph(), _paragraph_step)
        record_word = "paragraph starting at line"
    return _finish(_files_dataset(files).flat_map(read), on_decode_error, record_word)


def _no_paragraph():
    """scan state: (unfinished paragraph, its first line number, whether any)."""
    return tf.constant(""), tf.constant(0, tf.int64), tf.constant(False)


def _paragraph_step(state, batch):
    """Joins a batch of lines into the paragraphs it completes.

    The paragraph still open at the end of the batch is carried to the next
    one (as a single line), so paragraphs may span batches.
    """
    carry, carry_start, has_carry = state
    lines, numbers, where = batch
    lines = tf.concat([[carry], lines], 0)
    numbers = tf.concat([[carry_start], numbers], 0)
    blank = tf.concat([[tf.logical_not(has_carry)],
                       tf.equal(tf.strings.length(tf.strings.strip(lines[1:])), 0)], 0)
    # Paragraph index of a line: blank lines seen up to and including it.
    paragraph = tf.cumsum(tf.cast(blank, tf.int32))
    count = paragraph[-1] + 1
    text = tf.boolean_mask(lines, ~blank)
    index = tf.boolean_mask(paragraph, ~blank)
    joined = tf.strings.unsorted_segment_join(text, index, count, separator="\n")
    starts = tf.math.unsorted_segment_min(tf.boolean_mask(numbers, ~blank), index, count)
    sizes = tf.math.unsorted_segment_sum(tf.ones_like(index), index, count)
    still_open = tf.logical_not(blank[-1])  # the last paragraph goes on
    done = (sizes > 0) & ~(still_open & tf.equal(tf.range(count), count - 1))
    state = (tf.where(still_open, joined[-1], ""),
             tf.where(still_open, starts[-1], tf.constant(0, tf.int64)),
             still_open)
    texts = tf.boolean_mask(joined, done)
    output = {F.TEXT: texts, _RECORD: tf.boolean_mask(starts, done),
              _FILE: tf.fill(tf.shape(texts), where[0])}
    return state, output


def _describe(files):
    return repr(files[0]) if len(files) == 1 else f"{len(files)} files ({files[0]!r}, ...)"


# --------------------------------------------------------------------------
# Python-side sources: records gathered into batches


def _generator_batches(records, spec, where):
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
        files, numbers = columns[_FILE], columns[_RECORD]
        return {name: column(name, values, files, numbers) for name, values in columns.items()}

    def generate():
        columns = {name: [] for name in spec}
        for record in records():
            for name, values in columns.items():
                values.append(record[name])
            if len(columns[_RECORD]) == _BATCH:
                yield batch(columns)
                columns = {name: [] for name in spec}
        if columns[_RECORD]:
            yield batch(columns)

    return tf.data.Dataset.from_generator(generate, output_signature=signature)


def _base_spec():
    return {F.TEXT: tf.TensorSpec([], tf.string), _FILE: tf.TensorSpec([], tf.string),
            _RECORD: tf.TensorSpec([], tf.int64)}


def _first_document(records, text_of, files):
    """The first record with non-blank text; SourceError when there is none.

    Reads only up to that record, so it is cheap except on an empty source.
    """
    for record in records:
        text = text_of(record[-1])
        if text is not None and (not isinstance(text, str) or text.strip()):
            return record
    raise SourceError(
        f"No documents in {_describe(files)}: every record is empty or blank; "
        "check the paths and the text field/column."
    )


# --------------------------------------------------------------------------
# JSONL


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


def _json_spec(value, name, where):
    """Per-record TensorSpec of a JSON value (for `extra_fields` given by name)."""
    if isinstance(value, list):
        if not value:
            raise SourceError(
                f"Field {name!r} is an empty list at {where}, so its type is unknown; "
                f"pass extra_fields={{{name!r}: tf.TensorSpec([None], dtype)}}."
            )
        return tf.TensorSpec([None], _json_spec(value[0], name, where).dtype)
    for kind, dtype in ((bool, tf.bool), (int, tf.int64), (float, tf.float32), (str, tf.string)):
        if isinstance(value, kind):
            return tf.TensorSpec([], dtype)
    raise SourceError(
        f"Field {name!r} at {where} is a JSON {type(value).__name__}, which has no "
        f"tensor type; pass extra_fields={{{name!r}: tf.TensorSpec(...)}} or drop it."
    )


def _jsonl_records(files, text_field, extra_fields):
    """Yields (path, line number, record dict) of every non-blank line."""
    for path in files:
        with _open_binary(path) as f:
            for number, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                where = f"{path} line {number}"
                try:
                    # surrogateescape keeps invalid bytes for on_decode_error.
                    record = json.loads(raw.decode("utf-8-sig", "surrogateescape"))
                except json.JSONDecodeError as e:
                    raise SourceError(
                        f"{where} is not valid JSON ({e.msg}); fix or remove the line."
                    ) from None
                if not isinstance(record, dict):
                    raise SourceError(
                        f"{where} is a JSON {type(record).__name__}, not an object; "
                        "each line must be one object."
                    )
                for name in (text_field, *extra_fields):
                    if name not in record:
                        fields = ", ".join(map(repr, record)) or "none"
                        raise SourceError(
                            f"{where} has no field {name!r} (it has {fields}); "
                            "pass text_field=/extra_fields= with the right names."
                        )
                yield path, number, record


def _json_value(value, name, spec, path, number):
    if value is None:
        if name is None:
            return b""  # a null text: counted and dropped as an empty document
        raise SourceError(
            f"{path} line {number}: field {name!r} is null; fill it or leave it out "
            "of extra_fields."
        )
    if name is None and not isinstance(value, str):
        raise SourceError(
            f"{path} line {number}: the text field is a JSON {type(value).__name__}, "
            "not a string or a list of strings; pass the text field as text_field=."
        )
    if name is not None and not _json_fits(value, spec):
        raise SourceError(
            f"{path} line {number}: field {name!r} holds {_json_kind(value)} "
            f"{_shorten(value)}, not {_signature(spec)}; fix the line or declare the field's "
            f"type in extra_fields (e.g. {{{name!r}: {_json_kind_signature(value)!r}}})."
        )
    if spec.dtype == tf.string:
        return [_to_bytes(v) for v in value] if isinstance(value, list) else _to_bytes(value)
    return value


_JSON_KINDS = ((bool, "bool"), (int, "int64"), (float, "float32"), (str, "string"))


def _json_scalar_fits(value, dtype):
    if dtype == tf.string:
        return isinstance(value, str)
    if dtype == tf.bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if dtype.is_integer else isinstance(value, (int, float))


def _json_fits(value, spec):
    """Whether a JSON value has the declared type (scalar, or 1-D list)."""
    if spec.shape.rank == 0:
        return not isinstance(value, (list, dict)) and _json_scalar_fits(value, spec.dtype)
    if spec.shape.as_list() == [None]:
        return isinstance(value, list) and all(_json_scalar_fits(v, spec.dtype) for v in value)
    return True  # fixed shapes: checked when the batch is built


def _json_kind(value):
    if isinstance(value, list):
        return "a list"
    for kind, name in _JSON_KINDS:
        if isinstance(value, kind):
            return f"a {name}"
    return f"a JSON {type(value).__name__}"


def _json_kind_signature(value):
    first = value[0] if isinstance(value, list) and value else value
    name = next((n for kind, n in _JSON_KINDS if isinstance(first, kind)), "string")
    return f"{name}[None]" if isinstance(value, list) else name


def _signature(spec):
    return spec.dtype.name + ("[None]" if spec.shape.as_list() == [None] else
                              "" if spec.shape.rank == 0 else str(spec.shape.as_list()))


def _shorten(value, width=40):
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 3] + "..."


def jsonl_files(paths, text_field="text", extra_fields=(), on_decode_error="fail"):
    """JSON Lines files: one JSON object per line, the document in `text_field`.

    Args:
        paths: a path, glob or list of them.
        text_field: the field holding the document; it becomes `text`.
            A null value counts as an empty document; a list of strings
            (pre-tokenized words) is joined with single spaces.
        extra_fields: more fields to keep, under their own names: a sequence
            of names (types taken from the first document: str, int ->
            int64, float -> float32, bool, or a list of one of them), or a
            dict name -> declared type (see `field_spec`: "int64",
            "string[None]", a dtype or a `tf.TensorSpec`) when the first
            document is not representative. It may repeat `text_field`
            (words kept as a list besides the joined `text`).
        on_decode_error: "fail", "replace" or "skip" (see the module doc).

    A malformed line, a non-object line or a record without a field fails
    with the file and line number. Blank lines are ignored.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.jsonl")
    >>> _ = open(path, "w").write('{"body": "hi", "id": 7}\\n')
    >>> [int(d["id"]) for d in jsonl_files(path, "body", ["id"])]
    [7]
    """
    _check_mode(on_decode_error)
    files = resolve_paths(paths)
    names = tuple(extra_fields)
    _check_names(names, text_field, "extra_fields")
    path, number, first = _first_document(
        _jsonl_records(files, text_field, names), lambda record: record[text_field], files
    )
    spec = _base_spec()
    for name in names:
        given = extra_fields[name] if isinstance(extra_fields, dict) else None
        if given is not None:
            spec[name] = field_spec(name, given)
        else:
            spec[name] = _json_spec(first[name], name, f"{path} line {number}")
        _json_value(first[name], name, spec[name], path, number)  # a wrong type fails now

    def records():
        for path, number, record in _jsonl_records(files, text_field, names):
            text = record[text_field]
            if isinstance(text, list) and all(isinstance(w, str) for w in text):
                text = " ".join(text)  # pre-tokenized words: the text is them, spaced
            example = {F.TEXT: _json_value(text, None, spec[F.TEXT], path, number),
                       _FILE: path, _RECORD: number}
            for name in names:
                example[name] = _json_value(record[name], name, spec[name], path, number)
            yield example

    batches = _generator_batches(records, spec, "lines")
    return _finish(batches, on_decode_error, "line", element_spec=_element_spec(spec))


def _check_names(names, text_name, argument):
    """Extra fields must not clash with `text` or the internal keys. The text
    field itself may be kept too (e.g. `words`, a list that is also the text)."""
    reserved = [n for n in names if n.startswith("_source") or (n == F.TEXT != text_name)]
    if reserved or (text_name == F.TEXT and F.TEXT in names):
        raise ValueError(f"{argument} {names} repeats the text field or a reserved name.")


def _element_spec(spec):
    return {k: v for k, v in spec.items() if k not in (_FILE, _RECORD)}


# --------------------------------------------------------------------------
# CSV


def _csv_rows(files, text_column, extra_columns, delimiter):
    """Yields (path, line number, {column: value}) for every data row."""
    # Documents are often longer than the csv module's default cell limit
    # (131,072 characters); raise it for this process.
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    wanted = (text_column, *extra_columns)
    for path in files:
        with _open_text(path) as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                continue  # empty file; an all-empty source fails up front
            index = _column_index(header, wanted, path)
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                if len(row) < len(header):
                    raise SourceError(
                        f"{path} line {reader.line_num} has {len(row)} columns but the "
                        f"header has {len(header)}; check the delimiter and quoting."
                    )
                yield path, reader.line_num, {name: row[i] for name, i in index.items()}


def _column_index(header, wanted, path):
    index = {}
    for name in wanted:
        if name not in header:
            raise SourceError(
                f"{path} has no column {name!r} (header: {', '.join(map(repr, header))}); "
                "pass text_column=/extra_columns= with the right names."
            )
        index[name] = header.index(name)
    return index


def csv_files(paths, text_column="text", extra_columns=(), delimiter=",", on_decode_error="fail"):
    """CSV files with a header line: one document per row.

    Args:
        paths: a path, glob or list of them. Every file needs the header.
        text_column: the column holding the document; it becomes `text`.
        extra_columns: more columns to keep under their own names: a
            sequence of names (kept as strings) or a dict name -> declared
            type (see `field_spec`; int or float columns are parsed, a bad
            value fails naming the file, line and column; a list type such
            as "string[None]" splits the cell on whitespace, e.g. words or
            tags). It may repeat `text_column` (its words as a list).
        delimiter: one character, e.g. "\\t" for TSV.
        on_decode_error: "fail", "replace" or "skip" (see the module doc).

    Quoted fields may hold delimiters and newlines; line numbers in errors
    are those where a row ends. Missing columns fail when the source is
    built, naming the column and the file.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.csv")
    >>> _ = open(path, "w").write('label,text\\n1,"a, b"\\n')
    >>> [(int(d["label"]), d["text"].numpy()) for d in
    ...  csv_files(path, extra_columns={"label": "int64"})]
    [(1, b'a, b')]
    """
    _check_mode(on_decode_error)
    files = resolve_paths(paths)
    names = tuple(extra_columns)
    _check_names(names, text_column, "extra_columns")
    spec = _base_spec()
    for name in names:
        declared = extra_columns.get(name) if isinstance(extra_columns, dict) else None
        spec[name] = field_spec(name, tf.string if declared is None else declared)
        if spec[name].shape.rank != 0 and spec[name].shape.as_list() != [None]:
            raise SourceError(f"CSV column {name!r} cannot be {_signature(spec[name])}; declare "
                              "a scalar type or a whitespace-separated list such as int64[None].")
    # Every header is checked now (one line per file), not at training time.
    for path in files:
        with _open_text(path) as f:
            header = next(csv.reader(f, delimiter=delimiter), None)
        if header is not None:
            _column_index(header, (text_column, *names), path)
    _first_document(
        _csv_rows(files, text_column, names, delimiter), lambda row: row[text_column], files
    )

    def records():
        for path, number, row in _csv_rows(files, text_column, names, delimiter):
            example = {F.TEXT: _to_bytes(row[text_column]), _FILE: path, _RECORD: number}
            for name in names:
                if spec[name].shape.rank:  # a list: whitespace-separated values
                    example[name] = [_parse_cell(v, spec[name].dtype, name, path, number)
                                     for v in row[name].split()]
                else:
                    example[name] = _parse_cell(row[name], spec[name].dtype, name, path, number)
            yield example

    batches = _generator_batches(records, spec, "lines")
    return _finish(batches, on_decode_error, "line", element_spec=_element_spec(spec))


def _parse_cell(value, dtype, name, path, number):
    if dtype == tf.string:
        return _to_bytes(value)
    try:
        if dtype == tf.bool:
            return {"true": True, "false": False, "1": True, "0": False}[value.strip().lower()]
        return int(value) if dtype.is_integer else float(value)
    except (ValueError, KeyError):
        raise SourceError(
            f"{path} line {number}: column {name!r} holds {value!r}, not a "
            f"{dtype.name}; fix the cell or read the column as a string."
        ) from None


# --------------------------------------------------------------------------
# TFRecord


def tfrecord_files(paths, feature_spec, text_key="text", on_decode_error="fail",
                   compression_type=None):
    """TFRecord files of `tf.train.Example`s, parsed with `feature_spec`.

    Args:
        paths: a path, glob or list of them.
        feature_spec: dict name -> `tf.io.FixedLenFeature`,
            `tf.io.VarLenFeature` or `tf.io.RaggedFeature`, as for
            `tf.io.parse_example`.
        text_key: the string feature holding the document, renamed to
            `text` and checked like every source's text. None for records
            without text (e.g. already tokenized ones): no text checks then.
        on_decode_error: "fail", "replace" or "skip" (see the module doc).
        compression_type: None, "", "ZLIB" or "GZIP".

    Records are parsed in batches (`tf.io.parse_example`). A `VarLenFeature`
    comes back as a dense 1-D tensor of the record's values (the
    `SparseTensor` of a single record says nothing more), ready for
    `tfmask.data.packing.pack`. The first record is parsed when the source
    is built, so a spec that does not match the files fails at once, naming
    the file.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.tfrecord")
    >>> feature = lambda v: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))
    >>> example = tf.train.Example(features=tf.train.Features(feature={"text": feature(b"hi")}))
    >>> with tf.io.TFRecordWriter(path) as w:
    ...     w.write(example.SerializeToString())
    >>> spec = {"text": tf.io.FixedLenFeature([], tf.string)}
    >>> [d["text"].numpy() for d in tfrecord_files(path, spec)]
    [b'hi']
    """
    _check_mode(on_decode_error)
    files = resolve_paths(paths)
    feature_spec = dict(feature_spec)
    if text_key is not None:
        spec = feature_spec.get(text_key)
        if spec is None:
            raise SourceError(
                f"feature_spec has no {text_key!r} feature (it has {sorted(feature_spec)}); "
                "add it or pass text_key= (None for records without text)."
            )
        if not (isinstance(spec, tf.io.FixedLenFeature) and spec.dtype == tf.string
                and tuple(spec.shape) == ()):
            raise SourceError(
                f"The text feature {text_key!r} must be tf.io.FixedLenFeature([], tf.string), "
                f"got {spec}."
            )
        if text_key != F.TEXT and F.TEXT in feature_spec:
            raise SourceError(
                f"feature_spec has both {text_key!r} (the text) and {F.TEXT!r}; rename one."
            )

    def parse(serialized):
        features = tf.io.parse_example(serialized, feature_spec)
        return {
            (F.TEXT if key == text_key else key):
                tf.RaggedTensor.from_sparse(value) if isinstance(value, tf.SparseTensor) else value
            for key, value in features.items()
        }

    _check_first_record(files, parse, compression_type, text_key is not None)

    def read(path):
        records = tf.data.TFRecordDataset(path, compression_type=compression_type)
        return _numbered_batches(records, path).map(
            lambda serialized, numbers, where: {**parse(serialized), _RECORD: numbers, _FILE: where}
        )

    return _finish(_files_dataset(files).flat_map(read), on_decode_error, "record",
                   has_text=text_key is not None)


def tfrecord_features(text_field="text", extra_fields=()):
    """A `tfrecord_files` feature_spec from declared fields (see `field_spec`).

    Scalars become `FixedLenFeature`s (a record without one fails, naming
    the file and record), lists ("int64[None]") `RaggedFeature`s (a record
    without one has an empty list: `tf.train.Example` cannot tell them
    apart). `tf.train.Example` holds bytes, int64 and float32 only.

    Example:
    >>> sorted(tfrecord_features("body", {"tags": "string[None]"}).items())[0]
    ('body', FixedLenFeature(shape=[], dtype=tf.string, default_value=None))
    """
    names = tuple(extra_fields)
    _check_names(names, text_field, "extra_fields")
    features = {text_field: tf.io.FixedLenFeature([], tf.string)}
    for name in names:
        declared = extra_fields.get(name) if isinstance(extra_fields, dict) else None
        if declared is None:
            raise SourceError(
                f"TFRecord field {name!r} needs a declared type (records do not say); pass "
                f"extra_fields={{{name!r}: 'int64'}} or 'string[None]' and so on."
            )
        spec = field_spec(name, declared)
        if spec.dtype not in (tf.string, tf.int64, tf.float32):
            raise SourceError(
                f"extra field {name!r} is {_signature(spec)}, but tf.train.Example holds only "
                "string, int64 and float32; declare one of those."
            )
        if name == text_field:
            if spec != tf.TensorSpec([], tf.string):
                raise SourceError(
                    f"The text feature {name!r} of TFRecord files must be one string, not "
                    f"{_signature(spec)}; store the words joined by spaces in it."
                )
        elif spec.shape.as_list() == [None]:
            features[name] = tf.io.RaggedFeature(spec.dtype)
        else:
            features[name] = tf.io.FixedLenFeature(spec.shape, spec.dtype)
    return features


def _check_first_record(files, parse, compression_type, has_text):
    """Parses records up to the first one with text; SourceError if none."""
    for path in files:
        records = tf.data.TFRecordDataset(path, compression_type=compression_type)
        for number, serialized in enumerate(records, 1):
            try:
                example = parse(serialized[None])
            except (tf.errors.InvalidArgumentError, ValueError) as e:
                reason = str(e).strip().splitlines()[0]
                raise SourceError(
                    f"{path} record {number} does not match feature_spec ({reason}); "
                    "fix the spec."
                ) from None
            if not has_text or example[F.TEXT].numpy()[0].strip():
                return
            # An empty first document is legal; keep looking.
    raise SourceError(f"No documents in {_describe(files)}: no record has text; check the paths.")


# --------------------------------------------------------------------------
# TensorFlow Datasets


def tfds_source(name, split, text_key="text", on_decode_error="fail", **tfds_kwargs):
    """A split of a TFDS dataset, its `text_key` feature renamed to `text`.

    Args:
        name: TFDS name, e.g. "imdb_reviews" or "wiki40b/en".
        split: TFDS split, slicing allowed ("train[:10%]").
        text_key: the string feature holding the document.
        on_decode_error: "fail", "replace" or "skip" (see the module doc).
        **tfds_kwargs: passed to `tensorflow_datasets.load` (`data_dir`,
            `download`, `shuffle_files`, `read_config`, ...), but not
            `as_supervised` or `batch_size`: sources yield unbatched dicts.

    Other features are kept under their own names. Errors name the record
    as "example N" of `name[split]`.

    Example (offline, with TFDS's mock data):
    >>> import tensorflow_datasets as tfds
    >>> with tfds.testing.mock_data(num_examples=3):
    ...     docs = tfds_source("imdb_reviews", "train")
    ...     sorted(next(iter(docs)))
    ['label', 'text']
    """
    import tensorflow_datasets as tfds  # slow import; only this source needs it

    _check_mode(on_decode_error)
    for forbidden in ("as_supervised", "batch_size"):
        if tfds_kwargs.get(forbidden):
            raise ValueError(
                f"tfds_source yields unbatched dicts; drop {forbidden}= and batch "
                "or select features afterwards."
            )
    where = f"{name}[{split}]"
    dataset, info = tfds.load(name, split=split, with_info=True, **tfds_kwargs)
    spec = dataset.element_spec
    if not isinstance(spec, dict) or text_key not in spec:
        keys = sorted(spec) if isinstance(spec, dict) else type(spec).__name__
        raise SourceError(
            f"{where} has no feature {text_key!r} (it has {keys}); pass text_key=."
        )
    if spec[text_key].dtype != tf.string or spec[text_key].shape.rank != 0:
        raise SourceError(
            f"{where} feature {text_key!r} is {spec[text_key]}, not a string scalar; "
            "pass the text feature as text_key=."
        )
    if text_key != F.TEXT and F.TEXT in spec:
        raise SourceError(
            f"{where} has both {text_key!r} and {F.TEXT!r}; pass text_key={F.TEXT!r}."
        )
    try:
        count = info.splits[split].num_examples
    except (KeyError, ValueError, TypeError):
        count = None  # split metadata unknown (e.g. mock data); look instead
    if count == 0 or (count is None and not list(dataset.take(1))):
        raise SourceError(f"{where} has no examples; check the split.")

    def rename(example):
        return {(F.TEXT if k == text_key else k): v for k, v in example.items()}

    def number(index, batch):
        size = tf.shape(batch[text_key])[0]
        first = index * _BATCH + 1
        return {**rename(batch), _RECORD: tf.range(first, first + tf.cast(size, tf.int64)),
                _FILE: tf.fill([size], where)}

    # Plain batching is native; ragged_batch converts every example, so it
    # is only worth it when some feature varies in shape (images, lists).
    fixed = all(isinstance(s, tf.RaggedTensorSpec) or s.shape.is_fully_defined()
                for s in tf.nest.flatten(spec, expand_composites=False))
    batches = dataset.batch(_BATCH) if fixed else dataset.ragged_batch(_BATCH)
    batches = batches.enumerate().map(number)
    element_spec = rename(spec)
    return _finish(batches, on_decode_error, "example", element_spec=element_spec)
