"""Experiment 5: static vs dynamic masking, packing on vs off: time to accuracy.

The experiment-1 encoder is pre-trained on a small slice of Austen +
WordNet (the first 1,500 training documents of each), so that every run
goes through its data several times: that is where static masking (each
row masked once, BERT) and dynamic masking (new masks every epoch,
RoBERTa) differ. Rows are either padded to 64 tokens or packed with
document masks. Every run trains for the same time budget, evaluates on
held-out documents every 20 steps, and is scored by the training time it
needed to first reach a held-out MLM accuracy that all four settings reach
(90% of the lowest final mean accuracy), and by its accuracy at the end.

    python -m experiments.static_dynamic_packing   # ~17 min on 2 CPU cores
"""

import os

import numpy as np

from experiments import common

SETTINGS = {
    "dynamic, packed": {"masking": {"dynamic": True}, "data": {"pack": True}},
    "static, packed": {"masking": {"dynamic": False}, "data": {"pack": True}},
    "dynamic, padded": {"masking": {"dynamic": True}, "data": {"pack": False}},
    "static, padded": {"masking": {"dynamic": False}, "data": {"pack": False}},
}
SLICE = "train[:1500]"  # per part of the mixture
BATCH = common.base_config("pretrain_en")["data"]["batch_size"]


def run_setting(name, seed, args):
    base = common.base_config("pretrain_en")
    change = SETTINGS[name]
    values = common.merge(
        base, masking=change["masking"], data={**change["data"], "train_split": SLICE},
        schedule={"decay": "constant"},
        train={"steps": 1_000_000, "max_seconds": 60, "eval_every": 20, "eval_batches": 10,
               "log_every": 20},
        runtime={"export": False})
    folder = os.path.join(args.work, "static_dynamic_packing", name.replace(", ", "_"),
                          f"seed{seed}")
    results, _ = common.train(values, folder, seed, args)
    log = common.metrics_log(folder)
    seconds = {}  # step -> training seconds at that step
    for record in log:
        if "train_seconds" in record:
            seconds[record["step"]] = record["train_seconds"]
    curve = [(seconds[r["step"]], r["eval_accuracy"]) for r in log
             if "eval_accuracy" in r and r["step"] in seconds]
    train_tokens = [r["tokens_per_second"] for r in log if "tokens_per_second" in r]
    return {"final_accuracy": results["eval_accuracy"], "steps": results["train_steps"],
            "train_seconds": results["train_seconds"], "curve": curve,
            "tokens_per_second": float(np.median(train_tokens))}


def time_to(curve, threshold):
    """Training seconds when the held-out accuracy first reached `threshold`."""
    return next((t for t, accuracy in curve if accuracy >= threshold), float("nan"))


def main():
    args = common.parse_args(__doc__.splitlines()[0])
    rows = {name: [] for name in SETTINGS}
    for seed in args.seeds:
        for name in SETTINGS:
            rows[name].append(run_setting(name, seed, args))
            print(f"[seed {seed}] {name}: final {rows[name][-1]['final_accuracy']:.4f} "
                  f"after {rows[name][-1]['steps']:.0f} steps", flush=True)
    threshold = 0.9 * min(np.mean([r["final_accuracy"] for r in runs]) for runs in rows.values())
    for runs in rows.values():
        for run in runs:
            run["seconds_to_threshold"] = time_to(run["curve"], threshold)
    table = common.markdown_table(
        ["setting", f"seconds to {100 * threshold:.1f}% MLM acc", "MLM acc at the end",
         "steps in budget", "rows trained (slice: 3,000 documents)"],
        [[name, _seconds_cell([r["seconds_to_threshold"] for r in runs]),
          common.cell([r["final_accuracy"] for r in runs], percent=True),
          common.cell([r["steps"] for r in runs], digits=0),
          f"{np.mean([r['steps'] for r in runs]) * BATCH:,.0f}"]
         for name, runs in rows.items()])
    figure = _plot(rows, threshold)
    notes = (f"Mean ± std over seeds {', '.join(map(str, args.seeds))}; each run had 60 s "
             "of training time on 2 CPU cores (evaluation excluded). Held-out accuracy is "
             "measured on validation documents with fixed masks (packed runs on packed rows "
             "of the same documents). The threshold is 90% of the lowest final mean.")
    common.save("static_dynamic_packing",
                "Experiment 5: static vs dynamic masking, packing on vs off", table,
                {"seeds": args.seeds, "scale": args.scale, "threshold": threshold,
                 "rows": rows}, figure, notes, args.results)


def _seconds_cell(values):
    """mean ± std over the runs that reached the threshold, and how many did."""
    reached = [v for v in values if not np.isnan(v)]
    if not reached:
        return f"not reached (0/{len(values)})"
    text = common.cell(reached, digits=1)
    return text if len(reached) == len(values) else f"{text} ({len(reached)}/{len(values)})"


def _plot(rows, threshold):
    figure, ax = common.subplots(figsize=(7, 4))
    for i, (name, runs) in enumerate(rows.items()):
        for j, run in enumerate(runs):
            seconds, accuracy = zip(*run["curve"])
            ax.plot(seconds, accuracy, color=f"C{i}", alpha=0.8,
                    linestyle="-" if "dynamic" in name else "--",
                    label=name if j == 0 else None)
    ax.axhline(threshold, color="gray", linewidth=0.8)
    ax.set_xlabel("training seconds")
    ax.set_ylabel("held-out MLM accuracy")
    ax.set_title("pre-training on a 3,000-document slice (one line per seed)")
    ax.legend(fontsize=8)
    return figure


if __name__ == "__main__":
    main()
