"""Encoder/decoder blocks: padding invariance, causality by perturbation,
packed == separate documents, prefix-LM, sliding window, KV caches (self and
cross-attention), attention scores and keras-hub compatibility."""

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
        return np.asarray(x) if not isinstance(x, tuple) else x


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
         "decoder_padding_mask": np.array([[1, 1, 1, 1], [1, 1, 0, 0]], bool),
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
    base = np.asarray(block(x, attention_mask=window))
    changed = x.copy()
    changed[:, 6] += 5.0  # only positions 5 and 6 are within reach of 6
    out = np.asarray(block(changed, attention_mask=window))
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
    full = np.asarray(block(x, enc, encoder_padding_mask=enc_mask))
    cache = block._self_attention.init_cache(2, 5)
    steps = []
    for t in range(5):
        out, cache = block(x[:, t : t + 1], enc, encoder_padding_mask=enc_mask,
                           self_attention_cache=cache,
                           self_attention_cache_update_index=t)
        steps.append(np.asarray(out))
    np.testing.assert_allclose(np.concatenate(steps, 1), full, atol=ATOL)


def test_blocks_ask_their_attention_for_bottom_right_causal_alignment():
    """The standalone layer's default is Keras' top-left rule; the blocks ask
    for bottom-right (the causal queries are the newest tokens), so a
    block's causal rule does not follow the layer's default."""
    encoder, decoder = TransformerEncoderBlock(HEADS, FFN), TransformerDecoderBlock(HEADS, FFN)
    encoder(rand(1, 3, D))
    decoder(rand(1, 3, D), rand(1, 4, D, seed=1))
    layers = [encoder._self_attention, decoder._self_attention, decoder._cross_attention]
    assert [layer.causal_alignment for layer in layers] == ["bottom_right"] * 3


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


# --- keras-hub parity: attention scores, cross-attention caches, configs ---

ENC_MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)


@pytest.mark.parametrize("padding_free", [False, True])
def test_encoder_returns_attention_scores(padding_free):
    block = TransformerEncoderBlock(HEADS, FFN, padding_free=padding_free)
    x = rand(2, 5, D)
    out, scores = block(x, padding_mask=ENC_MASK, use_causal_mask=True,
                        return_attention_scores=True)
    np.testing.assert_allclose(out, block(x, padding_mask=ENC_MASK, use_causal_mask=True),
                               atol=1e-6)
    scores = np.asarray(scores)
    assert scores.shape == (2, HEADS, 5, 5)
    assert np.all(scores[0, :, :, 3:] == 0)  # padded keys
    assert np.all(np.triu(np.ones((5, 5)), 1)[None, None] * scores == 0)  # causal
    np.testing.assert_allclose(scores[0, :, :3].sum(-1), 1, atol=1e-5)  # real queries
    np.testing.assert_allclose(scores[1].sum(-1), 1, atol=1e-5)


def test_encoder_scores_padding_free_equal_padded():
    padded = TransformerEncoderBlock(HEADS, FFN)
    free = TransformerEncoderBlock(HEADS, FFN, padding_free=True)
    x = rand(2, 5, D)
    _, expected = padded(x, padding_mask=ENC_MASK, return_attention_scores=True)
    free(x, padding_mask=ENC_MASK)
    free.set_weights(padded.get_weights())
    _, scores = free(x, padding_mask=ENC_MASK, return_attention_scores=True)
    np.testing.assert_allclose(np.asarray(scores)[0, :, :3], np.asarray(expected)[0, :, :3],
                               atol=1e-6)
    np.testing.assert_allclose(np.asarray(scores)[1], np.asarray(expected)[1], atol=1e-6)


def test_decoder_returns_self_then_cross_attention_scores():
    only_self = TransformerDecoderBlock(HEADS, FFN)
    x, enc = rand(2, 4, D), rand(2, 5, D, seed=1)
    out, self_scores = only_self(x, return_attention_scores=True)
    np.testing.assert_allclose(out, only_self(x), atol=1e-6)
    assert self_scores.shape == (2, HEADS, 4, 4)
    block = TransformerDecoderBlock(HEADS, FFN)
    out, self_scores, cross_scores = block(x, enc, encoder_padding_mask=ENC_MASK,
                                           return_attention_scores=True)
    np.testing.assert_allclose(out, block(x, enc, encoder_padding_mask=ENC_MASK), atol=1e-6)
    self_scores, cross_scores = np.asarray(self_scores), np.asarray(cross_scores)
    assert self_scores.shape == (2, HEADS, 4, 4) and cross_scores.shape == (2, HEADS, 4, 5)
    assert np.all(np.triu(np.ones((4, 4)), 1)[None, None] * self_scores == 0)
    assert np.all(cross_scores[0, ..., 3:] == 0)
    np.testing.assert_allclose(cross_scores.sum(-1), 1, atol=1e-5)


def _decode_with_both_caches(block, x, enc, step):
    """Token by token; the first step fills the cross cache, the others reuse it."""
    batch, length = x.shape[:2]
    self_cache = block._self_attention.init_cache(batch, length)
    cross_cache = block._cross_attention.init_cache(batch, enc.shape[1])
    outputs = []
    for t in range(length):
        out, self_cache, cross_cache = step(
            x[:, t : t + 1], self_cache, cross_cache, tf.constant(t),
            tf.constant(t == 0))
        outputs.append(np.asarray(out))
    return np.concatenate(outputs, 1), cross_cache


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=pytest.mark.tensorflow_only(
    "decoding inside tf.function with tf.cond"))])
@pytest.mark.parametrize("normalize_first", [False, True])
def test_decoding_with_self_and_cross_caches_equals_full_pass(compiled, normalize_first):
    block = TransformerDecoderBlock(HEADS, FFN, normalize_first=normalize_first)
    x, enc = rand(2, 5, D), rand(2, 5, D, seed=2)
    enc[0, 3:] = 100.0  # padding: never attended
    full = np.asarray(block(x, enc, encoder_padding_mask=ENC_MASK))

    def step(x_t, self_cache, cross_cache, t, first):
        def call(index):
            return block(x_t, enc, encoder_padding_mask=ENC_MASK,
                         self_attention_cache=self_cache,
                         self_attention_cache_update_index=t,
                         cross_attention_cache=cross_cache,
                         cross_attention_cache_update_index=index)
        if not compiled:  # eager: the Python branch keras-hub's callers use
            return call(0 if bool(first) else None)
        return tf.cond(first, lambda: call(0), lambda: call(None))

    stepped, cross_cache = _decode_with_both_caches(
        block, x, enc, tf.function(step) if compiled else step)
    np.testing.assert_allclose(stepped, full, atol=ATOL)
    # The cross cache holds the encoder's projected keys and values.
    keys = block._cross_attention._key_dense(enc)
    np.testing.assert_allclose(np.asarray(cross_cache)[:, 0], keys, atol=1e-5)


def test_cross_attention_cache_is_read_not_recomputed():
    block = TransformerDecoderBlock(HEADS, FFN)
    x, enc = rand(2, 1, D), rand(2, 5, D, seed=2)
    self_cache = np.zeros((2, 2, 1, HEADS, D // HEADS), "float32")
    cross_cache = np.zeros((2, 2, 5, HEADS, D // HEADS), "float32")
    out, _, filled = block(x, enc, encoder_padding_mask=ENC_MASK,
                           self_attention_cache=self_cache,
                           self_attention_cache_update_index=0,
                           cross_attention_cache=cross_cache,
                           cross_attention_cache_update_index=0)
    reused, _, same = block(x, np.zeros_like(enc), encoder_padding_mask=ENC_MASK,
                            self_attention_cache=self_cache,
                            self_attention_cache_update_index=0,
                            cross_attention_cache=filled)
    np.testing.assert_allclose(reused, out, atol=1e-6)
    np.testing.assert_array_equal(same, filled)


def test_decoder_scores_and_caches_come_in_order():
    block = TransformerDecoderBlock(HEADS, FFN)
    x, enc = rand(2, 3, D), rand(2, 5, D, seed=2)
    _, full_self, full_cross = block(x, enc, encoder_padding_mask=ENC_MASK,
                                     return_attention_scores=True)
    self_cache = block._self_attention.init_cache(2, 3)
    cross_cache = block._cross_attention.init_cache(2, 5)
    for t in range(3):
        out, self_scores, cross_scores, self_cache, cross_cache = block(
            x[:, t : t + 1], enc, encoder_padding_mask=ENC_MASK,
            self_attention_cache=self_cache, self_attention_cache_update_index=t,
            cross_attention_cache=cross_cache,
            cross_attention_cache_update_index=0 if t == 0 else None,
            return_attention_scores=True)
        assert self_cache.shape == (2, 2, 3, HEADS, D // HEADS)
        assert cross_cache.shape == (2, 2, 5, HEADS, D // HEADS)
        np.testing.assert_allclose(self_scores[:, :, 0], np.asarray(full_self)[:, :, t],
                                   atol=1e-5)
        np.testing.assert_allclose(cross_scores[:, :, 0], np.asarray(full_cross)[:, :, t],
                                   atol=1e-5)
    # Decoder-only: (output, scores, cache).
    lm = TransformerDecoderBlock(HEADS, FFN)
    lm(x)
    out, scores, cache = lm(x[:, :1], self_attention_cache=lm._self_attention.init_cache(2, 3),
                            self_attention_cache_update_index=0, return_attention_scores=True)
    assert scores.shape == (2, HEADS, 1, 3) and cache.shape == (2, 2, 3, HEADS, D // HEADS)


def test_decoder_self_cache_alone_still_works_with_cross_attention():
    """tfmask keeps `(output, self_cache)` here (keras-hub refuses the call):
    the encoder's keys and values are then projected at every step."""
    block = TransformerDecoderBlock(HEADS, FFN)
    x, enc = rand(2, 2, D), rand(2, 5, D, seed=2)
    result = block(x, enc, self_attention_cache=np.zeros((2, 2, 2, HEADS, D // HEADS), "float32"),
                   self_attention_cache_update_index=0)
    assert isinstance(result, tuple) and len(result) == 2


def test_decoder_refuses_inconsistent_caches():
    block = TransformerDecoderBlock(HEADS, FFN)
    x, enc = rand(2, 1, D), rand(2, 5, D, seed=2)
    cache = np.zeros((2, 2, 5, HEADS, D // HEADS), "float32")
    with pytest.raises(ValueError, match="no self_attention_cache"):
        block(x, enc, cross_attention_cache=cache, cross_attention_cache_update_index=0)
    lm = TransformerDecoderBlock(HEADS, FFN)
    with pytest.raises(ValueError, match="has no cross-attention"):
        lm(x, self_attention_cache=cache, self_attention_cache_update_index=0,
           cross_attention_cache=cache)


def test_scores_in_functional_models_and_mixed_precision():
    dec_in, enc_in = keras.Input((4, D)), keras.Input((5, D))
    block = TransformerDecoderBlock(HEADS, FFN, dtype="mixed_bfloat16")
    symbolic = block(dec_in, enc_in, return_attention_scores=True)
    model = keras.Model([dec_in, enc_in], symbolic)
    eager = model([rand(2, 4, D), rand(2, 5, D, seed=1)])
    for spec, value in zip(symbolic, eager):
        assert tuple(spec.shape)[1:] == tuple(value.shape)[1:]
        assert spec.dtype == keras.backend.standardize_dtype(value.dtype) == "bfloat16"
    encoder = TransformerEncoderBlock(HEADS, FFN, dtype="mixed_float16")
    inputs = keras.Input((5, D))
    outputs = encoder(inputs, return_attention_scores=True)
    assert [tuple(t.shape) for t in outputs] == [(None, 5, D), (None, HEADS, 5, 5)]
    values = keras.Model(inputs, outputs)(rand(2, 5, D))
    assert [keras.backend.standardize_dtype(v.dtype) for v in values] == ["float16"] * 2


def test_keras_hub_configs_load():
    import keras_hub

    hub_decoder = keras_hub.layers.TransformerDecoder(intermediate_dim=FFN, num_heads=HEADS)
    hub_decoder(rand(1, 3, D), rand(1, 4, D))
    block = TransformerDecoderBlock.from_config(hub_decoder.get_config())
    assert block.built and block._cross_attention is not None
    assert len(block.trainable_weights) == len(hub_decoder.trainable_weights)
    assert block.get_config()["activation"] == "relu"
    hub_encoder = keras_hub.layers.TransformerEncoder(intermediate_dim=FFN, num_heads=HEADS,
                                                      layer_norm_epsilon=1e-6)
    encoder = TransformerEncoderBlock.from_config(hub_encoder.get_config())
    assert encoder.layer_norm_epsilon == 1e-6 and encoder.intermediate_dim == FFN


def test_keyword_arguments_match_keras_hub():
    import inspect

    import keras_hub

    for ours, theirs in [(TransformerEncoderBlock, keras_hub.layers.TransformerEncoder),
                         (TransformerDecoderBlock, keras_hub.layers.TransformerDecoder)]:
        hub_init = set(inspect.signature(theirs.__init__).parameters) - {"self", "kwargs"}
        assert hub_init <= set(inspect.signature(ours.__init__).parameters)
        hub_call = set(inspect.signature(theirs.call).parameters) - {"self"}
        assert hub_call <= set(inspect.signature(ours.call).parameters)


@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_bfloat16_blocks_compute_the_activation_in_float32_and_round_once(activation):
    """A bf16 block's feed-forward activation is float32's, rounded to bf16
    (faster on CPUs, which have no bf16 erf/tanh); ReLU stays in bf16."""
    block = TransformerEncoderBlock(HEADS, FFN, activation=activation, dtype="mixed_bfloat16")
    block.build((None, None, D))
    inner = keras.ops.cast(rand(3, 5, FFN) * 3, "bfloat16")
    out = block._activate(inner)
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    wide = keras.activations.get(activation)(keras.ops.cast(inner, "float32"))
    np.testing.assert_array_equal(np.asarray(keras.ops.cast(out, "float32")),
                                  np.asarray(keras.ops.cast(keras.ops.cast(wide, "bfloat16"),
                                                            "float32")))
    # The whole block still agrees with float32 on the same weights.
    plain = TransformerEncoderBlock(HEADS, FFN, activation=activation)
    plain.build((None, None, D))
    plain.set_weights(block.get_weights())
    x = rand(3, 5, D)
    np.testing.assert_allclose(np.asarray(keras.ops.cast(block(x), "float32")),
                               np.asarray(plain(x)), atol=0.1)
