"""`tfds:NAME` passthrough (offline, with TFDS mock data) and `file:PATH` sources."""

import pytest
import tensorflow_datasets as tfds

from tfmask import datasets


def test_tfds_passthrough_with_mock_data():
    with tfds.testing.mock_data(num_examples=6):
        data = datasets.load("tfds:imdb_reviews", split="train")
        examples = list(data.as_numpy_iterator())
    assert len(examples) == 6
    assert {"text", "label"} <= set(examples[0])
    assert isinstance(examples[0]["text"], bytes)


def test_tfds_options_are_passed_through():
    with tfds.testing.mock_data(num_examples=3):
        with pytest.raises(ValueError, match="has no feature 'review'"):
            datasets.load("tfds:imdb_reviews", split="test", text_key="review")
        assert len(list(datasets.load("tfds:imdb_reviews", split="test", shuffle_files=False))) == 3


def texts(dataset):
    return [e["text"].numpy().decode() for e in dataset]


def test_text_file_one_document_per_line(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_text("first document\n\nsecond document\n")
    assert texts(datasets.load(f"file:{path}", split="all")) == [
        "first document",
        "second document",
    ]


def test_jsonl_and_csv_with_labels(tmp_path):
    jsonl = tmp_path / "reviews.jsonl"
    jsonl.write_text('{"body": "great", "stars": 1}\n{"body": "awful", "stars": 0}\n')
    rows = list(datasets.load(f"file:{jsonl}", split="all", text_field="body", label_field="stars"))
    assert [(r["text"].numpy(), int(r["label"])) for r in rows] == [(b"great", 1), (b"awful", 0)]
    csv = tmp_path / "reviews.csv"
    csv.write_text('label,text\n1,"good, really"\n0,bad\n')
    rows = list(datasets.load(f"file:{csv}", split="all", label_field="label"))
    assert [(r["text"].numpy(), int(r["label"])) for r in rows] == [
        (b"good, really", 1),
        (b"bad", 0),
    ]


def test_single_file_splits_are_a_fixed_partition(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_text("".join(f"document number {i}\n" for i in range(2000)))
    parts = {
        split: texts(datasets.load(f"file:{path}", split=split))
        for split in ("train", "validation", "test")
    }
    assert sorted(sum(parts.values(), [])) == sorted(
        texts(datasets.load(f"file:{path}", split="all"))
    )
    assert not set(parts["train"]) & set(parts["test"])
    assert not set(parts["validation"]) & set(parts["test"])
    assert 150 < len(parts["test"]) < 250 and 150 < len(parts["validation"]) < 250
    assert parts["test"] == texts(datasets.load(f"file:{path}", split="test"))  # stable


def test_one_file_per_split(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"text": "a"}\n')
    (tmp_path / "validation.jsonl").write_text('{"text": "b"}\n')
    pattern = f"file:{tmp_path}/{{split}}.jsonl"
    assert texts(datasets.load(pattern, split="validation")) == ["b"]
    with pytest.raises(ValueError, match="one file per split"):
        datasets.load(pattern, split="all")


def test_file_errors(tmp_path):
    with pytest.raises(ValueError, match="use .txt, .jsonl, .csv or .tsv"):
        datasets.load(f"file:{tmp_path}/data.parquet", split="all")
    (tmp_path / "a.txt").write_text("x\n")
    with pytest.raises(ValueError, match="has no labels"):
        datasets.load(f"file:{tmp_path}/a.txt", split="all", label_field="y")
    with pytest.raises(ValueError, match="must be 'all', 'train', 'validation' or 'test'"):
        datasets.load(f"file:{tmp_path}/a.txt", split="train[:5]")
