"""Experiment 6: what input masking buys on dense data.

Part A, masking as training noise: `dense_classifier`s trained with random
input masking at rates 0 / 0.1 / 0.3 / 0.5 (digits: 2x2 image patches,
exact count per image; breast_cancer: single values), evaluated on the test
split with 0-70% of the inputs missing at test time, filled with the training
mean as in training, under two patterns:
- missing completely at random (single values / pixels), and
- structured: whole 2x2 patches of digits; for breast_cancer the same
  columns missing in every row (a broken sensor), drawn per seed.

Part B, masked-autoencoder pre-training with few labels: a
`masked_autoencoder` on all breast_cancer training rows (no labels), then a
`dense_classifier` from its encoder on 20 / 50 / all labelled rows
(`data.train_examples`, stratified) vs the same classifier from scratch.

    python -m experiments.dense_masking   # ~10 min on 2 CPU cores
"""

import os

import numpy as np
import tensorflow as tf

from experiments import common

RATES = [0.0, 0.1, 0.3, 0.5]
PATCH = 2  # 2x2 patches of the 8x8 digits
MISSING = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
LABELS = [20, 50, 0]  # 0 = every training row
DATASETS = {
    "digits": {"config": "dense_digits", "train_mode": "patch", "structured": "patch"},
    "breast_cancer": {"config": "dense_breast_cancer", "train_mode": "element",
                      "structured": "columns"},
}


def test_arrays(task):
    """The test split's inputs and labels as numpy arrays."""
    data = task.config.data
    from tfmask.tasks import load_documents

    rows = list(load_documents(task.config, "test").as_numpy_iterator())
    return (np.stack([r[data.inputs_key] for r in rows]).astype("float32"),
            np.array([r[data.label_key] for r in rows]))


def missing_inputs(task, inputs, fraction, pattern, seed):
    """A batch of `inputs` with `fraction` of the values missing (filled with
    the training mean, as `FeatureMasking` does in training)."""
    from tfmask.data.masking import FeatureMasking

    batch = {"inputs": tf.constant(inputs)}
    if fraction == 0:
        return batch
    if pattern == "columns":  # the same columns missing in every row
        columns = np.random.default_rng(seed).permutation(inputs.shape[-1])
        observed = np.ones(inputs.shape, bool)
        observed[:, columns[:round(fraction * inputs.shape[-1])]] = False
        batch["observed"] = observed
        masking = FeatureMasking(0.0, fill="mean", fill_values=task.mean, mask_key="observed")
    else:
        mode = {"random": "element", "patch": "patch"}[pattern]
        masking = FeatureMasking(fraction, mode=mode, patch_size=PATCH, fill="mean",
                                 fill_values=task.mean)
    return masking(batch, seed=[seed, 7])


def accuracy(task, model, batch, labels):
    logits = np.asarray(model(task.model_inputs(batch), training=False))
    return float((logits.argmax(-1) == labels).mean())


def part_a(args):
    rows = {}
    for name, spec in DATASETS.items():
        base = common.base_config(spec["config"])
        for rate in RATES:
            for seed in args.seeds:
                masking = ({"strategy": "none"} if rate == 0 else
                           {"strategy": "dense", "dense_mode": spec["train_mode"],
                            "rate": rate, "patch_size": PATCH})
                values = common.merge(base, masking=masking)
                folder = os.path.join(args.work, "dense_masking", name, f"rate{rate}",
                                      f"seed{seed}")
                _, trainer = common.train(values, folder, seed, args)
                inputs, labels = test_arrays(trainer.task)
                for pattern in ("random", spec["structured"]):
                    key = (name, rate, pattern)
                    scores = [accuracy(trainer.task, trainer.model,
                                       missing_inputs(trainer.task, inputs, f, pattern, seed),
                                       labels) for f in MISSING]
                    rows.setdefault(key, []).append(scores)
                print(f"[{name} rate {rate} seed {seed}] random: "
                      f"{[round(s, 3) for s in rows[(name, rate, 'random')][-1]]}", flush=True)
    return rows


def part_b(args):
    rows = {}
    mae = common.base_config("mae_breast_cancer")
    classifier = common.base_config("dense_breast_cancer")
    for seed in args.seeds:
        mae_folder = os.path.join(args.work, "dense_masking", "mae", f"seed{seed}")
        mae_metrics, _ = common.train(mae, mae_folder, seed, args)
        for labels in LABELS:
            for start in ("scratch", "mae"):
                model = dict(classifier["model"], **{"hidden_dim": mae["model"]["hidden_dim"],
                                                     "num_layers": mae["model"]["num_layers"],
                                                     "dropout": mae["model"]["dropout"]})
                if start == "mae":
                    model["pretrained"] = mae_folder
                values = common.merge(classifier, model=model,
                                      data={"train_examples": labels},
                                      masking={"strategy": "dense", "dense_mode": "element",
                                               "rate": 0.1, "fill": "token"})
                folder = os.path.join(args.work, "dense_masking", "few", f"{start}{labels}",
                                      f"seed{seed}")
                metrics, trainer = common.train(values, folder, seed, args)
                inputs, test_labels = test_arrays(trainer.task)
                rows.setdefault((labels, start), []).append(
                    accuracy(trainer.task, trainer.model, {"inputs": tf.constant(inputs)},
                             test_labels))
        print(f"[seed {seed}] mae eval_loss {mae_metrics['eval_loss']:.3f}; "
              f"{ {k: v[-1] for k, v in rows.items()} }", flush=True)
    return rows


def tables_and_figure(a_rows, b_rows, seeds):
    header = ["data", "trained with masking", "test missing"] + [f"{m:.0%}" for m in MISSING]
    table_a = []
    for (name, rate, pattern), scores in a_rows.items():
        scores = np.asarray(scores)
        table_a.append([name, f"{rate:.0%}", pattern] +
                       [common.cell(scores[:, i], percent=True) for i in range(len(MISSING))])
    table_b = [[("all" if n == 0 else n), common.cell(b_rows[(n, "scratch")], percent=True),
                common.cell(b_rows[(n, "mae")], percent=True)] for n in LABELS]
    fig, axes = common.subplots(1, 4, figsize=(20, 4.2))
    patterns = [(name, p) for name, spec in DATASETS.items()
                for p in ("random", spec["structured"])]
    for ax, (name, pattern) in zip(axes, patterns):
        for rate in RATES:
            scores = np.asarray(a_rows[(name, rate, pattern)])
            mean, std = scores.mean(0), scores.std(0, ddof=1) if len(seeds) > 1 else 0 * scores[0]
            ax.errorbar([100 * m for m in MISSING], 100 * mean, yerr=100 * std, capsize=3,
                        label=f"trained with {rate:.0%} masked")
        ax.set_title(f"{name}: {pattern} missing at test")
        ax.set_xlabel("% of inputs missing at test time")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    text = ("Part A: test accuracy (%) when inputs are missing at test time\n\n"
            + common.markdown_table(header, table_a)
            + "\n\nPart B: breast_cancer test accuracy (%) with few labels\n\n"
            + common.markdown_table(["labelled rows", "from scratch",
                                     "from the masked autoencoder"], table_b))
    return text, fig


def main():
    args = common.parse_args(__doc__.splitlines()[0])
    a_rows = part_a(args)
    b_rows = part_b(args)
    table, figure = tables_and_figure(a_rows, b_rows, args.seeds)
    raw = {"seeds": args.seeds, "missing": MISSING,
           "part_a": {f"{k[0]}|{k[1]}|{k[2]}": v for k, v in a_rows.items()},
           "part_b": {f"{k[0]}|{k[1]}": v for k, v in b_rows.items()}}
    notes = (f"Mean ± std over seeds {', '.join(map(str, args.seeds))}; test splits: digits "
             "179 images, breast_cancer 57 rows. Missing values are filled with the training "
             "mean, as the masked training runs fill them. Structured: 2x2 patches (digits, "
             "exact count per image), the same columns in every row (breast_cancer).")
    common.save("dense_masking", "Experiment 6: dense input masking", table, raw, figure,
                notes, args.results)


if __name__ == "__main__":
    main()
