"""Pre-train -> measure -> fine-tune, shared by experiments 1 and 2.

A pre-training run is measured on held-out text twice: with its own
masking (what it was trained for) and with one common yardstick, random
15% masking with the same fixed masks for every model (evaluation seed 0),
so that runs trained with different strategies or rates compare.
"""

import os

from experiments import common


def pretrain(base_name, masking, folder, seed, args):
    """Pre-trains `base_name` with `masking` into `folder`/pretrain.

    Returns (run folder, metrics: own_* and random15_* accuracy and
    perplexity, pretrain_seconds).
    """
    base = common.base_config(base_name)
    run = os.path.join(folder, "pretrain")
    results, _ = common.train(common.merge(base, masking=masking), run, seed, args)
    yardstick = common.evaluate(
        common.merge(base, model={"pretrained": run}, data={"vocabulary": "pretrained"},
                     masking={"strategy": "random", "rate": 0.15,
                              "max_predictions": base["masking"]["max_predictions"]},
                     train={"seed": 0}),
        os.path.join(folder, "yardstick"), args)
    return run, {"own_accuracy": results["eval_accuracy"],
                 "own_perplexity": results["eval_perplexity"],
                 "random15_accuracy": yardstick["eval_accuracy"],
                 "random15_perplexity": yardstick["eval_perplexity"],
                 "pretrain_seconds": results["train_seconds"]}


def finetune(base_name, run, folder, seed, args, vocabulary=None):
    """Fine-tunes `base_name` from the pre-training `run` (None: from scratch,
    with `vocabulary`); returns validation and test accuracy."""
    base = common.base_config(base_name)
    if run:
        values = common.merge(base, model={"pretrained": run}, data={"vocabulary": "pretrained"})
    else:
        values = common.merge(base, data={"vocabulary": vocabulary})
    results, _ = common.train(values, os.path.join(folder, "finetune"), seed, args)
    return {"validation_accuracy": results["eval_accuracy"],
            "test_accuracy": results["test_accuracy"]}


def pretrained_rows(rows):
    """The names of `rows` that have pre-training metrics."""
    return [name for name, runs in rows.items() if runs and "own_accuracy" in runs[0]]


def table_and_figure(rows, task, pre_corpus, label):
    """The shared table (MLM metrics + downstream accuracy) and a 2-panel plot."""
    pretrained = pretrained_rows(rows)
    header = [label, "MLM acc, own masks", "MLM acc, random 15%", "MLM ppl, random 15%",
              f"{task} val acc", f"{task} test acc"]
    table_rows = []
    for name, runs in rows.items():
        get = lambda key: [r[key] for r in runs]  # noqa: E731
        mlm = name in pretrained
        table_rows.append([
            name,
            common.cell(get("own_accuracy"), percent=True) if mlm else "-",
            common.cell(get("random15_accuracy"), percent=True) if mlm else "-",
            common.cell(get("random15_perplexity"), digits=1) if mlm else "-",
            common.cell(get("validation_accuracy"), percent=True),
            common.cell(get("test_accuracy"), percent=True)])
    figure, axes = common.subplots(1, 2, figsize=(10, 3.6))
    common.bar_chart(axes[0], pretrained, ["own masks", "random 15%"],
                     {"own masks": {n: [r["own_accuracy"] for r in rows[n]] for n in pretrained},
                      "random 15%": {n: [r["random15_accuracy"] for r in rows[n]]
                                     for n in pretrained}},
                     "held-out MLM accuracy", f"pre-training on {pre_corpus}")
    short = {name: name.split(" (")[0] for name in rows}
    common.bar_chart(axes[1], list(short.values()), ["test accuracy"],
                     {"test accuracy": {short[n]: [r["test_accuracy"] for r in runs]
                                        for n, runs in rows.items()}},
                     "accuracy", f"fine-tuned on {task}")
    low = min(min(r["test_accuracy"] for r in runs) for runs in rows.values())
    axes[1].set_ylim(max(0.0, low - 0.05), None)
    for ax in axes:
        ax.tick_params(axis="x", labelsize=8)
    return common.markdown_table(header, table_rows), figure
