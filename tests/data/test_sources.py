"""Sources: every file type with the tricky cases (CRLF, blank lines, bad
UTF-8 under each mode, missing and empty files, missing fields, globs) and
TFDS through its mock data."""

import json

import numpy as np
import pytest
import tensorflow as tf

from tfmask.data import features as F
from tfmask.data.sources import core
from tfmask.data.sources import (
    SourceError,
    csv_files,
    jsonl_files,
    resolve_paths,
    text_files,
    tfds_source,
    tfrecord_files,
)

BAD = b"caf\xe9 au lait"  # Latin-1 "é": not UTF-8
REPLACED = "caf\ufffd au lait"


@pytest.fixture(params=[512, 2], ids=["batch512", "batch2"])
def batch_size(request, monkeypatch):
    """Runs a test with the real internal batch and with a tiny one, so that
    paragraphs, counts and record numbers cross batch boundaries."""
    monkeypatch.setattr(core, "BATCH_SIZE", request.param)
    return request.param


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return str(path)


def texts(dataset):
    return [d[F.TEXT].numpy().decode("utf-8") for d in dataset]


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


# ---------------------------------------------------------------- text files


def test_lines_with_crlf_bom_blank_and_trailing_lines(tmp_path, batch_size):
    path = write(tmp_path, "a.txt",
                 b"\xef\xbb\xbffirst line\r\n  \r\nsecond\tline \r\n\r\nthird\r\n\r\n\n\n")
    docs = text_files(path)
    assert texts(docs) == ["first line", "second\tline ", "third"]
    assert docs.element_spec == {F.TEXT: tf.TensorSpec([], tf.string)}
    assert docs.stats.as_dict() == {"documents": 3, "empty": 5, "skipped": 0, "replaced": 0}


def test_paragraphs(tmp_path, batch_size):
    path = write(tmp_path, "p.txt",
                 "\n\nOne a\r\nOne b\r\n\r\n\r\nTwo\n \t \nThree a\nThree b\nThree c")
    docs = text_files(path, unit="paragraph")
    assert texts(docs) == ["One a\nOne b", "Two", "Three a\nThree b\nThree c"]
    assert docs.stats.documents == 3


def test_paragraph_longer_than_a_batch(tmp_path, batch_size):
    lines = [f"line {i}" for i in range(2 * batch_size + 3)]
    path = write(tmp_path, "long.txt", "\n".join(lines) + "\n\nlast\n")
    assert texts(text_files(path, unit="paragraph")) == ["\n".join(lines), "last"]


def test_glob_reads_every_file_in_sorted_order(tmp_path, batch_size):
    for name, body in (("b.txt", "b1\nb2\n"), ("a.txt", "a1\n"), ("c.txt", "c1\n\nc2"),
                       ("skip.md", "no\n")):
        write(tmp_path, name, body)
    docs = text_files(str(tmp_path / "*.txt"))
    assert texts(docs) == ["a1", "b1", "b2", "c1", "c2"]
    mixed = text_files([str(tmp_path / "c.txt"), str(tmp_path / "[ab].txt")])
    assert texts(mixed) == ["c1", "c2", "a1", "b1", "b2"]


@pytest.mark.parametrize("unit", ["line", "paragraph"])
def test_text_decode_errors_under_each_mode(tmp_path, batch_size, unit):
    path = write(tmp_path, "bad.txt", b"good one\n\n" + BAD + b"\n\ngood two\n")
    where = "line 3" if unit == "line" else "paragraph starting at line 3"
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=f"invalid UTF-8 in .*bad.txt {where}; fix the file or pass"):
        list(text_files(path, unit=unit))
    replaced = text_files(path, unit=unit, on_decode_error="replace")
    assert texts(replaced) == ["good one", REPLACED, "good two"]
    assert (replaced.stats.replaced, replaced.stats.skipped) == (1, 0)
    skipped = text_files(path, unit=unit, on_decode_error="skip")
    assert texts(skipped) == ["good one", "good two"]
    assert (skipped.stats.skipped, skipped.stats.replaced, skipped.stats.documents) == (1, 0, 2)


def test_missing_empty_and_blank_files(tmp_path):
    with pytest.raises(SourceError, match=r"File not found: '.*nope.txt'; check the path"):
        text_files(str(tmp_path / "nope.txt"))
    with pytest.raises(SourceError, match=r"No file matches '.*\*.jsonl'"):
        text_files(str(tmp_path / "*.jsonl"))
    with pytest.raises(SourceError, match="is a directory; pass a glob"):
        text_files(str(tmp_path))
    with pytest.raises(SourceError, match="No input paths"):
        text_files([])
    empty = write(tmp_path, "empty.txt", b"")
    blank = write(tmp_path, "blank.txt", b"\r\n  \n\t\n")
    with pytest.raises(SourceError, match="every file is empty or blank"):
        text_files([empty, blank])
    # One empty file among others is fine.
    full = write(tmp_path, "full.txt", "x\n")
    assert texts(text_files([empty, full])) == ["x"]


def test_stats_accumulate_over_epochs_and_reset(tmp_path):
    docs = text_files(write(tmp_path, "a.txt", "a\n\nb\n"))
    list(docs)
    list(docs)
    assert (docs.stats.documents, docs.stats.empty) == (4, 2)
    assert str(docs.stats) == "4 documents (dropped: 2 empty, 0 undecodable; 0 with replaced bytes)"
    docs.stats.reset()
    list(docs)
    assert docs.stats.documents == 2


def test_bad_arguments():
    with pytest.raises(ValueError, match="unit='sentence' is not one of"):
        text_files("x", unit="sentence")
    with pytest.raises(ValueError, match="on_decode_error='ignore' is not one of"):
        text_files("x", on_decode_error="ignore")


# ---------------------------------------------------------------- JSONL


def jsonl(*records):
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n"


def test_jsonl_text_and_extra_fields(tmp_path, batch_size):
    path = write(tmp_path, "a.jsonl", "\ufeff" + jsonl(
        {"body": "first", "id": 1, "score": 0.5, "tags": ["x", "y"], "ok": True},
        "",
        {"body": "  ", "id": 2, "score": 1.0, "tags": [], "ok": False},
        {"body": None, "id": 3, "score": 2.0, "tags": ["z"], "ok": True},
        {"body": "third, é", "id": 4, "score": 3.5, "tags": ["z"], "ok": False},
    ).replace("\n", "\r\n"))
    docs = jsonl_files(path, text_field="body", extra_fields=["id", "score", "tags", "ok"])
    spec = docs.element_spec
    assert spec["id"] == tf.TensorSpec([], tf.int64) and spec["score"].dtype == tf.float32
    assert spec["tags"] == tf.TensorSpec([None], tf.string) and spec["ok"].dtype == tf.bool
    got = list(docs)
    assert [d[F.TEXT].numpy().decode() for d in got] == ["first", "third, é"]
    assert [int(d["id"]) for d in got] == [1, 4]
    assert [d["tags"].numpy().tolist() for d in got] == [[b"x", b"y"], [b"z"]]
    assert docs.stats.empty == 2  # whitespace and null text
    # List features keep a dense spec, so padded_batch works downstream.
    batch = next(iter(docs.padded_batch(2)))
    assert batch["tags"].shape == (2, 2)


def test_jsonl_explicit_types(tmp_path):
    path = write(tmp_path, "a.jsonl", jsonl({"text": "a", "ids": [], "n": 1},
                                            {"text": "b", "ids": [4, 5], "n": 2}))
    with pytest.raises(SourceError, match="'ids' is an empty list .* so its type is unknown"):
        jsonl_files(path, extra_fields=["ids"])
    docs = jsonl_files(path, extra_fields={"ids": tf.TensorSpec([None], tf.int32), "n": "float32"})
    got = list(docs)
    assert got[1]["ids"].numpy().tolist() == [4, 5] and got[1]["ids"].dtype == tf.int32
    assert got[1]["n"].dtype == tf.float32
    mixed = write(tmp_path, "mixed.jsonl", jsonl({"text": "a", "n": 1}, {"text": "b", "n": "x"}))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"mixed.jsonl line 2: field 'n' holds a string \"x\", not int64"):
        list(jsonl_files(mixed, extra_fields=["n"]))


def test_jsonl_missing_field_names_the_field_and_the_file(tmp_path):
    first = write(tmp_path, "first.jsonl", jsonl({"body": "x"}))
    with pytest.raises(SourceError, match=r"first.jsonl line 1 has no field 'text' "
                                          r"\(it has 'body'\); pass text_field="):
        jsonl_files(first)
    later = write(tmp_path, "later.jsonl", jsonl({"text": "x", "id": 1}, {"text": "y"}))
    with pytest.raises(SourceError, match="later.jsonl line 1 has no field 'idx'"):
        jsonl_files(later, extra_fields=["idx"])
    docs = jsonl_files(later, extra_fields=["id"])  # only line 2 lacks it: found while reading
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="later.jsonl line 2 has no field 'id'"):
        list(docs)


def test_jsonl_malformed_lines(tmp_path):
    broken = write(tmp_path, "broken.jsonl", jsonl({"text": "ok"}, '{"text": "no end'))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="broken.jsonl line 2 is not valid JSON"):
        list(jsonl_files(broken))
    array = write(tmp_path, "array.jsonl", jsonl(["text"]))
    with pytest.raises(SourceError, match="array.jsonl line 1 is a JSON list, not an object"):
        jsonl_files(array)
    number = write(tmp_path, "number.jsonl", jsonl({"text": "a"}, {"text": 5}))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="line 2: the text field is a JSON int"):
        list(jsonl_files(number))


def test_jsonl_decode_errors_under_each_mode(tmp_path, batch_size):
    path = write(tmp_path, "bad.jsonl",
                 b'{"text": "good"}\n{"text": "' + BAD + b'", "id": 2}\n{"text": "\\ud800 lone"}\n')
    with pytest.raises(tf.errors.InvalidArgumentError, match="invalid UTF-8 in .*bad.jsonl line 2"):
        list(jsonl_files(path))
    replaced = jsonl_files(path, on_decode_error="replace")
    assert texts(replaced) == ["good", REPLACED, "\ufffd\ufffd\ufffd lone"]
    assert replaced.stats.replaced == 2
    skipped = jsonl_files(path, on_decode_error="skip")
    assert texts(skipped) == ["good"]
    assert (skipped.stats.skipped, skipped.stats.documents) == (2, 1)


def test_jsonl_with_no_documents(tmp_path):
    path = write(tmp_path, "empty.jsonl", jsonl({"text": ""}, {"text": None}, "  "))
    with pytest.raises(SourceError, match="No documents in .*empty.jsonl"):
        jsonl_files(path)


# ---------------------------------------------------------------- CSV


def test_csv_quoting_crlf_and_typed_columns(tmp_path, batch_size):
    path = write(tmp_path, "a.csv",
                 'id,text,label\r\n1,"hello, world",pos\r\n2,"two\r\nlines",neg\r\n'
                 '3,,neg\r\n\r\n4,"say ""hi""",pos\r\n')
    docs = csv_files(path, extra_columns={"id": tf.int64, "label": tf.string})
    got = list(docs)
    assert [d[F.TEXT].numpy().decode() for d in got] == ["hello, world", "two\r\nlines", 'say "hi"']
    assert [int(d["id"]) for d in got] == [1, 2, 4]
    assert [d["label"].numpy() for d in got] == [b"pos", b"neg", b"pos"]
    assert docs.stats.empty == 1


def test_tsv_and_glob_over_several_files(tmp_path, batch_size):
    write(tmp_path, "1.tsv", "text\tn\na\t1\nb\t2\n")
    write(tmp_path, "2.tsv", "n\ttext\n3\tc\n")
    docs = csv_files(str(tmp_path / "*.tsv"), extra_columns=["n"], delimiter="\t")
    assert [(d[F.TEXT].numpy(), d["n"].numpy()) for d in docs] == [
        (b"a", b"1"), (b"b", b"2"), (b"c", b"3")]


def test_csv_missing_column_names_the_column_and_the_file(tmp_path):
    good = write(tmp_path, "good.csv", "text\nx\n")
    bad = write(tmp_path, "bad.csv", "body,label\nx,1\n")
    with pytest.raises(SourceError, match=r"bad.csv has no column 'text' "
                                          r"\(header: 'body', 'label'\)"):
        csv_files([good, bad])
    with pytest.raises(SourceError, match="good.csv has no column 'label'"):
        csv_files(good, extra_columns=["label"])


def test_csv_bad_cells_and_short_rows(tmp_path):
    path = write(tmp_path, "a.csv", "text,n\na,1\nb,x\n")
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="a.csv line 3: column 'n' holds 'x', not a int64"):
        list(csv_files(path, extra_columns={"n": "int64"}))
    short = write(tmp_path, "short.csv", "text,n\na,1\nb\n")
    with pytest.raises(tf.errors.InvalidArgumentError, match="short.csv line 3 has 1 columns"):
        list(csv_files(short))


def test_csv_decode_errors_under_each_mode(tmp_path, batch_size):
    path = write(tmp_path, "bad.csv", b"text\ngood\n\"" + BAD + b"\"\nfine\n")
    with pytest.raises(tf.errors.InvalidArgumentError, match="invalid UTF-8 in .*bad.csv line 3"):
        list(csv_files(path))
    replaced = csv_files(path, on_decode_error="replace")
    assert texts(replaced) == ["good", REPLACED, "fine"] and replaced.stats.replaced == 1
    skipped = csv_files(path, on_decode_error="skip")
    assert texts(skipped) == ["good", "fine"] and skipped.stats.skipped == 1


def test_csv_with_no_documents(tmp_path):
    header_only = write(tmp_path, "h.csv", "text,label\n")
    empty = write(tmp_path, "e.csv", "")
    blank_texts = write(tmp_path, "b.csv", "text,label\n,1\n  ,2\n")
    with pytest.raises(SourceError, match="No documents in 3 files"):
        csv_files([header_only, empty, blank_texts])


# ---------------------------------------------------------------- TFRecord


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


# ---------------------------------------------------------------- TFDS


def test_tfds_source_with_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=7):
        docs = tfds_source("imdb_reviews", "train")
        got = list(docs)
        assert len(got) + docs.stats.empty == 7
        assert set(got[0]) == {F.TEXT, "label"} and got[0][F.TEXT].dtype == tf.string
        with pytest.raises(SourceError, match=r"imdb_reviews\[train\] has no feature 'body'"):
            tfds_source("imdb_reviews", "train", text_key="body")
        with pytest.raises(ValueError, match="drop as_supervised="):
            tfds_source("imdb_reviews", "train", as_supervised=True)


# ---------------------------------------------------------------- paths


def test_resolve_paths(tmp_path):
    a = write(tmp_path, "a.txt", "a")
    write(tmp_path, "b.txt", "b")
    assert resolve_paths(tmp_path / "a.txt") == [a]
    assert [p.rsplit("/", 1)[1] for p in resolve_paths([str(tmp_path / "*.txt"), a])] == [
        "a.txt", "b.txt", "a.txt"]


def test_sources_feed_a_tokenizer_style_pipeline(tmp_path):
    """Sources end in plain unbatched dicts: batch, map, unbatch all work."""
    path = write(tmp_path, "a.txt", "\n".join(f"doc {i} " * (i + 1) for i in range(10)))
    words = text_files(path).batch(4).map(lambda d: tf.strings.split(d[F.TEXT])).unbatch()
    lengths = [int(tf.size(w)) for w in words]
    assert lengths == [2 * (i + 1) for i in range(10)]
    assert np.sum(lengths) == 110
