"""`datasets.load` of sources outside the registry: `tfds:NAME` (offline, with
TFDS mock data) and a user's own `file:PATH` files: text, JSONL, CSV and
TFRecord with labels and declared extra fields, CoNLL, one file per split
or a pool split by text, and one-line errors. The readers themselves are
tested in tests/data/sources."""

import json
import os

import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tfmask import datasets
from tfmask.data.sources import SourceError

FIXTURE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures",
                       "conll2003_sample.txt")
NER = [{"words": ["Anna", "lives", "in", "Paris"], "tags": ["B-PER", "O", "O", "B-LOC"],
        "stars": 3},
       {"words": ["Bob", "Smith", "left"], "tags": ["B-PER", "I-PER", "O"], "stars": 1}]
DECLARED = {"words": "string[None]", "tags": "string[None]", "stars": "int64"}


def rows(dataset, batch=2):
    """Batched with plain `batch` (what the task pipelines do) -> python lists."""
    out = []
    for b in dataset.batch(batch):
        out.extend(dict(zip(b, values)) for values in zip(*(
            v.to_list() if isinstance(v, tf.RaggedTensor) else v.numpy().tolist()
            for v in b.values())))
    return out


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def write_tfrecord(path, records):
    def feature(value):
        values = value if isinstance(value, list) else [value]
        if isinstance(values[0], int):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))

    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            example = tf.train.Example(features=tf.train.Features(
                feature={k: feature(v) for k, v in record.items()}))
            writer.write(example.SerializeToString())
    return str(path)


def expected(record):
    return {"text": " ".join(record["words"]).encode(), "words": [w.encode() for w in
            record["words"]], "tags": [t.encode() for t in record["tags"]],
            "stars": record["stars"]}


def texts(dataset):
    return [e["text"].numpy().decode() for e in dataset]


# ---------------------------------------------------------------- tfds:NAME


def test_tfds_passthrough_with_mock_data_and_options():
    with tfds.testing.mock_data(num_examples=6):
        data = datasets.load("tfds:imdb_reviews", split="train")
        examples = list(data.as_numpy_iterator())
        with pytest.raises(ValueError, match="has no feature 'review'"):
            datasets.load("tfds:imdb_reviews", split="test", text_key="review")
        assert len(list(datasets.load("tfds:imdb_reviews", split="test", shuffle_files=False))) == 6
    assert len(examples) == 6
    assert {"text", "label"} <= set(examples[0])
    assert isinstance(examples[0]["text"], bytes)


# ---------------------------------------------------------------- file:PATH


def test_a_text_file_is_one_document_per_line_and_its_splits_a_fixed_partition(tmp_path):
    path = tmp_path / "docs.txt"
    documents = [f"document number {i}" for i in range(2000)]
    path.write_text(documents[0] + "\n\n" + "".join(f"{d}\n" for d in documents[1:]))
    everything = texts(datasets.load(f"file:{path}", split="all"))
    assert everything == documents  # the blank line is no document
    parts = {
        split: texts(datasets.load(f"file:{path}", split=split))
        for split in ("train", "validation", "test")
    }
    assert sorted(sum(parts.values(), [])) == sorted(everything)
    assert not set(parts["train"]) & set(parts["test"])
    assert not set(parts["validation"]) & set(parts["test"])
    assert 150 < len(parts["test"]) < 250 and 150 < len(parts["validation"]) < 250
    assert parts["test"] == texts(datasets.load(f"file:{path}", split="test"))  # stable


def test_jsonl_and_csv_with_labels(tmp_path):
    jsonl = tmp_path / "reviews.jsonl"
    jsonl.write_text('{"body": "great", "stars": 1}\n{"body": "awful", "stars": 0}\n')
    got = list(datasets.load(f"file:{jsonl}", split="all", text_field="body", label_field="stars"))
    assert [(r["text"].numpy(), int(r["label"])) for r in got] == [(b"great", 1), (b"awful", 0)]
    csv = tmp_path / "reviews.csv"
    csv.write_text('label,text\n1,"good, really"\n0,bad\n')
    got = list(datasets.load(f"file:{csv}", split="all", label_field="label"))
    assert [(r["text"].numpy(), int(r["label"])) for r in got] == [
        (b"good, really", 1),
        (b"bad", 0),
    ]


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
    with pytest.raises(ValueError, match=r"format='parquet'.*set data.dataset_options.format"):
        datasets.load(f"file:{FIXTURE}", split="all", format="parquet")
    (tmp_path / "a.txt").write_text("x\n")
    with pytest.raises(ValueError, match="has no labels"):
        datasets.load(f"file:{tmp_path}/a.txt", split="all", label_field="y")
    with pytest.raises(ValueError, match="must be 'all', 'train', 'validation' or 'test'"):
        datasets.load(f"file:{tmp_path}/a.txt", split="train[:5]")


def test_jsonl_words_tags_and_metadata_with_text_from_the_words(tmp_path):
    path = write_jsonl(tmp_path / "ner.jsonl", NER)
    docs = datasets.load(f"file:{path}", split="all", text_field="words", extra_fields=DECLARED)
    assert isinstance(docs.element_spec["words"], tf.RaggedTensorSpec)
    assert rows(docs) == [expected(r) for r in NER]
    # Names only: types from the first record.
    named = datasets.load(f"file:{path}", split="all", text_field="words",
                          extra_fields=["words", "tags"])
    assert [r["tags"] for r in rows(named)] == [expected(r)["tags"] for r in NER]


def test_csv_list_columns_are_whitespace_separated(tmp_path):
    path = tmp_path / "ner.csv"
    path.write_text("words,tags,stars\n" + "".join(
        f'"{" ".join(r["words"])}","{" ".join(r["tags"])}",{r["stars"]}\n' for r in NER))
    docs = datasets.load(f"file:{path}", split="all", text_field="words", extra_fields=DECLARED)
    assert rows(docs) == [expected(r) for r in NER]


def test_tfrecord_with_a_feature_spec(tmp_path):
    records = [{"text": " ".join(r["words"]), **r} for r in NER]
    path = write_tfrecord(tmp_path / "ner.tfrecord", records)
    docs = datasets.load(f"file:{path}", split="all", extra_fields=DECLARED)
    assert rows(docs) == [expected(r) for r in NER]
    with pytest.raises(SourceError, match="record 1 does not match feature_spec"):
        datasets.load(f"file:{path}", split="all", extra_fields={"missing": "int64"})
    with pytest.raises(SourceError, match="'stars' needs a declared type"):
        datasets.load(f"file:{path}", split="all", extra_fields=["stars"])


def test_conll_by_extension_or_format_and_one_file_per_split(tmp_path):
    text = open(FIXTURE).read()
    for split in ("train", "validation"):
        (tmp_path / f"{split}.conll").write_text(text)
    docs = rows(datasets.load(f"file:{tmp_path}/{{split}}.conll", split="validation"))
    assert len(docs) == 5 and docs[0]["words"][:2] == [b"Maria", b"Lindqvist"]
    assert docs[0]["text"] == b" ".join(docs[0]["words"])
    same = rows(datasets.load(f"file:{FIXTURE}", split="all", format="conll"))
    assert same == docs
    pos = rows(datasets.load(f"file:{FIXTURE}", split="all", format="conll", tag_column=1))
    assert pos[0]["tags"][0] == b"NNP"


def test_pool_splits_of_word_lists_partition_by_text(tmp_path):
    records = [{"words": [f"w{i}", "is", "here"], "tags": ["B-X", "O", "O"], "stars": i}
               for i in range(300)]
    path = write_jsonl(tmp_path / "ner.jsonl", records)
    options = dict(text_field="words", extra_fields=DECLARED)
    parts = {split: rows(datasets.load(f"file:{path}", split=split, **options), 64)
             for split in ("train", "validation", "test")}
    stars = sorted(r["stars"] for part in parts.values() for r in part)
    assert stars == list(range(300))  # every record once
    assert 10 < len(parts["test"]) < 60 and len(parts["train"]) > 200
    assert all(r["words"][0] == f"w{r['stars']}".encode() for r in parts["test"])


@pytest.mark.parametrize("options, error, message", [
    ({"text_field": "words", "extra_fields": {"labels": "int64"}}, SourceError,
     r"ner.jsonl line 1 has no field 'labels' \(it has 'words', 'tags', 'stars'\)"),
    ({"text_field": "words", "extra_fields": {"tags": "int64[None]"}}, SourceError,
     r"ner.jsonl line 1: field 'tags' holds a list .* not int64\[None\]; .*'string\[None\]'"),
    ({"text_field": "words", "extra_fields": {"stars": "string"}}, SourceError,
     r"field 'stars' holds a int64 3, not string"),
    ({"text_field": "words", "extra_fields": {"tags": "text"}}, SourceError,
     r"'tags' is declared as 'text', which is not a type"),
    ({"extra_fields": "words"}, ValueError, r"must map field names to types"),
    ({"token_column": 1}, ValueError, r"is jsonl, not CoNLL; drop token_column"),
    ({"stripes": 1}, TypeError, r"file: sources take .*, not stripes"),
])
def test_bad_declarations_are_one_line(tmp_path, options, error, message):
    path = write_jsonl(tmp_path / "ner.jsonl", NER)
    with pytest.raises(error, match=message):
        datasets.load(f"file:{path}", split="all", **options)


def test_a_later_line_with_a_wrong_type_names_its_line(tmp_path):
    path = write_jsonl(tmp_path / "ner.jsonl", NER + [{**NER[0], "tags": "B-PER O O B-LOC"}])
    docs = datasets.load(f"file:{path}", split="all", text_field="words", extra_fields=DECLARED)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"ner.jsonl line 3: field 'tags' holds a string"):
        rows(docs)


def test_conll_files_refuse_field_options():
    with pytest.raises(ValueError, match="is CoNLL and has text, words and tags only; drop "
                                         "extra_fields"):
        datasets.load(f"file:{FIXTURE}", split="all", format="conll", extra_fields=["x"])
