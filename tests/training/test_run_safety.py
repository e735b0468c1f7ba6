"""A run never reports a wrong result, never loses work, and every bad input
gets one clear line. Each test reproduces one of issue 13's cases (numbered
as there) through the command line a user runs."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from tests.journeys import one_error_line, train_cli, wait_for_training
from tests.training.test_trainer import REPO, TINY_MLM, read_metrics, run_cli, tiny_config
from tfmask.errors import ConfigError
from tfmask.tasks import config_from_dict
from tfmask.training.trainer import Trainer


def train(capsys, output_dir, *sets, config=TINY_MLM, extra=()):
    """`python -m tfmask.train` in this process: (exit code, stdout, stderr)."""
    return train_cli(capsys, config, output_dir, *sets, extra=extra)


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return str(path)


# ------------------------------------------------------------ 1. evaluation is never empty
def test_1_a_split_smaller_than_a_batch_is_evaluated_in_full(tmp_path):
    """A partial batch counts every example once: 20 examples in one batch
    of 64 give the same metrics as five batches of 4."""
    trainers = []
    for size, batches in ((64, 1), (4, 5)):
        values = tiny_config("classifier", train={"steps": 1, "eval_batches": batches},
                             data={"eval_split": "validation[:20]", "eval_batch_size": size})
        trainers.append(Trainer(config_from_dict(values), str(tmp_path / str(size)),
                                verbose=False))
    trainers[1].model.set_weights(trainers[0].model.get_weights())
    one, five = (t.evaluate() for t in trainers)
    assert one["eval_loss"] > 0
    assert one["eval_loss"] == pytest.approx(five["eval_loss"], rel=1e-5)
    assert one["eval_accuracy"] == pytest.approx(five["eval_accuracy"])
    assert round(one["eval_accuracy"] * 20, 6) == int(round(one["eval_accuracy"] * 20))


def test_1_a_small_validation_split_reports_a_real_score(capsys, tmp_path):
    # 108 validation synopses, batches of 128: before, every batch was dropped.
    code, out, err = train(capsys, tmp_path, "data.name=rotten_tomatoes_plots",
                           "data.eval_batch_size=128", "train.steps=2", "runtime.export=false")
    assert code == 0, err
    final = [line for line in out.splitlines() if line.startswith("final:")][0]
    loss = float(final.split("eval_loss ")[1].split(",")[0])
    assert loss > 1.0  # a real cross-entropy over a 1000-token vocabulary


@pytest.mark.parametrize("sets,message", [
    (["train.eval_batches=0"], "train.eval_batches=0 must be >= 1"),
    (["train.extra_eval_splits=[valid]"], "Split 'valid' is not valid"),
])
def test_1_no_evaluation_stops_before_training(capsys, tmp_path, sets, message):
    code, out, err = train(capsys, tmp_path / "run", *sets)
    assert code == 2 and message in one_error_line(err), err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_1_a_corpus_of_empty_rows_stops_before_training(capsys, tmp_path):
    empty = write_jsonl(tmp_path / "empty.jsonl", [{"text": "   "}] * 30)
    code, _, err = train(capsys, tmp_path / "run", f"data.name=file:{empty}",
                         "data.vocabulary=" + _vocabulary(tmp_path))
    assert code == 2 and "every record is empty or blank" in one_error_line(err)


def _vocabulary(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                              + [chr(c) for c in range(97, 123)]) + "\n")
    return str(path)


# ------------------------------------------------------------ 2. NaN guard
@pytest.mark.parametrize("precision,rate", [("mixed_bfloat16", 1e30), ("mixed_float16", 100.0),
                                            ("float32", 1e30)])
def test_2_a_diverging_run_stops_without_exporting(capsys, tmp_path, precision, rate):
    code, out, err = train(capsys, tmp_path, f"runtime.precision={precision}",
                           f"optimizer.learning_rate={rate}", "optimizer.clipnorm=null",
                           "runtime.checkpoint_every=0", "train.steps=30")
    line = one_error_line(err)
    assert code == 1 and "became NaN/Inf at step" in line and "learning_rate" in line, err
    assert not (tmp_path / "export").exists()
    assert "final:" not in out
    for name in os.listdir(tmp_path / "checkpoints") if (tmp_path / "checkpoints").exists() \
            else []:
        assert not name.startswith("ckpt-30")  # nothing saved after the bad step


# ------------------------------------------------------------ 3. numbers are validated
@pytest.mark.parametrize("section,key,value,message", [
    ("optimizer", "clipnorm", -1.0, "optimizer.clipnorm=-1.0 must be > 0"),
    ("schedule", "final_fraction", 5.0, "schedule.final_fraction=5.0 must be between 0 and 1"),
    ("schedule", "warmup_steps", -3, "schedule.warmup_steps=-3 must be >= 0"),
    ("optimizer", "beta_1", 2.0, "optimizer.beta_1=2.0 must be in [0, 1)"),
    ("optimizer", "weight_decay", -0.1, "optimizer.weight_decay=-0.1 must be >= 0"),
    ("optimizer", "epsilon", 0.0, "optimizer.epsilon=0.0 must be > 0"),
    ("train", "log_every", 0, "train.log_every=0 must be > 0"),
    ("data", "shuffle_buffer", -1, "data.shuffle_buffer=-1 must be >= 0"),
    ("runtime", "keep_checkpoints", 0, "runtime.keep_checkpoints=0 must be > 0"),
])
def test_3_every_numeric_setting_is_checked(section, key, value, message):
    values = tiny_config("mlm_whole_word")
    values[section] = {**values.get(section, {}), key: value}
    with pytest.raises(ConfigError) as error:
        config_from_dict(values)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


# ------------------------------------------------------------ 4. one process per run folder
HOLD_LOCK = """
import fcntl, json, os, socket, sys, time
descriptor = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR)
fcntl.flock(descriptor, fcntl.LOCK_EX)
os.write(descriptor, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "started": "now"}).encode())
print("held", flush=True)
time.sleep(60)
"""


def test_4_a_second_run_in_the_same_folder_is_refused(capsys, tmp_path):
    """The kernel's lock decides, not the pid in the file: a live holder
    refuses the run; a file naming a live but unrelated process does not."""
    tmp_path.mkdir(exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path / ".lock")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, _, err = train(capsys, tmp_path, "train.steps=2")
        line = one_error_line(err)
        assert code == 2 and f"in use by process {holder.pid}" in line and "fuser" in line
        assert not (tmp_path / "metrics.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()
    # The file survives its holder, naming a pid that may be reused by an
    # unrelated live process (this one): nobody holds the kernel lock, so the
    # run goes on, and releases it at the end.
    (tmp_path / ".lock").write_text(json.dumps(
        {"pid": os.getpid(), "host": socket.gethostname(), "started": "now"}))
    code, _, err = train(capsys, tmp_path, "train.steps=2", "runtime.export=false")
    assert code == 0, err
    assert not (tmp_path / ".lock").exists()


# ------------------------------------------------------------ 5. resume checks the config
def test_5_resume_refuses_changed_shape_and_records_harmless_changes(capsys, tmp_path):
    code, _, err = train(capsys, tmp_path, "train.steps=10", "runtime.export=false")
    assert code == 0, err
    saved = (tmp_path / "config.yaml").read_text()
    for change, key in (("data.sequence_length=16", "data.sequence_length 32 -> 16"),
                        ("train.seed=7", "train.seed 0 -> 7"),
                        ("optimizer.learning_rate=0.1", "optimizer.learning_rate 0.003 -> 0.1")):
        code, _, err = train(capsys, tmp_path, "train.steps=10", "runtime.export=false", change)
        assert code == 2 and key in one_error_line(err), err
        assert (tmp_path / "config.yaml").read_text() == saved  # not overwritten
    code, out, err = train(capsys, tmp_path, "train.steps=20", "runtime.export=false")
    assert code == 0 and "Resumed from" in out, err
    history = [json.loads(line) for line in open(tmp_path / "config_history.jsonl")]
    assert history[-1]["changes"] == {"train.steps": [10, 20]}
    assert yaml.safe_load(saved)["train"]["steps"] == 10
    steps = [r["step"] for r in read_metrics(tmp_path) if "train_loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 20


# ------------------------------------------------------------ 6. exports are atomic
def test_6_a_finished_run_keeps_its_export_unless_asked(capsys, tmp_path):
    code, _, err = train(capsys, tmp_path, "train.steps=4", "runtime.export_saved_model=false")
    assert code == 0, err
    model = tmp_path / "export" / "model.keras"
    first = model.stat().st_mtime_ns
    assert (tmp_path / "export" / "vocab.txt").exists()
    code, out, err = train(capsys, tmp_path, "train.steps=4", "runtime.export_saved_model=false")
    assert code == 0 and "--reexport" in out and model.stat().st_mtime_ns == first, err
    time.sleep(0.01)
    code, _, err = train(capsys, tmp_path, "train.steps=4", "runtime.export_saved_model=false",
                         extra=["--reexport"])
    assert code == 0 and model.stat().st_mtime_ns != first, err
    assert not [name for name in os.listdir(tmp_path) if ".tmp-" in name or ".old-" in name]


def test_6_an_export_that_fails_midway_leaves_the_previous_one(tmp_path, monkeypatch):
    values = tiny_config("mlm_whole_word", train={"steps": 2, "eval_batches": 1},
                         runtime={"export": True, "export_saved_model": False})
    trainer = Trainer(config_from_dict(values), str(tmp_path), verbose=False)
    trainer.fit()
    before = (tmp_path / "export" / "model.keras").read_bytes()

    def broken_save(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(trainer.model, "save", broken_save)
    with pytest.raises(OSError):
        trainer.export()
    assert (tmp_path / "export" / "model.keras").read_bytes() == before
    assert (tmp_path / "export" / "vocab.txt").exists()


# ------------------------------------------------------------ 7. SIGTERM saves the work
@pytest.mark.journey
def test_7_sigterm_saves_a_checkpoint_and_the_run_resumes_cleanly(tmp_path):
    args = [sys.executable, "-m", "tfmask.train", "--config", TINY_MLM, "--output_dir",
            str(tmp_path), "--set", "train.steps=100000", "--set", "runtime.checkpoint_every=0",
            "--set", "train.log_every=5", "--set", "runtime.export=false"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    wait_for_training([process], tmp_path)
    # Two in a row (a `timeout` and a scheduler; issue 30): the second changes
    # nothing (before, it exited at once with no checkpoint and a .lock left).
    process.send_signal(signal.SIGTERM)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "stopped by SIGTERM at step" in err and "Traceback" not in err
    step = int(err.split("stopped by SIGTERM at step ")[1].split(";")[0])
    assert (tmp_path / "checkpoints" / f"ckpt-{step}.index").exists()
    assert not (tmp_path / ".lock").exists()
    # A killed save's leftovers go; the resumed run's metrics do not repeat steps.
    (tmp_path / "checkpoints" / f"ckpt-{step + 1}_temp").mkdir()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": step + 3, "train_loss": 1.0}) + "\n")
    resumed = run_cli("-m", "tfmask.train", *args[3:-8], "--set", f"train.steps={step + 5}",
                      "--set", "runtime.checkpoint_every=0", "--set", "train.log_every=5",
                      "--set", "runtime.export=false")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Resumed from" in resumed.stdout
    assert not [n for n in os.listdir(tmp_path / "checkpoints") if "_temp" in n]
    steps = [r["step"] for r in read_metrics(tmp_path) if "train_loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == step + 5


def test_7_a_default_run_checkpoints_by_time():
    config = config_from_dict(tiny_config("mlm_whole_word"))
    from tfmask.training.trainer import _checkpoint_seconds

    assert _checkpoint_seconds(config) == 600.0
    # Workers agree on a timed save (one all-reduce per step); TPU hosts cannot.
    values = tiny_config("mlm_whole_word", runtime={"strategy": "multi_worker"})
    assert _checkpoint_seconds(config_from_dict(values)) == 600.0
    values = tiny_config("mlm_whole_word", runtime={"strategy": "tpu"})
    assert _checkpoint_seconds(config_from_dict(values)) == 0.0
    values["runtime"]["checkpoint_seconds"] = 60
    with pytest.raises(ConfigError, match="checkpoint_seconds would make TPU hosts"):
        config_from_dict(values)


# ------------------------------------------------------------ 8. one line, no traceback
def _labels_file(tmp_path):
    rows = [{"text": f"review number {i} was {'good' if i % 2 else 'bad'}", "label": i % 5}
            for i in range(200)]
    return write_jsonl(tmp_path / "labels.jsonl", rows)


BAD_INPUTS = {
    "log_every": (["train.log_every=0"], "train.log_every=0 must be > 0"),
    "shuffle_buffer": (["data.shuffle_buffer=-1"], "data.shuffle_buffer=-1 must be >= 0"),
    "text_key": (["data.text_key=body"], "has no feature 'body' (data.text_key)"),
    "no_labels": (["model.family=classifier", "masking.strategy=none"],
                  "has no feature 'label' (data.label_key)"),
    "dataset_options": (["data.dataset_options={foo: 1}"], "data.dataset_options={'foo': 1}"),
    "yaml_value": (["data.batch_size={"], "the value is not valid YAML"),
    "binary_vocabulary": ([], "is not UTF-8 text"),
    "list_config": ([], "must be a mapping of sections"),
    "output_is_a_file": ([], "is a file, not a folder"),
    "labels_out_of_range": ([], "holds a label outside [0, 2)"),
    "broken_jsonl": ([], "line 3"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_8_bad_input_gets_one_line_and_exit_code_2(case, capsys, tmp_path):
    sets, message = BAD_INPUTS[case]
    sets, config, output = list(sets), TINY_MLM, tmp_path / "run"
    if case == "binary_vocabulary":
        (tmp_path / "vocab.bin").write_bytes(bytes(range(256)) * 4)
        sets.append(f"data.vocabulary={tmp_path / 'vocab.bin'}")
    elif case == "list_config":
        config = tmp_path / "list.yaml"
        config.write_text("- model\n- data\n")
    elif case == "output_is_a_file":
        output.write_text("not a folder")
    elif case == "labels_out_of_range":
        sets += ["model.family=classifier", "masking.strategy=none",
                 f"data.name=file:{_labels_file(tmp_path)}",
                 "data.dataset_options={label_field: label}"]
    elif case == "broken_jsonl":
        path = tmp_path / "broken.jsonl"
        path.write_text('{"text": "fine"}\n{"text": "also fine"}\n{"text": broken\n')
        sets.append(f"data.name=file:{path}")
    code, out, err = train(capsys, output, *sets, config=config)
    assert code == 2, err[-3000:]
    assert message in one_error_line(err), err[-3000:]


def test_8_an_unwritable_output_folder_is_one_line(tmp_path):
    from tfmask.cli import report

    def write():
        raise PermissionError(13, "Permission denied", str(tmp_path / "run"))

    import io
    from contextlib import redirect_stderr

    buffer = io.StringIO()
    with redirect_stderr(buffer):
        assert report(write) == 2
    assert one_error_line(buffer.getvalue()).startswith(f"error: cannot use {tmp_path / 'run'}")


def test_8_file_source_counts_are_printed_before_training(capsys, tmp_path):
    rows = [{"text": f"line {i} of text"} for i in range(60)] + [{"text": " "}] * 3
    path = write_jsonl(tmp_path / "docs.jsonl", rows)
    code, out, err = train(capsys, tmp_path / "run", f"data.name=file:{path}", "train.steps=2",
                           "runtime.export=false")
    assert code == 0, err
    assert f"file:{path}: 60 documents (dropped: 3 empty" in out


def test_8_a_large_file_source_is_named_not_counted(capsys, tmp_path, monkeypatch):
    """Counting reads the whole source before training: above COUNTED_BYTES
    (256 MiB) only its files and size are printed (2 GB took 140 s a start)."""
    from tfmask import train as train_module
    from tfmask.tasks import load_config

    path = write_jsonl(tmp_path / "docs.jsonl", [{"text": f"line {i}"} for i in range(60)])
    monkeypatch.setattr(train_module, "COUNTED_BYTES", 100)
    train_module.report_file_sources(load_config(TINY_MLM, [f"data.name=file:{path}"]))
    assert capsys.readouterr().out.startswith(f"file:{path}: 1 files, 0.00 GiB (not counted")


# ------------------------------------------------------------ 9. predict edge cases
@pytest.fixture(scope="module")
def causal_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("causal")
    values = tiny_config("causal_lm_packed", train={"steps": 2, "eval_batches": 1},
                         runtime={"export": True, "export_saved_model": False})
    Trainer(config_from_dict(values), str(folder), verbose=False).fit()
    return str(folder)


def test_9_causal_prediction_edges_get_one_line(causal_run):
    from tfmask.predict import Predictor

    predictor = Predictor(causal_run)
    assert isinstance(predictor.predict("it is a truth")[0], str)
    with pytest.raises(ValueError, match="the prompt is empty"):
        predictor.predict("")
    with pytest.raises(ValueError, match=r"the prompt has 40 tokens, but this model reads at "
                                         r"most 31 \(data.sequence_length=32\)"):
        predictor.predict("word " * 40)
    completed = run_cli("-m", "tfmask.predict", "--run", causal_run, "--text", "")
    assert completed.returncode == 2
    assert "the prompt is empty" in one_error_line(completed.stderr)


def test_9_fill_mask_edges_and_a_run_whose_data_moved(tmp_path):
    from tfmask.predict import Predictor

    rows = [{"text": f"she was very happy to see him at {i} ."} for i in range(200)]
    path = write_jsonl(tmp_path / "text.jsonl", rows)
    values = tiny_config("mlm_whole_word", train={"steps": 2, "eval_batches": 1},
                         runtime={"export": True, "export_saved_model": False})
    values["data"]["name"] = f"file:{path}"
    Trainer(config_from_dict(values), str(tmp_path / "run"), verbose=False).fit()
    os.rename(path, tmp_path / "moved.jsonl")  # the run still predicts
    predictor = Predictor(str(tmp_path / "run"))
    [line] = predictor.predict("she was [MASK] to see him .")
    assert line.startswith("[MASK] at token 3: ")
    with pytest.raises(ValueError, match="has 10 \\[MASK\\]s; this model predicts at most "
                                         "masking.max_predictions=6"):
        predictor.predict("[MASK] " * 10)
    with pytest.raises(ValueError, match="lie beyond data.sequence_length=32"):
        predictor.predict("she " * 40 + "[MASK]")
    assert np.isfinite(float(line.split(", ")[0].split(" ")[-1]))


@pytest.mark.journey
@pytest.mark.parametrize("args,message", [
    (["--confg", "x.yaml"], "Unknown command line flag 'confg'"),
    (["--config", TINY_MLM, "extra"], "unexpected arguments ['extra']"),
])
def test_8_bad_flags_are_one_line_and_exit_code_2(args, message):
    completed = run_cli("-m", "tfmask.train", *args)
    assert completed.returncode == 2 and message in one_error_line(completed.stderr), \
        completed.stderr[-2000:]


def test_7_checkpoint_seconds_saves_by_wall_time(capsys, tmp_path):
    # A tiny interval saves after every step; the last 3 are kept.
    code, _, err = train(capsys, tmp_path, "train.steps=6", "runtime.checkpoint_every=0",
                         "runtime.checkpoint_seconds=0.000001", "runtime.keep_checkpoints=3",
                         "runtime.export=false")
    assert code == 0, err
    saved = sorted(p.name for p in (tmp_path / "checkpoints").glob("*.index"))
    assert saved == ["ckpt-4.index", "ckpt-5.index", "ckpt-6.index"]
    code, _, err = train(capsys, tmp_path / "off", "train.steps=6", "runtime.checkpoint_every=0",
                         "runtime.checkpoint_seconds=0", "runtime.export=false")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "off" / "checkpoints").glob("*.index")) == \
        ["ckpt-6.index"]  # only the final save
