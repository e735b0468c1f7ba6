"""TFRecord files (`tfmask.data.sources.tfrecord`): fixed, VarLen and ragged
features, specs that do not match, records without text and bad UTF-8
under each mode."""

import pytest
import tensorflow as tf

from tfmask.data import features as F
from tfmask.data.sources import SourceError, tfrecord_files
from tests.data.sources.helpers import BAD, REPLACED, texts


def example(**features):
    def feature(value):
        if isinstance(value, bytes):
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
        return tf.train.Feature(int64_list=tf.train.Int64List(value=list(value)))

    return tf.train.Example(features=tf.train.Features(
        feature={k: feature(v) for k, v in features.items()})).SerializeToString()


def write_tfrecord(tmp_path, name, records):
    path = str(tmp_path / name)
    with tf.io.TFRecordWriter(path) as writer:
        for record in records:
            writer.write(record)
    return path


TEXT_SPEC = {"text": tf.io.FixedLenFeature([], tf.string)}


def test_tfrecord_fixed_varlen_and_ragged_features(tmp_path, batch_size):
    path = write_tfrecord(tmp_path, "a.tfrecord", [
        example(text=b"first", ids=[1, 2, 3], more=[7], label=[1]),
        example(text=b" ", ids=[], more=[], label=[0]),
        example(text=b"second", ids=[4], more=[8, 9], label=[0]),
    ])
    spec = {**TEXT_SPEC, "ids": tf.io.VarLenFeature(tf.int64),
            "more": tf.io.RaggedFeature(tf.int64),
            "label": tf.io.FixedLenFeature([], tf.int64)}
    docs = tfrecord_files(path, spec)
    assert docs.element_spec["ids"] == tf.TensorSpec([None], tf.int64)
    got = list(docs)
    assert [d[F.TEXT].numpy() for d in got] == [b"first", b"second"]
    assert [d["ids"].numpy().tolist() for d in got] == [[1, 2, 3], [4]]
    assert [d["more"].numpy().tolist() for d in got] == [[7], [8, 9]]
    assert [int(d["label"]) for d in got] == [1, 0]
    assert (docs.stats.documents, docs.stats.empty) == (2, 1)


def test_tfrecord_errors(tmp_path):
    path = write_tfrecord(tmp_path, "a.tfrecord", [example(body=b"x")])
    with pytest.raises(SourceError, match=r"a.tfrecord record 1 does not match feature_spec"):
        tfrecord_files(path, TEXT_SPEC)
    with pytest.raises(SourceError, match="feature_spec has no 'text' feature"):
        tfrecord_files(path, {"body": tf.io.FixedLenFeature([], tf.string)}, text_key="text")
    renamed = tfrecord_files(path, {"body": tf.io.FixedLenFeature([], tf.string)}, text_key="body")
    assert texts(renamed) == ["x"]
    empty = write_tfrecord(tmp_path, "empty.tfrecord", [])
    with pytest.raises(SourceError, match="No documents in .*empty.tfrecord"):
        tfrecord_files(empty, TEXT_SPEC)


def test_tfrecord_without_text(tmp_path, batch_size):
    path = write_tfrecord(tmp_path, "ids.tfrecord", [example(ids=[1, 2]), example(ids=[3])])
    docs = tfrecord_files(path, {"ids": tf.io.VarLenFeature(tf.int64)}, text_key=None)
    assert [d["ids"].numpy().tolist() for d in docs] == [[1, 2], [3]]
    assert docs.stats.documents == 2


def test_tfrecord_decode_errors_under_each_mode(tmp_path, batch_size):
    records = [example(text=b"good"), example(text=BAD), example(text=b"fine")]
    path = write_tfrecord(tmp_path, "bad.tfrecord", records)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="invalid UTF-8 in .*bad.tfrecord record 2"):
        list(tfrecord_files(path, TEXT_SPEC))
    replaced = tfrecord_files(path, TEXT_SPEC, on_decode_error="replace")
    assert texts(replaced) == ["good", REPLACED, "fine"] and replaced.stats.replaced == 1
    skipped = tfrecord_files(path, TEXT_SPEC, on_decode_error="skip")
    assert texts(skipped) == ["good", "fine"] and skipped.stats.skipped == 1
