"""The parsed cache: examples as TFRecord files of `tf.train.Example`, with checksums.

A dataset's features are declared once (`Feature`); the same declaration
encodes examples at prepare time and builds the parse spec at load time.
String features are stored UTF-8; ragged features (`ragged=True`) come out
of `read_records` as one variable-length 1-D tensor per example, and as a
`tf.RaggedTensor` once the dataset is batched. Dense features declare a
fixed `shape` (`Feature("float32", "pixels", shape=(8, 8, 1))`): the example
dict holds nested lists of that shape, stored flat (row-major) and parsed
back to a tensor of that shape. `float32` values must be exactly
representable in float32 (round them with `float(numpy.float32(v))`), so
that what `load` returns equals the example dict; NaN is refused: keep
missing values as a separate 0/1 mask feature.

Example:
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "a.tfrecord")
>>> features = {"text": Feature("string", "the text"),
...             "tags": Feature("string", "one tag per word", ragged=True)}
>>> write_records(path, [{"text": "a b", "tags": ["O", "B-PER"]}], features)
1
>>> example = next(iter(read_records([path], features)))
>>> example["text"].numpy(), example["tags"].numpy().tolist()
(b'a b', [b'O', b'B-PER'])
>>> dense = {"x": Feature("float32", "a 2x2 grid", shape=(2, 2)),
...          "y": Feature("float32", "a target")}
>>> dense["x"].signature, dense["y"].signature
('float32[2, 2]', 'float32')
>>> write_records(path, [{"x": [[0.5, 1.0], [2.0, -3.25]], "y": 0.125}], dense)
1
>>> example = next(iter(read_records([path], dense)))
>>> example["x"].numpy().tolist(), example["y"].numpy().item()
([[0.5, 1.0], [2.0, -3.25]], 0.125)
"""

import dataclasses
import hashlib

import numpy as np
import tensorflow as tf

DTYPES = {"string": tf.string, "int64": tf.int64, "float32": tf.float32}
PARSE_BATCH = 256  # records parsed per call: one parse per record is several times slower


@dataclasses.dataclass(frozen=True)
class Feature:
    """One feature of a dataset's examples.

    Args:
        dtype: "string", "int64" or "float32".
        description: what the value means (shown by `tfmask.datasets.list()`).
        ragged: True for a variable-length list (words, tags), False for a
            scalar or a fixed `shape`.
        shape: a fixed shape, e.g. (30,) or (8, 8, 1): the value is nested
            lists of that shape. () (the default) is a scalar.
    """

    dtype: str
    description: str
    ragged: bool = False
    shape: tuple = ()

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"Feature dtype {self.dtype!r} is not one of {sorted(DTYPES)}.")
        shape = tuple(self.shape)
        if not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape):
            raise ValueError(f"Feature shape {self.shape!r} must be positive ints, e.g. (8, 8, 1).")
        if self.ragged and shape:
            raise ValueError("A Feature is ragged or has a fixed shape, not both.")
        object.__setattr__(self, "shape", shape)

    @property
    def signature(self):
        if self.ragged:
            return f"{self.dtype}[None]"
        if self.shape:
            return f"{self.dtype}[{', '.join(map(str, self.shape))}]"
        return self.dtype


def _flatten(value, shape, key):
    """Nested lists of `shape` -> a flat list, row-major; any other shape fails."""
    if not shape:
        return [value]
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != shape[0]:
        raise TypeError(
            f"Feature {key!r} must be nested lists of shape {list(shape)}, got {value!r}."
        )
    return [v for item in value for v in _flatten(item, shape[1:], key)]


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _encode(value, feature, key):
    values = list(value) if feature.ragged else _flatten(value, feature.shape, key)
    if feature.dtype == "string":
        if not all(isinstance(v, str) for v in values):
            raise TypeError(f"Feature {key!r} must hold str, got {value!r}.")
        return tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[v.encode("utf-8") for v in values])
        )
    if feature.dtype == "float32":
        if not all(_is_int(v) or isinstance(v, (float, np.floating)) for v in values):
            raise TypeError(f"Feature {key!r} must hold float, got {value!r}.")
        inexact = [v for v in values if float(np.float32(v)) != float(v)]
        if inexact:
            raise ValueError(
                f"Feature {key!r} holds {inexact[0]!r}, which float32 does not represent "
                "exactly (and NaN never equals itself): round with float(numpy.float32(v)), "
                "and keep missing values as a 0/1 mask feature."
            )
        return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))
    if not all(_is_int(v) for v in values):
        raise TypeError(f"Feature {key!r} must hold int, got {value!r}.")
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def serialize(example, features):
    """One example dict (plain Python values) -> serialized `tf.train.Example`."""
    missing = set(features) - set(example)
    if missing:
        raise KeyError(f"Example lacks features {sorted(missing)}: {example!r}")
    encoded = {key: _encode(example[key], feature, key) for key, feature in features.items()}
    example = tf.train.Example(features=tf.train.Features(feature=encoded))
    return example.SerializeToString(deterministic=True)  # sorted map keys: same bytes every run


def write_records(path, examples, features):
    """Writes examples to one TFRecord file; returns how many."""
    count = 0
    with tf.io.TFRecordWriter(path) as writer:
        for example in examples:
            writer.write(serialize(example, features))
            count += 1
    return count


def parse_spec(features):
    return {
        key: tf.io.RaggedFeature(DTYPES[f.dtype])
        if f.ragged
        else tf.io.FixedLenFeature(list(f.shape), DTYPES[f.dtype])
        for key, f in features.items()
    }


def parse_records(records, features):
    """Dataset of serialized records -> dataset of example dicts."""
    spec = parse_spec(features)
    return records.batch(PARSE_BATCH).map(lambda batch: tf.io.parse_example(batch, spec)).unbatch()


def read_records(paths, features):
    """TFRecord files -> dataset of example dicts, in file order."""
    return parse_records(tf.data.TFRecordDataset(list(paths)), features)


def sha256(path, chunk_size=1 << 20):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()
