"""The optimizer update alone: Keras' `AdamW` vs tfmask's `FusedAdamW`.

    python -m benchmarks.optimizer_update [--rounds 5] [--updates 10]

The main job's variables (the MiniLM classifier: 6 layers x 384, a 30522 x
384 word embedding, 22.6M parameters in float32) with dense gradients, the
learning-rate schedule, weight decay with tfmask's exclusions, and global
clipping as the trainer does it, in one `tf.function`, alternating rounds
in one process. Prints milliseconds per update (min / median / max) and the
per-round ratio; `run_all` includes it.
"""

import argparse
import json

import keras
import numpy as np
import tensorflow as tf

from benchmarks.common import print_table, race, times_against, times_rows
from tfmask.models import ClassifierModel
from tfmask.training.optimizer import FusedAdamW
from tfmask.training.schedule import WarmupDecay
from tfmask.training.trainer import clip_global_gradients


def minilm_classifier():
    return ClassifierModel(num_classes=2, vocabulary_size=30522, num_layers=6, num_heads=12,
                           hidden_dim=384, intermediate_dim=1536, max_length=512,
                           pooling="mean")


def update_runner(optimizer_class, variables, updates):
    optimizer = optimizer_class(learning_rate=WarmupDecay(1e-4, 534, 20), weight_decay=0.01)
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    optimizer.build(variables)
    rng = np.random.default_rng(0)
    gradients = [tf.constant(rng.normal(0, 1e-3, v.shape).astype("float32")) for v in variables]

    @tf.function
    def update():
        optimizer.apply(clip_global_gradients(gradients, 1.0), variables)
        return optimizer.iterations

    update().numpy()  # trace

    def run():
        for _ in range(updates):
            done = update()
        done.numpy()
        return updates

    return run


def run_update(rounds=5, updates=10):
    keras.utils.set_random_seed(0)
    variables = minilm_classifier().trainable_variables
    parameters = int(sum(np.prod(v.shape) for v in variables))
    contenders = {"keras AdamW": update_runner(keras.optimizers.AdamW, variables, updates),
                  "tfmask FusedAdamW": update_runner(FusedAdamW, variables, updates)}
    speeds = race(contenders, rounds)
    return {"parameters": parameters, "variables": len(variables), "rounds": rounds,
            "contenders": times_against(speeds, "keras AdamW")}


def print_update(result):
    print_table(f"Optimizer update of the main job's {result['parameters'] / 1e6:.1f}M parameters "
                f"({result['variables']} variables, float32, clipping + AdamW + weight decay), "
                f"{result['rounds']} rounds",
                ["optimizer", "ms/update", "min", "max", "speed-up (min-max)"],
                times_rows(result["contenders"], digits=1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--updates", type=int, default=10)
    parser.add_argument("--json")
    args = parser.parse_args()
    result = run_update(args.rounds, args.updates)
    print_update(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
