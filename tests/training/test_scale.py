"""Several worker processes on localhost (`multi_worker` over TF_CONFIG), as
a cluster runs them: a SIGTERM to one worker stops every worker at one
checkpoint, the rerun of the same commands resumes to the weights of an
uninterrupted run, and `train.max_seconds` is one decision for all."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.journeys import wait_for_training
from tests.training.test_trainer import REPO, TINY_MLM, _free_port, read_metrics

pytestmark = pytest.mark.journey

TOGETHER = ("runtime.strategy=multi_worker", "schedule.decay=constant",
            "runtime.checkpoint_every=0", "runtime.export=false", "train.log_every=2")


def start_workers(output_dir, *sets, count=2):
    """`count` workers of `python -m tfmask.train` on 127.0.0.1 (worker 0 is the chief)."""
    cluster = {"worker": [f"127.0.0.1:{_free_port()}" for _ in range(count)]}
    args = [sys.executable, "-m", "tfmask.train", "--config", TINY_MLM,
            "--output_dir", str(output_dir)]
    for value in sets:
        args += ["--set", value]
    workers = []
    for index in range(count):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        workers.append(subprocess.Popen(
            args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_CONFIG": tf_config}))
    return workers


def finish(workers, timeout=300):
    """[(exit code, stdout, stderr)] of every worker; none outlives `timeout`."""
    results = []
    deadline = time.time() + timeout
    for worker in workers:
        try:
            out, err = worker.communicate(timeout=max(1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            for other in workers:
                other.kill()
            raise
        results.append((worker.returncode, out, err))
    return results


def stop_steps(results, code, pattern, stream="err"):
    """The step each worker reports in `stream` (its `pattern`'s one
    group), after checking that each exited with `code`."""
    steps = []
    for exit_code, out, err in results:
        assert exit_code == code, err[-3000:]
        steps.append(int(re.search(pattern, out if stream == "out" else err)[1]))
    return steps


def checkpoint_values(prefix):
    """Every variable of a checkpoint but its step and config, by name."""
    reader = tf.train.load_checkpoint(prefix)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if not name.startswith(("step", "run_config", "save_counter", "_CHECKPOINTABLE"))}


def test_sigterm_to_one_worker_stops_every_worker_at_one_checkpoint(tmp_path):
    """Before: worker 1 exited 143 with only its own temporary copy, worker 0
    exited 2 with nothing, and the rerun died in a collective (worker 1
    resumed from its copy, worker 0 from step 0)."""
    run = tmp_path / "run"
    workers = start_workers(run, "train.steps=400", *TOGETHER)
    wait_for_training(workers, run, timeout=240)
    workers[1].send_signal(signal.SIGTERM)
    steps = stop_steps(finish(workers), 128 + signal.SIGTERM,
                       r"stopped by SIGTERM at step (\d+);")
    stopped = steps[0]
    assert steps == [stopped, stopped] and stopped < 400
    assert (run / "checkpoints" / f"ckpt-{stopped}.index").exists()

    # The same commands again: every worker resumes from the chief's checkpoint.
    total = stopped + 4
    results = finish(start_workers(run, f"train.steps={total}", *TOGETHER))
    for code, out, err in results:
        assert code == 0, err[-3000:]
        assert f"ckpt-{stopped} at step {stopped}" in out, out[-2000:]
    results = finish(start_workers(tmp_path / "whole", f"train.steps={total}", *TOGETHER))
    assert all(code == 0 for code, _, _ in results), results[0][2][-3000:]
    resumed = checkpoint_values(str(run / "checkpoints" / f"ckpt-{total}"))
    whole = checkpoint_values(str(tmp_path / "whole" / "checkpoints" / f"ckpt-{total}"))
    assert resumed.keys() == whole.keys() and len(whole) > 10
    for name, value in whole.items():
        np.testing.assert_allclose(resumed[name], value, rtol=1e-5, atol=1e-7, err_msg=name)


def test_max_seconds_is_one_decision_for_every_worker(tmp_path):
    """Each worker timed itself before: one could stop while the other waited
    in a collective. Now both stop after the same step."""
    finals = stop_steps(finish(start_workers(tmp_path / "run", "train.steps=100000",
                                             "train.max_seconds=4", *TOGETHER)),
                        0, r"train.max_seconds=4(?:\.0)? reached at step (\d+)", stream="out")
    assert finals[0] == finals[1]
    rows = [r for r in read_metrics(tmp_path / "run") if "train_steps" in r]
    assert [r["train_steps"] for r in rows] == [float(finals[0])]


# ------------------------------------------------------------ per-worker input
def reviews(tmp_path, count=48):
    """`count` labelled training reviews whose label is their id (one class
    each), in reviews_train.jsonl, and a few for validation."""
    words = ["good", "bad", "dull", "fine", "grand", "poor"]
    for split, size in (("train", count), ("validation", 16)):
        with open(tmp_path / f"reviews_{split}.jsonl", "w") as f:
            for index in range(size):
                text = f"{split} review {index} was {words[index % 6]} and {words[index * 5 % 6]}"
                f.write(json.dumps({"text": text, "label": index}) + "\n")
    return tmp_path / "reviews_{split}.jsonl"


def classifier_sets(tmp_path, count=48):
    """The tiny config as a classifier with no masking: its batches are
    deterministic, so one worker and two see the same global batches."""
    return ("model.family=classifier", "masking.strategy=none", f"model.num_classes={count}",
            f"data.name=file:{reviews(tmp_path, count)}",
            "data.dataset_options={label_field: label}", "data.vocabulary_size=200")


COUNT_LABELS = """
import json, os, sys
import tensorflow as tf
from tfmask.tasks import load_config
from tfmask.training.trainer import Trainer
config = load_config(sys.argv[1], [s for s in sys.argv[3:]])
trainer = Trainer(config, sys.argv[2], verbose=False)
iterator = trainer._training_input(0)
seen = []
for _ in range(12):  # two epochs of 48 examples in global batches of 8
    batch = next(iterator)
    local = trainer.strategy.experimental_local_results(batch)
    seen.append(sorted(int(x) for part in local for x in part["labels"].numpy()))
print("SEEN " + json.dumps(seen), flush=True)
# Exit without finalizing the live iterator: a JSONL reader's Python
# generator left to interpreter shutdown can deadlock there.
os._exit(0)
"""


def labels_seen(output_dir, *sets):
    """Per worker of two, the sorted labels of each of 12 steps' batches
    (`COUNT_LABELS` run by each worker under multi_worker)."""
    cluster = {"worker": [f"127.0.0.1:{_free_port()}" for _ in range(2)]}
    workers = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        workers.append(subprocess.Popen(
            [sys.executable, "-c", COUNT_LABELS, TINY_MLM, str(output_dir), *sets],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_CONFIG": tf_config}))
    seen = []
    for code, out, err in finish(workers):
        assert code == 0, err[-3000:]
        seen.append(json.loads(out.split("SEEN ", 1)[1]))
    return seen


def test_each_worker_reads_its_share_and_every_example_once_per_epoch(tmp_path):
    """Two workers build their own pipelines (distribute_datasets_from_function):
    each step they hold disjoint halves of a global batch, and across the
    workers every example comes once in each epoch."""
    seen = labels_seen(tmp_path / "run", *classifier_sets(tmp_path),
                       "runtime.strategy=multi_worker")
    for step in range(12):
        first, second = seen[0][step], seen[1][step]
        assert len(first) == len(second) == 4 and not set(first) & set(second)
    for epoch in (range(0, 6), range(6, 12)):
        labels = sorted(x for step in epoch for worker in seen for x in worker[step])
        assert labels == list(range(48)), labels


def test_two_workers_train_to_the_losses_of_one(tmp_path):
    """The same global batches, summed across workers: the losses of a
    two-worker run are the one-worker run's, within float tolerance."""
    sets = (*classifier_sets(tmp_path), "train.steps=8", "runtime.export=false",
            "train.log_every=2", "runtime.checkpoint_every=0")
    one = subprocess.run(
        [sys.executable, "-m", "tfmask.train", "--config", TINY_MLM, "--output_dir",
         str(tmp_path / "one"), *[arg for value in sets for arg in ("--set", value)]],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert one.returncode == 0, one.stderr[-3000:]
    results = finish(start_workers(tmp_path / "two", *sets, "runtime.strategy=multi_worker"))
    assert all(code == 0 for code, _, _ in results), results[0][2][-3000:]

    def losses(folder):
        return [r["train_loss"] for r in read_metrics(folder) if "train_loss" in r]

    assert len(losses(tmp_path / "one")) == 4
    np.testing.assert_allclose(losses(tmp_path / "two"), losses(tmp_path / "one"), rtol=1e-4)


def test_a_lost_worker_fails_the_run_with_exit_1_not_as_a_user_error(tmp_path):
    """kill -9 to worker 1 mid-run: the chief stops within a bounded time
    with exit 1 and the line that says to rerun every worker (before: exit
    2, "a user mistake", with a squashed collective trace)."""
    run = tmp_path / "run"
    workers = start_workers(run, "train.steps=400", *TOGETHER)
    wait_for_training(workers, run, timeout=240)
    workers[1].kill()
    code, _, err = finish(workers[:1], timeout=120)[0]
    workers[1].wait()
    assert code == 1, err[-3000:]
    line = [x for x in err.splitlines() if x.startswith("error:")][-1]
    assert "the workers failed together" in line and "rerun every worker's command" in line
    assert "{{" not in line


def test_a_divergence_stops_every_worker_at_the_same_step(tmp_path):
    """The NaN guard reads the all-reduced loss and gradient norm, so every
    worker sees the same first bad step and stops there (exit 1), none
    waiting in a collective for the other."""
    steps = stop_steps(finish(start_workers(tmp_path / "run", "train.steps=40",
                                            "optimizer.learning_rate=1e30", *TOGETHER)),
                       1, r"became NaN/Inf at step (\d+)")
    assert steps[0] == steps[1]
