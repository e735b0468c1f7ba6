"""MLM training throughput: tfmask `MaskedLMModel` vs keras-hub `BertMaskedLM`.

Same shape for all (vocab 8192, 4 layers, hidden 256, 4 heads, ffn 1024,
seq 128, batch 32, dropout 0.1, 15% masking with 20 predictions), the same
masked batches (tfmask's RandomTokenMasking output, which both accept; rows
hold 64-128 real tokens, 25% padding on average), the same AdamW step
written once (`make_step`): Keras' `AdamW` for keras-hub, the optimizer
tfmask's trainer uses (`FusedAdamW`: the same update, one kernel per
variable) for tfmask; alternating timed rounds. tfmask runs twice:
padded (the same computation as keras-hub) and padding-free (its default:
token-wise layers skip padding; under XLA one compilation per bucket of
real-token counts, `tfmask.training.token_buckets`). Reports tokens/s (min /
median / max over rounds), the per-round ratio to keras-hub, and model-FLOPs
utilisation against a matmul peak measured in the same run.

    python -m benchmarks.train_throughput [--precision float32 mixed_bfloat16]
        [--jit_compile off on] [--rounds 5] [--steps 5] [--json out.json]
"""

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.common import (  # noqa: E402
    matmul_peak,
    print_table,
    race,
    ratio_cell,
    ratios,
    stats,
    warmed_runner,
)
from tfmask.data.masking import RandomTokenMasking  # noqa: E402
from tfmask.losses import per_token_crossentropy  # noqa: E402
from tfmask.models import MaskedLMModel  # noqa: E402
from tfmask.training.optimizer import FusedAdamW  # noqa: E402
from tfmask.training.token_buckets import TokenBuckets  # noqa: E402

VOCAB, LAYERS, HIDDEN, HEADS, FFN, SEQ, BATCH, PREDICTIONS = 8192, 4, 256, 4, 1024, 128, 32, 20
MFU_NOTE = ("MFU: useful FLOPs (real tokens, attention over real lengths, the head at real "
            "predictions) per second over the matmul peak measured in the same run.")
PEAK_DTYPE = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}


def corpus_config(corpus, pack, strategy="random"):
    """A tfmask `mlm` config of this benchmark's shape over a real corpus."""
    from tfmask.tasks import config_from_dict

    return config_from_dict({
        "model": {"family": "mlm"},
        "data": {"name": corpus, "sequence_length": SEQ, "batch_size": BATCH,
                 "vocabulary_size": VOCAB, "pack": pack},
        "masking": {"strategy": strategy, "max_predictions": PREDICTIONS},
    })


def masked_batches(count, seed=0):
    """Real-length-like rows ([CLS] tokens [SEP] + padding), masked once."""
    rng = np.random.default_rng(seed)
    rows = np.zeros((count * BATCH, SEQ), np.int32)
    for row in rows:
        n = rng.integers(SEQ // 2, SEQ + 1)
        row[:n] = rng.integers(10, VOCAB, n)
        row[0], row[n - 1] = 2, 3
    strategy = RandomTokenMasking(VOCAB, 4, max_predictions=PREDICTIONS, special_token_ids=range(10))
    batches = []
    for i in range(count):
        part = rows[i * BATCH:(i + 1) * BATCH]
        out = strategy({"token_ids": part, "padding_mask": part != 0}, seed=[seed, i])
        batches.append({k: tf.constant(v) for k, v in out.items()})
    return batches


def tfmask_model(dtype, padding_free=True, vocabulary_size=VOCAB, packed=False):
    return MaskedLMModel(vocabulary_size, LAYERS, HEADS, HIDDEN, FFN, SEQ, dropout=0.1,
                         max_predictions=PREDICTIONS, packed=packed, padding_free=padding_free,
                         dtype=dtype)


def keras_hub_model(dtype, vocabulary_size=VOCAB):
    backbone = keras_hub.models.BertBackbone(vocabulary_size, LAYERS, HEADS, HIDDEN, FFN, dropout=0.1,
                                             max_sequence_length=SEQ, dtype=dtype)
    # The pooler is not used by the MLM head: no gradient, so no update.
    backbone.pooled_dense.trainable = False
    return keras_hub.models.BertMaskedLM(backbone, preprocessor=None)


def tfmask_inputs(batch):
    return {"token_ids": batch["token_ids"], "padding_mask": batch["padding_mask"],
            "mask_positions": batch["mask_positions"]}


def keras_hub_inputs(batch):
    return {"token_ids": batch["token_ids"], "padding_mask": batch["padding_mask"],
            "segment_ids": tf.zeros_like(batch["token_ids"]),
            "mask_positions": batch["mask_positions"]}


def make_step(model, to_inputs, precision, jit_compile, token_buckets=False,
              optimizer_class=keras.optimizers.AdamW):
    """One AdamW step (weighted masked-LM loss), the same for every contender.

    `token_buckets`: XLA with one compilation per bucket of real-token counts
    (`tfmask.training.token_buckets`), what the trainer does for a
    padding-free model under `jit_compile`."""
    optimizer = optimizer_class(1e-4)
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    variables = model.trainable_variables
    optimizer.build(variables)

    def step(batch):
        with tf.GradientTape() as tape:
            logits = model(to_inputs(batch), training=True)
            weights = batch["mask_weights"]
            loss = tf.reduce_sum(per_token_crossentropy(batch["mask_ids"], logits) * weights)
            loss = loss / tf.maximum(tf.reduce_sum(weights), 1.0)
            scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, variables)
        optimizer.apply(grads, variables)
        return loss

    if token_buckets:
        return TokenBuckets(lambda batch: batch["padding_mask"], BATCH * SEQ, function=step)
    return tf.function(step, jit_compile=jit_compile or None)


def useful_training_flops(batches):
    """Training FLOPs (fwd + bwd = 3 x 2 per multiply-add) on real tokens only:
    the encoder's matmuls per real token, attention over each row's real
    length, the MLM head at the real predictions. Embedding lookups are free."""
    per_token = 6 * LAYERS * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * FFN)
    flops = 0.0
    for batch in batches:
        lengths = np.sum(np.asarray(batch["padding_mask"]), axis=1).astype(np.float64)
        predictions = float(np.sum(np.asarray(batch["mask_weights"])))
        flops += per_token * lengths.sum()
        flops += 6 * LAYERS * 2 * HIDDEN * np.sum(lengths**2)  # scores and context
        flops += 6 * predictions * (HIDDEN * HIDDEN + HIDDEN * VOCAB)
    return flops


def contenders(precision, jit_compile, batches):
    """{name: run one round} for one precision / XLA setting."""
    models = {"keras_hub": (keras_hub_model(precision), keras_hub_inputs),
              "tfmask padded": (tfmask_model(precision, padding_free=False), tfmask_inputs),
              "tfmask padding-free": (tfmask_model(precision, padding_free=True),
                                      tfmask_inputs)}
    runners = {}
    for name, (model, to_inputs) in models.items():
        bucketed = jit_compile and name == "tfmask padding-free"
        optimizer_class = keras.optimizers.AdamW if name == "keras_hub" else FusedAdamW
        step = make_step(model, to_inputs, precision, jit_compile, token_buckets=bucketed,
                         optimizer_class=optimizer_class)
        # Token buckets compile on first use: warm every batch, not just two.
        runners[name] = warmed_runner(step, batches, units=len(batches) * BATCH * SEQ,
                                      warm=len(batches) if bucketed else 2)
    return runners


def run_mlm(precision="float32", jit_compile=False, rounds=5, steps=5, peak=None):
    """Times every contender; returns a JSON-able dict of the results."""
    keras.utils.set_random_seed(0)
    batches = masked_batches(steps)
    speeds = race(contenders(precision, jit_compile, batches), rounds)
    peak = peak or matmul_peak(PEAK_DTYPE[precision])
    # Useful FLOPs per padded position of a round: MFU counts real work only.
    flops = useful_training_flops(batches) / (len(batches) * BATCH * SEQ)
    padding = 1 - float(np.mean([np.mean(b["padding_mask"]) for b in batches]))
    results = {"precision": precision, "jit_compile": jit_compile, "rounds": rounds,
               "steps_per_round": steps, "padding_fraction": padding,
               "matmul_peak_gflops": peak, "contenders": {}}
    for name, values in speeds.items():
        entry = {"tokens_per_second": stats(values),
                 "mfu": stats(values)["median"] * flops / 1e9 / peak}
        if name != "keras_hub":
            entry["ratio_vs_keras_hub"] = ratios(speeds, name, "keras_hub")
        results["contenders"][name] = entry
    return results


def print_mlm(results):
    rows = []
    for name, entry in results["contenders"].items():
        speed, ratio = entry["tokens_per_second"], entry.get("ratio_vs_keras_hub")
        rows.append([name, f"{speed['median']:,.0f}", f"{speed['min']:,.0f}",
                     f"{speed['max']:,.0f}", f"{entry['mfu']:.0%}",
                     ratio_cell(ratio)])
    print_table(
        f"MLM training, {results['precision']}, jit_compile={results['jit_compile']}: "
        f"{results['rounds']} rounds x {results['steps_per_round']} steps of {BATCH}x{SEQ}, "
        f"{results['padding_fraction']:.0%} padding, matmul peak "
        f"{results['matmul_peak_gflops']:.0f} GFLOP/s",
        ["contender", "tokens/s", "min", "max", "MFU*", "vs keras-hub (min-max)"], rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", nargs="+", default=["float32"],
                        choices=["float32", "mixed_bfloat16", "mixed_float16"])
    parser.add_argument("--jit_compile", nargs="+", default=["off"], choices=["off", "on"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5, help="steps per timed round")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    results = []
    for precision in args.precision:
        for jit in args.jit_compile:
            results.append(run_mlm(precision, jit == "on", args.rounds, args.steps))
            print_mlm(results[-1])
    print(f"\n* {MFU_NOTE}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
