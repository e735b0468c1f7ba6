"""Every benchmark of issue 7 in one run: a table per section, targets, JSON.

    python -m benchmarks.run_all [--quick] [--out benchmarks/results]

Sections (each also runs alone, see its module):
  1. MLM training tokens/s, tfmask vs keras-hub, float32 and mixed_bfloat16,
     XLA off and on (`benchmarks.train_throughput`);
  2. packing vs padding on a real corpus, useful tokens/s (`benchmarks.packing`);
  3. masking and the trainer's input pipeline, and its headroom over the
     model (`benchmarks.mask_pipeline`).
Writes `cpu.json` (every number) and `cpu.md` (the tables) into `--out`.
"""

import argparse
import contextlib
import io
import json
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from benchmarks import mask_pipeline, packing, train_throughput  # noqa: E402
from benchmarks.common import matmul_peak, print_table  # noqa: E402

TARGETS = {
    "mlm_float32_vs_keras_hub": 1.2,
    "packing_vs_padding": 1.5,
    "no_configuration_slower": 1.0,
    "input_pipeline_headroom": 10.0,
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


def summary(results):
    mlm = results["mlm"]
    fp32 = next(s for s in mlm if s["precision"] == "float32" and not s["jit_compile"])
    name, ratio = _best_tfmask(fp32)
    packed = results["packing"]["contenders"]["tfmask packed"]["ratio_vs_tfmask_padded"]
    worst = min((_best_tfmask(s)[1]["min"], f"{s['precision']}, jit={s['jit_compile']}")
                for s in mlm)
    worst_packing = min(v["ratio_vs_keras_hub_padded"]["min"]
                        for k, v in results["packing"]["contenders"].items()
                        if k.startswith("tfmask"))
    room = min(v["headroom"] for v in results["headroom"].values())
    checks = [
        ("MLM float32 tokens/s vs keras-hub", f"{ratio['median']:.2f}x ({name})",
         ratio["median"], TARGETS["mlm_float32_vs_keras_hub"]),
        ("packing vs padding, useful tokens/s", f"{packed['median']:.2f}x",
         packed["median"], TARGETS["packing_vs_padding"]),
        ("slowest tfmask config vs keras-hub (worst round)",
         f"{worst[0]:.2f}x ({worst[1]}); packing rows {worst_packing:.2f}x",
         min(worst[0], worst_packing), TARGETS["no_configuration_slower"]),
        ("input pipeline headroom over the model", f"{room:.0f}x", room,
         TARGETS["input_pipeline_headroom"]),
    ]
    rows = [[what, measured, f">= {target:g}x", "met" if value >= target else "MISSED"]
            for what, measured, value, target in checks]
    print_table("Targets", ["check", "measured", "target", ""], rows)
    return {what: {"measured": float(value), "target": target, "met": bool(value >= target)}
            for what, _, value, target in checks}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds x 3 steps (a smoke run)")
    parser.add_argument("--out", default=os.path.join("benchmarks", "results"))
    parser.add_argument("--corpus", default="rotten_tomatoes")
    args = parser.parse_args()
    rounds, steps = (2, 3) if args.quick else (5, 5)
    started = time.time()
    peaks = {"float32": matmul_peak("float32"), "bfloat16": matmul_peak("bfloat16")}
    results = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                           "tensorflow": tf.__version__,
                           "matmul_peak_gflops": peaks},
               "rounds": rounds, "steps_per_round": steps, "mlm": []}
    report = io.StringIO()

    def show(printer, section):
        with contextlib.redirect_stdout(report):
            printer(section)
        printer(section)

    for precision in ("float32", "mixed_bfloat16"):
        for jit in (False, True):
            section = train_throughput.run_mlm(
                precision, jit, rounds, steps, peak=peaks[train_throughput.PEAK_DTYPE[precision]])
            results["mlm"].append(section)
            show(train_throughput.print_mlm, section)
    results["packing"] = packing.run_packing(args.corpus, rounds, steps)
    show(packing.print_packing, results["packing"])
    pipeline = mask_pipeline.run_trainer_input(args.corpus, batches=40, rounds=rounds)
    results["headroom"] = headroom(pipeline, results["packing"], results["mlm"])
    rows = [[name, f"{v['rows_per_second']:,.0f}", f"{v['model_rows_per_second']:,.0f}",
             f"{v['headroom']:,.0f}x"] for name, v in results["headroom"].items()]
    show(lambda _: print_table(
        f"Input pipeline ({args.corpus}: raw text -> tokens -> masks -> 32 x 128 batches) "
        "vs the fastest tfmask model on the same rows",
        ["pipeline", "rows/s", "model rows/s", "headroom"], rows), None)
    with contextlib.redirect_stdout(report):
        results["targets"] = summary(results)
    summary(results)
    results["seconds"] = time.time() - started
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "cpu.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(args.out, "cpu.md"), "w") as f:
        f.write(f"# Benchmarks on {os.cpu_count()} CPU cores, TensorFlow {tf.__version__}\n\n")
        f.write("```\n" + report.getvalue().strip() + "\n```\n")
        f.write("\n* MLM's MFU counts the padded model's FLOPs for every contender.\n")
    print(f"\nwrote {args.out}/cpu.json and cpu.md in {results['seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
