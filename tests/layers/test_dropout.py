"""tfmask Dropout: the drop rate, scaling, seeds, noise shapes and dtypes."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layer_harness import run_layer_test
from tfmask.layers import Dropout


def test_harness(tmp_path):
    x = np.random.default_rng(0).normal(size=(2, 3, 4)).astype("float32")
    run_layer_test(Dropout, {"rate": 0.5, "noise_shape": (None, 1, 4), "seed": 3},
                   {"inputs": x}, expected_output_shape=(2, 3, 4), tmp_path=tmp_path)


@pytest.mark.parametrize("rate", [0.1, 0.15, 0.5])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_drop_rate_and_scaling(rate, dtype):
    layer = Dropout(rate, seed=3, dtype=dtype)
    x = keras.ops.ones((400, 1000), dtype)
    out = np.asarray(keras.ops.cast(layer(x, training=True), "float32"))
    dropped = (out == 0).mean()
    n = out.size
    assert abs(dropped - rate) < 4 * np.sqrt(rate * (1 - rate) / n), dropped
    np.testing.assert_allclose(out[out != 0], 1 / (1 - rate), rtol=1e-2 if dtype != "float32" else 1e-6)


def test_each_call_draws_a_new_mask_and_a_seed_repeats_the_stream():
    x = np.ones((64, 64), "float32")
    first, second = Dropout(0.3, seed=7), Dropout(0.3, seed=7)
    a1, a2 = first(x, training=True), first(x, training=True)
    b1 = second(x, training=True)
    assert not np.array_equal(a1, a2)
    np.testing.assert_array_equal(a1, b1)


def test_inference_and_zero_rate_pass_inputs_through():
    x = np.random.default_rng(0).normal(size=(3, 5)).astype("float32")
    np.testing.assert_array_equal(Dropout(0.5)(x, training=False), x)
    np.testing.assert_array_equal(Dropout(0.0)(x, training=True), x)


def test_noise_shape_drops_whole_features():
    out = np.asarray(Dropout(0.5, noise_shape=(None, 1, 16), seed=1)(
        np.ones((4, 8, 16), "float32"), training=True))
    assert (out == out[:, :1, :]).all()  # the same mask at every position
    assert 0 < (out == 0).mean() < 1


@pytest.mark.tensorflow_only("the Philox path and XLA are TensorFlow's")
def test_odd_sizes_and_xla():
    layer = Dropout(0.25, seed=2)
    step = tf.function(lambda x: layer(x, training=True), jit_compile=True)
    out = step(tf.ones((7, 13)))
    assert out.shape == (7, 13) and 0 < (np.asarray(out) == 0).mean() < 1


@pytest.mark.tensorflow_only('gradients use tf.GradientTape')
def test_gradient():
    layer = Dropout(0.5, seed=4)
    x = tf.ones((10, 10))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
    grad = np.asarray(tape.gradient(y, x))
    np.testing.assert_array_equal(grad, np.asarray(y))  # d(x * mask * 2)/dx = mask * 2
