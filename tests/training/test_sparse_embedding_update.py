"""The row-sparse embedding update (`FusedAdamW(sparse_rows=...)`,
optimizer.sparse_embedding_update) against dense AdamW.

What it promises (tfmask/training/optimizer.py): the moments of every row and
the weight decay it writes are exact; Adam's own motion of a row after its
last gradient is skipped, which is zero when beta_1 = 0, so there the two
updates reach the same weights from the same gradients, and in training
without weight decay (with it, a forward pass reads a row that sat out steps
just before its decay catches up). The trainer path (per-row summed slices, clipping,
the flush before evaluation and export) is checked the same way, and a
checkpoint of the per-row state resumes exactly.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests import tiny
from tfmask.errors import ConfigError
from tfmask.tasks import config_from_dict
from tfmask.training.optimizer import FusedAdamW
from tfmask.training.schedule import WarmupDecay
from tfmask.training.trainer import Trainer, _check_sparse_embedding_update

pytestmark = pytest.mark.tensorflow_only("the row-sparse update is TensorFlow's")

ROWS, WIDTH, STEPS = 20, 4, 30
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def synthetic_run(kind, beta_1, sparse, steps=STEPS, restart_at=None, **kwargs):
    """`steps` updates of a [20, 4] table (rows 8.. are read every third step
    only, some never) and a dense kernel, from fixed gradients; returns the
    table, the kernel and the optimizer. `restart_at`: checkpoint there and go
    on with a fresh table and optimizer restored from it."""
    def fresh():
        table = keras.Variable(np.random.default_rng(0).normal(size=(ROWS, WIDTH)),
                               dtype="float32", name="embeddings")
        kernel = keras.Variable(np.ones((WIDTH, 3)), dtype="float32", name="kernel")
        optimizer = kind(learning_rate=WarmupDecay(3e-2, steps, 3), weight_decay=0.1,
                         beta_1=beta_1, beta_2=0.9, epsilon=1e-6, **kwargs)
        optimizer.build([table, kernel])
        return table, kernel, optimizer

    table, kernel, optimizer = fresh()
    rng = np.random.default_rng(5)
    batches = [(rng.integers(0, 8 if i % 3 else ROWS, 6).astype("int32"),
                rng.normal(size=(6, WIDTH)).astype("float32"),
                rng.normal(size=(WIDTH, 3)).astype("float32")) for i in range(steps)]

    def make_step(table, kernel, optimizer):
        @tf.function
        def step(ids, values, kernel_gradient):
            gradient = tf.IndexedSlices(values, ids, tf.constant([ROWS, WIDTH], tf.int64))
            if not sparse:
                gradient = tf.convert_to_tensor(gradient)
            optimizer.apply([gradient, kernel_gradient], [table, kernel])
        return step

    step = make_step(table, kernel, optimizer)
    for i, batch in enumerate(batches):
        if i == restart_at:
            saved = tf.train.Checkpoint(variables=[table, kernel, *optimizer.variables])
            path = saved.write(os.path.join(restart_at_dir(), "ckpt"))
            table, kernel, optimizer = fresh()
            tf.train.Checkpoint(variables=[table, kernel, *optimizer.variables]).read(
                path).assert_consumed()
            step = make_step(table, kernel, optimizer)
        step(*map(tf.constant, batch))
    if sparse:
        optimizer.flush_sparse_rows()
    return table.numpy(), kernel.numpy(), optimizer


_RESTART_DIR = []


def restart_at_dir():
    return _RESTART_DIR[-1]


def moments(optimizer, index=0):
    return optimizer._momentums[index].numpy(), optimizer._velocities[index].numpy()


def test_without_momentum_the_sparse_update_equals_dense_adamw():
    table, kernel, sparse = synthetic_run(FusedAdamW, 0.0, True, sparse_rows=["embeddings"])
    dense_table, dense_kernel, dense = synthetic_run(keras.optimizers.AdamW, 0.0, False)
    np.testing.assert_allclose(table, dense_table, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(kernel, dense_kernel, rtol=1e-5, atol=1e-6)
    for mine, theirs in zip(moments(sparse), moments(dense)):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-7)
    # Some rows sat out steps (and some were never read): the catch-up ran.
    assert not np.allclose(table, synthetic_run(FusedAdamW, 0.0, True,
                                                sparse_rows=["other"])[0])


def test_with_momentum_the_moments_stay_exact_and_only_idle_rows_drift():
    table, _, sparse = synthetic_run(FusedAdamW, 0.9, True, sparse_rows=["embeddings"])
    dense_table, _, dense = synthetic_run(keras.optimizers.AdamW, 0.9, False)
    for mine, theirs in zip(moments(sparse), moments(dense)):
        np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-7)
    # Rows 0..7 are read at most steps, rows 8.. rarely: their weights differ
    # by the motion dense Adam keeps up after a row's last gradient.
    drift = np.abs(table - dense_table).max(axis=1)
    assert drift.max() > 1e-3
    never_read = [row for row in range(ROWS) if np.allclose(moments(dense)[1][row], 0)]
    for row in never_read:  # weight decay alone moved them, exactly
        np.testing.assert_allclose(table[row], dense_table[row], rtol=1e-6)


def test_the_flush_is_idempotent_and_a_checkpoint_resumes_exactly(tmp_path):
    _RESTART_DIR.append(str(tmp_path))
    straight, _, optimizer = synthetic_run(FusedAdamW, 0.9, True, sparse_rows=["embeddings"])
    resumed, _, _ = synthetic_run(FusedAdamW, 0.9, True, sparse_rows=["embeddings"],
                                  restart_at=17)
    np.testing.assert_array_equal(resumed, straight)
    before = [v.numpy() for v in optimizer.variables]
    optimizer.flush_sparse_rows()
    for a, b in zip(before, optimizer.variables):
        np.testing.assert_array_equal(a, b.numpy())


def test_a_tiny_model_reaches_the_dense_weights():
    """Real gradients of an embedding model (IndexedSlices), beta_1 = 0, no
    weight decay (the forward pass would read idle rows before their decay)."""
    from tests.training.test_optimizer import tiny_model  # the shared tiny model

    def trained(sparse):
        model = tiny_model()
        kind = FusedAdamW if sparse else keras.optimizers.AdamW
        optimizer = kind(learning_rate=WarmupDecay(3e-2, 25, 3), weight_decay=0.0, beta_1=0.0,
                         beta_2=0.98, epsilon=1e-6,
                         **({"sparse_rows": ["embeddings"]} if sparse else {}))
        rng = np.random.default_rng(0)
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

        @tf.function
        def step(tokens, labels):
            with tf.GradientTape() as tape:
                loss = loss_fn(labels, model(tokens, training=True))
            gradients = tape.gradient(loss, model.trainable_variables)
            assert isinstance(gradients[0], tf.IndexedSlices)
            if not sparse:
                gradients = [tf.convert_to_tensor(g) for g in gradients]
            optimizer.apply(gradients, model.trainable_variables)

        for _ in range(25):  # 4 x 6 ids of 50: most rows sit out most steps
            step(tf.constant(rng.integers(0, 50, (4, 6)), tf.int32),
                 tf.constant(rng.integers(0, 3, (4,))))
        if sparse:
            optimizer.flush_sparse_rows()
        return model

    for a, b in zip(trained(True).weights, trained(False).weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-5, atol=2e-6, err_msg=a.path)


# ------------------------------------------------------------ the trainer
def classifier_config(sparse, beta_1=0.9, weight_decay=0.01, **sections):
    train = {"steps": 12, "log_every": 4, "eval_batches": 2, **sections.pop("train", {})}
    values = tiny.tiny_config("classifier", train=train, **sections)
    values["optimizer"] = {**values["optimizer"], "beta_1": beta_1,
                           "weight_decay": weight_decay, "sparse_embedding_update": sparse}
    return values


def test_the_trainer_update_equals_dense_without_momentum(tmp_path):
    """Clipping (a norm this low clips every step) of per-row summed slices,
    the update and the flush before evaluation and export: the same weights,
    metrics and exported model as the dense update."""
    results, weights = {}, {}
    for sparse in (True, False):
        values = classifier_config(sparse, beta_1=0.0, weight_decay=0.0,
                                   optimizer={"clipnorm": 0.05},
                                   runtime={"export": True, "export_saved_model": False})
        trainer = Trainer(config_from_dict(values), str(tmp_path / str(sparse)), verbose=False)
        results[sparse] = trainer.fit()
        exported = keras.saving.load_model(trainer.folder.export.model)
        weights[sparse] = [w.numpy() for w in exported.weights]
    for a, b in zip(weights[True], weights[False]):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6)
    assert results[True]["eval_loss"] == pytest.approx(results[False]["eval_loss"], rel=1e-4)


def test_the_trainer_takes_the_row_sparse_path(tmp_path):
    """The checkpoint of the last step is written before the final flush:
    each token-table row holds the step it was last read at ([CLS] every
    step, most of the vocabulary never), which only the row-sparse update
    writes."""
    trainer = Trainer(config_from_dict(classifier_config(True, train={"steps": 3})),
                      str(tmp_path), verbose=False)
    trainer.fit()
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(tmp_path / "checkpoints")))
    tables = {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
              if "optimizer_variables" in name and reader.get_tensor(name).ndim == 1
              and reader.get_tensor(name).dtype == np.int64}
    token_steps = max(tables.values(), key=len)  # the token table has the most rows
    assert len(token_steps) > 500 and set(np.unique(token_steps)) <= {0, 1, 2, 3}
    assert (token_steps == 3).sum() > 10 and (token_steps == 0).sum() > 100
    # After the flush (before the final evaluation and export) every row is current.
    for steps in trainer.optimizer._row_steps:
        if steps is not None:
            assert set(np.unique(steps.numpy())) == {3}


@pytest.mark.parametrize("family,sets,message", [
    ("mlm", {}, "model.family=mlm ties or has no word embedding lookup"),
    ("classifier", {"model": {"lora_rank": 4}}, "freeze the embedding"),
    ("classifier", {"runtime": {"jit_compile": True}}, "runtime.jit_compile cannot compile"),
])
def test_it_is_refused_where_it_cannot_take_effect(family, sets, message):
    values = tiny.tiny_config(family, **sets)
    values["optimizer"] = {**values["optimizer"], "sparse_embedding_update": True}
    with pytest.raises(ConfigError, match=message):
        config_from_dict(values)


@pytest.mark.parametrize("precision,replicas,message", [
    ("mixed_float16", 1, "loss scaling makes the embedding gradient dense"),
    ("float32", 2, "2 replicas sum their gradients densely"),
])
def test_it_is_refused_where_precision_or_strategy_make_gradients_dense(precision, replicas,
                                                                        message):
    config = config_from_dict(classifier_config(True))
    with pytest.raises(ConfigError, match=message):
        _check_sparse_embedding_update(config, precision, replicas)
    _check_sparse_embedding_update(config, "mixed_bfloat16", 1)  # the main job's case


# ------------------------------------------------------------ the command line
@pytest.mark.journey
def test_the_command_line_trains_and_exports_with_the_row_sparse_update(tmp_path, capsys):
    """`python -m tfmask.train --set optimizer.sparse_embedding_update=true`
    to the exported model and a prediction from it. The last checkpoint is
    written before the flush, so its token table holds rows that sat out the
    last steps with their weight decay still owed; the exported table is that
    table with the decay paid: rows read at the last step are unchanged, the
    others shrink by one factor per number of steps sat out."""
    from tests.journeys import train_cli
    from tfmask.predict import Predictor

    steps = 6  # the main job, pretrained MiniLM and all, shortened
    sets = [f"train.steps={steps}", "train.log_every=3", "train.eval_batches=1",
            "schedule.warmup_steps=1", "optimizer.learning_rate=1e-2",
            "optimizer.weight_decay=0.5", "optimizer.sparse_embedding_update=true",
            "runtime.export_saved_model=false"]
    run = tmp_path / "run"
    code, out, err = train_cli(capsys, os.path.join(REPO, "configs", "rotten_tomatoes_minilm.yaml"),
                               run, *sets)
    assert code == 0, err[-3000:]
    assert "final: eval_loss" in out

    reader = tf.train.load_checkpoint(str(run / "checkpoints"))
    shapes = reader.get_variable_to_shape_map()
    row_steps = max((reader.get_tensor(name) for name in shapes if "optimizer_variables" in name
                     and len(shapes[name]) == 1 and reader.get_tensor(name).dtype == np.int64),
                    key=len)
    table_name = next(name for name in shapes if "optimizer_variables" not in name
                      and shapes[name] == [len(row_steps), 384])
    trained = reader.get_tensor(table_name)
    exported = keras.saving.load_model(str(run / "export" / "model.keras"))
    table = next(w.numpy() for w in exported.weights if "token_embedding" in w.path)

    current, idle = row_steps == steps, row_steps < steps  # 0: never read
    assert current.sum() > 5 and idle.sum() > 5 and (row_steps == 0).sum() > 20_000
    np.testing.assert_array_equal(table[current], trained[current])
    for last_read in np.unique(row_steps[idle]):
        rows = (row_steps == last_read)[:, None] & (trained != 0)
        factor = table[rows] / trained[rows]
        assert np.all(factor < 1) and np.ptp(factor) < 1e-5, last_read

    lines = Predictor(str(run)).predict("a gripping , funny film .")  # tfmask.predict's
    probabilities = [float(x) for x in lines[0].split()[2::3]]  # "class 0: p class 1: q"
    assert len(probabilities) == 2 and sum(probabilities) == pytest.approx(1, abs=2e-3), lines
