"""Forward+backward time of a 4-layer encoder: tfmask vs keras-hub, one run.

Both stacks get the same shape (hidden 256, 4 heads, ffn 1024, seq 128,
batch 32, dropout 0.1), the same padded inputs and padding mask, run as one
`tf.function` each (forward, loss, gradients), alternating so that machine
noise hits both alike. Prints min / median / max ms per step and the ratio.

`--attention_paths` instead times tfmask's two attention paths against each
other: the fused `keras.ops.dot_product_attention` path and the einsum +
masked-softmax path, with attention-probability dropout off (dropout on the
residual branches stays 0.1), since active attention dropout always takes the
einsum path.

    python -m benchmarks.encoder_step [--steps 20] [--precision float32]
    python -m benchmarks.encoder_step --attention_paths
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

from tfmask.layers import TransformerEncoderBlock  # noqa: E402

LAYERS, HIDDEN, HEADS, FFN, SEQ, BATCH = 4, 256, 4, 1024, 128, 32


def build_stack(block_factory, dtype):
    inputs = keras.Input((SEQ, HIDDEN), dtype="float32")
    mask = keras.Input((SEQ,), dtype="bool")
    x = inputs
    for _ in range(LAYERS):
        x = block_factory(dtype)(x, padding_mask=mask)
    return keras.Model([inputs, mask], x)


def tfmask_block(dtype):
    return TransformerEncoderBlock(HEADS, FFN, dropout=0.1, activation="gelu", dtype=dtype)


def tfmask_block_on_path(fused):
    def factory(dtype):
        block = TransformerEncoderBlock(HEADS, FFN, dropout=0.1, attention_dropout=0.0,
                                        activation="gelu", dtype=dtype)
        block.build((None, SEQ, HIDDEN))
        block._self_attention.fused = fused  # the path under test
        return block

    return factory


def keras_hub_block(dtype):
    return keras_hub.layers.TransformerEncoder(FFN, HEADS, dropout=0.1, activation="gelu", dtype=dtype)


def make_step(model, jit_compile):
    @tf.function(jit_compile=jit_compile)
    def step(x, mask):
        with tf.GradientTape() as tape:
            y = model([x, mask], training=True)
            loss = tf.reduce_mean(tf.square(tf.cast(y, "float32")))
        return tape.gradient(loss, model.trainable_variables)

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--precision", default="float32",
                        choices=["float32", "mixed_bfloat16", "mixed_float16"])
    parser.add_argument("--jit_compile", action="store_true")
    parser.add_argument("--attention_paths", action="store_true",
                        help="time tfmask's fused vs einsum attention instead")
    parser.add_argument("--json", default=None, help="write results here")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(BATCH, SEQ, HIDDEN)).astype("float32"))
    lengths = rng.integers(SEQ // 4, SEQ + 1, size=BATCH)
    mask = tf.constant(np.arange(SEQ)[None] < lengths[:, None])

    if args.attention_paths:
        factories = {"fused": tfmask_block_on_path(True), "einsum": tfmask_block_on_path(False)}
    else:
        factories = {"tfmask": tfmask_block, "keras_hub": keras_hub_block}
    steps = {name: make_step(build_stack(factory, args.precision), args.jit_compile)
             for name, factory in factories.items()}
    times = {name: [] for name in steps}
    for name, step in steps.items():  # trace + warm up
        for _ in range(3):
            step(x, mask)
    for _ in range(args.steps):
        for name, step in steps.items():
            start = time.perf_counter()
            grads = step(x, mask)
            _ = [g.numpy() for g in grads[:1]]
            times[name].append((time.perf_counter() - start) * 1000)

    results = {"shape": dict(layers=LAYERS, hidden=HIDDEN, heads=HEADS, ffn=FFN, seq=SEQ,
                             batch=BATCH), "precision": args.precision,
               "jit_compile": args.jit_compile}
    print(f"{'stack':<10} {'min ms':>8} {'median':>8} {'max':>8}")
    for name, ms in times.items():
        ms = np.array(ms)
        results[name] = {"min": ms.min(), "median": float(np.median(ms)), "max": ms.max()}
        print(f"{name:<10} {ms.min():8.1f} {np.median(ms):8.1f} {ms.max():8.1f}")
    slow, fast = ("einsum", "fused") if args.attention_paths else ("keras_hub", "tfmask")
    ratio = np.array(times[slow]) / np.array(times[fast])
    results["speedup"] = {"min": ratio.min(), "median": float(np.median(ratio)), "max": ratio.max()}
    print(f"{slow} / {fast} time ratio (>1 = {fast} faster): min {ratio.min():.2f} "
          f"median {np.median(ratio):.2f} max {ratio.max():.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, default=float)


if __name__ == "__main__":
    main()
