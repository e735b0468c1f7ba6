"""The main job's training step, with and without each speed change, side by side.

    python -m benchmarks.main_job_step [--rounds 7] [--steps 10]

Five trainers of `configs/rotten_tomatoes_minilm.yaml` (MiniLM, 32 reviews
x 56 tokens, padding-free, `precision: auto`) in one process,
timed over the same number of steps of their own pipelines in alternating
rounds, so each change is measured against the step without it:
  before                Keras' AdamW, the feed-forward GELU in bfloat16
  + fused AdamW         `FusedAdamW` (tfmask.training.optimizer)
  + float32 GELU        the activation computed in float32 for bf16 blocks
                        (`TransformerEncoderBlock._activate`)
  + row lookup          the embedding gathers its rows from the variable
                        instead of copying the table (`embedding.lookup`):
                        the shipped step
  + row-sparse embedding  also `optimizer.sparse_embedding_update: true`
                        (opt-in: 0.6 points less accuracy on this job)
Prints milliseconds per step (min / median / max over rounds) and each
contender's per-round speed-up over `before`. The whole job's wall time
and accuracy come from `benchmarks.main_job`.
"""

import argparse
import contextlib
import json
import os
import tempfile
from unittest import mock

import keras

from benchmarks.common import print_table, race, times_against, times_rows
from tfmask.layers import embedding, transformer
from tfmask.tasks import load_config
from tfmask.training import trainer as trainer_module

CONFIG = os.path.join("configs", "rotten_tomatoes_minilm.yaml")


def bfloat16_activation(self, inner):
    """The feed-forward activation as it was: in the input's dtype."""
    return self.activation(inner)


def dense_keras_adamw(*args, sparse_rows=None, **kwargs):
    """Keras' AdamW where the trainer builds FusedAdamW (dense updates only)."""
    assert not sparse_rows
    return keras.optimizers.AdamW(*args, **kwargs)


def keras_lookup(table, ids):
    """The embedding lookup as it was: Keras' Embedding call."""
    return table(ids)


def runner(folder, steps, keras_adamw=False, bf16_gelu=False, sparse_embedding=False,
           table_copy=False):
    """A trainer of the main job; run() = `steps` training steps. The old
    behaviours are patched in while the trainer is built and its step traced
    (the traced graph keeps them)."""
    with contextlib.ExitStack() as stack:
        if keras_adamw:
            stack.enter_context(mock.patch.object(trainer_module, "FusedAdamW",
                                                  dense_keras_adamw))
        if table_copy:
            stack.enter_context(mock.patch.object(embedding, "lookup", keras_lookup))
        if bf16_gelu:
            stack.enter_context(mock.patch.object(transformer.TransformerEncoderBlock,
                                                  "_activate", bfloat16_activation))
        sparse = ["optimizer.sparse_embedding_update=true"] if sparse_embedding else []
        config = load_config(CONFIG, overrides=["runtime.export=false", "train.steps=100000",
                                                *sparse])
        trainer = trainer_module.Trainer(config, folder, verbose=False)
        iterator = trainer._training_input(0)
        for _ in range(2):  # trace and warm up
            trainer._train_step(iterator, 1)
        trainer.step.numpy()

    def run():
        for _ in range(steps):
            trainer._train_step(iterator, 1)
        trainer.step.numpy()  # wait for the last step
        return steps

    return run, trainer.precision


def run_steps(rounds=7, steps=10):
    keras.utils.set_random_seed(0)
    with tempfile.TemporaryDirectory() as scratch:
        contenders, precision = {}, None
        old = {"table_copy": True}
        for name, options in (("before", {"keras_adamw": True, "bf16_gelu": True, **old}),
                              ("+ fused AdamW", {"bf16_gelu": True, **old}),
                              ("+ float32 GELU", old),
                              ("+ row lookup (shipped)", {}),
                              ("+ row-sparse embedding", {"sparse_embedding": True})):
            contenders[name], precision = runner(os.path.join(scratch, str(len(contenders))),
                                                 steps, **options)
        speeds = race(contenders, rounds)
    return {"precision": precision, "rounds": rounds, "steps": steps,
            "contenders": times_against(speeds, "before")}


def print_steps(result):
    print_table(f"Main job training step ({CONFIG}, {result['precision']}), "
                f"{result['rounds']} alternating rounds of {result['steps']} steps",
                ["step", "ms/step", "min", "max", "speed-up vs before (min-max)"],
                times_rows(result["contenders"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--json")
    args = parser.parse_args()
    result = run_steps(args.rounds, args.steps)
    print_steps(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
