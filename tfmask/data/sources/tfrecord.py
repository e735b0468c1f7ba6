"""TFRecord files of `tf.train.Example`s: one document per record.

Read with `tf.data.TFRecordDataset` and parsed in batches with a feature
spec (`tfrecord_features` builds one from declared fields); records need
not hold text.
"""

import tensorflow as tf

from tfmask.data import features as F
from tfmask.data.sources.core import (
    FILE_KEY,
    RECORD_KEY,
    SourceError,
    check_mode,
    check_names,
    describe,
    field_spec,
    files_dataset,
    finish,
    numbered_batches,
    resolve_paths,
    signature,
)


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
        on_decode_error: "fail", "replace" or "skip" (see `tfmask.data.sources`).
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
    check_mode(on_decode_error)
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
        return numbered_batches(records, path).map(
            lambda serialized, numbers, where:
                {**parse(serialized), RECORD_KEY: numbers, FILE_KEY: where}
        )

    return finish(files_dataset(files).flat_map(read), on_decode_error, "record",
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
    check_names(names, text_field, "extra_fields")
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
                f"extra field {name!r} is {signature(spec)}, but tf.train.Example holds only "
                "string, int64 and float32; declare one of those."
            )
        if name == text_field:
            if spec != tf.TensorSpec([], tf.string):
                raise SourceError(
                    f"The text feature {name!r} of TFRecord files must be one string, not "
                    f"{signature(spec)}; store the words joined by spaces in it."
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
    raise SourceError(f"No documents in {describe(files)}: no record has text; check the paths.")

