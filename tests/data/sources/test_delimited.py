"""CSV and TSV files (`tfmask.data.sources.delimited`): quoting, CRLF, typed
columns, globs over files with different column orders, missing columns,
bad cells and bad UTF-8 under each mode."""

import pytest
import tensorflow as tf

from tfmask.data import features as F
from tfmask.data.sources import SourceError, csv_files
from tests.data.sources.helpers import BAD, REPLACED, texts, write


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
