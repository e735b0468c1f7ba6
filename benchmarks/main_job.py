"""The README's main job, timed as a user runs it, against its variants and its peer.

    python -m benchmarks.main_job [--variants float32 default lora keras_hub]
                                  [--seeds 0 1 2] [--runs_dir runs/main_job]

Runs `python -m tfmask.train --config configs/rotten_tomatoes_minilm.yaml`
(MiniLM fine-tuned on Rotten Tomatoes) once per seed and variant, each in a
fresh process, the variants alternating so machine noise hits all alike:
  float32    the config with `runtime.precision: float32` (the old default)
  default    the config as shipped (`runtime.precision: auto`)
  lora       the shipped config with `model.lora_rank: 8` on the query and
             value projections, learning rate 1e-3 (LoRA's adapters start
             at zero and need a larger step than full fine-tuning's 1e-4)
  keras_hub  the same recipe written with keras-hub and `model.fit`
             (`benchmarks.keras_hub_main_job`), the peer
Each run evaluates on the whole validation split every `--eval_every` steps,
so a run gives a time-to-accuracy curve (training seconds, accuracy); its
peak resident memory (the process's `ru_maxrss`) and trainable parameters
are recorded too. Writes `main_job.json` (every run, its curve and wall
time) and `main_job.png` into `--out`; `run_all` puts its table and targets
into `cpu.md`. `--collect` rebuilds the results from finished run folders
without training (every variant with folders for all `--seeds`).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

import numpy as np

CONFIG = os.path.join("configs", "rotten_tomatoes_minilm.yaml")
TFMASK = [sys.executable, "-m", "tfmask.train", "--config", CONFIG]
VARIANTS = {"float32": ["--set", "runtime.precision=float32"], "default": [],
            "lora": ["--set", "model.lora_rank=8", "--set", "optimizer.learning_rate=1e-3"],
            "keras_hub": None}  # its own program


def run_folder(runs_dir, variant, seed):
    return os.path.join(runs_dir, f"{variant}_s{seed}")


def command_of(variant, folder, seed, eval_every):
    if variant == "keras_hub":
        return [sys.executable, "-m", "benchmarks.keras_hub_main_job", "--output_dir", folder,
                "--seed", str(seed), "--eval_every", str(eval_every)]
    return [*TFMASK, "--set", f"train.seed={seed}", "--set", f"train.eval_every={eval_every}",
            "--set", "runtime.export=false", *VARIANTS[variant], "--output_dir", folder]


def train(runs_dir, variant, seed, eval_every):
    """One run in a fresh process; its wall time and peak memory go into the folder."""
    folder = run_folder(runs_dir, variant, seed)
    os.makedirs(folder, exist_ok=True)
    began = time.perf_counter()
    with open(os.path.join(folder, "stdout.log"), "w") as log:
        process = subprocess.Popen(command_of(variant, folder, seed, eval_every), stdout=log)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own peak, not all children's
    wall = time.perf_counter() - began
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{variant} seed {seed} failed: see {folder}/stdout.log")
    with open(os.path.join(folder, "wall.json"), "w") as f:
        json.dump({"wall_seconds": wall, "peak_rss_mb": usage.ru_maxrss / 1024}, f)


def peer_record(folder):
    """What the keras-hub program wrote (`peer.json`), None for a tfmask run."""
    path = os.path.join(folder, "peer.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def trainable_parameters(folder):
    """From the peer's record, or the "N trainable" of tfmask's start block."""
    peer = peer_record(folder)
    if peer:
        return peer["trainable_parameters"]
    with open(os.path.join(folder, "stdout.log")) as f:
        line = next(line for line in f if line.startswith("model: "))
    return int(re.search(r"([\d,]+) trainable", line).group(1).replace(",", ""))


def precision_of(folder):
    peer = peer_record(folder)
    if peer:
        return peer["precision"]
    with open(os.path.join(folder, "config.yaml")) as f:
        return next(line.split(":", 1)[1].strip() for line in f
                    if line.strip().startswith("precision:"))


def read_run(folder):
    """The curve [(training seconds, eval accuracy)], final accuracy, times and memory of a run."""
    records = [json.loads(line) for line in open(os.path.join(folder, "metrics.jsonl"))]
    seconds_at = {r["step"]: r["train_seconds"] for r in records if "train_seconds" in r}
    curve = [(seconds_at[r["step"]], r["eval_accuracy"]) for r in records
             if "eval_accuracy" in r and r["step"] in seconds_at]
    final = [r for r in records if "eval_accuracy" in r][-1]
    steps = max(seconds_at)
    with open(os.path.join(folder, "wall.json")) as f:
        wall = json.load(f)
    return {"curve": curve, "accuracy": final["eval_accuracy"],
            "train_seconds": final.get("train_seconds", seconds_at.get(final["step"])),
            "step_seconds": seconds_at[steps] / steps,
            "wall_seconds": wall["wall_seconds"], "peak_rss_mb": wall.get("peak_rss_mb"),
            "trainable_parameters": trainable_parameters(folder),
            "precision": precision_of(folder)}


def summarise(runs):
    """Per variant: mean / std over seeds; times as ratios to float32 and to keras_hub."""
    keys = ("accuracy", "train_seconds", "step_seconds", "wall_seconds", "peak_rss_mb")
    out = {}
    for variant, by_seed in runs.items():
        values = list(by_seed.values())
        out[variant] = {key: {"mean": float(np.mean([v[key] for v in values])),
                              "std": float(np.std([v[key] for v in values], ddof=1))
                              if len(values) > 1 else 0.0}
                        for key in keys if all(v.get(key) is not None for v in values)}
        out[variant]["precision"] = values[0]["precision"]
        out[variant]["trainable_parameters"] = values[0]["trainable_parameters"]
        out[variant]["seeds"] = len(values)
    for base in ("float32", "keras_hub"):
        if base not in out:
            continue
        for variant in out:
            for key in ("train_seconds", "wall_seconds"):
                out[variant][f"{key}_vs_{base}"] = (out[variant][key]["mean"]
                                                    / out[base][key]["mean"])
    return out


def print_main_job(results):
    from benchmarks.common import print_table

    rows = []
    for variant, entry in results["summary"].items():
        acc, wall, trained = entry["accuracy"], entry["wall_seconds"], entry["train_seconds"]
        step, memory = entry.get("step_seconds"), entry.get("peak_rss_mb")
        trainable = entry["trainable_parameters"]
        rows.append([f"{variant} ({entry['precision']})",
                     f"{trainable:,}" if trainable else "-",
                     f"{100 * acc['mean']:.1f} ± {100 * acc['std']:.1f}",
                     f"{wall['mean'] / 60:.2f} ± {wall['std'] / 60:.2f}",
                     f"{trained['mean'] / 60:.2f} ± {trained['std'] / 60:.2f}",
                     f"{1000 * step['mean']:.0f}" if step else "-",
                     f"{memory['mean']:,.0f}" if memory else "-",
                     *(f"{entry[f'train_seconds_vs_{base}']:.2f}"
                       if f"train_seconds_vs_{base}" in entry else "-"
                       for base in ("float32", "keras_hub"))])
    print_table(f"Main job ({CONFIG}), {results['seeds']} seeds, accuracy on all 1,275 "
                "validation reviews",
                ["variant", "trainable", "accuracy %", "wall min", "training min", "ms/step",
                 "peak MB", "training vs float32", "vs keras_hub"], rows)


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    colors = ("tab:blue", "tab:orange", "tab:green", "tab:red")
    for color, (variant, by_seed) in zip(colors, results["runs"].items()):
        for index, run in enumerate(by_seed.values()):
            seconds, accuracy = zip(*run["curve"])
            ax.plot(np.array(seconds) / 60, 100 * np.array(accuracy), "o-", color=color,
                    alpha=0.8, label=f"{variant} ({run['precision']})" if index == 0 else None)
    ax.set_xlabel("training minutes (2 CPU cores)")
    ax.set_ylabel("validation accuracy %")
    ax.set_title("Main job: time to accuracy, one line per seed")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def keep_previous(path, runs):
    """Variants of an earlier results file that this call did not run, added to `runs`.

    One variant can be rerun (a new default after a speed change) without
    spending half an hour on the others; their rows say they were kept."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        previous = json.load(f)["runs"]
    kept = [variant for variant in previous if variant not in runs]
    for variant in kept:
        runs[variant] = previous[variant]
        for run in runs[variant].values():  # older files lack these
            run.setdefault("step_seconds", None)
            run.setdefault("peak_rss_mb", None)
            run.setdefault("trainable_parameters", None)
    return kept


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS),
                        default=list(VARIANTS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--eval_every", type=int, default=175)
    parser.add_argument("--runs_dir", default=os.path.join("runs", "main_job"))
    parser.add_argument("--out", default=os.path.join("benchmarks", "results"))
    parser.add_argument("--collect", action="store_true",
                        help="read finished run folders instead of training")
    args = parser.parse_args()
    if not args.collect:
        for seed in args.seeds:  # alternating: noise hits every variant alike
            for variant in args.variants:
                train(args.runs_dir, variant, seed, args.eval_every)
    finished = [variant for variant in VARIANTS if all(
        os.path.exists(os.path.join(run_folder(args.runs_dir, variant, seed), "wall.json"))
        for seed in args.seeds)]
    runs = {variant: {seed: read_run(run_folder(args.runs_dir, variant, seed))
                      for seed in args.seeds} for variant in finished}
    kept = keep_previous(os.path.join(args.out, "main_job.json"), runs)
    results = {"config": CONFIG, "seeds": len(args.seeds), "eval_every": args.eval_every,
               "runs": runs, "kept_from_previous": kept, "summary": summarise(runs)}
    if kept:
        print(f"kept from the previous {args.out}/main_job.json (not rerun): {', '.join(kept)}")
    print_main_job(results)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "main_job.json"), "w") as f:
        json.dump(results, f, indent=2)
    plot(results, os.path.join(args.out, "main_job.png"))
    print(f"wrote {args.out}/main_job.json and main_job.png")


if __name__ == "__main__":
    main()
