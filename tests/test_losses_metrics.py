"""Masked losses and metrics against numpy, including the all-masked edge."""

import keras
import numpy as np
import pytest

from tfmask import losses, metrics

RNG = np.random.default_rng(0)
LOGITS = RNG.normal(size=(3, 4, 6)).astype("float32")
LABELS = RNG.integers(0, 6, size=(3, 4))
WEIGHTS = (RNG.random((3, 4)) > 0.5).astype("float32")


def numpy_ce(labels, logits):
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return -np.take_along_axis(logp, labels[..., None], -1)[..., 0]


def test_masked_cross_entropy_is_mean_over_weighted_positions():
    expected = (numpy_ce(LABELS, LOGITS) * WEIGHTS).sum() / WEIGHTS.sum()
    got = losses.masked_sparse_categorical_crossentropy(LABELS, LOGITS, WEIGHTS)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    loss = losses.MaskedSparseCategoricalCrossentropy()
    np.testing.assert_allclose(loss(LABELS, LOGITS, sample_weight=WEIGHTS), expected, rtol=1e-5)


def test_all_zero_weights_give_zero_not_nan_and_garbage_labels_are_ignored():
    zeros = np.zeros_like(WEIGHTS)
    assert float(losses.masked_sparse_categorical_crossentropy(LABELS, LOGITS, zeros)) == 0.0
    assert float(losses.MaskedSparseCategoricalCrossentropy()(LABELS, LOGITS, sample_weight=zeros)) == 0.0
    inf_logits = LOGITS.copy()
    inf_logits[WEIGHTS == 0] = -np.inf  # a position that must not count
    got = losses.masked_sparse_categorical_crossentropy(LABELS, inf_logits, WEIGHTS)
    assert np.isfinite(float(got))


def test_loss_works_in_fit_with_float16_logits():
    inputs = keras.Input((4,), dtype="int32")
    x = keras.layers.Embedding(6, 8, dtype="mixed_float16")(inputs)
    logits = keras.layers.Dense(6, dtype="mixed_float16")(x)
    model = keras.Model(inputs, logits)
    model.compile("adam", losses.MaskedSparseCategoricalCrossentropy(),
                  weighted_metrics=[metrics.MaskedAccuracy()])
    history = model.fit(LABELS, LABELS, sample_weight=WEIGHTS, epochs=30, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert np.isfinite(history.history["loss"]).all()


def test_metrics_accumulate_the_exact_weighted_mean_across_batches():
    acc, ppl, ce = metrics.MaskedAccuracy(), metrics.MaskedPerplexity(), metrics.MaskedCrossEntropy()
    for b in range(3):  # one batch at a time: batch means would be wrong
        for m in (acc, ppl, ce):
            m.update_state(LABELS[b:b + 1], LOGITS[b:b + 1], WEIGHTS[b:b + 1])
    correct = (LOGITS.argmax(-1) == LABELS)
    np.testing.assert_allclose(acc.result(), (correct * WEIGHTS).sum() / WEIGHTS.sum(), rtol=1e-6)
    mean_ce = (numpy_ce(LABELS, LOGITS) * WEIGHTS).sum() / WEIGHTS.sum()
    np.testing.assert_allclose(ce.result(), mean_ce, rtol=1e-5)
    np.testing.assert_allclose(ppl.result(), np.exp(mean_ce), rtol=1e-5)
    acc.reset_state()
    assert float(acc.result()) == 0.0


@pytest.mark.parametrize("cls", [metrics.MaskedAccuracy, metrics.MaskedPerplexity,
                                 metrics.MaskedCrossEntropy, losses.MaskedSparseCategoricalCrossentropy])
def test_config_round_trip(cls):
    obj = cls()
    clone = cls.from_config(obj.get_config())
    assert clone.get_config() == obj.get_config()


def test_masked_mean_squared_error_averages_over_weighted_elements_only():
    targets = RNG.normal(size=(3, 4, 2)).astype("float32")
    predictions = RNG.normal(size=(3, 4, 2)).astype("float32")
    hidden = RNG.random((3, 4, 2)) > 0.5
    expected = ((predictions - targets) ** 2)[hidden].mean()
    np.testing.assert_allclose(
        losses.masked_mean_squared_error(targets, predictions, hidden), expected, rtol=1e-5)
    steps = hidden[..., :1]  # [B, T, 1] weights broadcast over the features
    expected_steps = ((predictions - targets) ** 2)[np.broadcast_to(steps, hidden.shape)].mean()
    np.testing.assert_allclose(
        losses.masked_mean_squared_error(targets, predictions, steps), expected_steps, rtol=1e-5)
    np.testing.assert_allclose(losses.masked_mean_squared_error(targets, predictions),
                               ((predictions - targets) ** 2).mean(), rtol=1e-5)


@pytest.mark.tensorflow_only('gradients use tf.GradientTape')
def test_masked_mean_squared_error_is_zero_without_weights_and_ignores_nan_targets():
    import tensorflow as tf

    targets = np.array([[1.0, np.nan, np.inf]], "float32")
    predictions = tf.Variable([[2.0, 0.0, 0.0]])
    assert float(losses.masked_mean_squared_error(targets, predictions, [[0, 0, 0]])) == 0.0
    with tf.GradientTape() as tape:
        loss = losses.masked_mean_squared_error(targets, predictions, [[1, 0, 0]])
    np.testing.assert_array_equal(loss, 1.0)
    np.testing.assert_array_equal(tape.gradient(loss, predictions), [[2.0, 0.0, 0.0]])
