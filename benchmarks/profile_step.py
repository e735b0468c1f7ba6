"""Where a training step spends its time: TensorFlow profiler op statistics.

    python -m benchmarks.profile_step [--config configs/rotten_tomatoes_minilm.yaml]
                                      [--steps 10] [--set key=value ...] [--json PATH]

Builds the config's trainer (as `python -m tfmask.train` does, no export),
warms its step up, traces `--steps` steps with `tf.profiler.experimental`
and reads the trace it writes (the `xplane.pb` protocol buffer, read with
the parser TensorFlow ships: no TensorBoard needed). Prints, per op type,
thread-milliseconds per step summed over the executor's threads (both cores
count, so the total can exceed the wall time) and its share, and the step's
wall milliseconds. Op types are TensorFlow's kernels (`_MklMatMul` is a
oneDNN matmul, `ResourceApplyAdam` the fused Adam update, ...).

The question it answers is a step's cause list (issue 27: "the measured gap
with its cause from a profile"), not a speed: timings under the profiler run
a few percent slow.
"""

import argparse
import collections
import glob
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402
from tensorflow.tsl.profiler.protobuf import xplane_pb2  # noqa: E402

from benchmarks.common import print_table  # noqa: E402
from tfmask.tasks import load_config  # noqa: E402
from tfmask.training.trainer import Trainer  # noqa: E402

CONFIG = os.path.join("configs", "rotten_tomatoes_minilm.yaml")


def op_type(event_name):
    """`scope/name:Type` -> `Type`; None for events that are not one op
    (executor and function frames, which contain ops and would count twice)."""
    if ":" not in event_name or "::" in event_name:
        return None
    kind = event_name.rsplit(":", 1)[1].strip()
    return None if not kind or kind.startswith("__") else kind  # "__inference_*": a function


def op_milliseconds(xspace_path):
    """{op type: thread-ms} summed over the host plane's threads."""
    space = xplane_pb2.XSpace()
    with open(xspace_path, "rb") as f:
        space.ParseFromString(f.read())
    totals = collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                kind = op_type(names.get(event.metadata_id, ""))
                if kind:
                    totals[kind] += event.duration_ps / 1e9
    return totals


def profile(config_path, steps, overrides):
    config = load_config(config_path, overrides=["runtime.export=false", "train.steps=100000",
                                                 *overrides])
    with tempfile.TemporaryDirectory() as scratch:
        trainer = Trainer(config, os.path.join(scratch, "run"), verbose=False)
        iterator = trainer._training_input(0)
        for _ in range(5):  # trace and warm up
            trainer._train_step(iterator, 1)
        trainer.step.numpy()
        logdir = os.path.join(scratch, "profile")
        tf.profiler.experimental.start(logdir)
        began = time.perf_counter()
        for _ in range(steps):
            trainer._train_step(iterator, 1)
        trainer.step.numpy()
        wall = time.perf_counter() - began
        tf.profiler.experimental.stop()
        [path] = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
        totals = op_milliseconds(path)
    per_step = {kind: ms / steps for kind, ms in totals.most_common()}
    return {"config": config_path, "overrides": list(overrides), "steps": steps,
            "precision": trainer.precision, "wall_ms_per_step": 1000 * wall / steps,
            "thread_ms_per_step": per_step}


def print_profile(result, top=20):
    total = sum(result["thread_ms_per_step"].values())
    rows = [[kind, f"{ms:,.1f}", f"{ms / total:.0%}"]
            for kind, ms in list(result["thread_ms_per_step"].items())[:top]]
    rows.append(["(all op types)", f"{total:,.1f}", "100%"])
    print_table(f"Op types of a training step ({result['config']} "
                f"{' '.join(result['overrides'])}, {result['precision']}): "
                f"{result['wall_ms_per_step']:.0f} ms/step wall under the profiler, "
                f"{result['steps']} steps", ["op type", "thread-ms/step", "share"], rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=CONFIG)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json")
    args = parser.parse_args()
    result = profile(args.config, args.steps, args.set)
    print_profile(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
