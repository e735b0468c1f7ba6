"""Packing: useful (non-pad) tokens/s of MLM training on a real corpus.

Rows of a variable-length corpus (Rotten Tomatoes snippets by default,
~26 word pieces each) go through tfmask's own training pipeline
(tokenize -> [CLS] doc [SEP] -> 15% random masking, 20 predictions), once
padded to 128 tokens and once packed (first-fit-decreasing, document masks
so no snippet sees another). The model is the MLM benchmark's shape
(vocab 8192 trained on the corpus, 4 layers, hidden 256). Contenders:

    keras_hub padded          BertMaskedLM on the padded rows
    tfmask padded             the same computation in tfmask
    tfmask padding-free       padded rows, token-wise layers on real tokens
    tfmask packed             packed rows + document masks

Batches are materialised before timing, so only training is timed; the
input pipeline has its own benchmark (`benchmarks/mask_pipeline.py`).

    python -m benchmarks.packing [--corpus rotten_tomatoes] [--rounds 5] [--steps 5]
"""

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import train_throughput as mlm  # noqa: E402
from benchmarks.common import print_table, race, ratio_cell, ratios, stats, warmed_runner  # noqa: E402,E501
from tfmask.data import features as F  # noqa: E402
from tfmask.tasks import build_task  # noqa: E402
from tfmask.training.optimizer import FusedAdamW  # noqa: E402


def corpus_batches(corpus, pack, steps):
    """`steps` masked training batches of `corpus` from tfmask's MLM pipeline."""
    task = build_task(mlm.corpus_config(corpus, pack))
    batches = [{k: tf.constant(v) for k, v in batch.items()}
               for batch in task.train.take(steps).as_numpy_iterator()]
    return batches, task.tokenizer.vocabulary_size


def useful_tokens(batch):
    """Real (non-pad) tokens: the pipeline's padding mask, also for packed rows."""
    return int(tf.reduce_sum(tf.cast(batch[F.PADDING_MASK], tf.int32)))


def _runner(step, batches):
    return warmed_runner(step, batches, units=sum(useful_tokens(b) for b in batches))


def run_packing(corpus="rotten_tomatoes", rounds=5, steps=5, precision="float32"):
    keras.utils.set_random_seed(0)
    padded, vocabulary_size = corpus_batches(corpus, False, steps)
    packed, _ = corpus_batches(corpus, True, steps)

    def tfmask(padding_free, is_packed=False):
        model = mlm.tfmask_model(precision, padding_free, vocabulary_size, packed=is_packed)
        keys = [F.TOKEN_IDS, F.PADDING_MASK, F.MASK_POSITIONS] + ([F.SEGMENT_IDS, F.POSITION_IDS]
                                                  if is_packed else [])
        return mlm.make_step(model, lambda b: {k: b[k] for k in keys}, precision, False,
                             optimizer_class=FusedAdamW)

    contenders = {
        "keras_hub padded": _runner(mlm.make_step(mlm.keras_hub_model(precision, vocabulary_size),
                                                  mlm.keras_hub_inputs, precision, False),
                                    padded),
        "tfmask padded": _runner(tfmask(False), padded),
        "tfmask padding-free": _runner(tfmask(True), padded),
        "tfmask packed": _runner(tfmask(False, is_packed=True), packed),
    }
    speeds = race(contenders, rounds)
    cells = mlm.BATCH * mlm.SEQ
    fill = {name: float(np.mean([useful_tokens(b) for b in rows])) / cells
            for name, rows in (("padded", padded), ("packed", packed))}
    results = {"corpus": corpus, "precision": precision, "rounds": rounds,
               "steps_per_round": steps, "real_token_fraction": fill, "contenders": {}}
    for name, values in speeds.items():
        entry = {"useful_tokens_per_second": stats(values)}
        for reference in ("keras_hub padded", "tfmask padded"):
            if name != reference:
                entry[f"ratio_vs_{reference.replace(' ', '_')}"] = ratios(speeds, name, reference)
        results["contenders"][name] = entry
    return results


def print_packing(results):
    rows = []
    for name, entry in results["contenders"].items():
        speed = entry["useful_tokens_per_second"]
        cells = [name, f"{speed['median']:,.0f}", f"{speed['min']:,.0f}", f"{speed['max']:,.0f}"]
        for key in ("ratio_vs_keras_hub_padded", "ratio_vs_tfmask_padded"):
            cells.append(ratio_cell(entry.get(key)))
        rows.append(cells)
    fill = results["real_token_fraction"]
    print_table(
        f"Packing, {results['corpus']}, {results['precision']}: real tokens fill "
        f"{fill['padded']:.0%} of padded rows, {fill['packed']:.0%} of packed rows",
        ["contender", "useful tokens/s", "min", "max", "vs keras-hub padded",
         "vs tfmask padded"], rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="rotten_tomatoes")
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    results = run_packing(args.corpus, args.rounds, args.steps, args.precision)
    print_packing(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
