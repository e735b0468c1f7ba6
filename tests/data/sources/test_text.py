"""Plain-text files (`tfmask.data.sources.text`): lines and paragraphs, CRLF,
byte order marks, blank lines, globs and bad UTF-8 under each mode."""

import pytest
import tensorflow as tf

from tfmask.data import features as F
from tfmask.data.sources import SourceError, text_files
from tests.data.sources.helpers import BAD, REPLACED, texts, write


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


def test_empty_and_blank_files(tmp_path):
    empty = write(tmp_path, "empty.txt", b"")
    blank = write(tmp_path, "blank.txt", b"\r\n  \n\t\n")
    with pytest.raises(SourceError, match="every file is empty or blank"):
        text_files([empty, blank])
    # One empty file among others is fine.
    full = write(tmp_path, "full.txt", "x\n")
    assert texts(text_files([empty, full])) == ["x"]


def test_unit_must_be_line_or_paragraph():
    with pytest.raises(ValueError, match="unit='sentence' is not one of"):
        text_files("x", unit="sentence")
