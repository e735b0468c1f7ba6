"""Tags, entities and windows of token classification against references:
`seqeval` (the field's scorer) for entity spans and scores in every scheme,
brute force for windows and for the spreading of word tags over characters."""

import numpy as np
import pytest
import tensorflow as tf
from seqeval.metrics import f1_score
from seqeval.metrics.sequence_labeling import get_entities
from seqeval.scheme import BILOU

from tfmask.data import tagging as T
from tfmask.metrics import entity_scores

TYPES = ("PER", "LOC", "ORG")
SEQUENCES = 3000


def random_rows(scheme, count, seed):
    """Random tag sequences over `scheme`'s prefixes: valid and broken ones
    (stray I-, E- after O, type changes), as a model's guesses are."""
    rng = np.random.default_rng(seed)
    tags = ["O"] + [f"{p}-{t}" for p in T.SCHEMES[scheme] for t in TYPES]
    return [[tags[i] for i in rng.integers(0, len(tags), rng.integers(0, 25))]
            for _ in range(count)]


def valid_bilou_rows(count, seed):
    """Well-formed BILOU sequences: U- single-word, B- I-* L- longer entities."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(count):
        row = []
        while len(row) < rng.integers(1, 25):
            if rng.random() < 0.5:
                row.append("O")
                continue
            kind, length = TYPES[rng.integers(3)], int(rng.integers(1, 4))
            row += [f"U-{kind}"] if length == 1 else (
                [f"B-{kind}"] + [f"I-{kind}"] * (length - 2) + [f"L-{kind}"])
        rows.append(row)
    return rows


def spans_of(rows):
    """Our in-graph decoding (what predict and serving return), per row."""
    spans = T.entity_spans(tf.ragged.constant(rows, dtype=tf.string, ragged_rank=1)
                           if any(rows) else tf.ragged.constant([[]] * len(rows), tf.string))
    return [{(kind.decode(), int(start), int(end) - 1) for kind, start, end in zip(*row)}
            for row in zip(spans["type"].to_list(), spans["start"].to_list(),
                           spans["end"].to_list())]


@pytest.mark.parametrize("scheme", sorted(T.SCHEMES))
def test_entity_spans_equal_seqevals_in_every_scheme(scheme):
    rows = random_rows(scheme, SEQUENCES, seed=len(scheme))
    ours = spans_of(rows)
    for row, spans in zip(rows, ours):
        assert spans == set(get_entities(T.conlleval_tags(row, scheme))), row


@pytest.mark.parametrize("scheme", sorted(T.SCHEMES))
def test_entity_scores_count_the_spans_predict_shows(scheme):
    """Micro P/R/F1 and F1 per type from seqeval equal a brute-force count
    over our decoded spans (an entity counts when type and both ends match)."""
    true, predicted = random_rows(scheme, SEQUENCES, 1), random_rows(scheme, SEQUENCES, 2)
    predicted = [p[:len(t)] + ["O"] * (len(t) - len(p)) for t, p in zip(true, predicted)]
    gold = [{(i, *s) for s in spans} for i, spans in enumerate(spans_of(true))]
    guess = [{(i, *s) for s in spans} for i, spans in enumerate(spans_of(predicted))]
    gold, guess = set().union(*gold), set().union(*guess)
    scores = entity_scores(true, predicted, scheme)
    hits = len(gold & guess)
    assert scores["entity_precision"] == pytest.approx(hits / len(guess))
    assert scores["entity_recall"] == pytest.approx(hits / len(gold))
    assert scores["entity_f1"] == pytest.approx(2 * hits / (len(gold) + len(guess)))
    for kind in TYPES:
        g = {s for s in gold if s[1] == kind}
        p = {s for s in guess if s[1] == kind}
        assert scores[f"f1_{kind}"] == pytest.approx(2 * len(g & p) / (len(g) + len(p)))


def test_bilou_read_as_iobes_scores_as_seqevals_strict_bilou():
    true, predicted = valid_bilou_rows(SEQUENCES, 3), valid_bilou_rows(SEQUENCES, 4)
    predicted = [p[:len(t)] + ["O"] * (len(t) - len(p)) for t, p in zip(true, predicted)]
    # Cutting a row may end it inside an entity: keep the pairs that stay valid.
    pairs = [(t, p) for t, p in zip(true, predicted)
             if not p or p[-1][0] in "OLU"]
    true, predicted = [t for t, _ in pairs], [p for _, p in pairs]
    assert len(true) > SEQUENCES / 2
    strict = f1_score(true, predicted, mode="strict", scheme=BILOU)
    assert entity_scores(true, predicted, "bilou")["entity_f1"] == pytest.approx(strict)


def test_a_stray_inside_tag_starts_an_entity_as_conlleval_reads_it():
    # I-LOC after O opens an entity in BIO as in IOB1; B- splits two of one type.
    assert spans_of([["O", "I-LOC", "I-LOC", "B-LOC", "I-PER"]]) == [
        {("LOC", 1, 2), ("LOC", 3, 3), ("PER", 4, 4)}]
    assert T.stray_inside(["O", "I-LOC"]) == 1
    assert T.stray_inside(["B-LOC", "I-LOC", "I-PER"]) == 2
    assert T.stray_inside(["B-LOC", "I-LOC", "O"]) is None


@pytest.mark.parametrize("length,width,stride", [
    (0, 4, 2), (1, 4, 2), (4, 4, 2), (5, 4, 2), (17, 6, 1), (17, 6, 3), (30, 8, 8),
    (31, 8, 5), (100, 10, 7)])
def test_windows_own_every_position_once_and_hold_contiguous_slices(length, width, stride):
    ids = tf.ragged.constant([list(range(length)), [7, 8]], dtype=tf.int64, ragged_rank=1)
    pieces, row, owned = T.windows({"ids": ids}, width, stride)
    owners = {}
    for window, (values, mine, document) in enumerate(zip(pieces["ids"].to_list(),
                                                          owned.to_list(), row.numpy())):
        assert len(values) <= width
        if document == 0:
            assert values == list(range(values[0], values[0] + len(values))) if values else True
        for value, is_owner in zip(values, mine):
            if is_owner:
                assert (document, value) not in owners
                owners[(document, value)] = window
    assert sorted(v for d, v in owners if d == 0) == list(range(length))
    assert sorted(v for d, v in owners if d == 1) == [7, 8]


@pytest.mark.parametrize("scheme,word_tags,expected", [
    ("bio", ["B-PER", "I-PER"], [["B-PER", "I-PER", "I-PER"], ["I-PER", "I-PER"]]),
    ("iob1", ["I-PER", "B-PER"], [["I-PER", "I-PER", "I-PER"], ["B-PER", "I-PER"]]),
    ("iobes", ["S-PER", "E-LOC"], [["B-PER", "I-PER", "E-PER"], ["I-LOC", "E-LOC"]]),
    ("iobes", ["B-PER", "E-PER"], [["B-PER", "I-PER", "I-PER"], ["I-PER", "E-PER"]]),
    ("bilou", ["U-PER", "L-LOC"], [["B-PER", "I-PER", "L-PER"], ["I-LOC", "L-LOC"]]),
])
def test_word_tags_spread_over_characters_keep_the_entities(scheme, word_tags, expected):
    words = tf.ragged.constant([["江泽民", "中国"]])
    units, unit_tags = T.character_units(words, tf.ragged.constant([word_tags]))
    assert [u.decode() for u in units.flat_values.numpy()] == list("江泽民中国")
    flat = [t.decode() for t in unit_tags.flat_values.numpy()]
    assert flat == expected[0] + expected[1]
    # The same entities, now over characters.
    word_spans = spans_of([word_tags])[0]
    char_of_word = [0, 3, 5]
    assert spans_of([flat])[0] == {(kind, char_of_word[start], char_of_word[end + 1] - 1)
                                   for kind, start, end in word_spans}


def test_single_character_words_and_latin_runs_keep_their_tags():
    words = tf.ragged.constant([["在", "New-York", "O"]])
    units, tags = T.character_units(words, tf.ragged.constant([["O", "B-LOC", "O"]]))
    assert [u.decode() for u in units.flat_values.numpy()] == ["在", "New", "-", "York", "O"]
    assert [t.decode() for t in tags.flat_values.numpy()] == [
        "O", "B-LOC", "I-LOC", "I-LOC", "O"]


def test_character_offsets_count_characters_not_bytes():
    texts = tf.constant(["é 中国 x"])
    # é is 2 bytes, 中 and 国 3 each; 11 is the end of the text.
    offsets = T.character_offsets(texts, tf.ragged.constant([[0, 3, 9, 10, 11]], tf.int64))
    assert offsets.to_list() == [[0, 2, 4, 5, 6]]


def test_tag_set_and_scheme_detection():
    assert T.tag_set({"LOC"}, "bilou") == ["O", "B-LOC", "I-LOC", "L-LOC", "U-LOC"]
    assert T.scheme_of({"B", "I"}, has_stray_inside=False) == "bio"
    assert T.scheme_of({"I"}, has_stray_inside=True) == "iob1"
    assert T.scheme_of({"B", "I", "E", "S"}, False) == "iobes"
    assert T.scheme_of({"B", "L", "U"}, False) == "bilou"
    assert T.scheme_of({"E", "U"}, False) is None
