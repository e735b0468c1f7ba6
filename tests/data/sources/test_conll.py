"""The CoNLL column reader (`tfmask.data.sources.conll`): sentences, columns,
and one-line errors with file:line."""

import pytest
import tensorflow as tf

from tfmask.data.pipeline import entity_ids_from_bio
from tfmask.data.sources import SourceError
from tfmask.data.sources.conll import conll_files, read_sentences
from tests.data.sources.helpers import CONLL2003_SAMPLE, write


def sentences(dataset):
    return [{k: (v.numpy().decode() if v.shape.rank == 0 else [x.decode() for x in v.numpy()])
             for k, v in example.items()} for example in dataset]


def test_the_conll2003_fixture_reads_as_sentences_with_the_ner_column():
    docs = conll_files(CONLL2003_SAMPLE)
    got = sentences(docs)
    assert len(got) == 5  # -DOCSTART- lines are not sentences
    first = got[0]
    assert first["words"] == ["Maria", "Lindqvist", "opened", "a", "bakery", "in", "Uppsala", "."]
    assert first["tags"] == ["I-PER", "I-PER", "O", "O", "O", "O", "I-LOC", "O"]
    assert first["text"] == " ".join(first["words"])
    assert all(len(s["words"]) == len(s["tags"]) for s in got)
    assert docs.stats.documents == 5
    # The fixture is IOB1, as CoNLL-2003 was published: B- splits neighbours.
    last = got[-1]
    assert last["tags"][:2] == ["I-LOC", "B-LOC"]
    ids = entity_ids_from_bio(tf.ragged.constant([s["tags"] for s in got])).to_list()
    assert ids[0] == [0, 0, -1, -1, -1, -1, 1, -1]
    assert ids[1] == [-1, 0, 0, 0, -1, -1, 1, -1, -1]
    assert ids[-1][:2] == [0, 1]


def test_columns_are_selectable(tmp_path):
    got = sentences(conll_files(CONLL2003_SAMPLE, token_column=0, tag_column=1))
    assert got[0]["tags"][:3] == ["NNP", "NNP", "VBD"]
    path = write(tmp_path, "a.conll", "O Anna\nO sings\n")
    assert sentences(conll_files(path, token_column=1, tag_column=0))[0]["words"] == [
        "Anna", "sings"]
    untagged = conll_files(write(tmp_path, "b.conll", "Anna\nsings\n\nyes\n"), tag_column=None)
    assert sorted(untagged.element_spec) == ["text", "words"]
    assert [s["text"] for s in sentences(untagged)] == ["Anna sings", "yes"]


def test_blank_lines_crlf_tabs_and_a_missing_final_newline(tmp_path):
    path = write(tmp_path, "a.conll", "\r\n\r\na\tDT\tO\r\nb\tNN\tB-X\r\n\r\n\r\n\r\nc NN O")
    assert list(read_sentences(path)) == [(3, ["a", "b"], ["O", "B-X"]), (8, ["c"], ["O"])]


def test_a_line_with_another_column_count_names_file_and_line(tmp_path):
    path = write(tmp_path, "a.conll", "a DT O\nb NN O\n\nNew York NNP B-LOC\n")
    with pytest.raises(SourceError, match=r"a\.conll line 4 has 4 columns but line 1 has 3"):
        list(read_sentences(path))
    # In the first sentence it fails when the source is built.
    with pytest.raises(SourceError, match=r"line 2 has 2 columns"):
        conll_files(write(tmp_path, "b.conll", "a DT O\nb O\n"))


def test_a_later_bad_line_fails_iteration_naming_it(tmp_path):
    path = write(tmp_path, "a.conll", "a DT O\n\nb NN\n")
    docs = conll_files(path)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"line 3 has 2 columns"):
        list(docs)


@pytest.mark.parametrize("kwargs, message", [
    ({"tag_column": 5}, r"tag_column=5 is out of range; set tag_column to a column from 0 to 2"),
    ({"token_column": -4}, r"token_column=-4 is out of range"),
    ({"tag_column": 0}, r"both column 0; set tag_column=None"),
])
def test_bad_columns_are_one_line(tmp_path, kwargs, message):
    with pytest.raises(SourceError, match=message):
        conll_files(write(tmp_path, "a.conll", "a DT O\n"), **kwargs)


def test_a_file_without_sentences_is_refused(tmp_path):
    path = write(tmp_path, "a.conll", "-DOCSTART- -X- -X- O\n\n\n")
    with pytest.raises(SourceError, match="No sentences in .*a.conll"):
        conll_files(path)


def test_invalid_utf8_fails_names_the_sentence_or_is_replaced_or_skipped(tmp_path):
    path = write(tmp_path, "a.conll", b"ok NN O\n\nbad\xff NN B-X\nword NN O\n")
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"invalid UTF-8 in .*a.conll sentence starting at line 3"):
        list(conll_files(path))
    replaced = conll_files(path, on_decode_error="replace")
    got = sentences(replaced)
    assert got[1]["words"] == ["bad\ufffd", "word"] and got[1]["text"] == "bad\ufffd word"
    assert replaced.stats.replaced == 1
    skipped = conll_files(path, on_decode_error="skip")
    assert [s["text"] for s in sentences(skipped)] == ["ok"] and skipped.stats.skipped == 1
