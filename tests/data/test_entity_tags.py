"""Entity spans from word-level tags: BIO (IOB2), IOB1, IOBES, BILOU and bare
IO tags agree with a plain-Python reading of the same rules."""

import random

import pytest
import tensorflow as tf

from tfmask.data.pipeline import entity_ids_from_bio

CLOSING = ("E-", "S-", "L-", "U-")
INSIDE = ("I-", "E-", "L-")


def reference(tags):
    """One row, word by word: the rules of `entity_ids_from_bio`'s docstring."""
    ids, current, previous = [], -1, None  # previous: (kind, closed) of the last word
    for tag in tags:
        if tag == "O" or len(tag) < 3:
            ids.append(-1)
            previous = None
            continue
        prefixed = tag[:2] in ("B-", "I-", "E-", "S-", "L-", "U-")
        prefix, kind = (tag[:2], tag[2:]) if prefixed else ("I-", tag)
        open_same = previous is not None and not previous[1] and previous[0] == kind
        if not (prefix in INSIDE and open_same):
            current += 1
        ids.append(current)
        previous = (kind, prefix in CLOSING)
    return ids


def spans(tags):
    return entity_ids_from_bio(tf.ragged.constant(tags)).to_list()


@pytest.mark.parametrize("tags, expected", [
    # BIO (IOB2): B- starts, I- continues the same type.
    (["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "I-LOC"], [0, 0, -1, 1, 2, 2]),
    # IOB1 (CoNLL-2003 as published): I- after O starts; B- splits neighbours.
    (["I-LOC", "B-LOC", "O", "I-PER", "I-PER"], [0, 1, -1, 2, 2]),
    # IOBES: S- is a whole entity; E- closes one; I- after E- starts anew.
    (["S-PER", "B-ORG", "I-ORG", "E-ORG", "I-ORG", "S-ORG", "E-ORG"], [0, 1, 1, 1, 2, 3, 4]),
    # BILOU is IOBES with L-/U-.
    (["U-LOC", "B-LOC", "L-LOC", "O"], [0, 1, 1, -1]),
    # Bare type tags (IO): a run of one type is one entity.
    (["PER", "PER", "O", "LOC", "ORG"], [0, 0, -1, 1, 2]),
    # Types with hyphens (WNUT's geo-loc) and a type change inside a run.
    (["B-geo-loc", "I-geo-loc", "I-person"], [0, 0, 1]),
])
def test_known_sequences(tags, expected):
    assert spans([tags]) == [expected]
    assert reference(tags) == expected


def test_random_sequences_match_the_python_reference():
    rng = random.Random(0)
    alphabet = ["O", "O", "X"] + [p + k for p in ("B-", "I-", "E-", "S-", "L-", "U-")
                                  for k in ("PER", "LOC")] + ["PER"]
    rows = [[rng.choice(alphabet) for _ in range(rng.randint(0, 12))] for _ in range(400)]
    rows.append([])
    assert spans(rows) == [reference(row) for row in rows]


def test_ids_count_entities_per_row_and_keep_row_lengths():
    ids = entity_ids_from_bio(tf.ragged.constant([["B-A", "O"], ["S-A", "S-A", "S-A"], []]))
    assert ids.row_lengths().numpy().tolist() == [2, 3, 0]
    assert ids.to_list() == [[0, -1], [0, 1, 2], []]
