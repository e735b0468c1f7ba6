"""MaskedLSTMDecoder against a numpy LSTM + Luong attention reference."""

import numpy as np
import pytest
import tensorflow as tf

from tests.layer_harness import run_layer_test
from tfmask.layers import MaskedLSTMDecoder

B, T, S, E, U = 2, 4, 5, 3, 6
SOURCE_MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)


def rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def numpy_reference(decoder, y, enc, target_mask, source_mask):
    """Loop over batch and time: masked LSTM steps, then Luong attention."""
    kernel, recurrent, bias = [np.asarray(w) for w in decoder.lstm.weights]
    w_a = np.asarray(decoder._score_dense.kernel)
    w_c, b_c = np.asarray(decoder._combine.kernel), np.asarray(decoder._combine.bias)
    out = np.zeros((y.shape[0], y.shape[1], U))
    for b in range(y.shape[0]):
        h, c = np.zeros(U), np.zeros(U)
        for t in range(y.shape[1]):
            if not target_mask[b, t]:
                continue  # state carried, output zero
            z = y[b, t] @ kernel + h @ recurrent + bias
            i, f, g, o = np.split(z, 4)
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
            keys = [s for s in range(enc.shape[1]) if source_mask[b, s]]
            scores = np.array([h @ (enc[b, s] @ w_a) for s in keys])
            weights = np.exp(scores - scores.max())
            weights /= weights.sum()
            context = sum(w * enc[b, s] for w, s in zip(weights, keys))
            out[b, t] = np.tanh(np.concatenate([context, h]) @ w_c + b_c)
    return out


def test_harness(tmp_path):
    run_layer_test(
        MaskedLSTMDecoder,
        {"units": U, "dropout": 0.1},
        {"inputs": rand(B, T, E), "encoder_outputs": rand(B, S, U, seed=1),
         "target_padding_mask": np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool),
         "encoder_padding_mask": SOURCE_MASK},
        expected_output_shape=(B, T, U),
        # Not "bfloat16" variables: the LSTM's orthogonal initializer runs
        # tf.linalg.qr, which has no bfloat16 kernel (tfmask trains in mixed
        # precision, float32 variables).
        precision_policies=("mixed_float16", "mixed_bfloat16"),
        tmp_path=tmp_path,
    )


@pytest.mark.parametrize("target_mask", [
    np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool),  # right padding
    np.array([[0, 0, 1, 1], [0, 1, 1, 1]], bool),  # left padding
    np.array([[1, 0, 1, 1], [0, 0, 0, 0]], bool),  # a hole, a fully masked row
])
def test_matches_numpy_reference_for_any_padding(target_mask):
    decoder = MaskedLSTMDecoder(units=U)
    y, enc = rand(B, T, E), rand(B, S, U, seed=1)
    out = np.asarray(decoder(y, enc, target_padding_mask=target_mask,
                  encoder_padding_mask=SOURCE_MASK))
    ref = numpy_reference(decoder, y, enc, target_mask, SOURCE_MASK)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    assert np.all(out[~target_mask] == 0)


def test_padding_invariance_of_target_and_source():
    decoder = MaskedLSTMDecoder(units=U)
    y, enc = rand(B, T, E), rand(B, S, U, seed=1)
    base = np.asarray(decoder(y, enc, encoder_padding_mask=SOURCE_MASK))
    # extra padded target steps (right) and extra padded source positions
    y_padded = np.concatenate([y, rand(B, 3, E, seed=7)], axis=1)
    t_mask = np.concatenate([np.ones((B, T), bool), np.zeros((B, 3), bool)], axis=1)
    enc_padded = np.concatenate([enc, rand(B, 2, U, seed=8)], axis=1)
    s_mask = np.concatenate([SOURCE_MASK, np.zeros((B, 2), bool)], axis=1)
    out = np.asarray(decoder(y_padded, enc_padded, target_padding_mask=t_mask,
                  encoder_padding_mask=s_mask))
    np.testing.assert_allclose(out[:, :T], base, atol=1e-5)
    # left padding of the target gives the same outputs, shifted
    y_left = np.concatenate([rand(B, 2, E, seed=9), y], axis=1)
    left_mask = np.concatenate([np.zeros((B, 2), bool), np.ones((B, T), bool)], axis=1)
    out = np.asarray(decoder(y_left, enc, target_padding_mask=left_mask,
                  encoder_padding_mask=SOURCE_MASK))
    np.testing.assert_allclose(out[:, 2:], base, atol=1e-5)


def test_teacher_forcing_equals_greedy_steps():
    decoder = MaskedLSTMDecoder(units=U)
    y, enc = rand(B, T, E), rand(B, S, U, seed=1)
    initial = [rand(B, U, seed=3), rand(B, U, seed=4)]
    full, final = decoder(y, enc, initial_state=initial,
                          encoder_padding_mask=SOURCE_MASK, return_state=True)
    states, memory, steps = initial, decoder.prepare_memory(enc), []
    for t in range(T):
        out, states = decoder.step(y[:, t], states, enc, SOURCE_MASK, memory=memory)
        steps.append(np.asarray(out))
    np.testing.assert_allclose(np.stack(steps, 1), full, atol=1e-5)
    np.testing.assert_allclose(states[0], final[0], atol=1e-5)


@pytest.mark.tensorflow_only('gradients use tf.GradientTape')
@pytest.mark.parametrize("dtype", ["mixed_float16", "mixed_bfloat16"])
def test_fully_padded_source_is_finite(dtype):
    decoder = MaskedLSTMDecoder(units=U, dtype=dtype)
    y = tf.Variable(rand(B, T, E))
    with tf.GradientTape() as tape:
        out = decoder(y, rand(B, S, U), encoder_padding_mask=np.zeros((B, S), bool))
        loss = tf.reduce_sum(tf.cast(out, "float32"))
    grads = tape.gradient(loss, [y] + decoder.trainable_variables)
    assert np.all(np.isfinite(np.asarray(tf.cast(out, "float32"))))
    assert all(np.all(np.isfinite(np.asarray(tf.cast(g, "float32")))) for g in grads)


def test_bad_arguments():
    with pytest.raises(ValueError, match="score="):
        MaskedLSTMDecoder(units=U, score="concat")
    with pytest.raises(ValueError, match="use score='general'"):
        MaskedLSTMDecoder(units=U, score="dot")(rand(B, T, E), rand(B, S, U + 1))
