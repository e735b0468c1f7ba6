"""Static shapes where the strategy needs them (a TPU compiles one shape per
function; XLA recompiles for each new one): the last evaluation batch is
filled with weight-0 copies, every metric equals the partial-batch one, and a
whole run with several evaluations traces each step function once."""

import pytest
import tensorflow as tf

from tests.tiny import FAMILIES, tiny_config
from tfmask.data import features as F
from tfmask.tasks import config_from_dict
from tfmask.training.trainer import Trainer

pytestmark = pytest.mark.integration

# 20 examples in batches of 8: two full batches and one of 4.
PARTIAL = {"eval_split": "validation[:20]", "eval_batch_size": 8}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_filled_batches_give_the_partial_batch_metrics(family, tmp_path):
    values = tiny_config(family, train={"steps": 1, "eval_batches": 3})
    values["data"].update(PARTIAL)
    if family == "token_classifier":  # rows long enough for every tweet: 20 tweets, 20 rows
        values["data"]["sequence_length"] = 80
    trainer = Trainer(config_from_dict(values), str(tmp_path), verbose=False)
    expected = trainer.evaluate()
    trainer.static_shapes = True  # what strategy: tpu and jit_compile turn on
    trainer._evaluation_batches.clear()
    got = trainer.evaluate()
    filled = trainer._evaluation_batches[None]
    sizes = [int(tf.shape(b[F.EXAMPLE_WEIGHT])[0]) for b in filled]
    weights = [float(tf.reduce_sum(b[F.EXAMPLE_WEIGHT])) for b in filled]
    assert sizes == [8, 8, 8] and weights == [8.0, 8.0, 4.0]
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key


def test_a_compiled_run_sees_one_static_shape_and_traces_once(tmp_path):
    """jit_compile (as on a TPU): static element specs for training and every
    evaluation split, and one trace of each step function across a run that
    evaluates four times (eval_every, the final one and an extra split)."""
    values = tiny_config("mlm", train={"steps": 6, "eval_every": 2, "eval_batches": 3,
                                       "extra_eval_splits": ["test[:12]"]},
                         runtime={"jit_compile": True})
    values["data"].update(PARTIAL)
    values["model"]["padding_free"] = False  # as on a TPU (token buckets have their own shapes)
    trainer = Trainer(config_from_dict(values), str(tmp_path), verbose=False)
    assert trainer.static_shapes
    trainer.fit()
    specs = [trainer.task.train.element_spec] + [
        batches.element_spec for batches in trainer._evaluation_batches.values()]
    assert len(specs) == 3
    for spec in specs:
        for key, value in spec.items():
            assert value.shape.is_fully_defined(), (key, value)
    assert trainer.step_functions["train"].experimental_get_tracing_count() == 1
    assert trainer._eval_step.experimental_get_tracing_count() == 1
