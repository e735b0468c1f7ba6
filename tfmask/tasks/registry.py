"""The one list of model families, and a config resolved by its family.

`TASKS` is the one list of families: the config loader, the trainer,
`python -m tfmask.predict` and `python -m tfmask.inspect` all look a family
up here. A user adds one with `TASKS.add("my_family", MyTask)`, where
`MyTask` subclasses `Task` (or a built-in task) and sets `family`.

A config is read in these steps, each with one owner:

    tfmask.config.parse_config      schema: unknown keys, wrong types
    tfmask.config.check_settings    checks that hold for every family
    Task.resolve, Task.check        the family's defaults and refusals
    Task.step_memory                what one training step needs, against
                                    this machine's memory (tfmask.tasks.memory)

`load_config` and `config_from_dict` run them all (the memory check only
with `check_data`: a trained run predicts on any machine).

Example:
>>> config = config_from_dict({"model": {"family": "mlm"}, "data": {"name": "austen"}})
>>> config.model.num_layers, config.masking.strategy, config.masking.rate
(4, 'random', 0.15)
>>> config_from_dict({"model": {"family": "classifier"},
...                   "data": {"name": "rotten_tomatoes"}}).masking.strategy
'none'
"""

from tfmask.config import (
    check_choice,
    check_settings,
    expand_user_paths,
    parse_config,
    read_config_values,
)
from tfmask.models.registry import Registry
from tfmask.tasks.memory import check_step_memory
from tfmask.tasks.causal_lm import CausalLMTask
from tfmask.tasks.classifier import ClassifierTask
from tfmask.tasks.dense import DenseClassifierTask, MaskedAutoencoderTask
from tfmask.tasks.mlm import MaskedLMTask
from tfmask.tasks.seq2seq_lstm import Seq2SeqLSTMTask
from tfmask.tasks.seq2seq_transformer import Seq2SeqTransformerTask
from tfmask.tasks.token_classifier import TokenClassifierTask

# Every masking strategy a config may name (`masking.strategy`).
STRATEGIES = ("none", "random", "whole_word", "span", "entity", "term", "span_corruption",
              "prompt", "dense")

TASKS = Registry("model family")
for _task in (MaskedLMTask, ClassifierTask, Seq2SeqTransformerTask, Seq2SeqLSTMTask,
              CausalLMTask, DenseClassifierTask, MaskedAutoencoderTask, TokenClassifierTask):
    TASKS.add(_task.family, _task)
del _task


def resolve_config(config, check_data=True):
    """A parsed config checked and completed by its family's task; raises
    ConfigError naming the key and the fix. `check_data=False` reads no
    data and no pretrained folder (a trained run predicts without them)."""
    check_choice("model.family", config.model.family, TASKS.names())
    if config.masking.strategy is not None:
        check_choice("masking.strategy", config.masking.strategy, STRATEGIES)
    config = expand_user_paths(config)
    check_settings(config, check_data)
    task = TASKS.get(config.model.family)
    config = task.resolve(config, check_data)
    task.check(config)
    if check_data:  # a run to train here (predict reads a trained one on any machine)
        check_step_memory(config, task.step_memory(config))
    return config


def config_from_dict(values, check_data=True):
    """Nested dicts (parsed YAML) -> a resolved `Config`."""
    return resolve_config(parse_config(values), check_data)


def load_config(path, overrides=(), check_data=True):
    """Reads a YAML config, applies `--set` overrides, resolves it."""
    return config_from_dict(read_config_values(path, overrides), check_data)


def build_task(config):
    """The task of a resolved config's family, with its tokenizer."""
    return TASKS.get(config.model.family)(config)


def strategy_table():
    """Markdown table of which family supports which masking strategy."""
    names = TASKS.names()
    lines = ["| masking.strategy | " + " | ".join(f"`{n}`" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for strategy in STRATEGIES:
        cells = []
        for name in names:
            task = TASKS.get(name)
            mark = "default" if strategy == task.default_strategy else "yes"
            cells.append(mark if strategy in task.strategies else "refused")
        lines.append(f"| `{strategy}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)
