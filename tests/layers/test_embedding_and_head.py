"""MaskedEmbedding and MaskedLMHead against direct numpy computations."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layer_harness import run_layer_test
from tfmask.layers import MaskedEmbedding, MaskedLMHead, TiedProjection, sinusoidal_positions

IDS = np.array([[3, 4, 5, 0, 0], [6, 7, 8, 9, 0]], "int32")


@pytest.mark.parametrize("position", ["learned", "sinusoidal"])
def test_embedding_harness(position, tmp_path):
    run_layer_test(
        MaskedEmbedding,
        {"vocabulary_size": 10, "hidden_dim": 6, "max_length": 8,
         "num_segments": 2, "position": position, "dropout": 0.1},
        {"token_ids": IDS, "token_type_ids": (IDS > 5).astype("int32")},
        expected_output_shape=(2, 5, 6),
        tmp_path=tmp_path,
    )


def test_embedding_emits_padding_mask_and_matches_numpy():
    embed = MaskedEmbedding(vocabulary_size=10, hidden_dim=4, max_length=8, pad_id=0)
    out = embed(IDS)
    np.testing.assert_array_equal(embed.compute_mask(IDS), IDS != 0)
    tokens = np.asarray(embed.token_embedding.embeddings)[IDS]
    positions = np.asarray(embed.position_embedding.embeddings)[np.arange(5)][None]
    x = tokens + positions
    normed = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-12)
    gamma, beta = [np.asarray(w) for w in embed.layer_norm.weights]
    np.testing.assert_allclose(out, normed * gamma + beta, atol=1e-5)
    # the mask flows to the next layer in a functional model
    inputs = keras.Input((None,), dtype="int32")
    seen = {}

    class Probe(keras.layers.Layer):
        def call(self, x, mask=None):
            seen["mask"] = mask
            return x

    keras.Model(inputs, Probe()(embed(inputs)))(IDS)
    np.testing.assert_array_equal(seen["mask"], IDS != 0)


def test_sinusoidal_positions_match_the_formula():
    positions = np.array([[0, 1, 2, 0, 1]])
    got = np.asarray(sinusoidal_positions(positions, 6))
    inv = 1.0 / 10000 ** (np.arange(3) / 3)
    angles = positions[..., None] * inv
    np.testing.assert_allclose(got, np.concatenate([np.sin(angles), np.cos(angles)], -1), atol=1e-6)


def test_explicit_position_ids_reset_positions_for_packed_rows():
    embed = MaskedEmbedding(vocabulary_size=10, hidden_dim=4, max_length=8)
    packed = embed(np.array([[3, 4, 5, 6]]), position_ids=np.array([[0, 1, 0, 1]]))
    alone = embed(np.array([[5, 6]]))
    np.testing.assert_allclose(packed[:, 2:], alone, atol=1e-6)


def test_embedding_bad_input_errors():
    embed = MaskedEmbedding(vocabulary_size=10, hidden_dim=4, max_length=3)
    with pytest.raises(ValueError, match="raise max_length or truncate"):
        embed(np.ones((1, 5), "int32"))
    with pytest.raises(ValueError, match="num_segments > 0"):
        MaskedEmbedding(10, 4, 8)(IDS, token_type_ids=IDS)
    with pytest.raises(ValueError, match="position="):
        MaskedEmbedding(10, 4, 8, position="rotary")


def make_head():
    embed = MaskedEmbedding(vocabulary_size=12, hidden_dim=4, max_length=8)
    embed(IDS)
    return embed, MaskedLMHead(token_embedding=embed)


def test_head_harness(tmp_path):
    embed, _ = make_head()
    run_layer_test(
        MaskedLMHead,
        {"token_embedding": embed},
        {"inputs": np.random.default_rng(0).normal(size=(2, 5, 4)).astype("float32"),
         "mask_positions": np.array([[0, 2], [1, 3]], "int32")},
        expected_output_shape=(2, 2, 12),
        tmp_path=tmp_path,
    )


def test_head_equals_projecting_every_position_then_gathering():
    embed, head = make_head()
    hidden = np.random.default_rng(1).normal(size=(2, 5, 4)).astype("float32")
    positions = np.array([[4, 1], [0, 0]], "int32")
    logits = np.asarray(head(hidden, positions))
    kernel, bias = [np.asarray(w) for w in head._transform.weights]
    gamma, beta = [np.asarray(w) for w in head._layer_norm.weights]
    h = np.asarray(keras.activations.gelu(hidden @ kernel + bias))
    h = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-12) * gamma + beta
    all_logits = h @ np.asarray(embed.embeddings).T + np.asarray(head.output_bias)
    expected = np.take_along_axis(all_logits, positions[:, :, None], axis=1)
    np.testing.assert_allclose(logits, expected, atol=1e-5)


@pytest.mark.tensorflow_only('gradients use tf.GradientTape')
def test_head_is_tied_to_the_embedding_table():
    embed, head = make_head()
    hidden = tf.constant(np.random.default_rng(2).normal(size=(2, 5, 4)), "float32")
    head(hidden, np.array([[0, 1], [2, 3]]))
    assert any(v is embed.embeddings for v in head.trainable_variables)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(head(hidden, np.array([[0, 1], [2, 3]])))
    grad = tape.gradient(loss, embed.embeddings)
    assert grad is not None and np.any(np.asarray(tf.convert_to_tensor(grad)) != 0)
    with pytest.raises(ValueError, match="MaskedEmbedding"):
        MaskedLMHead(token_embedding=keras.layers.Embedding(10, 4))


def test_tied_projection_harness_and_numpy(tmp_path):
    embed, _ = make_head()
    hidden = np.random.default_rng(3).normal(size=(2, 5, 4)).astype("float32")
    layer, out = run_layer_test(
        TiedProjection, {"token_embedding": embed}, {"inputs": hidden},
        expected_output_shape=(2, 5, 12), tmp_path=tmp_path,
    )
    expected = hidden @ np.asarray(layer.token_embedding.embeddings).T + np.asarray(layer.output_bias)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert any(v is embed.embeddings for v in layer.trainable_variables)
