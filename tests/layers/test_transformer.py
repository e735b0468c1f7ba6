"""Encoder/decoder blocks: padding invariance, causality by perturbation,
packed == separate documents, prefix-LM, sliding window, KV cache."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layer_harness import run_layer_test
from tfmask import masks as M
from tfmask.layers import MaskedEmbedding, TransformerDecoderBlock, TransformerEncoderBlock

D, HEADS, FFN, VOCAB = 8, 2, 16, 20
ATOL = 2e-5


def rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


class Stack:
    """Embedding + two blocks, called eagerly with whatever masks a test needs."""

    def __init__(self, block_cls, **block_kwargs):
        self.embed = MaskedEmbedding(VOCAB, D, max_length=32)
        self.blocks = [block_cls(HEADS, FFN, **block_kwargs) for _ in range(2)]

    def __call__(self, ids, position_ids=None, **call_kwargs):
        x = self.embed(ids, position_ids=position_ids)
        for block in self.blocks:
            x = block(x, **call_kwargs)
        return x.numpy() if not isinstance(x, tuple) else x


def test_encoder_harness(tmp_path):
    run_layer_test(
        TransformerEncoderBlock,
        {"num_heads": HEADS, "intermediate_dim": FFN, "dropout": 0.1},
        {"inputs": rand(2, 5, D), "padding_mask": np.array([[1, 1, 1, 0, 0], [1] * 5], bool)},
        expected_output_shape=(2, 5, D),
        tmp_path=tmp_path,
    )


def test_decoder_harness(tmp_path):
    run_layer_test(
        TransformerDecoderBlock,
        {"num_heads": HEADS, "intermediate_dim": FFN, "normalize_first": True},
        {"decoder_sequence": rand(2, 4, D), "encoder_sequence": rand(2, 6, D, seed=1),
         "encoder_padding_mask": np.array([[1, 1, 1, 0, 0, 0], [1] * 6], bool)},
        expected_output_shape=(2, 4, D),
        tmp_path=tmp_path,
    )


def test_heads_must_divide_hidden_size():
    with pytest.raises(ValueError, match="not divisible by num_heads=3"):
        TransformerEncoderBlock(3, FFN)(rand(1, 2, D))


@pytest.mark.parametrize("normalize_first", [False, True])
def test_encoder_padding_invariance(normalize_first):
    encoder = Stack(TransformerEncoderBlock, normalize_first=normalize_first)
    ids = np.array([[3, 4, 5, 6], [7, 8, 9, 10]])
    base = encoder(ids)
    padded_ids = np.concatenate([ids, np.zeros((2, 5), int)], axis=1)
    padded = encoder(padded_ids)  # the padding mask comes from the embedding
    np.testing.assert_allclose(padded[:, :4], base, atol=ATOL)
    # explicit padding mask equals the implicit Keras mask
    x = encoder.embed(padded_ids)
    explicit = encoder.blocks[0](tf.identity(x), padding_mask=padded_ids != 0)
    np.testing.assert_allclose(encoder.blocks[0](x), explicit, atol=1e-6)


def test_encoder_causality_by_perturbation():
    encoder = Stack(TransformerEncoderBlock)
    ids = np.array([[3, 4, 5, 6, 7, 8]])
    base = encoder(ids, use_causal_mask=True)
    for t in range(5):
        changed = ids.copy()
        changed[:, t + 1:] = 11 + (changed[:, t + 1:] % 5)
        out = encoder(changed, use_causal_mask=True)
        np.testing.assert_allclose(out[:, : t + 1], base[:, : t + 1], atol=ATOL)
        assert not np.allclose(out[:, t + 1:], base[:, t + 1:], atol=1e-4)


def test_packed_documents_equal_separate_documents():
    encoder = Stack(TransformerEncoderBlock)
    doc_a, doc_b = [3, 4, 5], [6, 7, 8, 9]
    packed = np.array([doc_a + doc_b + [0]])
    segments = np.array([[1, 1, 1, 2, 2, 2, 2, 0]])
    positions = np.array([[0, 1, 2, 0, 1, 2, 3, 0]])
    out = encoder(packed, position_ids=positions, segment_ids=segments)
    np.testing.assert_allclose(out[:, :3], encoder(np.array([doc_a])), atol=ATOL)
    np.testing.assert_allclose(out[:, 3:7], encoder(np.array([doc_b])), atol=ATOL)
    # Without the document mask the documents leak into each other.
    leaky = encoder(packed, position_ids=positions)
    assert not np.allclose(leaky[:, :3], out[:, :3], atol=1e-4)


def test_packed_causal_lm_equals_separate_documents():
    decoder = Stack(TransformerDecoderBlock)
    doc_a, doc_b = [3, 4, 5], [6, 7]
    out = decoder(np.array([doc_a + doc_b]), position_ids=np.array([[0, 1, 2, 0, 1]]),
                  segment_ids=np.array([[1, 1, 1, 2, 2]]))
    np.testing.assert_allclose(out[:, :3], decoder(np.array([doc_a])), atol=ATOL)
    np.testing.assert_allclose(out[:, 3:], decoder(np.array([doc_b])), atol=ATOL)


def test_prefix_lm_through_attention_mask():
    decoder = Stack(TransformerDecoderBlock)
    ids = np.array([[3, 4, 5, 6, 7, 8]])
    prefix = M.prefix_lm_mask([3], 6)
    base = decoder(ids, decoder_attention_mask=prefix, use_causal_mask=False)
    # continuation tokens never reach prefix positions ...
    changed = ids.copy()
    changed[:, 3:] = 12
    out = decoder(changed, decoder_attention_mask=prefix, use_causal_mask=False)
    np.testing.assert_allclose(out[:, :3], base[:, :3], atol=ATOL)
    # ... but prefix positions see each other bidirectionally
    changed = ids.copy()
    changed[:, 2] = 12
    out = decoder(changed, decoder_attention_mask=prefix, use_causal_mask=False)
    assert not np.allclose(out[:, 0], base[:, 0], atol=1e-4)


def test_sliding_window_limits_what_one_layer_sees():
    block = TransformerEncoderBlock(HEADS, FFN)
    x = rand(1, 7, D)
    window = M.sliding_window_mask(7, 2)
    base = block(x, attention_mask=window).numpy()
    changed = x.copy()
    changed[:, 6] += 5.0  # only positions 5 and 6 are within reach of 6
    out = block(changed, attention_mask=window).numpy()
    np.testing.assert_allclose(out[:, :5], base[:, :5], atol=ATOL)
    assert not np.allclose(out[:, 5], base[:, 5], atol=1e-4)


def test_decoder_causality_and_cross_attention_padding_invariance():
    decoder = Stack(TransformerDecoderBlock)
    enc = rand(2, 5, D, seed=3)
    enc_mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
    ids = np.array([[3, 4, 5, 6], [7, 8, 9, 10]])
    base = decoder(ids, encoder_sequence=enc, encoder_padding_mask=enc_mask)
    # appending padded encoder positions changes nothing
    enc_padded = np.concatenate([enc, rand(2, 3, D, seed=9)], axis=1)
    mask_padded = np.concatenate([enc_mask, np.zeros((2, 3), bool)], axis=1)
    out = decoder(ids, encoder_sequence=enc_padded, encoder_padding_mask=mask_padded)
    np.testing.assert_allclose(out, base, atol=ATOL)
    # garbage in the masked encoder positions changes nothing either
    enc_garbage = enc.copy()
    enc_garbage[0, 3:] = 100.0
    out = decoder(ids, encoder_sequence=enc_garbage, encoder_padding_mask=enc_mask)
    np.testing.assert_allclose(out, base, atol=ATOL)
    # appending decoder padding changes nothing at real positions
    ids_padded = np.concatenate([ids, np.zeros((2, 3), int)], axis=1)
    out = decoder(ids_padded, encoder_sequence=enc, encoder_padding_mask=enc_mask)
    np.testing.assert_allclose(out[:, :4], base, atol=ATOL)
    # causality: future decoder tokens never change the past
    for t in range(3):
        changed = ids.copy()
        changed[:, t + 1:] = 15
        out = decoder(changed, encoder_sequence=enc, encoder_padding_mask=enc_mask)
        np.testing.assert_allclose(out[:, : t + 1], base[:, : t + 1], atol=ATOL)


def test_decoder_implicit_encoder_mask_equals_explicit():
    block = TransformerDecoderBlock(HEADS, FFN)
    enc_ids = np.array([[3, 4, 0, 0]])
    enc = MaskedEmbedding(VOCAB, D, 8)(enc_ids)  # carries a Keras mask
    dec = rand(1, 3, D)
    implicit = block(dec, enc)
    explicit = block(dec, tf.identity(enc), encoder_padding_mask=enc_ids != 0)
    np.testing.assert_allclose(implicit, explicit, atol=1e-6)
    unmasked = block(dec, tf.identity(enc))
    assert not np.allclose(implicit, unmasked, atol=1e-4)


@pytest.mark.parametrize("with_encoder", [False, True])
def test_decoder_kv_cache_equals_full_pass(with_encoder):
    block = TransformerDecoderBlock(HEADS, FFN)
    x = rand(2, 5, D)
    enc = rand(2, 4, D, seed=5) if with_encoder else None
    enc_mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool) if with_encoder else None
    full = block(x, enc, encoder_padding_mask=enc_mask).numpy()
    cache = block._self_attention.init_cache(2, 5)
    steps = []
    for t in range(5):
        out, cache = block(x[:, t : t + 1], enc, encoder_padding_mask=enc_mask,
                           self_attention_cache=cache,
                           self_attention_cache_update_index=t)
        steps.append(out.numpy())
    np.testing.assert_allclose(np.concatenate(steps, 1), full, atol=ATOL)


def test_decoder_called_inconsistently_gets_a_clear_error():
    block = TransformerDecoderBlock(HEADS, FFN)
    block(rand(1, 3, D))
    with pytest.raises(ValueError, match="built without cross-attention"):
        block(rand(1, 3, D), rand(1, 4, D))


def test_encoder_block_in_functional_model_propagates_mask():
    inputs = keras.Input((None,), dtype="int32")
    x = MaskedEmbedding(VOCAB, D, 16)(inputs)
    x = TransformerEncoderBlock(HEADS, FFN)(x)
    x = TransformerEncoderBlock(HEADS, FFN)(x)
    pooled = keras.layers.GlobalAveragePooling1D()(x)  # mask-aware pooling
    model = keras.Model(inputs, pooled)
    ids = np.array([[3, 4, 5, 0, 0, 0]])
    np.testing.assert_allclose(model(ids), model(ids[:, :3]), atol=ATOL)
