"""Every benchmark in one run: a table per section, the targets, JSON.

    python -m benchmarks.run_all [--quick] [--check] [--out benchmarks/results]
                                 [--measured benchmarks/results/cpu.json]

Sections (each also runs alone, see its module):
  1. MLM training tokens/s, tfmask vs keras-hub, float32 and mixed_bfloat16,
     XLA off and on (`benchmarks.train_throughput`);
  2. packing vs padding on a real corpus, useful tokens/s (`benchmarks.packing`);
  3. masking and the trainer's input pipeline, and its headroom over the
     model (`benchmarks.mask_pipeline`);
  4. the optimizer update alone, Keras' AdamW vs tfmask's FusedAdamW
     (`benchmarks.optimizer_update`);
  5. the main job, float32 vs the shipped default vs LoRA vs the keras-hub
     recipe, from `main_job.json` (`benchmarks.main_job`, an hour: run on
     its own, read here).
Writes `cpu.json` (every number) and `cpu.md` (the tables) into `--out`.
Every target is printed with the noise it was measured with (the round or
seed spread); `--check` exits 1 when a target is missed by more than that.
"""

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import mask_pipeline, optimizer_update, packing, train_throughput  # noqa: E402
from benchmarks.common import matmul_peak, print_table  # noqa: E402

TARGETS = {
    "mlm_vs_keras_hub": 1.5,  # float32 and mixed_bfloat16, XLA off and on, best tfmask
    "mlm_mfu": 0.6,  # float32: useful FLOPs over the measured matmul peak (bf16: reported)
    "packing_vs_padding": 1.5,
    "no_configuration_slower": 1.0,
    "input_pipeline_headroom": 10.0,
    "main_job_time": 0.5,  # the shipped main job's wall time over float32's
    "main_job_vs_keras_hub": 2.0,  # its training speed over the keras-hub recipe's
}


def _best_tfmask(section):
    """The faster tfmask contender of an MLM section, by median ratio."""
    entries = {k: v for k, v in section["contenders"].items() if k.startswith("tfmask")}
    name = max(entries, key=lambda k: entries[k]["ratio_vs_keras_hub"]["median"])
    return name, entries[name]["ratio_vs_keras_hub"]


def headroom(pipeline, packed_section, mlm_sections):
    """Input rows/s divided by the rows/s the fastest tfmask model consumes."""
    rows = {}
    model = packed_section["contenders"]
    fill = packed_section["real_token_fraction"]
    seq = train_throughput.SEQ
    consumed = {
        "padded": model["tfmask padding-free"]["useful_tokens_per_second"]["median"]
        / (fill["padded"] * seq),
        "packed": model["tfmask packed"]["useful_tokens_per_second"]["median"]
        / (fill["packed"] * seq),
    }
    fastest_synthetic = max(c["tokens_per_second"]["median"] / seq
                            for s in mlm_sections for c in s["contenders"].values())
    for name, entry in pipeline.items():
        kind = name.split()[0]
        supplied = entry["sequences_per_second"]["median"]
        rows[name] = {"rows_per_second": supplied, "model_rows_per_second": consumed[kind],
                      "headroom": supplied / consumed[kind],
                      "headroom_vs_fastest_model_run": supplied / fastest_synthetic}
    return rows


def _check(what, measured, value, target, noise, at_most=False):
    """A target row. `noise` is the measured spread on the side that could
    reach the target; missing by more than it is a real miss (`--check`)."""
    met = value <= target if at_most else value >= target
    gap = (value - target) if at_most else (target - value)
    return {"check": what, "measured": measured, "value": float(value), "target": target,
            "at_most": at_most, "noise": float(noise), "met": bool(met),
            "beyond_noise": bool(not met and gap > noise)}


def targets(results):
    """Every target of the run, met or not, with the noise it was measured with."""
    checks = []
    for section in results["mlm"]:
        where = f"{section['precision']}, jit={section['jit_compile']}"
        name, ratio = _best_tfmask(section)
        checks.append(_check(f"MLM tokens/s vs keras-hub ({where})",
                             f"{ratio['median']:.2f}x ({name})", ratio["median"],
                             TARGETS["mlm_vs_keras_hub"], ratio["max"] - ratio["median"]))
    for section in results["mlm"]:
        if section["precision"] != "float32":
            continue  # bf16's peak doubles while its elementwise work does not: see cpu.md
        where = f"{section['precision']}, jit={section['jit_compile']}"
        name, _ = _best_tfmask(section)
        entry = section["contenders"][name]
        speed = entry["tokens_per_second"]
        spread = entry["mfu"] * (speed["max"] / speed["median"] - 1)
        checks.append(_check(f"MLM MFU, useful FLOPs ({where})", f"{entry['mfu']:.0%} ({name})",
                             entry["mfu"], TARGETS["mlm_mfu"], spread))
    packed = results["packing"]["contenders"]["tfmask packed"]["ratio_vs_tfmask_padded"]
    checks.append(_check("packing vs padding, useful tokens/s", f"{packed['median']:.2f}x",
                         packed["median"], TARGETS["packing_vs_padding"],
                         packed["max"] - packed["median"]))
    worst = min((_best_tfmask(s)[1]["min"], f"{s['precision']}, jit={s['jit_compile']}")
                for s in results["mlm"])
    worst_packing = min(v["ratio_vs_keras_hub_padded"]["min"]
                        for k, v in results["packing"]["contenders"].items()
                        if k.startswith("tfmask"))
    checks.append(_check("slowest tfmask config vs keras-hub (worst round)",
                         f"{worst[0]:.2f}x ({worst[1]}); packing rows {worst_packing:.2f}x",
                         min(worst[0], worst_packing), TARGETS["no_configuration_slower"], 0.0))
    room = min(v["headroom"] for v in results["headroom"].values())
    checks.append(_check("input pipeline headroom over the model", f"{room:.0f}x", room,
                         TARGETS["input_pipeline_headroom"], 0.0))
    job = results.get("main_job")
    if job:
        checks += main_job_targets(job["summary"])
    return checks


def _relative_noise(ratio, *entries, key="wall_seconds"):
    """A ratio's noise: its variants' spreads over seeds, relative, combined."""
    return ratio * np.hypot(*(e[key]["std"] / e[key]["mean"] for e in entries))


def main_job_targets(summary):
    """Wall time vs float32 and training time vs keras-hub, at no accuracy cost."""
    checks = []
    new = summary["default"]
    for base_name, key, target in (("float32", "wall_seconds", "main_job_time"),
                                   ("keras_hub", "train_seconds", "main_job_vs_keras_hub")):
        if base_name not in summary:
            continue
        base = summary[base_name]
        ratio = new[f"{key}_vs_{base_name}"]
        at_most = base_name == "float32"  # a time fraction; vs keras-hub a speed-up
        shown = ratio if at_most else 1 / ratio
        checks.append(_check(f"main job {key.replace('_seconds', '')} time vs {base_name}"
                             + ("" if at_most else " (speed-up)"), f"{shown:.2f}x", shown,
                             TARGETS[target], _relative_noise(shown, base, new, key=key),
                             at_most=at_most))
        drop = base["accuracy"]["mean"] - new["accuracy"]["mean"]
        checks.append(_check(f"main job accuracy drop vs {base_name} (points, <= 1 std)",
                             f"{100 * drop:+.1f}", 100 * drop,
                             100 * base["accuracy"]["std"], 0.0, at_most=True))
    return checks


def print_targets(checks):
    rows = [[c["check"], c["measured"],
             f"{'<=' if c['at_most'] else '>='} {c['target']:.3g}",
             f"±{c['noise']:.2f}" if c["noise"] else "",
             "met" if c["met"] else ("MISSED" if c["beyond_noise"] else "within noise")]
            for c in checks]
    print_table("Targets", ["check", "measured", "target", "noise", ""], rows)


def measure(corpus, rounds, steps):
    """Sections 1-4, measured now."""
    peaks = {"float32": matmul_peak("float32"), "bfloat16": matmul_peak("bfloat16")}
    results = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                           "tensorflow": tf.__version__,
                           "matmul_peak_gflops": peaks},
               "rounds": rounds, "steps_per_round": steps, "mlm": []}
    for precision in ("float32", "mixed_bfloat16"):
        for jit in (False, True):
            results["mlm"].append(train_throughput.run_mlm(
                precision, jit, rounds, steps, peak=peaks[train_throughput.PEAK_DTYPE[precision]]))
    results["packing"] = packing.run_packing(corpus, rounds, steps)
    pipeline = mask_pipeline.run_trainer_input(corpus, batches=40, rounds=rounds)
    results["headroom"] = headroom(pipeline, results["packing"], results["mlm"])
    results["optimizer_update"] = optimizer_update.run_update(rounds, updates=steps * 2)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds x 3 steps (a smoke run)")
    parser.add_argument("--out", default=os.path.join("benchmarks", "results"))
    parser.add_argument("--corpus", default="rotten_tomatoes")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a target is missed by more than its measured noise")
    parser.add_argument("--main_job", default=os.path.join("benchmarks", "results",
                                                           "main_job.json"),
                        help="results of benchmarks.main_job to include (skipped if absent)")
    parser.add_argument("--measured", metavar="CPU_JSON",
                        help="take sections 1-4 from an earlier run's cpu.json instead of "
                             "measuring them (after a new main_job.json: its tables and the "
                             "targets again, in seconds)")
    args = parser.parse_args()
    rounds, steps = (2, 3) if args.quick else (5, 5)
    started = time.time()
    report = io.StringIO()

    def show(printer, section):
        with contextlib.redirect_stdout(report):
            printer(section)
        printer(section)

    if args.measured:
        with open(args.measured) as f:
            results = {k: v for k, v in json.load(f).items()
                       if k not in ("main_job", "targets", "seconds")}
    else:
        results = measure(args.corpus, rounds, steps)
    for section in results["mlm"]:
        show(train_throughput.print_mlm, section)
    show(packing.print_packing, results["packing"])
    rows = [[name, f"{v['rows_per_second']:,.0f}", f"{v['model_rows_per_second']:,.0f}",
             f"{v['headroom']:,.0f}x"] for name, v in results["headroom"].items()]
    show(lambda _: print_table(
        f"Input pipeline ({args.corpus}: raw text -> tokens -> masks -> 32 x 128 batches) "
        "vs the fastest tfmask model on the same rows",
        ["pipeline", "rows/s", "model rows/s", "headroom"], rows), None)
    show(optimizer_update.print_update, results["optimizer_update"])
    if os.path.exists(args.main_job):  # minutes per run: measured on its own
        from benchmarks.main_job import print_main_job

        with open(args.main_job) as f:
            results["main_job"] = json.load(f)
        show(print_main_job, results["main_job"])
    results["targets"] = targets(results)
    show(print_targets, results["targets"])
    results["seconds"] = time.time() - started
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "cpu.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(args.out, "cpu.md"), "w") as f:
        f.write(f"# Benchmarks on {os.cpu_count()} CPU cores, TensorFlow {tf.__version__}\n\n")
        f.write("```\n" + report.getvalue().strip() + "\n```\n")
        f.write(f"\n* {train_throughput.MFU_NOTE}\n")
    print(f"\nwrote {args.out}/cpu.json and cpu.md in {results['seconds'] / 60:.1f} min")
    missed = [c["check"] for c in results["targets"] if c["beyond_noise"]]
    if args.check and missed:
        sys.exit(f"--check: missed beyond the measured noise: {'; '.join(missed)}")


if __name__ == "__main__":
    main()
