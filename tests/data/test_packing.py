"""Packing: no token lost, no document crossed, FFD exactly, static shapes,
over-long documents, padding measured, and block-diagonal attention masks."""

import collections
import re

import numpy as np
import pytest
import tensorflow as tf

from tfmask import masks
from tfmask.data import features as F
from tfmask.data.packing import PackingReport, first_fit_decreasing, pack, packing_report

S = 32


def lognormal_lengths(count, median=12, sigma=0.8, seed=0):
    """Sentence-like lengths: log-normal, at least 1 token, a long tail."""
    rng = np.random.default_rng(seed)
    return np.maximum(1, rng.lognormal(np.log(median), sigma, count)).astype(np.int64)


def documents(lengths, seed=0):
    """Random token ids per document, and a `doc_ids` key naming the document."""
    rng = np.random.default_rng(seed)
    tokens = [rng.integers(1, 30000, n).astype(np.int32) for n in lengths]
    doc_ids = [np.full(n, i, np.int32) for i, n in enumerate(lengths)]
    return tokens, doc_ids


def ragged_dataset(tokens, doc_ids=None):
    """Documents as `unbatch()` of a batched tokenizer gives them (ragged specs)."""
    data = {F.TOKEN_IDS: tf.ragged.constant(tokens, dtype=tf.int32)}
    if doc_ids is not None:
        data["doc_ids"] = tf.ragged.constant(doc_ids, dtype=tf.int32)
    return tf.data.Dataset.from_tensor_slices(data)


def dense_dataset(tokens, doc_ids):
    """Documents as variable-length dense tensors (a generator, a per-doc map)."""
    return tf.data.Dataset.from_generator(
        lambda: ({F.TOKEN_IDS: t, "doc_ids": d} for t, d in zip(tokens, doc_ids)),
        output_signature={F.TOKEN_IDS: tf.TensorSpec([None], tf.int32),
                          "doc_ids": tf.TensorSpec([None], tf.int32)},
    )


def rows_of(dataset):
    """All rows as one dict of numpy [R, S] arrays."""
    rows = list(dataset.as_numpy_iterator())
    return {key: np.stack([r[key] for r in rows]) for key in rows[0]}


def segments(rows):
    """Yields (row, segment id, positions) of every packed document."""
    for r, seg in enumerate(rows[F.SEGMENT_IDS]):
        for s in np.unique(seg[seg > 0]):
            yield r, s, np.flatnonzero(seg == s)


def pieces(tokens, limit):
    """What "split" must produce: each document cut into chunks of `limit`."""
    return collections.Counter(
        tuple(t[i:i + limit]) for t in tokens for i in range(0, len(t), limit)
    )


def reference_ffd(lengths, capacity):
    """First-fit decreasing one item at a time, the textbook way."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])  # stable
    room, count = [], []
    bins, offsets, slots = [0] * len(lengths), [0] * len(lengths), [0] * len(lengths)
    for i in order:
        b = next((b for b, r in enumerate(room) if r >= lengths[i]), len(room))
        if b == len(room):
            room.append(capacity)
            count.append(0)
        bins[i], offsets[i], slots[i] = b, capacity - room[b], count[b]
        room[b] -= lengths[i]
        count[b] += 1
    return bins, offsets, slots


@pytest.mark.parametrize("capacity,seed", [(16, 0), (128, 1), (512, 2), (7, 3)])
def test_first_fit_decreasing_is_exactly_the_textbook_algorithm(capacity, seed):
    lengths = np.minimum(lognormal_lengths(700, median=capacity / 5, sigma=1.0, seed=seed),
                         capacity)
    got = tf.function(first_fit_decreasing)(tf.constant(lengths), capacity)  # as in tf.data
    want = reference_ffd(lengths.tolist(), capacity)
    for g, w in zip(got, want):
        assert g.numpy().tolist() == w


def test_packing_loses_no_token_and_never_crosses_documents():
    lengths = lognormal_lengths(1500)  # some longer than S: split into pieces
    assert (lengths > S).any()
    tokens, doc_ids = documents(lengths)
    packed = pack(ragged_dataset(tokens, doc_ids), S, window_size=200,
                  keys=(F.TOKEN_IDS, "doc_ids"), pad_values={"doc_ids": -1})
    rows = rows_of(packed)
    rebuilt = collections.Counter()
    for r, s, where in segments(rows):
        # One contiguous block, one input document, positions 0, 1, ...
        assert np.array_equal(where, np.arange(where[0], where[0] + len(where)))
        owners = np.unique(rows["doc_ids"][r, where])
        assert len(owners) == 1
        assert np.array_equal(rows[F.POSITION_IDS][r, where], np.arange(len(where)))
        piece = tuple(rows[F.TOKEN_IDS][r, where])
        assert piece in pieces([tokens[owners[0]]], S)
        rebuilt[piece] += 1
    assert rebuilt == pieces(tokens, S)
    # Segment ids are 1, 2, ... along the row; padding is all pad values.
    for seg in rows[F.SEGMENT_IDS]:
        real = seg[seg > 0]
        assert np.array_equal(np.unique(real), np.arange(1, real.max() + 1))
        assert np.all(np.diff(real) >= 0) and np.all(seg[len(real):] == 0)
    pad = ~rows[F.PADDING_MASK]
    assert np.array_equal(rows[F.PADDING_MASK], rows[F.SEGMENT_IDS] > 0)
    assert np.all(rows[F.TOKEN_IDS][pad] == 0) and np.all(rows["doc_ids"][pad] == -1)
    assert np.all(rows[F.POSITION_IDS][pad] == 0)


def test_dense_and_ragged_inputs_pack_the_same_rows():
    tokens, doc_ids = documents(lognormal_lengths(300, seed=4), seed=4)
    keys = (F.TOKEN_IDS, "doc_ids")
    from_ragged = rows_of(pack(ragged_dataset(tokens, doc_ids), S, 64, keys=keys))
    from_dense = rows_of(pack(dense_dataset(tokens, doc_ids), S, 64, keys=keys))
    assert from_ragged.keys() == from_dense.keys()
    for key in from_ragged:
        np.testing.assert_array_equal(from_ragged[key], from_dense[key], err_msg=key)


def test_static_shapes_and_batching_in_graph_mode():
    tokens, doc_ids = documents(lognormal_lengths(400, seed=5), seed=5)
    packed = pack(dense_dataset(tokens, doc_ids), S, keys=(F.TOKEN_IDS, "doc_ids"))
    for key, spec in packed.element_spec.items():
        assert spec.shape == [S], key
    dtypes = {k: s.dtype for k, s in packed.element_spec.items()}
    assert dtypes == {F.TOKEN_IDS: tf.int32, "doc_ids": tf.int32, F.SEGMENT_IDS: tf.int32,
                      F.POSITION_IDS: tf.int32, F.PADDING_MASK: tf.bool}
    batched = packed.batch(8, drop_remainder=True)
    for spec in batched.element_spec.values():
        assert spec.shape == [8, S]

    @tf.function
    def count_tokens(dataset):
        total = tf.constant(0, tf.int64)
        for batch in dataset:  # a tf.while_loop over the iterator
            total += tf.math.count_nonzero(batch[F.PADDING_MASK])
        return total

    mask = rows_of(packed)[F.PADDING_MASK]
    kept = mask[: len(mask) // 8 * 8].sum()  # drop_remainder drops the last rows
    assert int(count_tokens(batched)) == kept


def test_packed_rows_give_block_diagonal_document_masks():
    tokens, _ = documents(lognormal_lengths(200, seed=6), seed=6)
    batch = next(iter(pack(ragged_dataset(tokens), S).batch(16)))
    segment_ids = batch[F.SEGMENT_IDS].numpy()
    mask = np.asarray(masks.document_mask(batch[F.SEGMENT_IDS]))
    b, length = segment_ids.shape
    for row in range(b):
        for i in range(length):
            for j in range(length):
                same = segment_ids[row, i] == segment_ids[row, j] != 0
                assert mask[row, i, j] == same
        # Blocks on the diagonal: each document is a contiguous square.
        start = 0
        for s in np.unique(segment_ids[row][segment_ids[row] > 0]):
            size = int((segment_ids[row] == s).sum())
            block = np.zeros((length, length), bool)
            block[start:start + size, start:start + size] = True
            assert np.array_equal(mask[row] & block, mask[row] * (segment_ids[row] == s)[:, None])
            assert mask[row, start:start + size, start:start + size].all()
            start += size
        assert mask[row].sum() == sum(
            int((segment_ids[row] == s).sum()) ** 2 for s in range(1, segment_ids[row].max() + 1)
        )


def test_truncate_keeps_the_first_tokens_and_counts_the_rest():
    lengths = np.array([5, 40, 33, 3, 70, 32])
    tokens, _ = documents(lengths, seed=7)
    rows = rows_of(pack(ragged_dataset(tokens), S, overlong="truncate"))
    got = collections.Counter(tuple(rows[F.TOKEN_IDS][r, w]) for r, _, w in segments(rows))
    assert got == collections.Counter(tuple(t[:S]) for t in tokens)
    report = packing_report(ragged_dataset(tokens), S, overlong="truncate")
    assert report.truncated_documents == 3
    assert report.dropped_tokens == (40 - S) + (33 - S) + (70 - S)
    assert report.tokens == int(rows[F.PADDING_MASK].sum())
    assert "dropped 47 tokens of 3 documents" in str(report)


def test_split_cuts_overlong_documents_into_pieces_of_sequence_length():
    tokens, _ = documents([70], seed=8)
    rows = rows_of(pack(ragged_dataset(tokens), S))
    assert sorted(len(w) for _, _, w in segments(rows)) == [6, 32, 32]
    report = packing_report(ragged_dataset(tokens), S)
    assert (report.documents, report.pieces, report.rows, report.dropped_tokens) == (1, 3, 3, 0)


def test_fail_names_the_length_and_the_limit():
    tokens, _ = documents([5, 40], seed=9)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="a document has 40 tokens, more than sequence_length=32"):
        list(pack(ragged_dataset(tokens), S, overlong="fail"))
    fits, _ = documents([5, 32], seed=9)
    assert len(list(pack(ragged_dataset(fits), S, overlong="fail"))) == 2


def test_packing_removes_most_padding_on_sentence_lengths():
    lengths = lognormal_lengths(3000, seed=10)
    tokens, _ = documents(lengths, seed=10)
    report = packing_report(ragged_dataset(tokens), S, window_size=500)
    # The report's numbers, computed independently from the lengths...
    expected_pieces = int(np.sum((lengths + S - 1) // S))
    assert (report.documents, report.pieces, report.tokens) == (3000, expected_pieces,
                                                               int(lengths.sum()))
    assert report.padding_before == pytest.approx(1 - lengths.sum() / (expected_pieces * S))
    # ... and from the rows `pack` really builds.
    rows = rows_of(pack(ragged_dataset(tokens), S, window_size=500))
    assert report.rows == len(rows[F.TOKEN_IDS])
    assert report.padding_after == pytest.approx(1 - rows[F.PADDING_MASK].mean())
    assert report.padding_after < report.padding_before / 10
    # Near the bound: rows >= tokens / S.
    assert report.rows <= 1.02 * np.ceil(lengths.sum() / S) + 5
    pattern = r"padding \d+\.\d% -> \d+\.\d% over 3,000 documents in [\d,]+ rows"
    assert re.fullmatch(pattern, str(report))


def test_report_string_format():
    report = PackingReport(sequence_length=100, documents=10_000, pieces=10_000,
                           tokens=388_000, rows=4_120)
    assert str(report) == "padding 61.2% -> 5.8% over 10,000 documents in 4,120 rows"


def test_word_ids_are_renumbered_to_stay_unique_within_a_row():
    rng = np.random.default_rng(11)
    tokens, word_ids = [], []
    for n in lognormal_lengths(300, seed=11):
        # [CLS] w0 w0 w1 ... [SEP]: -1 on specials, words of 1-2 pieces.
        words = np.cumsum(rng.random(n) < 0.6) - 1
        words = np.maximum(words, 0)
        words[0] = -1
        tokens.append(rng.integers(1, 999, n).astype(np.int32))
        word_ids.append(words.astype(np.int32))
    data = tf.data.Dataset.from_tensor_slices({
        F.TOKEN_IDS: tf.ragged.constant(tokens, dtype=tf.int32),
        F.WORD_IDS: tf.ragged.constant(word_ids, dtype=tf.int32),
    })
    rows = rows_of(pack(data, S, keys=(F.TOKEN_IDS, F.WORD_IDS)))
    originals = collections.Counter()
    for r in range(len(rows[F.TOKEN_IDS])):
        seen = set()
        for _, s, where in (x for x in segments(rows) if x[0] == r):
            words = rows[F.WORD_IDS][r, where]
            real = words[words >= 0]
            assert not seen & set(real.tolist())  # no word id shared across documents
            seen |= set(real.tolist())
            # Same structure as the input piece: a constant shift of each id.
            shift = real.min() if len(real) else 0
            originals[tuple(np.where(words >= 0, words - shift, -1))] += 1
    assert np.all(rows[F.WORD_IDS][~rows[F.PADDING_MASK]] == -1)  # default pad for word ids
    expected = collections.Counter()
    for words in word_ids:
        for i in range(0, len(words), S):
            piece = words[i:i + S]
            real = piece[piece >= 0]
            shift = real.min() if len(real) else 0
            expected[tuple(np.where(piece >= 0, piece - shift, -1))] += 1
    assert originals == expected


def test_empty_documents_are_dropped_and_counted():
    tokens = [np.array([1, 2], np.int32), np.array([], np.int32), np.array([3], np.int32)]
    rows = rows_of(pack(ragged_dataset(tokens), S))
    assert rows[F.SEGMENT_IDS].max() == 2 and int(rows[F.PADDING_MASK].sum()) == 3
    report = packing_report(ragged_dataset(tokens), S)
    assert (report.documents, report.pieces, report.rows) == (3, 2, 1)


def test_clear_errors_for_wrong_inputs():
    tokens, doc_ids = documents([3, 4])
    docs = ragged_dataset(tokens, doc_ids)
    with pytest.raises(ValueError, match="unbatched dataset"):
        pack(docs.batch(2), S)
    with pytest.raises(ValueError, match="no 'word_ids'"):
        pack(docs, S, keys=(F.TOKEN_IDS, F.WORD_IDS))
    with pytest.raises(ValueError, match="'segment_ids' is written by pack"):
        pack(docs, S, keys=(F.TOKEN_IDS, F.SEGMENT_IDS))
    with pytest.raises(ValueError, match="overlong='drop' is not one of"):
        pack(docs, S, overlong="drop")
    with pytest.raises(ValueError, match="pad_values names"):
        pack(docs, S, pad_values={"labels": -100})
    with pytest.raises(ValueError, match="holds strings; tokenize before packing"):
        pack(tf.data.Dataset.from_tensors({F.TOKEN_IDS: tf.constant(["a"])}), S)
    mismatched = tf.data.Dataset.from_tensor_slices({
        F.TOKEN_IDS: tf.ragged.constant([[1, 2, 3]]), "doc_ids": tf.ragged.constant([[1, 2]])})
    with pytest.raises(tf.errors.InvalidArgumentError, match="differ in length"):
        list(pack(mismatched, S, keys=(F.TOKEN_IDS, "doc_ids")))
