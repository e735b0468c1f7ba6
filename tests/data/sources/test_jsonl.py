"""JSON Lines files (`tfmask.data.sources.jsonl`): the text field, extra
fields typed from the first record or declared, malformed lines, missing
fields and bad UTF-8 under each mode."""

import json

import pytest
import tensorflow as tf

from tfmask.data import features as F
from tfmask.data.sources import SourceError, jsonl_files
from tests.data.sources.helpers import BAD, REPLACED, texts, write


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
