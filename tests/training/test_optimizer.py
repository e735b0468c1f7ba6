"""`FusedAdamW` (one fused kernel per variable) reaches the weights of Keras'
`AdamW` on the same gradients, schedule, weight decay and exclusions, in
eager mode and in a compiled step, and a checkpoint of either restores into
the other."""

import numpy as np
import pytest
import tensorflow as tf
import keras

from tfmask.training.optimizer import FusedAdamW
from tfmask.training.schedule import WarmupDecay

pytestmark = pytest.mark.tensorflow_only("the fused kernel is TensorFlow's")


def tiny_model():
    keras.utils.set_random_seed(7)
    inputs = keras.Input((6,), dtype="int32")
    hidden = keras.layers.Embedding(50, 8, name="embedding")(inputs)
    hidden = keras.layers.LayerNormalization(name="norm")(hidden)
    hidden = keras.layers.Dense(8, activation="gelu", name="dense")(hidden)
    outputs = keras.layers.Dense(3, name="head")(keras.ops.mean(hidden, axis=1))
    return keras.Model(inputs, outputs)


def optimizer_of(kind, steps):
    schedule = WarmupDecay(3e-2, total_steps=steps, warmup_steps=3)
    optimizer = kind(learning_rate=schedule, weight_decay=0.1, beta_1=0.9, beta_2=0.98,
                     epsilon=1e-6)
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return optimizer


def train(kind, steps=25, compiled=False, dense_embedding=True):
    model = tiny_model()
    optimizer = optimizer_of(kind, steps)
    rng = np.random.default_rng(0)
    batches = [(rng.integers(0, 50, (4, 6)).astype("int32"), rng.integers(0, 3, (4,)))
               for _ in range(steps)]
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def step(tokens, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(tokens, training=True))
        gradients = tape.gradient(loss, model.trainable_variables)
        if dense_embedding:  # what tfmask's trainer hands the optimizer
            gradients = [tf.convert_to_tensor(g) for g in gradients]
        optimizer.apply(gradients, model.trainable_variables)

    step = tf.function(step) if compiled else step
    for tokens, labels in batches:
        step(tf.constant(tokens), tf.constant(labels))
    return model, optimizer


@pytest.mark.parametrize("compiled", [False, True])
def test_the_fused_update_reaches_keras_adamw_weights(compiled):
    fused, fused_optimizer = train(FusedAdamW, compiled=compiled)
    plain, plain_optimizer = train(keras.optimizers.AdamW, compiled=compiled)
    moved = False
    for a, b, start in zip(fused.weights, plain.weights, tiny_model().weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-5, atol=2e-6, err_msg=a.path)
        moved |= not np.allclose(a.numpy(), start.numpy())
    assert moved
    for a, b in zip(fused_optimizer.variables, plain_optimizer.variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-5, atol=1e-7)


def test_sparse_embedding_gradients_take_keras_update_and_agree():
    fused, _ = train(FusedAdamW, steps=8, dense_embedding=False)
    plain, _ = train(keras.optimizers.AdamW, steps=8, dense_embedding=False)
    for a, b in zip(fused.weights, plain.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-5, atol=2e-6, err_msg=a.path)


def test_excluded_variables_are_not_decayed():
    """Zero gradients: only weight decay moves a variable, and only the decayed ones."""
    optimizer = FusedAdamW(learning_rate=0.5, weight_decay=0.1)
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    kernel = keras.Variable(np.ones((2, 2), "float32"), name="kernel")
    bias = keras.Variable(np.ones((2,), "float32"), name="bias")
    optimizer.apply([tf.zeros((2, 2)), tf.zeros((2,))], [kernel, bias])
    np.testing.assert_allclose(kernel.numpy(), 0.95)
    np.testing.assert_allclose(bias.numpy(), 1.0)


def test_a_checkpoint_of_keras_adamw_restores_into_the_fused_one(tmp_path):
    plain, plain_optimizer = train(keras.optimizers.AdamW, steps=5)
    path = tf.train.Checkpoint(model=plain, optimizer=plain_optimizer).save(str(tmp_path / "c"))
    model = tiny_model()
    optimizer = optimizer_of(FusedAdamW, 5)
    optimizer.build(model.trainable_variables)
    tf.train.Checkpoint(model=model, optimizer=optimizer).restore(path).assert_consumed()
    assert int(optimizer.iterations) == 5
    for a, b in zip(optimizer.variables, plain_optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_each_dense_variable_is_one_fused_kernel_and_the_schedule_runs_once():
    model = tiny_model()
    optimizer = optimizer_of(FusedAdamW, 10)
    optimizer.build(model.trainable_variables)

    @tf.function
    def apply():
        optimizer.apply([tf.ones_like(v) for v in model.trainable_variables],
                        model.trainable_variables)

    graph = apply.get_concrete_function().graph
    kinds = [op.type for op in graph.get_operations()]
    assert kinds.count("ResourceApplyAdam") == len(model.trainable_variables)
    # Keras' AdamW evaluates the schedule once more per decayed variable.
    plain = optimizer_of(keras.optimizers.AdamW, 10)
    plain.build(model.trainable_variables)

    @tf.function
    def apply_plain():
        plain.apply([tf.ones_like(v) for v in model.trainable_variables],
                    model.trainable_variables)

    plain_ops = len(apply_plain.get_concrete_function().graph.get_operations())
    assert len(kinds) < plain_ops / 2
