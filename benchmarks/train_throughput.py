"""MLM training throughput: tfmask `MaskedLMModel` vs keras-hub `BertMaskedLM`.

Same shape for both (vocab 8192, 4 layers, hidden 256, 4 heads, ffn 1024,
seq 128, batch 32, 15% masking with 20 predictions), the same masked batches
(tfmask's RandomTokenMasking output, which both accept), the same AdamW
step written once (`make_step`), alternating timed rounds. Reports tokens/s
(min / median / max over rounds), the per-round ratio, and model-FLOPs
utilisation against a matmul peak measured in the same run.

    python benchmarks/train_throughput.py [--precision float32|mixed_bfloat16|mixed_float16]
                                          [--jit_compile] [--rounds 5] [--steps 10] [--json out]
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfmask.data.masking import RandomTokenMasking  # noqa: E402
from tfmask.losses import per_token_crossentropy  # noqa: E402
from tfmask.models import MaskedLMModel  # noqa: E402

VOCAB, LAYERS, HIDDEN, HEADS, FFN, SEQ, BATCH, PREDICTIONS = 8192, 4, 256, 4, 1024, 128, 32, 20


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
        out = strategy({"token_ids": rows[i * BATCH:(i + 1) * BATCH]}, seed=[seed, i])
        batches.append({k: tf.constant(v) for k, v in out.items()})
    return batches


def tfmask_model(dtype, padding_free=True):
    return MaskedLMModel(VOCAB, LAYERS, HEADS, HIDDEN, FFN, SEQ, dropout=0.1,
                         max_predictions=PREDICTIONS, padding_free=padding_free, dtype=dtype)


def keras_hub_model(dtype):
    backbone = keras_hub.models.BertBackbone(VOCAB, LAYERS, HEADS, HIDDEN, FFN, dropout=0.1,
                                             max_sequence_length=SEQ, dtype=dtype)
    return keras_hub.models.BertMaskedLM(backbone, preprocessor=None)


def tfmask_inputs(batch):
    return {"token_ids": batch["token_ids"], "mask_positions": batch["mask_positions"]}


def keras_hub_inputs(batch):
    return {"token_ids": batch["token_ids"], "padding_mask": batch["padding_mask"],
            "segment_ids": tf.zeros_like(batch["token_ids"]),
            "mask_positions": batch["mask_positions"]}


def make_step(model, to_inputs, precision, jit_compile):
    optimizer = keras.optimizers.AdamW(1e-4)
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=jit_compile or None)
    def step(batch):
        with tf.GradientTape() as tape:
            logits = model(to_inputs(batch), training=True)
            weights = batch["mask_weights"]
            loss = tf.reduce_sum(per_token_crossentropy(batch["mask_ids"], logits) * weights)
            loss = loss / tf.maximum(tf.reduce_sum(weights), 1.0)
            scaled = optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    return step


def matmul_peak(dtype, size=2048, repeats=10):
    """GFLOP/s of a large square matmul in `dtype` (this machine's practical peak)."""
    a = tf.random.normal((size, size), dtype=tf.float32)
    a, b = tf.cast(a, dtype), tf.cast(tf.transpose(a), dtype)
    run = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32)))
    run()
    start = time.perf_counter()
    for _ in range(repeats):
        run().numpy()
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def training_flops_per_step():
    """6 x (non-embedding matmul params) x tokens + attention + the MLM head, fwd+bwd."""
    tokens = BATCH * SEQ
    per_layer = 4 * HIDDEN * HIDDEN + 2 * HIDDEN * FFN
    dense = 6 * LAYERS * per_layer * tokens
    attention = 6 * LAYERS * 2 * BATCH * SEQ * SEQ * HIDDEN
    head = 6 * BATCH * PREDICTIONS * (HIDDEN * HIDDEN + HIDDEN * VOCAB)
    return dense + attention + head


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="float32",
                        choices=["float32", "mixed_bfloat16", "mixed_float16"])
    parser.add_argument("--jit_compile", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="steps per timed round")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    batches = masked_batches(args.steps)
    contenders = {
        "tfmask": make_step(tfmask_model(args.precision, padding_free=not args.jit_compile),
                            tfmask_inputs, args.precision, args.jit_compile),
        "keras_hub": make_step(keras_hub_model(args.precision), keras_hub_inputs, args.precision,
                               args.jit_compile),
    }
    for step in contenders.values():  # trace and warm up
        for batch in batches[:2]:
            step(batch).numpy()
    speeds = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, step in contenders.items():
            start = time.perf_counter()
            for batch in batches:
                loss = step(batch)
            loss.numpy()
            speeds[name].append(len(batches) * BATCH * SEQ / (time.perf_counter() - start))
    peak_dtype = "bfloat16" if args.precision == "mixed_bfloat16" else (
        "float16" if args.precision == "mixed_float16" else "float32")
    peak = matmul_peak(peak_dtype)
    flops = training_flops_per_step() / (BATCH * SEQ)  # per token
    ratio = np.array(speeds["tfmask"]) / np.array(speeds["keras_hub"])
    print(f"MLM training, {args.precision}, jit_compile={args.jit_compile}, "
          f"{args.rounds} rounds x {args.steps} steps of {BATCH}x{SEQ} tokens")
    print(f"{'model':<10} {'tokens/s median':>16} {'min':>8} {'max':>8} {'MFU':>7}")
    results = {"precision": args.precision, "jit_compile": args.jit_compile,
               f"matmul_peak_gflops_{peak_dtype}": peak}
    for name, values in speeds.items():
        med = float(np.median(values))
        mfu = med * flops / 1e9 / peak
        results[name] = {"median": med, "min": min(values), "max": max(values), "mfu": mfu}
        print(f"{name:<10} {med:16,.0f} {min(values):8,.0f} {max(values):8,.0f} {mfu:7.1%}")
    results["ratio"] = {"min": float(ratio.min()), "median": float(np.median(ratio)),
                        "max": float(ratio.max())}
    print(f"tfmask / keras_hub tokens/s: min {ratio.min():.2f} median {np.median(ratio):.2f} "
          f"max {ratio.max():.2f}   (matmul peak {peak:.0f} GFLOP/s {peak_dtype})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
