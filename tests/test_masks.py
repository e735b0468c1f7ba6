"""Every mask against a brute-force (loop) reference or a hand-built matrix."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from tfmask import masks as M


def brute_causal(t, s, offset):
    return np.array([[j <= offset + i for j in range(s)] for i in range(t)])


def brute_document(q_ids, k_ids):
    return np.array(
        [
            [[q != 0 and q == k for k in k_row] for q in q_row]
            for q_row, k_row in zip(q_ids, k_ids)
        ]
    )


def test_padding_mask_marks_pad_id():
    ids = np.array([[3, 1, 0, 0], [1, 1, 1, 1]])
    np.testing.assert_array_equal(M.padding_mask(ids), ids != 0)
    np.testing.assert_array_equal(M.padding_mask(ids, pad_id=1), ids != 1)


@pytest.mark.parametrize("t,s", [(1, 1), (4, 4), (1, 6), (3, 7)])
def test_causal_mask_matches_brute_force_with_queries_at_the_end(t, s):
    np.testing.assert_array_equal(M.causal_mask(t, s), brute_causal(t, s, s - t))


def test_causal_mask_explicit_offset_places_queries_in_a_cache():
    np.testing.assert_array_equal(
        M.causal_mask(2, 6, offset=1), brute_causal(2, 6, 1)
    )
    # offset given as a tensor, as a cache_update_index inside a tf.function
    np.testing.assert_array_equal(
        M.causal_mask(2, 6, offset=tf.constant(3)), brute_causal(2, 6, 3)
    )


def test_causal_mask_rejects_fewer_keys_than_queries():
    with pytest.raises(ValueError, match="pass `offset`"):
        M.causal_mask(5, 3)


def test_prefix_lm_mask_equals_hand_built_matrix():
    expected_prefix_2 = np.array(
        [
            [1, 1, 0, 0, 0],
            [1, 1, 0, 0, 0],
            [1, 1, 1, 0, 0],
            [1, 1, 1, 1, 0],
            [1, 1, 1, 1, 1],
        ],
        bool,
    )
    expected_prefix_0 = np.tril(np.ones((5, 5), bool))
    expected_prefix_5 = np.ones((5, 5), bool)
    mask = M.prefix_lm_mask([2, 0, 5], 5)
    np.testing.assert_array_equal(mask[0], expected_prefix_2)
    np.testing.assert_array_equal(mask[1], expected_prefix_0)
    np.testing.assert_array_equal(mask[2], expected_prefix_5)


def test_prefix_lm_mask_rejects_non_vector_lengths():
    with pytest.raises(ValueError, match="prefix_lengths"):
        M.prefix_lm_mask([[2]], 4)


def test_document_mask_matches_brute_force():
    rng = np.random.default_rng(0)
    ids = np.sort(rng.integers(0, 4, size=(3, 9)), axis=1)[:, ::-1]
    np.testing.assert_array_equal(M.document_mask(ids), brute_document(ids, ids))
    keys = np.sort(rng.integers(0, 4, size=(3, 5)), axis=1)
    np.testing.assert_array_equal(
        M.document_mask(ids, keys), brute_document(ids, keys)
    )


def test_document_mask_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"\[batch, length\]"):
        M.document_mask([1, 1, 2])


def test_sliding_window_mask_equals_hand_built_matrix():
    expected = np.array(
        [
            [1, 1, 1, 0, 0],
            [1, 1, 1, 1, 0],
            [1, 1, 1, 1, 1],
            [0, 1, 1, 1, 1],
            [0, 0, 1, 1, 1],
        ],
        bool,
    )
    np.testing.assert_array_equal(M.sliding_window_mask(5, 3), expected)
    # Mistral-style causal window: itself and window-1 tokens before.
    causal_window = M.combine_masks(M.sliding_window_mask(5, 3), M.causal_mask(5))
    np.testing.assert_array_equal(causal_window, np.tril(expected))
    with pytest.raises(ValueError, match="window must be >= 1"):
        M.sliding_window_mask(5, 0)


def test_cross_attention_mask_is_outer_and():
    q = np.array([[1, 1, 0]], bool)
    k = np.array([[1, 0, 1, 1]], bool)
    np.testing.assert_array_equal(
        M.cross_attention_mask(q, k), q[:, :, None] & k[:, None, :]
    )
    assert M.cross_attention_mask(None, k).shape == (1, 1, 4)
    assert M.cross_attention_mask(None, None) is None
    with pytest.raises(ValueError, match="key_padding must have rank 2"):
        M.cross_attention_mask(q, k[0])


def test_combine_masks_ands_with_broadcasting_and_ignores_none():
    a = np.array([[[1, 0], [1, 1]]], bool)  # [1, 2, 2]
    b = np.array([[1, 1], [0, 1]], bool)  # [2, 2]
    np.testing.assert_array_equal(M.combine_masks(a, None, b), a & b)
    np.testing.assert_array_equal(M.combine_masks(np.array([1, 0])), [True, False])
    assert M.combine_masks(None, None) is None


def test_combine_masks_explains_unbroadcastable_shapes():
    with pytest.raises(ValueError, match=r"\[B, 1, S\]"):
        M.combine_masks(np.ones((2, 3, 4), bool), np.ones((2, 4), bool))


def brute_merge(q_mask, k_mask, custom, causal, q_seg, k_seg, t, s):
    out = np.ones((2, t, s), bool)
    for b, i, j in itertools.product(range(2), range(t), range(s)):
        ok = True
        if q_mask is not None:
            ok &= bool(q_mask[b, i])
        if k_mask is not None:
            ok &= bool(k_mask[b, j])
        if custom is not None:
            ok &= bool(custom[b, i, j])
        if causal:
            ok &= j <= i + s - t
        if q_seg is not None:
            ok &= q_seg[b, i] != 0 and q_seg[b, i] == k_seg[b, j]
        out[b, i, j] = ok
    return out


@pytest.mark.parametrize(
    "use_q,use_k,use_custom,causal,use_seg",
    list(itertools.product([False, True], repeat=5)),
)
def test_merge_attention_masks_matches_brute_force(use_q, use_k, use_custom, causal, use_seg):
    rng = np.random.default_rng(7)
    t, s = 4, 6
    q_mask = rng.random((2, t)) > 0.3 if use_q else None
    k_mask = rng.random((2, s)) > 0.3 if use_k else None
    custom = rng.random((2, t, s)) > 0.2 if use_custom else None
    q_seg = rng.integers(0, 3, (2, t)) if use_seg else None
    k_seg = rng.integers(0, 3, (2, s)) if use_seg else None
    merged = M.merge_attention_masks(
        t, s, q_mask, k_mask, custom, causal, None, q_seg, k_seg
    )
    if not any([use_q, use_k, use_custom, causal, use_seg]):
        assert merged is None
        return
    expected = brute_merge(q_mask, k_mask, custom, causal, q_seg, k_seg, t, s)
    np.testing.assert_array_equal(np.broadcast_to(merged, expected.shape), expected)


def test_merge_attention_masks_per_head_mask_keeps_other_constraints():
    rng = np.random.default_rng(3)
    per_head = rng.random((2, 3, 4, 4)) > 0.2
    q_mask = rng.random((2, 4)) > 0.3
    merged = M.merge_attention_masks(
        4, 4, query_mask=q_mask, key_mask=q_mask, attention_mask=per_head,
        use_causal_mask=True,
    )
    assert merged.shape == (2, 3, 4, 4)
    shared = brute_merge(q_mask, q_mask, None, True, None, None, 4, 4)
    np.testing.assert_array_equal(merged, per_head & shared[:, None])


def test_merge_attention_masks_errors_are_one_clear_line():
    with pytest.raises(ValueError, match="attention_mask must have rank 2 or rank 3 or rank 4"):
        M.merge_attention_masks(3, 3, attention_mask=np.ones((3,), bool))
    with pytest.raises(ValueError, match=r"\[query_length, key_length\]"):
        M.merge_attention_masks(3, 3, attention_mask=np.ones((1, 3, 5), bool))
    with pytest.raises(ValueError, match="key_segment_ids without segment_ids"):
        M.merge_attention_masks(3, 3, key_segment_ids=np.ones((1, 3)))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_mask_to_bias_is_finite_even_when_two_biases_are_added(dtype):
    mask = np.array([[True, False, False]])
    bias = M.mask_to_bias(mask, dtype)
    assert bias.dtype == tf.as_dtype(dtype)
    twice = np.asarray(tf.cast(bias + bias, "float32"))
    assert np.all(np.isfinite(twice))
    assert twice[0, 0] == 0 and twice[0, 1] < -1e4
    # Softmax of logits + bias puts (numerically) zero weight on masked keys.
    logits = tf.constant([[3.0, 50.0, -2.0]], dtype) + bias + bias
    probs = np.asarray(tf.nn.softmax(tf.cast(logits, "float32")))
    np.testing.assert_allclose(probs, [[1.0, 0.0, 0.0]], atol=1e-6)


def brute_masked_softmax(scores, mask):
    out = np.zeros_like(scores, dtype=np.float64)
    for idx in np.ndindex(scores.shape[:-1]):
        keep = mask[idx]
        if keep.any():
            e = np.exp(scores[idx][keep] - scores[idx][keep].max())
            out[idx][keep] = e / e.sum()
    return out


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_masked_softmax_matches_brute_force_and_zeroes_empty_rows(dtype):
    rng = np.random.default_rng(1)
    scores = rng.normal(scale=3.0, size=(2, 3, 5)).astype("float32")
    mask = rng.random((2, 3, 5)) > 0.4
    mask[0, 1] = False  # a row with nothing to attend to
    probs = M.masked_softmax(tf.constant(scores, dtype), mask)
    assert probs.dtype == tf.as_dtype(dtype)
    probs = np.asarray(tf.cast(probs, "float32"))
    assert np.all(np.isfinite(probs))
    tol = 1e-6 if dtype == "float32" else 1e-2
    np.testing.assert_allclose(probs, brute_masked_softmax(scores, mask), atol=tol)
    assert np.all(probs[0, 1] == 0)


@pytest.mark.tensorflow_only('gradients use tf.GradientTape')
def test_masked_softmax_gradient_is_finite_for_fully_masked_rows():
    scores = tf.Variable(tf.zeros((1, 2, 3), "float16"))
    mask = np.array([[[True, False, True], [False, False, False]]])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.cast(M.masked_softmax(scores, mask), "float32") * [1.0, 2.0, 3.0])
    grad = np.asarray(tape.gradient(loss, scores))
    assert np.all(np.isfinite(grad.astype("float32")))
    assert np.all(grad[0, 1] == 0)
