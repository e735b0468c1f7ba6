"""Experiment 3: does masking a nuisance attribute remove the interference?

`--part tag` (injected attribute): every Rotten Tomatoes snippet gets a
reviewer tag, "( reviewed by anna )" or "( reviewed by peter )". In train
and in the in-distribution test the tag agrees with the label 90% of the
time (anna = fresh); in the shifted test only 10%. A model that leans on
the tag does well in distribution and collapses when the tag flips. The
pretrained MiniLM encoder is fine-tuned under three conditions:

    no masking        the tag is visible
    term masking      TermMasking replaces "anna"/"peter" by [MASK] (train and test)
    random masking    15% of input tokens masked during training (noise)

`--part movies` (the natural version): Rotten Tomatoes split by movie, so
test movies are never seen in training; with and without masking the movie
titles (TermMasking of every title of two or more words) in the text.

    python -m experiments.interference --part tag      # ~14 min on 2 CPU cores
    python -m experiments.interference --part movies   # ~7 min
"""

import json
import os

import numpy as np

from experiments import common

NAMES = {1: "anna", 0: "peter"}  # the tag that agrees with each label
AGREEMENT = {"train": 0.9, "validation": 0.9, "test": 0.1}  # test = the shifted split
TAG_CONDITIONS = {
    "no masking": {"strategy": "none"},
    "term masking (the tag)": {"strategy": "term", "terms": sorted(NAMES.values())},
    "random masking (15%)": {"strategy": "random", "rate": 0.15},
}


def write_tagged_copy(folder, seed=1234):
    """Rotten Tomatoes with reviewer tags, one JSONL file per split."""
    from tfmask import datasets

    rng = np.random.default_rng(seed)
    os.makedirs(folder, exist_ok=True)
    counts = {}
    for split, agreement in AGREEMENT.items():
        rows = []
        for example in datasets.load("rotten_tomatoes", split=split).as_numpy_iterator():
            label = int(example["label"])
            agrees = rng.random() < agreement
            name = NAMES[label] if agrees else NAMES[1 - label]
            text = example["text"].decode("utf-8")
            rows.append({"text": f"{text} ( reviewed by {name} )", "label": label,
                         "agrees": bool(agrees)})
        with open(os.path.join(folder, f"{split}.jsonl"), "w", encoding="utf-8") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
        counts[split] = {"examples": len(rows),
                         "agreement": float(np.mean([r["agrees"] for r in rows]))}
    return counts


def movie_titles():
    """Titles (from the movie ids) of two or more words that occur in some text."""
    from tfmask import datasets

    texts, titles = [], set()
    for example in datasets.load("rotten_tomatoes", split="train+validation+test") \
            .as_numpy_iterator():
        texts.append(example["text"].decode("utf-8").lower())
        title = example["movie_name"].decode("utf-8").replace("_", " ").strip()
        if len(title.split()) >= 2:
            titles.add(title)
    corpus = "\n".join(texts)
    return sorted(t for t in titles if t in corpus)


def finetune(name, values, seed, args):
    folder = os.path.join(args.work, "interference", name.split(" (")[0].replace(" ", "_"),
                          f"seed{seed}")
    results, _ = common.train(values, folder, seed, args)
    return results


def run_tag(args):
    base = common.base_config("finetune_minilm")
    folder = os.path.join(args.work, "interference", "tagged_data")
    counts = write_tagged_copy(folder)
    data = {"name": "file:" + os.path.join(folder, "{split}.jsonl"),
            "dataset_options": {"label_field": "label"}}
    rows = {name: [] for name in TAG_CONDITIONS}
    for seed in args.seeds:
        for name, masking in TAG_CONDITIONS.items():
            values = common.merge(base, data=data, masking=masking,
                                  train={"extra_eval_splits": ["test"]})
            results = finetune(name, values, seed, args)
            rows[name].append({"in_distribution": results["eval_accuracy"],
                               "shifted": results["test_accuracy"]})
            print(f"[seed {seed}] {name}: {rows[name][-1]}", flush=True)
    header = ["condition", "in-distribution acc (tag agrees 90%)",
              "shifted acc (tag agrees 10%)", "gap"]
    table = common.markdown_table(header, [
        [name, common.cell([r["in_distribution"] for r in runs], percent=True),
         common.cell([r["shifted"] for r in runs], percent=True),
         common.cell([r["in_distribution"] - r["shifted"] for r in runs], percent=True)]
        for name, runs in rows.items()])
    figure = _plot(rows, ["in_distribution", "shifted"],
                   "MiniLM on Rotten Tomatoes with a reviewer tag")
    notes = (f"Mean ± std over seeds {', '.join(map(str, args.seeds))}; gap in points. "
             f"Data: {json.dumps(counts)}.")
    common.save("interference_tag", "Experiment 3: an injected nuisance attribute", table,
                {"seeds": args.seeds, "scale": args.scale, "counts": counts, "rows": rows},
                figure, notes, args.results)


def run_movies(args):
    base = common.base_config("finetune_minilm")
    titles = movie_titles()
    data = {"name": "rotten_tomatoes", "dataset_options": {"split_by": "movie_name"}}
    conditions = {"no masking": {"strategy": "none"},
                  "term masking (movie titles)": {"strategy": "term", "terms": titles}}
    rows = {name: [] for name in conditions}
    for seed in args.seeds:
        for name, masking in conditions.items():
            values = common.merge(base, data=data, masking=masking,
                                  train={"extra_eval_splits": ["test"]})
            results = finetune(f"movies {name}", values, seed, args)
            rows[name].append({"validation": results["eval_accuracy"],
                               "test": results["test_accuracy"]})
            print(f"[seed {seed}] {name}: {rows[name][-1]}", flush=True)
    table = common.markdown_table(
        ["condition", "validation acc (unseen movies)", "test acc (unseen movies)"],
        [[name, common.cell([r["validation"] for r in runs], percent=True),
          common.cell([r["test"] for r in runs], percent=True)] for name, runs in rows.items()])
    figure = _plot(rows, ["validation", "test"], "MiniLM on Rotten Tomatoes split by movie")
    notes = (f"Mean ± std over seeds {', '.join(map(str, args.seeds))}. Splits group reviews "
             f"by movie; {len(titles)} titles of two or more words occur in the texts and "
             "are masked in the second row.")
    common.save("interference_movies", "Experiment 3b: masking movie titles", table,
                {"seeds": args.seeds, "scale": args.scale, "titles": len(titles), "rows": rows},
                figure, notes, args.results)


def _plot(rows, keys, title):
    figure, ax = common.subplots(figsize=(7, 3.6))
    common.bar_chart(ax, list(rows), keys,
                     {key: {name: [r[key] for r in runs] for name, runs in rows.items()}
                      for key in keys}, "accuracy", title)
    ax.tick_params(axis="x", labelsize=8)
    return figure


def main():
    args = common.parse_args(__doc__.splitlines()[0], lambda p: p.add_argument(
        "--part", choices=["tag", "movies"], nargs="+", default=["tag", "movies"]))
    if "tag" in args.part:
        run_tag(args)
    if "movies" in args.part:
        run_movies(args)


if __name__ == "__main__":
    main()
