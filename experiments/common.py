"""Shared experiment plumbing: configs, seeded runs, mean +- std, tables, plots.

Every experiment is a small script that builds run configs from a base
YAML in `experiments/configs/`, trains each over several seeds with the
tfmask trainer (in this process), and writes into `experiments/results/`:
`NAME.md` (the table), `NAME.png` (the plot) and `NAME.json` (every
number, per seed). Runs themselves go to `--work` (default
`experiments/runs/`, not versioned).

Common flags: `--seeds 0 1 2`, `--scale 2` (multiplies every step count
and time budget, for a larger run on a GPU), `--set section.key=value`
(overrides every run's config, e.g. a bigger model).
"""

import argparse
import copy
import json
import os
import shutil
import time

import numpy as np
import yaml

ROOT = os.path.dirname(os.path.abspath(__file__))
CONFIGS = os.path.join(ROOT, "configs")
RESULTS = os.path.join(ROOT, "results")


def parse_args(description, extra=None):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply step counts and time budgets (GPU: 10 or more)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override every run's config, e.g. model.num_layers=4")
    parser.add_argument("--work", default=os.path.join(ROOT, "runs"))
    parser.add_argument("--results", default=RESULTS)
    if extra:
        extra(parser)
    return parser.parse_args()


def base_config(name):
    """A base run config (nested dict) from experiments/configs/NAME.yaml."""
    with open(os.path.join(CONFIGS, f"{name}.yaml"), encoding="utf-8") as f:
        return yaml.safe_load(f)


def merge(values, **sections):
    """A copy of `values` with `sections` ({section: {key: value}}) merged in."""
    values = copy.deepcopy(values)
    for section, updates in sections.items():
        values[section] = {**values.get(section, {}), **updates}
    return values


def scaled(values, scale):
    """Step counts and time budgets multiplied by `scale` (warm-up included)."""
    train = dict(values.get("train", {}))
    for key in ("steps", "eval_every", "max_seconds"):
        if train.get(key):
            train[key] = type(train[key])(train[key] * scale)
    schedule = dict(values.get("schedule", {}))
    if schedule.get("warmup_steps"):
        schedule["warmup_steps"] = int(schedule["warmup_steps"] * scale)
    return merge(values, train=train, schedule=schedule)


def train(values, output_dir, seed, args):
    """Trains one run from scratch; returns (final metrics, trainer).

    The run folder is emptied first (a result always comes from a fresh
    run, never a resumed one); `args` applies --scale and --set.
    """
    from tfmask.config import apply_overrides
    from tfmask.tasks import config_from_dict
    from tfmask.training.trainer import Trainer

    values = merge(scaled(values, args.scale), train={"seed": seed})
    config = config_from_dict(apply_overrides(values, args.set))
    shutil.rmtree(output_dir, ignore_errors=True)
    began = time.perf_counter()
    trainer = Trainer(config, output_dir, verbose=False)
    results = trainer.fit()
    results["wall_seconds"] = time.perf_counter() - began
    return results, trainer


def evaluate(values, output_dir, args):
    """Evaluation only: a model from `values` (usually `model.pretrained`) on
    its task's evaluation split, without training."""
    from tfmask.config import apply_overrides
    from tfmask.tasks import config_from_dict
    from tfmask.training.trainer import Trainer

    config = config_from_dict(apply_overrides(values, args.set))
    return Trainer(config, output_dir, verbose=False).evaluate()


def metrics_log(output_dir):
    """The records of a run's metrics.jsonl."""
    with open(os.path.join(output_dir, "metrics.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def mean_std(values):
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def cell(values, percent=False, digits=2):
    """"mean ± std" of a list of numbers."""
    mean, std = mean_std(values)
    if percent:
        return f"{100 * mean:.1f} ± {100 * std:.1f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def save(name, title, table, raw, figure, notes="", results_dir=RESULTS):
    """Writes NAME.md (title, table, notes), NAME.json and NAME.png."""
    os.makedirs(results_dir, exist_ok=True)
    with open(os.path.join(results_dir, f"{name}.md"), "w", encoding="utf-8") as f:
        f.write(f"# {title}\n\n{table}\n")
        if notes:
            f.write(f"\n{notes.strip()}\n")
        f.write(f"\n![{name}]({name}.png)\n")
    with open(os.path.join(results_dir, f"{name}.json"), "w", encoding="utf-8") as f:
        json.dump(raw, f, indent=2)
    figure.savefig(os.path.join(results_dir, f"{name}.png"), dpi=120, bbox_inches="tight")
    print(f"\n{title}\n\n{table}\n\nwrote {results_dir}/{name}.md, .json, .png")


def subplots(*args, **kwargs):
    """`matplotlib.pyplot.subplots` on the file-only Agg backend (no display here)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def score_curves(ax, names, counts, scores_of, baseline, count_name):
    """One line per start (mean ± std over seeds) across label counts;
    `scores_of(name, count)` gives the seeds' scores or None (not run);
    the baseline's line is drawn thicker."""
    for name in names:
        points = [(i, scores_of(name, c)) for i, c in enumerate(counts)]
        points = [(i, s) for i, s in points if s is not None]
        ax.errorbar([i for i, _ in points], [100 * np.mean(s) for _, s in points],
                    yerr=[100 * np.std(s, ddof=1) if len(s) > 1 else 0 for _, s in points],
                    capsize=3, marker="o", label=name, linewidth=2.5 if name == baseline else 1.2)
    ax.set_xticks(np.arange(len(counts)))
    ax.set_xticklabels([count_name(c) for c in counts])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def bar_chart(ax, groups, series, values, ylabel, title):
    """Grouped bars with std error bars: values[series][group] = list over seeds."""
    width = 0.8 / len(series)
    for i, name in enumerate(series):
        means = [mean_std(values[name][g])[0] for g in groups]
        stds = [mean_std(values[name][g])[1] for g in groups]
        positions = np.arange(len(groups)) + (i - (len(series) - 1) / 2) * width
        ax.bar(positions, means, width, yerr=stds, capsize=3, label=name)
    ax.set_xticks(np.arange(len(groups)))
    ax.set_xticklabels(groups)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if len(series) > 1:
        ax.legend(fontsize=8)
