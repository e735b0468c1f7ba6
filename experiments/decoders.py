"""Experiment 4: Transformer decoder vs masked LSTM decoder, at equal training time.

KJV (English) -> Reina-Valera 1909 (Spanish) verse translation. Both models
share the vocabulary, lengths and batch size and train for the same
wall-clock time (`train.max_seconds`, evaluation excluded). Reported:
teacher-forced next-token accuracy on validation verses, BLEU (sacreBLEU,
greedy decoding) on the first 200 validation verses, and the steps each
model fit in the budget; the plot adds training accuracy over time.

    python -m experiments.decoders   # ~15 min on 2 CPU cores
"""

import os

from experiments import common

MODELS = {"Transformer decoder": "translate_transformer",
          "masked LSTM decoder": "translate_lstm"}


def main():
    args = common.parse_args(__doc__.splitlines()[0])
    rows = {name: [] for name in MODELS}
    curves = {name: [] for name in MODELS}
    for seed in args.seeds:
        for name, config in MODELS.items():
            folder = os.path.join(args.work, "decoders", config, f"seed{seed}")
            results, trainer = common.train(common.base_config(config), folder, seed, args)
            rows[name].append({"token_accuracy": results["eval_accuracy"],
                               "bleu": results["eval_bleu"],
                               "perplexity": results["eval_perplexity"],
                               "steps": results["train_steps"],
                               "train_seconds": results["train_seconds"],
                               "parameters": int(trainer.model.count_params())})
            curves[name].append([(r["train_seconds"], r["train_accuracy"])
                                 for r in common.metrics_log(folder) if "train_accuracy" in r])
            print(f"[seed {seed}] {name}: {rows[name][-1]}", flush=True)
    table = common.markdown_table(
        ["decoder", "parameters", "steps in budget", "token accuracy", "perplexity", "BLEU"],
        [[name, f"{runs[0]['parameters'] / 1e6:.1f}M",
          common.cell([r["steps"] for r in runs], digits=0),
          common.cell([r["token_accuracy"] for r in runs], percent=True),
          common.cell([r["perplexity"] for r in runs], digits=1),
          common.cell([r["bleu"] for r in runs], digits=2)] for name, runs in rows.items()])
    figure = _plot(rows, curves)
    budget = rows[next(iter(rows))][0]["train_seconds"]
    notes = (f"Mean ± std over seeds {', '.join(map(str, args.seeds))}; each run trained for "
             f"{budget:.0f} s of training time on 2 CPU cores (evaluation and decoding "
             "excluded). BLEU: sacreBLEU on greedy translations of 200 validation verses, "
             "references normalised like the hypotheses (lower case, split punctuation).")
    common.save("decoders", "Experiment 4: Transformer vs masked LSTM decoder", table,
                {"seeds": args.seeds, "scale": args.scale, "rows": rows, "curves": curves},
                figure, notes, args.results)


def _plot(rows, curves):
    figure, axes = common.subplots(1, 2, figsize=(10, 3.6))
    for name, runs in curves.items():
        for i, run in enumerate(runs):
            seconds, accuracy = zip(*run)
            axes[0].plot(seconds, accuracy, color="C0" if "Transformer" in name else "C1",
                         alpha=0.8, label=name if i == 0 else None)
    axes[0].set_xlabel("training seconds")
    axes[0].set_ylabel("training token accuracy")
    axes[0].legend(fontsize=8)
    axes[0].set_title("learning curves (one line per seed)")
    names = list(rows)
    means, stds = zip(*(common.mean_std([r["bleu"] for r in rows[n]]) for n in names))
    axes[1].bar(names, means, yerr=stds, capsize=4, color=["C0", "C1"])
    axes[1].set_ylabel("BLEU (200 validation verses)")
    axes[1].set_title("at equal training time")
    return figure


if __name__ == "__main__":
    main()
