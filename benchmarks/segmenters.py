"""Chinese word segmenters for whole-word masking: speed and accuracy.

Each segmenter cuts the raw text of People's Daily (`peoples_daily`, test
split, 1,899 paragraphs, ~186k characters) and is scored against the
corpus's gold words: precision, recall and F1 over word spans (character
offsets; a predicted word counts only if both its ends match a gold word's).
Speed is characters per second in one process, `--rounds` passes over the
split, alternating between contenders, reported as the median (min-max);
loading the dictionary or model is timed apart.

Contenders (each is skipped, with the reason printed, when not installed):
  rjieba            jieba-rs (Rust) through its Python binding
  jieba             the pure-Python original
  spacy-pkuseg      spaCy's fork of pkuseg (a CRF); its wheel ships no model
                    and downloads one from GitHub on first use, so pass
                    `--pkuseg-model DIR`, or `--pkuseg-train N` to train one
                    here on N paragraphs of the *train* split (in-domain: its
                    F1 is then an upper bound, not comparable)
  tfmask + rjieba   `tfmask.text.Segmenter`, the segmenter inside `tf.data`:
                    rjieba on CJK runs, BERT's split elsewhere, batches of 256
  BERT split        the baseline without a segmenter: one word per character

    python -m benchmarks.segmenters [--rounds 3] [--pkuseg-train 3000] [--json out.json]
"""

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


from benchmarks.common import print_table, race, stats  # noqa: E402


def gold_corpus(split="test"):
    """(texts, gold words per text) of People's Daily."""
    from tfmask import datasets

    texts, words = [], []
    for example in datasets.load("peoples_daily", split=split).as_numpy_iterator():
        texts.append(example["text"].decode("utf-8"))
        words.append([w.decode("utf-8") for w in example["words"]])
    return texts, words


def spans(text, words):
    """Character spans (start, end) of `words`, found in order in `text`;
    whitespace-only words (some segmenters return spaces) are skipped.

    >>> sorted(spans("我是 程序员", ["我", "是", " ", "程序员"]))
    [(0, 1), (1, 2), (3, 6)]
    """
    found, position = set(), 0
    for word in words:
        if not word.strip():
            continue
        start = text.find(word, position)
        if start < 0:
            raise ValueError(f"word {word!r} is not in the text after offset {position}")
        found.add((start, start + len(word)))
        position = start + len(word)
    return found


def score(texts, gold, predicted):
    """Span precision, recall and F1 of predicted words against gold words."""
    hits = guessed = wanted = 0
    for text, gold_words, words in zip(texts, gold, predicted):
        truth, guess = spans(text, gold_words), spans(text, words)
        hits += len(truth & guess)
        guessed += len(guess)
        wanted += len(truth)
    precision, recall = hits / guessed, hits / wanted
    return {"precision": precision, "recall": recall,
            "f1": 2 * precision * recall / (precision + recall)}


def python_cutters(args):
    """name -> (cut one text -> words, load seconds, note); skipped ones print why."""
    cutters = {}
    try:
        start = time.perf_counter()
        import rjieba

        rjieba.cut("预热")
        cutters["rjieba"] = (rjieba.cut, time.perf_counter() - start, "")
    except ImportError as error:
        print(f"skipped rjieba: {error}")
    try:
        import logging

        import jieba

        jieba.setLogLevel(logging.WARNING)
        start = time.perf_counter()
        jieba.initialize()
        cutters["jieba"] = (jieba.lcut, time.perf_counter() - start, "")
    except ImportError as error:
        print(f"skipped jieba: {error}")
    pkuseg = pkuseg_cutter(args)
    if pkuseg:
        cutters["spacy-pkuseg"] = pkuseg
    return cutters


def pkuseg_cutter(args):
    try:
        import spacy_pkuseg
    except ImportError as error:
        print(f"skipped spacy-pkuseg: {error}")
        return None
    note = ""
    model = args.pkuseg_model
    if not model and args.pkuseg_train:
        model = tempfile.mkdtemp(prefix="pkuseg_")
        train_texts, train_words = gold_corpus("train")
        with open(os.path.join(model, "train.txt"), "w", encoding="utf-8") as f:
            for words in train_words[: args.pkuseg_train]:
                f.write(" ".join(w for w in words if w.strip()) + "\n")
        with open(os.path.join(model, "validation.txt"), "w", encoding="utf-8") as f:
            for words in gold_corpus("validation")[1][:300]:
                f.write(" ".join(w for w in words if w.strip()) + "\n")
        spacy_pkuseg.train(os.path.join(model, "train.txt"),
                           os.path.join(model, "validation.txt"), model,
                           train_iter=args.pkuseg_iterations)
        note = (f"trained here on {args.pkuseg_train} train paragraphs, "
                f"{args.pkuseg_iterations} iterations (in-domain)")
    if not model:
        print("skipped spacy-pkuseg: its wheel ships no model and fetches one from GitHub on "
              "first use; pass --pkuseg-model DIR or --pkuseg-train N.")
        return None
    start = time.perf_counter()
    segmenter = spacy_pkuseg.pkuseg(model_name=model)
    return segmenter.cut, time.perf_counter() - start, note


def python_contender(cut, texts, out):
    def run():
        out[:] = [cut(text) for text in texts]
        return sum(map(len, texts))

    return run


def tf_contender(segment, texts, out, batch=256):
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices(texts).batch(batch).map(segment)
    for _ in data.take(1):  # trace once
        pass

    def run():
        words = []
        for batch_words in data:
            words += [[w.decode("utf-8") for w in row] for row in batch_words.to_list()]
        out[:] = words
        return sum(map(len, texts))

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pkuseg-model", default="", help="a spacy-pkuseg model folder")
    parser.add_argument("--pkuseg-train", type=int, default=0,
                        help="train a spacy-pkuseg model on this many train paragraphs")
    parser.add_argument("--pkuseg-iterations", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    texts, gold = gold_corpus("test")
    characters = sum(map(len, texts))
    cutters = python_cutters(args)
    outputs = {name: [] for name in cutters}
    contenders = {name: python_contender(cut, texts, outputs[name])
                  for name, (cut, _, _) in cutters.items()}
    loads = {name: load for name, (_, load, _) in cutters.items()}
    notes = {name: note for name, (_, _, note) in cutters.items()}

    from tfmask.text import Segmenter
    from tensorflow_text.python.ops.bert_tokenizer import BasicTokenizer

    segmenter = Segmenter("rjieba")
    loads["tfmask + rjieba"] = loads["BERT split"] = None  # TensorFlow, already loaded
    outputs["tfmask + rjieba"], outputs["BERT split"] = [], []
    contenders["tfmask + rjieba"] = tf_contender(segmenter, texts, outputs["tfmask + rjieba"])
    contenders["BERT split"] = tf_contender(BasicTokenizer().tokenize, texts,
                                            outputs["BERT split"])
    notes["tfmask + rjieba"] = "rjieba on CJK runs, BERT's split elsewhere; tf.data, 256/batch"
    notes["BERT split"] = "no segmenter: every CJK character is a word"

    speeds = race(contenders, args.rounds)
    results = {}
    rows = []
    for name, values in speeds.items():
        results[name] = {"characters_per_second": stats(values), "load_seconds": loads[name],
                         **score(texts, gold, outputs[name]), "note": notes[name]}
        entry = results[name]
        rows.append([name, f"{entry['characters_per_second']['median']:,.0f}",
                     f"{entry['characters_per_second']['min']:,.0f}",
                     f"{entry['characters_per_second']['max']:,.0f}",
                     "-" if entry["load_seconds"] is None else f"{entry['load_seconds']:.2f}",
                     f"{entry['precision']:.3f}",
                     f"{entry['recall']:.3f}", f"{entry['f1']:.3f}", entry["note"]])
    print_table(f"Chinese word segmentation, peoples_daily test ({len(texts):,} paragraphs, "
                f"{characters:,} characters), {args.rounds} rounds, one process",
                ["segmenter", "chars/s", "min", "max", "load s", "P", "R", "F1", "note"], rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
