"""The trainer runs every family under XLA, several steps per host call, and
a family that a user registers, end to end."""

import json
import math
import re

import keras
import numpy as np
import pytest

from tests.training.test_trainer import FAMILIES, read_metrics, tiny_config, train_losses
from tfmask.data import features as F
from tfmask.tasks import TASKS, ClassifierTask
from tfmask.errors import ConfigError
from tfmask.tasks import config_from_dict
from tfmask.training.token_buckets import TokenBuckets
from tfmask.training.trainer import Trainer, variables_digest

JIT_FAMILIES = ["mlm_whole_word", "classifier", "seq2seq_transformer", "seq2seq_lstm",
                "causal_lm_packed"]


@pytest.mark.parametrize("family", JIT_FAMILIES)
def test_jit_compile_trains_every_family(family, tmp_path):
    """The compiled step holds the model, loss and optimizer; the iterator
    stays outside XLA (IteratorGetNext has no XLA kernel)."""
    values = tiny_config(family, runtime={"jit_compile": True, "export": False},
                         train={"steps": 4, "log_every": 2, "eval_batches": 1,
                                "generate_examples": 0})
    values["data"]["sequence_length"] = 16
    values["data"]["target_length"] = 16
    trainer = Trainer(config_from_dict(values), str(tmp_path), verbose=False)
    # Encoders stay padding-free under XLA: one compilation per token bucket.
    assert isinstance(trainer._compiled(lambda b: b, 4), TokenBuckets) == \
        trainer.task.supports_padding_free
    results = trainer.fit()
    losses = train_losses(tmp_path)
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    assert math.isfinite(results["eval_loss"])


def test_steps_per_execution_reaches_the_same_weights(tmp_path):
    base = tiny_config("mlm_whole_word", train={"steps": 12, "log_every": 6, "eval_batches": 1},
                       runtime={"export": False, "checkpoint_every": 6},
                       model={"dropout": 0.1})
    digests, losses = {}, {}
    for per_call in (1, 4):
        values = json.loads(json.dumps(base))
        values["runtime"]["steps_per_execution"] = per_call
        output = tmp_path / str(per_call)
        trainer = Trainer(config_from_dict(values), str(output), verbose=False)
        trainer.fit()
        digests[per_call] = variables_digest(trainer.model)
        losses[per_call] = train_losses(output)
        assert [r["step"] for r in read_metrics(output) if "train_loss" in r] == [6, 12]
        assert sorted(p.name for p in (output / "checkpoints").glob("*.index")) == \
            ["ckpt-12.index", "ckpt-6.index"]
    assert digests[4] == pytest.approx(digests[1], rel=1e-6)
    np.testing.assert_allclose(losses[4], losses[1], rtol=1e-5)
    with pytest.raises(ConfigError, match="runtime.steps_per_execution=0 must be > 0"):
        config_from_dict({**base, "runtime": {"steps_per_execution": 0}})


class BagOfWordsTask(ClassifierTask):
    """A user's family: the classifier's data and contract, a different model."""

    family = "bag_of_words"
    supports_pretrained = False

    def build_model(self, dtype):
        ids = keras.Input((None,), dtype="int32", name=F.TOKEN_IDS)
        padding = keras.Input((None,), dtype="bool", name=F.PADDING_MASK)
        vectors = keras.layers.Embedding(self.tokenizer.vocabulary_size, 16, dtype=dtype)(ids)
        pooled = keras.layers.GlobalAveragePooling1D(dtype=dtype)(vectors, mask=padding)
        logits = keras.layers.Dense(self.config.model.num_classes, dtype=dtype)(pooled)
        logits = keras.layers.Activation("linear", dtype="float32")(logits)
        return keras.Model({F.TOKEN_IDS: ids, F.PADDING_MASK: padding}, logits)


@pytest.fixture
def user_family():
    TASKS.add(BagOfWordsTask.family, BagOfWordsTask)
    yield BagOfWordsTask
    TASKS.remove(BagOfWordsTask.family)


def test_a_family_registered_by_a_user_trains_exports_and_predicts(user_family, tmp_path):
    values = tiny_config("classifier", train={"steps": 60, "log_every": 20, "eval_batches": 4},
                         runtime={"export": True, "export_saved_model": False},
                         optimizer={"learning_rate": 1e-2})
    values["model"] = {"family": "bag_of_words"}
    values["masking"] = {"strategy": "term", "terms": ["film"]}  # its inherited strategies
    results = Trainer(config_from_dict(values), str(tmp_path), verbose=False).fit()
    losses = train_losses(tmp_path)
    assert losses[-1] < losses[0] and results["eval_accuracy"] > 0.55
    assert (tmp_path / "export" / "model.keras").exists()
    from tfmask.predict import Predictor

    predictor = Predictor(str(tmp_path))
    assert isinstance(predictor.task, BagOfWordsTask)
    [line] = predictor.predict("a gorgeous , moving film")
    probabilities = [float(p) for p in re.findall(r"class \d+: ([0-9.]+)", line)]
    assert len(probabilities) == 2 and line.startswith("class 0: ") and sum(probabilities) == pytest.approx(1, abs=2e-3)
    values["masking"] = {"strategy": "span_corruption"}
    with pytest.raises(ConfigError, match="model.family=bag_of_words does not support"):
        config_from_dict(values)


def test_term_masking_is_applied_when_predicting(tmp_path):
    """What is served is what was trained: a classifier trained with term
    masking sees the same [MASK]s at prediction time."""
    values = tiny_config("classifier", train={"steps": 2, "log_every": 1, "eval_batches": 1},
                         runtime={"export": True, "export_saved_model": False})
    values["masking"] = {"strategy": "term", "terms": ["tom hanks"], "patterns": [r"\d+"]}
    Trainer(config_from_dict(values), str(tmp_path), verbose=False).fit()
    from tfmask.predict import Predictor

    predictor = Predictor(str(tmp_path))
    inputs = predictor.task.model_inputs(["tom hanks is 66 and great"])
    ids = inputs[F.TOKEN_IDS].numpy()[0][inputs[F.PADDING_MASK].numpy()[0]]
    assert list(ids).count(predictor.tokenizer.mask_id) >= 3
    # The hidden number cannot change the answer; an unlisted name can.
    assert predictor.predict("tom hanks is 66 and great") == \
        predictor.predict("tom hanks is 12 and great")
    assert not np.array_equal(predictor.task.model_inputs(["meg ryan is 66 and great"])[
        F.TOKEN_IDS].numpy(), inputs[F.TOKEN_IDS].numpy())


def test_families_of_the_training_tests_cover_every_registered_family():
    assert {values["model"]["family"] for values in FAMILIES.values()} == set(TASKS.names())


# The entity config is the one that carried a string; every family is checked.
@pytest.mark.parametrize("family", ["mlm_entity_wnut16"] + sorted(FAMILIES))
def test_string_features_never_travel_to_the_device(family):
    """Raw texts and names stay on the host: a string tensor in a training
    or evaluation batch would be copied to the GPU/TPU every step (or fail)."""
    if family == "mlm_entity_wnut16":  # its documents keep `text` beside the words
        values = tiny_config("mlm_whole_word", masking={"strategy": "entity",
                                                        "max_predictions": 6})
        values["data"] = {**values["data"], "name": "wnut16", "words_key": "words"}
    else:
        values = tiny_config(family)
    task = TASKS.get(values["model"]["family"])(config_from_dict(values))
    for batches in (task.train, task.evaluation):
        spec = batches.element_spec
        specs = spec.items() if isinstance(spec, dict) else enumerate(spec)
        assert [key for key, value in specs if value.dtype.name == "string"] == []
