"""End-to-end training on real data: every family learns, resume is exact,
strategies and precisions agree, the CLIs run, bad configs stop early.

Runs are tiny (one layer, hidden 32, tens of steps) but go through the full
path: dataset cache -> tokenizer -> masking pipeline -> model -> trainer ->
checkpoints -> export.
"""

import copy
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import yaml

from tests import tiny
from tfmask.tasks import config_from_dict
from tfmask.training.trainer import Trainer

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_MLM = os.path.join(REPO, "tests", "configs", "tiny_mlm.yaml")
# These runs must learn (the loss falls, a classifier beats chance), so they
# train 40 steps instead of the shared tiny 4 and evaluate 3 batches of 16.
LEARNING = {"data": {"eval_batch_size": 16},
            "train": {"steps": 40, "log_every": 10, "eval_batches": 3}}

FAMILIES = {
    "mlm_whole_word": {"model": {"family": "mlm"}, "data": {"name": "austen"},
                       "masking": {"strategy": "whole_word", "max_predictions": 6}},
    "mlm_packed_mixture": {"model": {"family": "mlm"},
                           "data": {"name": "austen+wordnet", "pack": True},
                           "masking": {"strategy": "random", "max_predictions": 6}},
    # Sentence polarity from scratch needs more examples than the others.
    "classifier": {"model": {"family": "classifier", "pooling": "mean"},
                   "data": {"name": "rotten_tomatoes", "batch_size": 32},
                   "masking": {"strategy": "none"},
                   "train": {"steps": 160, "log_every": 40}},
    "seq2seq_transformer": {
        "model": {"family": "seq2seq_transformer"},
        "data": {"name": "kjv_rv1909", "target_length": 40},
        "masking": {"strategy": "none"}, "train": {"generate_examples": 8}},
    "seq2seq_lstm": {"model": {"family": "seq2seq_lstm", "embedding_dim": 32, "lstm_units": 64},
                     "data": {"name": "kjv_rv1909", "target_length": 40},
                     "masking": {"strategy": "none"}},
    "span_corruption": {"model": {"family": "seq2seq_transformer"}, "data": {"name": "austen"},
                        "masking": {"strategy": "span_corruption"}},
    "causal_lm_packed": {"model": {"family": "causal_lm"}, "data": {"name": "austen", "pack": True},
                         "masking": {"strategy": "none"}},
    "dense_classifier": {"model": {"family": "dense_classifier", "num_classes": 10},
                         "data": {"name": "digits", "inputs_key": "image", "batch_size": 32},
                         "masking": {"strategy": "dense", "dense_mode": "patch",
                                     "patch_size": 2, "rate": 0.3}},
    "token_classifier": {"model": {"family": "token_classifier"},
                         "data": {"name": "wnut16", "words_key": "words"},
                         "masking": {"strategy": "none"}},
    "masked_autoencoder": {"model": {"family": "masked_autoencoder"},
                           "data": {"name": "breast_cancer", "batch_size": 32},
                           "masking": {"strategy": "dense", "rate": 0.3}},
}
DENSE = ("dense_classifier", "masked_autoencoder")


def tiny_config(case, **overrides):
    """The tiny config (tests/tiny.py) of a case of FAMILIES that learns, with
    section-level overrides."""
    values = tiny.tiny_config(FAMILIES[case]["model"]["family"], **LEARNING)
    for sections in (FAMILIES[case], overrides):
        for section, updates in sections.items():
            values[section] = {**values.get(section, {}), **copy.deepcopy(updates)}
    return values


def read_metrics(output_dir):
    with open(os.path.join(output_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def train_losses(output_dir):
    return [r["train_loss"] for r in read_metrics(output_dir) if "train_loss" in r]


def checkpoint_tensors(output_dir):
    """{name: array} of the latest checkpoint in a run folder."""
    path = tf.train.latest_checkpoint(os.path.join(output_dir, "checkpoints"))
    reader = tf.train.load_checkpoint(path)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if "model_variables" in name}


def run_cli(*args, env=None, **kwargs):
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
                          **kwargs)


def test_the_command_line_tiny_mlm_has_the_shared_tiny_sizes():
    """tests/configs/tiny_mlm.yaml, the command-line tests' config, is the tiny
    MLM that learns, as a file (its train section: 30 steps, checkpoints)."""
    with open(TINY_MLM, encoding="utf-8") as f:
        values = yaml.safe_load(f)
    expected = tiny_config("mlm_whole_word")
    for section in ("model", "data", "optimizer"):
        assert values[section] == expected[section], section


# ------------------------------------------------------------ every family learns
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_trains_on_real_data_and_the_loss_falls(family, tmp_path):
    config = config_from_dict(tiny_config(family))
    results = Trainer(config, str(tmp_path), verbose=False).fit()
    losses = train_losses(tmp_path)
    assert len(losses) == 4 and all(math.isfinite(x) for x in losses)
    assert losses[-1] < 0.9 * losses[0], losses
    if family in ("classifier", "dense_classifier"):
        assert results["eval_accuracy"] > 0.6
    assert math.isfinite(results["eval_loss"])
    if family != "masked_autoencoder":  # graded by reconstruction error only
        assert 0 <= results["eval_accuracy"] <= 1
    if family == "seq2seq_transformer":  # greedy decoding with the KV cache, scored by sacreBLEU
        assert 0 <= results["eval_bleu"] <= 100
    if family == "token_classifier":  # scored on entities, not as a language model
        assert 0 <= results["eval_entity_f1"] <= 1 and "eval_perplexity" not in results
    elif family not in ("classifier",) + DENSE:
        assert results["eval_perplexity"] == pytest.approx(math.exp(results["eval_loss"]), rel=1e-3)


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_trains_without_nan(precision, tmp_path):
    config = config_from_dict(tiny_config("mlm_whole_word", runtime={"precision": precision,
                                                                     "export": False}))
    trainer = Trainer(config, str(tmp_path), verbose=False)
    results = trainer.fit()
    losses = train_losses(tmp_path)
    assert all(math.isfinite(x) for x in losses) and losses[-1] < 0.9 * losses[0], losses
    assert math.isfinite(results["eval_loss"])
    compute = {"mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}[precision]
    assert trainer.model.get_layer("encoder_block_0").compute_dtype == compute
    assert all(v.dtype == "float32" for v in trainer.model.trainable_variables)


def test_checkpoints_keep_the_last_k_and_export_reloads(tmp_path):
    config = config_from_dict(tiny_config(
        "mlm_whole_word", runtime={"checkpoint_every": 10, "keep_checkpoints": 2, "export": True},
        train={"steps": 40, "log_every": 10, "eval_batches": 2}))
    Trainer(config, str(tmp_path), verbose=False).fit()
    index = sorted(f for f in os.listdir(tmp_path / "checkpoints") if f.endswith(".index"))
    assert index == ["ckpt-30.index", "ckpt-40.index"]
    for name in ("model.keras", "vocab.txt", "saved_model/saved_model.pb"):
        assert (tmp_path / "export" / name).exists(), name
    from tfmask.predict import Predictor

    predictor = Predictor(str(tmp_path))
    [(position, candidates)] = predictor.task.fill_mask(
        predictor.model, "it is a truth universally [MASK] .", top_k=3)
    # [CLS] + the word pieces before [MASK] (a 1000-piece vocabulary splits
    # words into several pieces).
    before = predictor.tokenizer.tokenize(["it is a truth universally"])["token_ids"]
    assert position == 1 + len(before.to_list()[0]) and len(candidates) == 3
    assert sum(p for _, p in candidates) <= 1.0 + 1e-6
    reloaded = tf.saved_model.load(str(tmp_path / "export" / "saved_model"))
    assert reloaded.signatures  # the serving signature exists


def test_fine_tune_from_a_pretraining_run_within_a_time_budget(tmp_path):
    pretraining = config_from_dict(tiny_config(
        "mlm_whole_word", runtime={"export": True}, train={"steps": 10, "eval_batches": 1}))
    source = Trainer(pretraining, str(tmp_path / "pretrain"), verbose=False)
    source.fit()
    values = tiny_config("classifier", train={"steps": 100_000, "log_every": 5,
                                              "eval_batches": 2, "max_seconds": 3.0,
                                              "extra_eval_splits": ["test"]})
    values["model"] = {"family": "classifier", "pooling": "mean",
                       "pretrained": str(tmp_path / "pretrain")}
    values["data"]["vocabulary"] = "pretrained"
    trainer = Trainer(config_from_dict(values), str(tmp_path / "fine"), verbose=False)
    for name in ("embedding", "encoder_block_0"):  # starts from the pre-trained encoder
        for ours, theirs in zip(trainer.model.get_layer(name).get_weights(),
                                source.model.get_layer(name).get_weights()):
            np.testing.assert_array_equal(ours, theirs)
    results = trainer.fit()
    assert 0 < results["train_steps"] < 100_000 and results["train_seconds"] >= 3.0
    assert 0 <= results["test_accuracy"] <= 1 and 0 <= results["eval_accuracy"] <= 1
    assert read_metrics(tmp_path / "fine")[-1]["train_steps"] == results["train_steps"]


# ------------------------------------------------------------ exact resume
def _train_cli(output_dir, *sets):
    return [sys.executable, "-m", "tfmask.train", "--config", TINY_MLM, "--output_dir",
            str(output_dir), "--set", "runtime.export=false", *sum((["--set", s] for s in sets), [])]


@pytest.mark.journey
def test_a_killed_run_resumes_to_the_same_weights_as_an_uninterrupted_one(tmp_path):
    # Dropout on: its seed state must be checkpointed too.
    sets = ("train.steps=60", "runtime.checkpoint_every=5", "model.dropout=0.1", "train.log_every=5")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    uninterrupted = tmp_path / "uninterrupted"
    subprocess.run(_train_cli(uninterrupted, *sets), cwd=REPO, env=env, check=True,
                   capture_output=True)

    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen(_train_cli(interrupted, *sets), cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = interrupted / "checkpoints" / "ckpt-20.index"
    deadline = time.time() + 300
    while not marker.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (interrupted / "checkpoints" / "ckpt-60.index").exists()

    resumed = subprocess.run(_train_cli(interrupted, *sets), cwd=REPO, env=env,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Resumed from" in resumed.stdout
    expected, actual = checkpoint_tensors(uninterrupted), checkpoint_tensors(interrupted)
    assert expected.keys() == actual.keys() and len(expected) > 10
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    # The resumed run logged the steps after its restart, and its last loss
    # equals the uninterrupted run's.
    assert train_losses(interrupted)[-1] == pytest.approx(train_losses(uninterrupted)[-1],
                                                          rel=1e-4)


# ------------------------------------------------------------ strategies
MIRRORED_SCRIPT = """
import json, sys
from tfmask.training.strategy import configure_cpu_devices
configure_cpu_devices(2)
from tfmask.tasks import config_from_dict
from tfmask.training.trainer import Trainer, variables_digest
values = json.loads(sys.argv[1])
out = {}
for strategy in ("default", "mirrored"):
    values["runtime"]["strategy"] = strategy
    trainer = Trainer(config_from_dict(values), sys.argv[2] + "/" + strategy, verbose=False)
    results = trainer.fit()
    out[strategy] = {"replicas": trainer.strategy.num_replicas_in_sync,
                     "digest": variables_digest(trainer.model), **results}
print("RESULT " + json.dumps(out))
"""


@pytest.mark.journey
def test_mirrored_on_two_cpu_devices_matches_default(tmp_path):
    # A clip norm this low clips every step: the global gradient (summed over
    # replicas) must be what is clipped, not each replica's half.
    values = tiny_config("mlm_packed_mixture", runtime={"export": False, "num_devices": 2},
                         train={"steps": 20, "log_every": 10, "eval_batches": 2},
                         optimizer={"clipnorm": 0.05})
    completed = run_cli("-c", MIRRORED_SCRIPT, json.dumps(values), str(tmp_path), timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    line = [x for x in completed.stdout.splitlines() if x.startswith("RESULT ")][-1]
    out = json.loads(line[len("RESULT "):])
    assert out["default"]["replicas"] == 1 and out["mirrored"]["replicas"] == 2
    assert out["mirrored"]["digest"] == pytest.approx(out["default"]["digest"], rel=1e-5)
    assert out["mirrored"]["eval_loss"] == pytest.approx(out["default"]["eval_loss"], rel=1e-4)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------ the command lines
@pytest.mark.journey
@pytest.mark.parametrize("args,message", [
    (["--set", "model.num_layer=2"], "error: Unknown key model.num_layer; did you mean "
                                     "model.num_layers?"),
    (["--set", "data.name=austin"], "error: data.name='austin' is not a known dataset; "
                                    "did you mean austen?"),
    (["--set", "masking.rate=1.5"], "error: masking.rate=1.5 must be between 0 and 1."),
    (["--set", "model.num_heads=3"], "error: model.num_heads=3 does not divide"),
    (["--set", "optimizer.sparse_embedding_update=true"],
     "error: optimizer.sparse_embedding_update=true cannot take effect: model.family=mlm ties"),
])
def test_train_cli_reports_a_bad_config_in_one_line(args, message, tmp_path):
    completed = run_cli("-m", "tfmask.train", "--config", TINY_MLM, "--output_dir",
                        str(tmp_path), *args)
    assert completed.returncode == 2
    lines = [x for x in completed.stderr.strip().splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and lines[0].startswith(message), completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr
    assert not os.listdir(tmp_path)  # no work started


@pytest.mark.journey
def test_train_predict_and_inspect_command_lines(tmp_path):
    run = tmp_path / "run"
    completed = run_cli("-m", "tfmask.train", "--config", TINY_MLM, "--output_dir", str(run),
                        "--set", "train.steps=10")
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "final: eval_loss" in completed.stdout
    predicted = run_cli("-m", "tfmask.predict", "--run", str(run), "--text",
                        "she was [MASK] to see him .", "--top_k", "2")
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert predicted.stdout.startswith("[MASK] at token 3: ")
    pictures = tmp_path / "pictures"
    inspected = run_cli("-m", "tfmask.inspect", "--config", TINY_MLM, "--output_dir",
                        str(pictures))
    assert inspected.returncode == 0, inspected.stderr[-3000:]
    for name in ("tokens.png", "masks.png"):
        assert (pictures / name).stat().st_size > 10_000, name
