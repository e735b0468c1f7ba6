"""The README's main job, timed as a user runs it: float32 vs the shipped default.

    python -m benchmarks.main_job [--seeds 0 1 2] [--runs_dir runs/main_job]

Runs `python -m tfmask.train --config configs/rotten_tomatoes_minilm.yaml`
(MiniLM fine-tuned on Rotten Tomatoes) once per seed and variant, the
variants alternating so machine noise hits both alike:
  float32   the config with `runtime.precision: float32` (the old default)
  default   the config as shipped (`runtime.precision: auto`)
Each run evaluates on the whole validation split every `--eval_every` steps,
so a run gives a time-to-accuracy curve (training seconds, accuracy). Writes
`main_job.json` (every run, its curve and wall time) and `main_job.png` into
`--out`; `run_all` puts its table and targets into `cpu.md`.
`--collect` rebuilds the results from finished run folders without training.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

CONFIG = os.path.join("configs", "rotten_tomatoes_minilm.yaml")
VARIANTS = {"float32": ["--set", "runtime.precision=float32"], "default": []}


def run_folder(runs_dir, variant, seed):
    return os.path.join(runs_dir, f"{variant}_s{seed}")


def train(runs_dir, variant, seed, eval_every):
    """One `tfmask.train` run in a fresh process; its wall time goes into the folder."""
    folder = run_folder(runs_dir, variant, seed)
    command = [sys.executable, "-m", "tfmask.train", "--config", CONFIG,
               "--set", f"train.seed={seed}", "--set", f"train.eval_every={eval_every}",
               "--set", "runtime.export=false", *VARIANTS[variant], "--output_dir", folder]
    began = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(folder, "wall.json"), "w") as f:
        json.dump({"wall_seconds": time.perf_counter() - began}, f)


def read_run(folder):
    """The curve [(training seconds, eval accuracy)], final accuracy and times of one run."""
    records = [json.loads(line) for line in open(os.path.join(folder, "metrics.jsonl"))]
    seconds_at = {r["step"]: r["train_seconds"] for r in records if "train_seconds" in r}
    curve = [(seconds_at[r["step"]], r["eval_accuracy"]) for r in records
             if "eval_accuracy" in r and r["step"] in seconds_at]
    final = [r for r in records if "eval_accuracy" in r][-1]
    with open(os.path.join(folder, "wall.json")) as f:
        wall = json.load(f)["wall_seconds"]
    with open(os.path.join(folder, "config.yaml")) as f:
        precision = next(line.split(":", 1)[1].strip() for line in f
                         if line.strip().startswith("precision:"))
    return {"curve": curve, "accuracy": final["eval_accuracy"],
            "train_seconds": final.get("train_seconds", seconds_at.get(final["step"])),
            "wall_seconds": wall,
            "precision": precision}


def summarise(runs):
    """Per variant: mean / std over seeds of accuracy and times; ratios to float32."""
    out = {}
    for variant, by_seed in runs.items():
        values = list(by_seed.values())
        out[variant] = {key: {"mean": float(np.mean([v[key] for v in values])),
                              "std": float(np.std([v[key] for v in values], ddof=1))
                              if len(values) > 1 else 0.0}
                        for key in ("accuracy", "train_seconds", "wall_seconds")}
        out[variant]["precision"] = values[0]["precision"]
        out[variant]["seeds"] = len(values)
    base = out["float32"]
    for variant in out:
        for key in ("train_seconds", "wall_seconds"):
            out[variant][f"{key}_ratio"] = out[variant][key]["mean"] / base[key]["mean"]
    return out


def print_main_job(results):
    from benchmarks.common import print_table

    rows = []
    for variant, entry in results["summary"].items():
        acc, wall, trained = entry["accuracy"], entry["wall_seconds"], entry["train_seconds"]
        rows.append([f"{variant} ({entry['precision']})",
                     f"{100 * acc['mean']:.1f} ± {100 * acc['std']:.1f}",
                     f"{wall['mean'] / 60:.2f} ± {wall['std'] / 60:.2f}",
                     f"{trained['mean'] / 60:.2f} ± {trained['std'] / 60:.2f}",
                     f"{entry['wall_seconds_ratio']:.2f}"])
    print_table(f"Main job ({CONFIG}), {results['seeds']} seeds, accuracy on all 1,275 "
                "validation reviews",
                ["variant", "accuracy %", "wall min", "training min", "wall vs float32"], rows)


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for color, (variant, by_seed) in zip(("tab:blue", "tab:orange"), results["runs"].items()):
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--eval_every", type=int, default=175)
    parser.add_argument("--runs_dir", default=os.path.join("runs", "main_job"))
    parser.add_argument("--out", default=os.path.join("benchmarks", "results"))
    parser.add_argument("--collect", action="store_true",
                        help="read finished run folders instead of training")
    args = parser.parse_args()
    if not args.collect:
        for seed in args.seeds:  # alternating: noise hits both variants alike
            for variant in VARIANTS:
                train(args.runs_dir, variant, seed, args.eval_every)
    runs = {variant: {seed: read_run(run_folder(args.runs_dir, variant, seed))
                      for seed in args.seeds} for variant in VARIANTS}
    results = {"config": CONFIG, "seeds": len(args.seeds), "eval_every": args.eval_every,
               "runs": runs, "summary": summarise(runs)}
    print_main_job(results)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "main_job.json"), "w") as f:
        json.dump(results, f, indent=2)
    plot(results, os.path.join(args.out, "main_job.png"))
    print(f"wrote {args.out}/main_job.json and main_job.png")


if __name__ == "__main__":
    main()
