"""The main job written as a keras-hub user would write it: the peer of `main_job`.

    python -m benchmarks.keras_hub_main_job --output_dir runs/main_job/keras_hub_s0 [--seed 0]

The recipe of `configs/rotten_tomatoes_minilm.yaml`, with keras-hub's own
pieces and `model.fit`: `BertBackbone.from_preset` and
`BertTextClassifierPreprocessor` on the prepared MiniLM folder (a Hugging
Face BERT folder, which keras-hub converts itself), mean pooling over the
padding mask, dropout 0.1, a 2-way softmax head; AdamW at 1e-4, weight
decay 0.01 (not on biases and layer-norm weights), epsilon 1e-6, global
clipping at 1.0,
20 warm-up steps then linear decay to 0; 534 steps of 32 reviews x 56
tokens in `mixed_bfloat16`, the reviews shuffled every epoch; `fit`'s own
`jit_compile="auto"`, the default a user gets (it resolves to no XLA for
this model; `peer.json` records it). Two differences come with keras-hub
and `fit` themselves, and are kept because they are what its user gets:
`BertBackbone` always uses the tanh GELU (MiniLM asks for the exact one,
which tfmask uses), and the embedding gradients reach the optimizer as one
slice per token occurrence, so the clipping norm and Adam's second moment
see squares of slices where tfmask sums each token's slices first.

Writes what `benchmarks.main_job.read_run` reads, in the layout of a tfmask
run folder: `metrics.jsonl` (records with `step`, `train_seconds` and, every
`--eval_every` steps and at the end, `eval_accuracy` on all 1,275
validation reviews) and `peer.json` (precision, XLA, trainable parameters).
`train_seconds` counts the training steps only, as tfmask's trainer does:
the time between `fit`'s batch-begin and batch-end callbacks (tracing and
compiling the first step included), evaluation excluded.
"""

import argparse
import json
import os
import time

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from tfmask import datasets
from tfmask.datasets.assets import minilm_directory

STEPS, BATCH, SEQUENCE_LENGTH, EVAL_BATCH = 534, 32, 56, 128
PEAK, WARMUP, WEIGHT_DECAY, EPSILON, DROPOUT = 1e-4, 20, 0.01, 1e-6, 0.1


class LinearWarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to `peak`, then linear decay to 0 at `total` steps."""

    def __init__(self, peak, warmup, total):
        self.peak, self.warmup, self.total = peak, warmup, total

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        rise = keras.ops.minimum(1.0, step / self.warmup)
        fall = keras.ops.clip((self.total - step) / (self.total - self.warmup), 0.0, 1.0)
        return self.peak * rise * fall

    def get_config(self):
        return {"peak": self.peak, "warmup": self.warmup, "total": self.total}


def reviews(split):
    """(preprocessed features, label) pairs of one split, unbatched."""
    examples = datasets.load("rotten_tomatoes", split=split)
    return examples.map(lambda e: (e["text"], e["label"]))


def build_model(directory):
    backbone = keras_hub.models.BertBackbone.from_preset(directory)
    backbone.get_layer("pooled_dense").trainable = False  # [CLS] pooler: unused by mean pooling
    inputs = backbone.input
    hidden = backbone(inputs)["sequence_output"]
    mask = keras.ops.expand_dims(keras.ops.cast(inputs["padding_mask"], hidden.dtype), -1)
    pooled = keras.ops.sum(hidden * mask, axis=1) / keras.ops.sum(mask, axis=1)
    pooled = keras.layers.Dropout(DROPOUT)(pooled)
    logits = keras.layers.Dense(2, dtype="float32")(pooled)
    return keras.Model(inputs, logits)


class Timer(keras.callbacks.Callback):
    """Training seconds between batch begin and end; evaluation every `every` steps."""

    def __init__(self, validation, every, steps, path):
        super().__init__()
        self.validation, self.every, self.steps, self.path = validation, every, steps, path
        self.seconds, self.step = 0.0, 0

    def on_train_batch_begin(self, batch, logs=None):
        self.began = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.seconds += time.perf_counter() - self.began
        self.step += 1
        record = {"step": self.step, "train_seconds": self.seconds,
                  "train_loss": float(logs["loss"])}
        if self.step % self.every == 0 or self.step == self.steps:
            _, accuracy = self.model.evaluate(self.validation, verbose=0)
            self.model.reset_metrics()  # evaluate shares fit's loss and accuracy trackers
            record["eval_accuracy"] = float(accuracy)
            print(f"step {self.step}: {self.seconds:.1f} s training, "
                  f"validation accuracy {accuracy:.4f}", flush=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval_every", type=int, default=175)
    parser.add_argument("--steps", type=int, default=STEPS, help="fewer for a quick try")
    args = parser.parse_args()
    os.makedirs(args.output_dir, exist_ok=True)
    metrics = os.path.join(args.output_dir, "metrics.jsonl")
    if os.path.exists(metrics):
        os.remove(metrics)
    keras.utils.set_random_seed(args.seed)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    directory = minilm_directory()
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        keras_hub.models.BertTokenizer.from_preset(directory), sequence_length=SEQUENCE_LENGTH)
    model = build_model(directory)
    optimizer = keras.optimizers.AdamW(LinearWarmupDecay(PEAK, WARMUP, args.steps),
                                       weight_decay=WEIGHT_DECAY, epsilon=EPSILON,
                                       global_clipnorm=1.0)
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    train = (reviews("train").shuffle(20_000, seed=args.seed).repeat()
             .batch(BATCH).map(preprocessor, num_parallel_calls=tf.data.AUTOTUNE)
             .prefetch(tf.data.AUTOTUNE))
    validation = (reviews("validation").batch(EVAL_BATCH)
                  .map(preprocessor, num_parallel_calls=tf.data.AUTOTUNE).cache())
    model.fit(train, steps_per_epoch=args.steps, epochs=1, verbose=0,
              callbacks=[Timer(validation, args.eval_every, args.steps, metrics)])
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    with open(os.path.join(args.output_dir, "peer.json"), "w") as f:
        json.dump({"precision": "mixed_bfloat16", "jit_compile": bool(model.jit_compile),
                   "trainable_parameters": trainable}, f)


if __name__ == "__main__":
    main()
