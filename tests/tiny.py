"""The one tiny run size the tests share: a one-layer model, short sequences,
a few steps. `tiny_config(family, **sections)` gives a config dict,
`tiny_sets(...)` the same as `--set section.key=value` strings for the command
line; `tests/conftest.py` offers `tiny_config` as a fixture too.

A test that needs a different size passes it as an override and says why
next to it (e.g. the training runs that must learn need more steps).

Example:
>>> tiny_config("classifier", train={"steps": 2})["train"]
{'steps': 2, 'log_every': 2, 'eval_batches': 1}
>>> tiny_config("seq2seq_lstm")["model"]["lstm_units"]
16
>>> "data.sequence_length" in tiny_config("dense_classifier")["data"]
False
>>> tiny_sets("mlm", data={"pack": True})[:2]
['model.family=mlm', 'model.num_layers=1']
"""

import copy

import yaml

# Every model size key any family reads; a family takes the ones it reads.
SIZES = {"num_layers": 1, "decoder_num_layers": 1, "num_heads": 2, "hidden_dim": 32,
         "intermediate_dim": 64, "embedding_dim": 16, "lstm_units": 16}
TINY = {
    "model": {"num_layers": 1, "num_heads": 2, "hidden_dim": 32, "intermediate_dim": 64,
              "dropout": 0.0},
    "data": {"sequence_length": 32, "batch_size": 8, "eval_batch_size": 8,
             "vocabulary_size": 1000},
    "optimizer": {"learning_rate": 3e-3},
    "train": {"steps": 4, "log_every": 2, "eval_batches": 1},
    "runtime": {"export": False},
}
# Text settings a dense family refuses (it reads arrays, not text).
TEXT_ONLY = ("sequence_length", "vocabulary_size")
# Per family: the data it trains on by default and the sizes only it reads.
FAMILIES = {
    "mlm": {"data": {"name": "austen"}},
    "classifier": {"data": {"name": "rotten_tomatoes"}},
    "causal_lm": {"data": {"name": "austen"}},
    "seq2seq_transformer": {"data": {"name": "kjv_rv1909", "target_length": 16}},
    "seq2seq_lstm": {"model": {"embedding_dim": SIZES["embedding_dim"],
                               "lstm_units": SIZES["lstm_units"]},
                     "data": {"name": "kjv_rv1909", "target_length": 16}},
    "dense_classifier": {"model": {"num_classes": 10},
                         "data": {"name": "digits", "inputs_key": "image"}},
    "masked_autoencoder": {"data": {"name": "breast_cancer"}},
    "token_classifier": {"data": {"name": "wnut16", "words_key": "words"}},
}
DENSE = ("dense_classifier", "masked_autoencoder")


def tiny_config(family=None, **sections):
    """A tiny config dict of `family` (None: the sizes only, no family or data
    name); each keyword is a section whose keys update the tiny ones."""
    values = copy.deepcopy(TINY)
    if family is not None:
        for section, updates in FAMILIES[family].items():
            values[section] = {**values[section], **copy.deepcopy(updates)}
        values["model"] = {"family": family, **values["model"]}
        if family in DENSE:
            values["data"] = {k: v for k, v in values["data"].items() if k not in TEXT_ONLY}
    for section, updates in sections.items():
        values[section] = {**values.get(section, {}), **copy.deepcopy(updates)}
    return values


def as_sets(values):
    """A nested config dict -> ["section.key=value", ...] (YAML values)."""
    return [f"{section}.{key}={_yaml(value)}"
            for section, keys in values.items() for key, value in keys.items()]


def tiny_sets(family=None, **sections):
    """`tiny_config(...)` as `--set` values for `python -m tfmask.train`."""
    return as_sets(tiny_config(family, **sections))


def _yaml(value):
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix(
        "\n...").removesuffix(" ...")
