"""Experiment 7: does continued masked pre-training of a pretrained encoder pay?

Task-adaptive pre-training (Gururangan et al. 2020, "Don't Stop
Pretraining"): continue masked-LM training of the pretrained
all-MiniLM-L6-v2 encoder on the task's own unlabelled texts, then fine-tune.

Phase 1, continued MLM: one run per masking choice (random / whole-word /
span, at 15% and 40%), the same step budget each, on the Rotten Tomatoes
training reviews and plot snippets (validation and test texts are never
seen). MiniLM has no MLM head, so each run's head starts fresh. Every run,
and MiniLM itself with a fresh head, is measured with one yardstick:
masked-token accuracy on the validation reviews with random 15% masks drawn
with evaluation seed 0, the same masks for every model.

Phase 2, fine-tuning: MiniLM and every continued run are fine-tuned on
100 / 300 / 1,000 labelled reviews (`data.train_examples`: a stratified
subset drawn with the run's seed, so each seed also draws other labels) and
on all 10,202 of them (MiniLM and the `--all_labels_starts` continued run(s)
with the best mean validation accuracy at the small label counts; the test
split is never used to choose). Test accuracy is the reported score.

    python -m experiments.continued_pretraining       # ~85 min on 2 CPU cores

Progress is kept in `--work`/continued_pretraining/progress.json: a rerun
skips every run already measured (`--fresh` starts over).
"""

import json
import os

import numpy as np

from experiments import common

STRATEGIES = ("random", "whole_word", "span")
RATES = (0.15, 0.40)
BASELINE = "MiniLM"
# Steps and batch size per label count (0 = every training review): a few
# epochs of the small subsets, about one epoch of the full set.
FINETUNE = {100: {"batch_size": 16, "steps": 40}, 300: {"batch_size": 16, "steps": 60},
            1000: {"batch_size": 32, "steps": 100}, 0: {"batch_size": 32, "steps": 320}}


def add_flags(parser):
    parser.add_argument("--mlm_steps", type=int, default=150,
                        help="continued-MLM steps per masking choice (32 packed rows of 64)")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--rates", type=float, nargs="+", default=list(RATES))
    parser.add_argument("--labels", type=int, nargs="+", default=list(FINETUNE),
                        help="label counts to fine-tune on (0 = all)")
    parser.add_argument("--all_labels_starts", type=int, default=1,
                        help="continued runs (best by validation) also fine-tuned on all labels")
    parser.add_argument("--every_run_at", type=int, nargs="+", default=None,
                        help="label counts at which every continued run is fine-tuned "
                             "(default: all counts)")
    parser.add_argument("--rate_elsewhere", type=float, default=None,
                        help="at the other label counts, only the continued runs at this rate")
    parser.add_argument("--fresh", action="store_true", help="forget earlier progress")


def label_name(count):
    return "all" if count == 0 else str(count)


class Progress:
    """Measured runs by key, saved after each, so a long run can resume."""

    def __init__(self, path, fresh):
        self.path = path
        self.done = {}
        if os.path.exists(path) and not fresh:
            with open(path, encoding="utf-8") as f:
                self.done = json.load(f)

    def run(self, key, measure):
        if key not in self.done:
            self.done[key] = measure()
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with open(self.path, "w", encoding="utf-8") as f:
                json.dump(self.done, f, indent=1)
            print(f"[{key}] {self.done[key]}", flush=True)
        return self.done[key]


def yardstick(run, folder, args):
    """Held-out masked-token accuracy with the fixed random 15% masks."""
    base = common.base_config("continued_mlm")
    values = common.merge(base, model={"pretrained": run},
                          masking={"strategy": "random", "rate": 0.15},
                          train={"seed": 0})
    metrics = common.evaluate(values, folder, args)
    return {"yardstick_accuracy": metrics["eval_accuracy"],
            "yardstick_perplexity": metrics["eval_perplexity"]}


def continue_mlm(strategy, rate, folder, args):
    base = common.base_config("continued_mlm")
    values = common.merge(base, masking={"strategy": strategy, "rate": rate},
                          train={"steps": args.mlm_steps})
    run = os.path.join(folder, "mlm")
    results, _ = common.train(values, run, 0, args)
    after = yardstick(run, os.path.join(folder, "yardstick"), args)
    return {"run": run, "own_accuracy": results["eval_accuracy"], **after,
            "mlm_seconds": results["train_seconds"], "wall_seconds": results["wall_seconds"]}


def finetune(start, labels, seed, folder, args):
    base = common.base_config("finetune_labels")
    regime = FINETUNE[labels]
    values = common.merge(base, model={"pretrained": start},
                          data={"train_examples": labels, "batch_size": regime["batch_size"]},
                          train={"steps": regime["steps"]})
    results, _ = common.train(values, folder, seed, args)
    return {"validation_accuracy": results["eval_accuracy"],
            "test_accuracy": results["test_accuracy"],
            "train_seconds": results["train_seconds"], "wall_seconds": results["wall_seconds"]}


def run_all(args):
    work = os.path.join(args.work, "continued_pretraining")
    progress = Progress(os.path.join(work, "progress.json"), args.fresh)
    starts = {BASELINE: "minilm"}
    mlm = {BASELINE: progress.run("yardstick|minilm", lambda: yardstick(
        "minilm", os.path.join(work, "minilm_yardstick"), args))}
    for strategy in args.strategies:
        for rate in args.rates:
            name = f"{strategy} {rate:.0%}"
            folder = os.path.join(work, f"{strategy}_{round(100 * rate)}")
            steps = int(args.mlm_steps * args.scale)
            mlm[name] = progress.run(f"mlm|{name}|{steps} steps",
                                     lambda s=strategy, r=rate, f=folder: continue_mlm(s, r, f, args))
            starts[name] = mlm[name]["run"]

    def finetune_all(names, labels):
        for name in names:
            for seed in args.seeds:
                folder = os.path.join(work, "finetune", name.replace(" ", "_").replace("%", ""),
                                      label_name(labels), f"seed{seed}")
                progress.run(f"finetune|{name}|{label_name(labels)}|{seed}",
                             lambda n=name, s=seed, f=folder: finetune(starts[n], labels, s, f, args))

    # 100 and 1,000 labels first: the two ends of the small-label regime
    def runs_at(labels):
        """The starts fine-tuned at `labels` (a CPU budget may thin the grid)."""
        if args.every_run_at is None or labels in args.every_run_at:
            return list(starts)
        return [n for n in starts if n == BASELINE or args.rate_elsewhere is None
                or n.endswith(f" {args.rate_elsewhere:.0%}")]

    small = sorted((count for count in args.labels if count), key=lambda c: (c != 100, -c))
    for labels in small:
        finetune_all(runs_at(labels), labels)
    if 0 in args.labels:
        # the best continued run by mean validation accuracy over the small
        # label counts, among the runs fine-tuned at all of them
        continued = [n for n in starts if n != BASELINE and all(n in runs_at(c) for c in small)]
        by_validation = sorted(continued, key=lambda n: -np.mean([
            progress.done[f"finetune|{n}|{label_name(c)}|{s}"]["validation_accuracy"]
            for c in small for s in args.seeds]))
        finetune_all([BASELINE] + by_validation[:args.all_labels_starts], 0)
    return starts, mlm, progress.done


def scores(done, name, labels, seeds, key="test_accuracy"):
    keys = [f"finetune|{name}|{label_name(labels)}|{seed}" for seed in seeds]
    return [done[k][key] for k in keys] if all(k in done for k in keys) else None


def tables_and_figure(starts, mlm, done, args):
    seeds = args.seeds
    mlm_rows = [[name, "-" if name == BASELINE else f"{mlm[name]['mlm_seconds'] / 60:.1f}",
                 f"{100 * mlm[name]['yardstick_accuracy']:.1f}",
                 f"{mlm[name]['yardstick_perplexity']:.0f}",
                 "-" if name == BASELINE else f"{100 * mlm[name]['own_accuracy']:.1f}"]
                for name in starts]
    mlm_table = common.markdown_table(
        ["encoder", "continued-MLM CPU min", "yardstick MLM acc %", "yardstick ppl",
         "MLM acc with its own masks %"], mlm_rows)
    counts = args.labels
    base = {c: scores(done, BASELINE, c, seeds) for c in counts}
    rows, validation_rows = [], []
    for name in starts:
        row, validation = [name], [name]
        for count in counts:
            test = scores(done, name, count, seeds)
            if test is None:
                row.append("-")
                validation.append("-")
                continue
            # paired by seed: the same seed draws the same labelled subset
            delta = 100 * (np.asarray(test) - np.asarray(base[count]))
            spread = f" ± {delta.std(ddof=1):.1f}" if len(delta) > 1 else ""
            row.append(common.cell(test, percent=True) + (
                "" if name == BASELINE else f" ({delta.mean():+.1f}{spread})"))
            validation.append(common.cell(scores(done, name, count, seeds, "validation_accuracy"),
                                          percent=True))
        rows.append(row)
        validation_rows.append(validation)
    header = ["encoder"] + [f"{label_name(c)} labels" for c in counts]
    seconds = {c: np.mean([v["train_seconds"] for k, v in done.items()
                           if k.startswith("finetune|") and k.split("|")[2] == label_name(c)])
               for c in counts}
    compute = common.markdown_table(
        ["label count", "steps x batch", "fine-tune CPU s (mean)"],
        [[label_name(c), f"{int(FINETUNE[c]['steps'] * args.scale)} x {FINETUNE[c]['batch_size']}",
          f"{seconds[c]:.0f}"] for c in counts])
    text = ("Phase 1: continued masked-LM training of MiniLM on the training reviews "
            f"({int(args.mlm_steps * args.scale)} steps of 32 packed rows x 64 word pieces, seed 0); yardstick = "
            "validation reviews, random 15% masks, the same for every encoder\n\n" + mlm_table +
            "\n\nPhase 2: test accuracy % (mean ± std over seeds; in brackets the difference "
            "from fine-tuning MiniLM directly, paired by seed: a seed draws the same labelled "
            "reviews for every encoder)\n\n" + common.markdown_table(header, rows) +
            "\n\nValidation accuracy % (used to choose which runs get all labels)\n\n" +
            common.markdown_table(header, validation_rows) + "\n\nFine-tuning compute\n\n" +
            compute)

    fig, axes = common.subplots(1, 2, figsize=(13, 4.2))
    common.score_curves(axes[0], starts, counts, lambda name, c: scores(done, name, c, seeds),
                        BASELINE, label_name)
    axes[0].set_xlabel("labelled reviews")
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].set_title("fine-tuned on Rotten Tomatoes")
    names = list(starts)
    axes[1].bar(range(len(names)), [100 * mlm[n]["yardstick_accuracy"] for n in names])
    axes[1].set_xticks(range(len(names)))
    axes[1].set_xticklabels(names, rotation=30, fontsize=8)
    axes[1].set_ylabel("held-out MLM accuracy, random 15% (%)")
    axes[1].set_title("MLM yardstick after continued pre-training")
    return text, fig


def main():
    args = common.parse_args(__doc__.splitlines()[0], add_flags)
    starts, mlm, done = run_all(args)
    table, figure = tables_and_figure(starts, mlm, done, args)
    notes = (f"Seeds {', '.join(map(str, args.seeds))} for fine-tuning (each seed draws its own "
             "labelled subset); one continued-MLM run per masking choice. Rotten Tomatoes: "
             "10,202 training / 1,275 validation / 1,275 test reviews. mixed_bfloat16 on "
             "2 CPU cores. MiniLM's yardstick is taken with a freshly initialised MLM head "
             "(it ships without one), so it is the floor, not a measure of the encoder.")
    common.save("continued_pretraining", "Experiment 7: continued masked pre-training",
                table, {"seeds": args.seeds, "mlm_steps": int(args.mlm_steps * args.scale), "runs": done},
                figure, notes, args.results)


if __name__ == "__main__":
    main()
