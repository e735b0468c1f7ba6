"""Padding-free encoder blocks: same outputs and gradients at real tokens as
the padded computation, zeros at padding, with every mask combination."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layer_harness import run_layer_test
from tfmask import masks as M
from tfmask.layers import MaskedMultiHeadAttention, TransformerEncoderBlock
from tfmask.layers.padding_free import (
    gather_tokens,
    real_token_index,
    scatter_tokens,
    token_slots,
)

D, HEADS, FFN = 8, 2, 16
ATOL = 2e-5


def rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def twin_blocks(**kwargs):
    """A padded and a padding-free block with the same weights."""
    padded = TransformerEncoderBlock(HEADS, FFN, **kwargs)
    free = TransformerEncoderBlock(HEADS, FFN, padding_free=True, **kwargs)
    x = rand(1, 3, D)
    padded(x), free(x)
    free.set_weights(padded.get_weights())
    return padded, free


# Rows with no, some, and almost all padding.
MASK = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]], bool)


def test_index_gather_and_scatter_are_inverse():
    x = rand(3, 6, 4)
    index = real_token_index(MASK)
    assert np.asarray(index).tolist() == [i for i, m in enumerate(MASK.ravel()) if m]
    tokens = gather_tokens(x, index)
    assert tokens.shape == (int(MASK.sum()), 4)
    back = np.asarray(scatter_tokens(tokens, index, MASK))
    np.testing.assert_array_equal(back[MASK], x[MASK])
    np.testing.assert_array_equal(back[~MASK], 0.0)


@pytest.mark.parametrize("masks", [
    {},
    {"use_causal_mask": True},
    {"segment_ids": np.array([[1, 1, 2, 2, 2, 3], [1, 1, 2, 0, 0, 0], [1, 0, 0, 0, 0, 0]])},
    {"attention_mask": M.sliding_window_mask(6, 2)},
])
@pytest.mark.parametrize("normalize_first", [False, True])
def test_padding_free_equals_padded_at_real_tokens(masks, normalize_first):
    padded, free = twin_blocks(normalize_first=normalize_first)
    x = rand(3, 6, D, seed=1)
    expected = np.asarray(padded(x, padding_mask=MASK, **masks))
    actual = np.asarray(free(x, padding_mask=MASK, **masks))
    np.testing.assert_allclose(actual[MASK], expected[MASK], atol=ATOL)
    np.testing.assert_array_equal(actual[~MASK], 0.0)


@pytest.mark.tensorflow_only('gradients use tf.GradientTape')
@pytest.mark.parametrize("slots", [None, 12], ids=["dynamic", "xla_slots"])
def test_padding_free_gradients_equal_padded_gradients(slots):
    """Dynamic layout, and static slots compiled with XLA (10 real tokens)."""
    padded, free = twin_blocks()
    x = tf.constant(rand(3, 6, D, seed=2))
    weights = tf.constant(rand(3, 6, D, seed=3) * MASK[..., None])  # a loss on real tokens

    def gradients(block, slots=None):
        def run(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(block(x, padding_mask=MASK) * weights)
            return tape.gradient(loss, [x] + block.trainable_variables)

        if slots is None:
            return run(x)
        with token_slots(slots):
            return tf.function(run, jit_compile=True)(x)

    for g_free, g_padded in zip(gradients(free, slots), gradients(padded)):
        np.testing.assert_allclose(np.asarray(g_free), np.asarray(g_padded), atol=1e-4)


def test_padding_free_in_a_functional_model_takes_the_keras_mask():
    inputs = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(20, D, mask_zero=True)(inputs)
    x = TransformerEncoderBlock(HEADS, FFN, padding_free=True)(x)
    pooled = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(inputs, pooled)
    ids = np.array([[3, 4, 5, 0, 0, 0], [6, 7, 8, 9, 10, 11]])
    np.testing.assert_allclose(model(ids)[:1], model(ids[:1, :3]), atol=ATOL)


@pytest.mark.tensorflow_only('padding-free layers have a data-dependent token count, which jit on JAX cannot trace (as XLA on TensorFlow: documented)')
def test_padding_free_harness(tmp_path):
    run_layer_test(
        TransformerEncoderBlock,
        {"num_heads": HEADS, "intermediate_dim": FFN, "padding_free": True},
        {"inputs": rand(2, 5, D), "padding_mask": np.array([[1, 1, 1, 0, 0], [1] * 5], bool)},
        expected_output_shape=(2, 5, D),
        tmp_path=tmp_path,
    )


def test_padding_free_attention_rejects_what_it_cannot_do():
    layer = MaskedMultiHeadAttention(HEADS, 4)
    tokens, index = rand(4, D), real_token_index(MASK[1:])
    with pytest.raises(ValueError, match="self-attention without a cache"):
        layer(tokens, rand(2, 6, D), query_mask=MASK[1:], token_index=index)
    with pytest.raises(ValueError, match="needs `query_mask`"):
        layer(tokens, token_index=index)


# ------------------------------------------------ static slots (XLA, TPUs)
@pytest.mark.parametrize("slots", [int(MASK.sum()), int(MASK.sum()) + 3, MASK.size])
def test_token_slots_list_real_tokens_first_then_the_sentinel(slots):
    with token_slots(slots):
        index = np.asarray(real_token_index(MASK))
    real = [i for i, m in enumerate(MASK.ravel()) if m]
    assert index.tolist() == real + [MASK.size] * (slots - len(real))


@pytest.mark.parametrize("slots", [int(MASK.sum()), MASK.size])
@pytest.mark.parametrize("masks", [{}, {"use_causal_mask": True}])
def test_slotted_block_equals_padded_block_traced_with_static_shapes(slots, masks):
    """The slotted layout compiles (jit: static shapes) and gives the padded
    block's outputs at real tokens and zeros at padding."""
    padded, free = twin_blocks()
    x = rand(3, 6, D, seed=4)
    expected = np.asarray(padded(x, padding_mask=MASK, **masks))

    def run(inputs, mask):
        with token_slots(slots):
            return free(inputs, padding_mask=mask, **masks)

    if keras.backend.backend() == "jax":
        import jax
        actual = jax.jit(run)(x, MASK)
    else:
        actual = tf.function(run, jit_compile=True)(tf.constant(x), tf.constant(MASK))
    actual = np.asarray(actual)
    np.testing.assert_allclose(actual[MASK], expected[MASK], atol=ATOL)
    np.testing.assert_array_equal(actual[~MASK], 0.0)
