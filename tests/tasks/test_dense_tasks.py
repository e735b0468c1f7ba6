"""The dense families from the command line: masking noise in training only,
a masked autoencoder graded on hidden values, a classifier from its encoder,
the data's own missing values, and the settings each side refuses."""

import json
import os

import numpy as np
import pytest
import yaml

from tests.journeys import train_cli
from tfmask.data import features as F
from tfmask.tasks import build_task
from tfmask.errors import ConfigError
from tfmask.tasks import config_from_dict, load_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The documented dense configs keep their model sizes (the classifier loads the
# autoencoder's weights, so both must be the configs'), trained 20 steps: the
# shortest run in which digits are learnt.
SHORT = ["train.steps=20", "train.log_every=10", "train.eval_batches=2",
         "schedule.warmup_steps=2", "runtime.checkpoint_every=10"]


def yaml_values(path):
    with open(os.path.join(REPO, path), encoding="utf-8") as f:
        return yaml.safe_load(f)


def test_digits_journey_hides_patches_in_training_only(tmp_path, capsys):
    code, out, err = train_cli(capsys, os.path.join(REPO, "configs/dense_digits.yaml"),
                               tmp_path / "run", *SHORT)
    assert code == 0, err[-2000:]
    records = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert records[-1]["eval_accuracy"] > 0.5  # 20 steps already learn digits
    task = build_task(load_config(str(tmp_path / "run" / "config.yaml")))
    train = next(iter(task.train))
    hidden = ~train[F.FEATURE_MASK].numpy()
    # patch mode, 2x2 patches of 8x8 images: exactly round(0.3 * 16) = 5 patches each
    assert (hidden.reshape(len(hidden), -1).sum(1) == 5 * 4).all()
    assert F.FEATURE_MASK not in next(iter(task.evaluation))  # clean evaluation


def test_masked_autoencoder_then_classifier_from_its_encoder(tmp_path, capsys):
    code, _, err = train_cli(capsys, os.path.join(REPO, "configs/mae_breast_cancer.yaml"),
                             tmp_path / "mae", *SHORT)
    assert code == 0, err[-2000:]
    mae_task = build_task(load_config(str(tmp_path / "mae" / "config.yaml")))
    batch = next(iter(mae_task.evaluation))
    inputs, targets, weights = mae_task.split_batch(batch)
    weights = np.asarray(weights)
    # Graded exactly where values were hidden (standardised targets).
    assert np.array_equal(weights > 0, ~batch[F.FEATURE_MASK].numpy())
    assert abs(np.asarray(targets).mean()) < 0.5
    values = yaml_values("configs/dense_classifier_from_mae.yaml")
    values["model"]["pretrained"] = str(tmp_path / "mae")
    classifier = build_task(config_from_dict(values)).build_model("float32")
    import keras

    import tfmask.models  # noqa: F401  (registers the models)

    autoencoder = keras.models.load_model(str(tmp_path / "mae" / "export" / "model.keras"))
    for ours, theirs in zip(classifier.encoder.get_weights(), autoencoder.encoder.get_weights()):
        np.testing.assert_array_equal(ours, theirs)


def test_the_datas_own_missing_values_are_masked_and_never_graded(tiny_config):
    """co2_weekly: weeks missing in the source are hidden and never graded."""
    values = config_from_dict(tiny_config(
        "masked_autoencoder",
        data={"name": "co2_weekly", "inputs_key": "series", "mask_key": "observed",
              "batch_size": 256},
        masking={"strategy": "dense", "dense_mode": "span", "rate": 0.2}))
    task = build_task(values)
    batch = {k: v.numpy() for k, v in next(iter(task.train)).items()}
    missing = ~batch["observed"]
    assert missing.any()
    assert not batch[F.FEATURE_MASK][missing].any()  # hidden from the model
    assert (batch[F.LOSS_WEIGHTS][missing] == 0).all()  # and never graded
    assert (batch[F.LOSS_WEIGHTS] > 0).mean() == pytest.approx(0.2, abs=0.05)
    # The statistics ignore the zeros written where weeks are missing.
    assert task.mean[0] > 300  # ppm


@pytest.mark.parametrize("values,message", [
    ({"model": {"family": "dense_classifier"}, "data": {"name": "digits",
                                                       "vocabulary_size": 100}},
     "model.family=dense_classifier reads dense arrays, not text: data.vocabulary_size does "
     "nothing here; remove it."),
    ({"model": {"family": "classifier"}, "data": {"name": "rotten_tomatoes",
                                                 "inputs_key": "image"}},
     "model.family=classifier reads text: data.inputs_key applies to dense families; "
     "remove it."),
    ({"model": {"family": "dense_classifier"}, "data": {"name": "digits"},
      "masking": {"fill": "token"}},
     "masking.fill set but masking.strategy=none hides nothing; set masking.strategy: dense "
     "or remove them."),
    ({"model": {"family": "masked_autoencoder"}, "data": {"name": "digits"},
      "masking": {"strategy": "none"}},
     "model.family=masked_autoencoder does not support masking.strategy=none"),
])
def test_settings_the_other_side_reads_are_refused(values, message):
    with pytest.raises(ConfigError) as error:
        config_from_dict(values)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_predict_says_dense_runs_take_arrays(tmp_path, capsys):
    from tfmask.predict import Predictor

    code, _, err = train_cli(capsys, os.path.join(REPO, "configs/dense_digits.yaml"),
                             tmp_path / "run", "train.steps=2", "train.eval_batches=1",
                             "schedule.warmup_steps=1")
    assert code == 0, err[-2000:]
    with pytest.raises(ValueError, match="reads arrays, not --text"):
        Predictor(str(tmp_path / "run"))


def test_train_examples_draws_a_stratified_seeded_subset():
    """data.train_examples (every family): n training examples, each class
    keeping its share, the same for the same train.seed."""
    def drawn(seed):
        task = build_task(config_from_dict({
            "model": {"family": "dense_classifier", "num_classes": 10},
            "data": {"name": "digits", "inputs_key": "image", "train_examples": 100},
            "train": {"seed": seed}}))
        epoch = list(task.documents("train", training=True).take(100).as_numpy_iterator())
        return sorted(int(d["id"]) for d in epoch), [int(d["label"]) for d in epoch]

    ids, labels = drawn(0)
    assert len(set(ids)) == 100
    assert all(9 <= labels.count(c) <= 11 for c in range(10))
    assert drawn(0)[0] == ids and drawn(1)[0] != ids
    with pytest.raises(ConfigError, match="data.train_examples=-1 must be"):
        config_from_dict({"model": {"family": "dense_classifier", "num_classes": 10},
                          "data": {"name": "digits", "inputs_key": "image",
                                   "train_examples": -1}})


def test_inspect_draws_the_input_its_mask_and_the_masked_input(tmp_path):
    from tfmask.inspect import dense_panels, inspect

    [path] = inspect(os.path.join(REPO, "configs/dense_digits.yaml"),
                     output_dir=str(tmp_path), rows=3)
    assert os.path.getsize(path) > 10_000
    task = build_task(load_config(os.path.join(REPO, "configs/dense_digits.yaml")))
    batch = {k: v.numpy() for k, v in next(iter(task.train)).items()}
    panels = dense_panels(batch, 3)
    kept = panels["mask (white = kept)"].astype(bool)
    assert panels["input"].shape == (3, 8, 8) and not kept.all()
    np.testing.assert_array_equal(panels["model input (masked)"][kept], panels["input"][kept])


@pytest.mark.parametrize("shape,kwargs", [
    ((30,), {"encoder": "mlp", "token": True, "indicator": True}),
    ((30,), {"encoder": "transformer"}),  # one token per feature
    ((32, 1), {"encoder": "transformer"}),  # one token per time step
    ((8, 8, 1), {"encoder": "transformer", "patch_size": 2}),  # 16 patch tokens
])
def test_dense_encoder_passes_the_layer_harness(shape, kwargs, tmp_path):
    from tests.layer_harness import run_layer_test
    from tfmask.models import DenseEncoder

    rng = np.random.default_rng(0)
    inputs = {"inputs": rng.normal(size=(3,) + shape).astype("float32")}
    if kwargs.get("token"):
        inputs["feature_mask"] = rng.random((3,) + shape) > 0.3
    if kwargs.get("indicator"):
        inputs["missing_indicator"] = (rng.random((3,) + shape) > 0.7).astype("float32")
    features = shape[-1]
    run_layer_test(DenseEncoder,
                   {"input_shape": shape, "hidden_dim": 16, "num_layers": 1, "num_heads": 2,
                    "intermediate_dim": 32, "dropout": 0.0, "mean": [0.5] * features,
                    "variance": [2.0] * features, **kwargs},
                   inputs, expected_output_shape=(3, 16), tmp_path=tmp_path)
