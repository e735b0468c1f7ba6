"""The parsed cache: examples as TFRecord files of `tf.train.Example`, with checksums.

A dataset's features are declared once (`Feature`); the same declaration
encodes examples at prepare time and builds the parse spec at load time.
String features are stored UTF-8; ragged features (`ragged=True`) come out
of `read_records` as one variable-length 1-D tensor per example, and as a
`tf.RaggedTensor` once the dataset is batched.

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
"""

import dataclasses
import hashlib

import tensorflow as tf

DTYPES = {"string": tf.string, "int64": tf.int64}
PARSE_BATCH = 256  # records parsed per call: one parse per record is several times slower


@dataclasses.dataclass(frozen=True)
class Feature:
    """One feature of a dataset's examples.

    Args:
        dtype: "string" or "int64".
        description: what the value means (shown by `tfmask.datasets.list()`).
        ragged: True for a variable-length list (words, tags), False for a scalar.
    """

    dtype: str
    description: str
    ragged: bool = False

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"Feature dtype {self.dtype!r} is not one of {sorted(DTYPES)}.")

    @property
    def signature(self):
        return f"{self.dtype}[None]" if self.ragged else self.dtype


def _encode(value, feature, key):
    values = list(value) if feature.ragged else [value]
    if feature.dtype == "string":
        if not all(isinstance(v, str) for v in values):
            raise TypeError(f"Feature {key!r} must hold str, got {value!r}.")
        return tf.train.Feature(
            bytes_list=tf.train.BytesList(value=[v.encode("utf-8") for v in values])
        )
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise TypeError(f"Feature {key!r} must hold int, got {value!r}.")
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


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
        else tf.io.FixedLenFeature([], DTYPES[f.dtype])
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
