"""Masking and input-pipeline throughput: tfmask vs keras-hub and tensorflow_text.

Every contender masks the same cached ragged batches (256 sequences of up to
128 tokens, words of 1-3 pieces, 15% selection, 80/10/10) inside a
`tf.data` `map` with `num_parallel_calls=AUTOTUNE`; the rounds alternate
between contenders so machine noise hits all alike. tfmask strategies work
on dense, static-shaped batches, so their timing includes the ragged ->
dense conversion. A second table times raw text -> WordPiece tokens ->
masks on a real corpus (`--corpus`, a tfmask dataset name) with the
bert-base-uncased vocabulary. A third times the trainer's own input
(`build_task(config).train`: raw text -> tokens -> masks -> padded or
packed batches of 32 x 128), whose rate `benchmarks.run_all` divides by
the model's to give the pipeline's headroom.

A fourth times the same trainer input on raw Chinese text (`peoples_daily`)
with whole-word masking, with and without the rjieba segmenter
(`data.segmenter`), so the cost of segmenting shows next to the rows above.

    python -m benchmarks.mask_pipeline [--batches 100] [--rounds 3] [--json out.json]
    python -m benchmarks.mask_pipeline --only-chinese   # the Chinese rows alone
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_text as tf_text  # noqa: E402

from tfmask.data import features as F  # noqa: E402
from tfmask.data.masking import RandomTokenMasking, SpanMasking, WholeWordMasking  # noqa: E402

VOCAB, LENGTH, BATCH, PREDICTIONS, RATE = 30522, 128, 256, 20, 0.15
PAD, UNK, CLS, SEP, MASK = 0, 100, 101, 102, 103
SPECIAL = [PAD, UNK, CLS, SEP, MASK]
AUTOTUNE = tf.data.AUTOTUNE


def ragged_batches(num_batches, seed=0):
    """Cached ragged batches of token ids and word ids, [CLS] ... [SEP]."""
    rng = np.random.default_rng(seed)
    ids, words = [], []
    for _ in range(num_batches * BATCH):
        pieces = rng.choice([1, 2, 3], size=LENGTH, p=[0.7, 0.2, 0.1])
        word_of_piece = np.repeat(np.arange(LENGTH), pieces)[: rng.integers(8, LENGTH - 1)]
        ids.append([CLS] + list(rng.integers(1000, VOCAB, word_of_piece.size)) + [SEP])
        words.append([-1] + list(word_of_piece) + [-1])
    data = tf.data.Dataset.from_tensor_slices({
        "token_ids": tf.ragged.constant(ids, dtype=tf.int32),
        "word_ids": tf.ragged.constant(words, dtype=tf.int32),
    }).batch(BATCH, drop_remainder=True).cache()
    for _ in data:  # fill the cache before timing
        pass
    return data


def densify(batch):
    dense = {k: v.to_tensor(default_value=PAD if k == F.TOKEN_IDS else -1, shape=[BATCH, LENGTH])
             for k, v in batch.items()}
    dense[F.PADDING_MASK] = tf.sequence_mask(batch[F.TOKEN_IDS].row_lengths(), LENGTH)
    return dense


def tfmask_contender(cls):
    strategy = cls(VOCAB, MASK, rate=RATE, max_predictions=PREDICTIONS, special_token_ids=SPECIAL)
    seeds = tf.data.Dataset.random(seed=0, rerandomize_each_iteration=True).batch(2)

    def build(data):
        return tf.data.Dataset.zip((data, seeds)).map(
            lambda batch, seed: strategy(densify(batch), seed=seed), num_parallel_calls=AUTOTUNE)

    return build


def keras_hub_contender():
    generator = keras_hub.layers.MaskedLMMaskGenerator(
        vocabulary_size=VOCAB, mask_selection_rate=RATE, mask_token_id=MASK,
        mask_selection_length=PREDICTIONS, unselectable_token_ids=SPECIAL)
    return lambda data: data.map(lambda b: generator(b["token_ids"]), num_parallel_calls=AUTOTUNE)


def tf_text_contender():
    selector = tf_text.RandomItemSelector(
        max_selections_per_batch=PREDICTIONS, selection_rate=RATE, unselectable_ids=SPECIAL)
    chooser = tf_text.MaskValuesChooser(VOCAB, MASK, mask_token_rate=0.8, random_token_rate=0.1)

    def mask(batch):
        ids, positions, labels = tf_text.mask_language_model(batch["token_ids"], selector, chooser)
        return {"token_ids": ids, "mask_positions": positions, "mask_ids": labels}

    return lambda data: data.map(mask, num_parallel_calls=AUTOTUNE)


def sequences_per_second(dataset, num_sequences):
    start = time.perf_counter()
    for _ in dataset:
        pass
    return num_sequences / (time.perf_counter() - start)


def race(contenders, data, num_sequences, rounds):
    speeds = {name: [] for name in contenders}
    pipelines = {name: build(data) for name, build in contenders.items()}
    for name, pipeline in pipelines.items():  # trace once
        for _ in pipeline.take(2):
            pass
    for _ in range(rounds):
        for name, pipeline in pipelines.items():
            speeds[name].append(sequences_per_second(pipeline, num_sequences))
    return speeds


def text_contenders(corpus, batches):
    """Raw text -> tokens -> masks, tfmask vs keras-hub's own preprocessing."""
    from tfmask.data.pipeline import text_pipeline
    from tfmask.datasets import load
    from tfmask.text import WordPieceTokenizer
    from tfmask.tasks.shared import pretrained_directory

    texts = load(corpus, split="train").map(lambda x: {"text": x["text"]})
    texts = texts.take(batches * BATCH).cache()
    for _ in texts:
        pass
    vocab = os.path.join(pretrained_directory("minilm"), "vocab.txt")  # bert-base-uncased
    tokenizer = WordPieceTokenizer(vocab)
    strategy = WholeWordMasking(tokenizer.vocabulary_size, tokenizer.mask_id, rate=RATE,
                                max_predictions=PREDICTIONS,
                                special_token_ids=tokenizer.special_token_ids())
    hub_tokenizer = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=vocab, lowercase=True)
    packer = keras_hub.layers.StartEndPacker(sequence_length=LENGTH, start_value=CLS,
                                             end_value=SEP, pad_value=PAD)
    generator = keras_hub.layers.MaskedLMMaskGenerator(
        vocabulary_size=tokenizer.vocabulary_size, mask_selection_rate=RATE, mask_token_id=MASK,
        mask_selection_length=PREDICTIONS, unselectable_token_ids=SPECIAL)

    def hub_pipeline(data):
        data = data.batch(BATCH, drop_remainder=True)
        return data.map(lambda b: generator(packer(hub_tokenizer(b["text"]))),
                        num_parallel_calls=AUTOTUNE)

    return texts, {
        "tfmask WholeWordMasking": lambda data: text_pipeline(
            data, tokenizer, LENGTH, BATCH, strategies=[strategy]),
        "keras_hub tokenizer+RandomMask": hub_pipeline,
    }


def trainer_input(corpus, pack, strategy="random"):
    """An endless iterator over the trainer's own MLM batches of `corpus`, in
    the training benchmark's shape (32 x 128, vocabulary 8192)."""
    from benchmarks.train_throughput import corpus_config
    from tfmask.tasks import build_task

    iterator = iter(build_task(corpus_config(corpus, pack, strategy)).train)
    for _ in range(5):  # fill the shuffle buffer, start the parallel maps
        next(iterator)
    return iterator


def run_trainer_input(corpus="rotten_tomatoes", batches=40, rounds=3):
    """Sequences/s of the trainer's input pipeline, padded and packed rows."""
    contenders = {}
    for pack in (False, True):
        for strategy in ("random", "whole_word"):
            iterator = trainer_input(corpus, pack, strategy)

            def run(iterator=iterator):
                for _ in range(batches):
                    batch = next(iterator)
                return batches * int(batch[F.TOKEN_IDS].shape[0])

            contenders[f"{'packed' if pack else 'padded'} rows, {strategy}"] = run
    from benchmarks.common import race

    speeds = race(contenders, rounds)
    return {name: {"sequences_per_second": {"median": float(np.median(v)),
                                            "min": float(np.min(v)), "max": float(np.max(v))}}
            for name, v in speeds.items()}


def run_chinese_input(batches=40, rounds=3):
    """Sequences/s of the trainer's input on raw Chinese text (peoples_daily):
    raw text -> rjieba-segmented words -> tokens -> whole-word masks -> padded
    32 x 128 batches, next to the same pipeline with BERT's one word per
    character (no segmenter), so the table shows what segmenting costs."""
    from benchmarks.common import race
    from benchmarks.train_throughput import BATCH as ROWS, PREDICTIONS as PICKS, SEQ
    from tfmask.tasks import build_task
    from tfmask.tasks import config_from_dict

    contenders = {}
    for segmenter in (None, "rjieba"):
        config = config_from_dict({
            "model": {"family": "mlm"},
            "data": {"name": "peoples_daily", "sequence_length": SEQ, "batch_size": ROWS,
                     "vocabulary_size": 6000, "segmenter": segmenter},
            "masking": {"strategy": "whole_word", "max_predictions": PICKS}})
        iterator = iter(build_task(config).train)
        for _ in range(5):  # fill the shuffle buffer, start the parallel maps
            next(iterator)

        def run(iterator=iterator):
            for _ in range(batches):
                next(iterator)
            return batches * ROWS

        name = "rjieba words" if segmenter else "BERT split, one word per character"
        contenders[f"padded rows, whole_word, zh, {name}"] = run
    speeds = race(contenders, rounds)
    return {name: {"sequences_per_second": {"median": float(np.median(v)),
                                            "min": float(np.min(v)), "max": float(np.max(v))}}
            for name, v in speeds.items()}


def report(title, speeds, reference):
    print(f"\n{title}")
    print(f"{'contender':<32} {'seq/s (median)':>15} {'min':>9} {'max':>9} {'vs ' + reference:>16}")
    ref = np.median(speeds[reference])
    rows = {}
    for name, values in speeds.items():
        med = float(np.median(values))
        rows[name] = {"median": med, "min": float(np.min(values)), "max": float(np.max(values)),
                      "ratio_vs_" + reference: med / ref}
        print(f"{name:<32} {med:15,.0f} {np.min(values):9,.0f} {np.max(values):9,.0f} "
              f"{med / ref:15.2f}x")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--corpus", default="rotten_tomatoes",
                        help="tfmask dataset for the raw-text table; '' to skip it")
    parser.add_argument("--chinese", type=int, default=1,
                        help="1: also time raw Chinese text -> segmented whole-word masks")
    parser.add_argument("--only-chinese", action="store_true",
                        help="time only the Chinese whole-word rows")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    if args.only_chinese:
        results = {}
        print_chinese(results)
        return write_json(results, args.json)
    data = ragged_batches(args.batches)
    contenders = {
        "keras_hub MaskedLMMaskGenerator": keras_hub_contender(),
        "tensorflow_text mask_language_model": tf_text_contender(),
        "tfmask RandomTokenMasking": tfmask_contender(RandomTokenMasking),
        "tfmask WholeWordMasking": tfmask_contender(WholeWordMasking),
        "tfmask SpanMasking": tfmask_contender(SpanMasking),
    }
    speeds = race(contenders, data, args.batches * BATCH, args.rounds)
    results = {"masking": report(
        f"Masking {args.batches} batches of {BATCH} x <= {LENGTH} tokens, {args.rounds} rounds",
        speeds, "keras_hub MaskedLMMaskGenerator")}
    if args.corpus:
        texts, text_race = text_contenders(args.corpus, args.batches // 4 or 1)
        count = sum(1 for _ in texts) // BATCH * BATCH
        speeds = race(text_race, texts, count, args.rounds)
        results["text"] = report(f"Raw text ({args.corpus}, {count} documents) -> tokens -> masks",
                                 speeds, "keras_hub tokenizer+RandomMask")
        results["trainer_input"] = run_trainer_input(args.corpus)
        print(f"\nTrainer input ({args.corpus}): raw text -> tokens -> masks -> 32 x 128 batches")
        for name, entry in results["trainer_input"].items():
            print(f"{name:<32} {entry['sequences_per_second']['median']:15,.0f} seq/s")
    if args.chinese:
        print_chinese(results)
    write_json(results, args.json)


def print_chinese(results):
    results["chinese_input"] = run_chinese_input()
    print("\nTrainer input (peoples_daily, raw Chinese text): raw text -> segmented words -> "
          "tokens -> whole-word masks -> 32 x 128 batches")
    for name, entry in results["chinese_input"].items():
        seconds = entry["sequences_per_second"]
        print(f"{name:<62} {seconds['median']:9,.0f} seq/s (min {seconds['min']:,.0f}, "
              f"max {seconds['max']:,.0f})")


def write_json(results, path):
    if path:
        with open(path, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
