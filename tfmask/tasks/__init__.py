"""Model families as tasks: each owns its contract from config to batch to model.

`TASKS` is the one list of families: the config validator, the trainer,
`python -m tfmask.predict` and `python -m tfmask.inspect` all look a family
up here. A user adds one with `TASKS.add("my_family", MyTask)`, where
`MyTask` subclasses `Task` (or a built-in task) and sets `family`.

Example:
>>> TASKS.names()  # doctest: +NORMALIZE_WHITESPACE
['causal_lm', 'classifier', 'dense_classifier', 'masked_autoencoder', 'mlm', 'seq2seq_lstm',
 'seq2seq_transformer']
>>> TASKS.get("classifier").strategies
('none', 'term', 'random', 'whole_word', 'span')
"""

from tfmask.models.registry import Registry
from tfmask.tasks.base import Task, build_tokenizer, load_documents
from tfmask.tasks.causal_lm import CausalLMTask
from tfmask.tasks.classifier import ClassifierTask
from tfmask.tasks.dense import DenseClassifierTask, MaskedAutoencoderTask
from tfmask.tasks.mlm import MaskedLMTask
from tfmask.tasks.seq2seq_lstm import Seq2SeqLSTMTask
from tfmask.tasks.seq2seq_transformer import Seq2SeqTransformerTask

# Every masking strategy a config may name (`masking.strategy`).
STRATEGIES = ("none", "random", "whole_word", "span", "entity", "term", "span_corruption",
              "prompt", "dense")

TASKS = Registry("model family")
for _task in (MaskedLMTask, ClassifierTask, Seq2SeqTransformerTask, Seq2SeqLSTMTask,
              CausalLMTask, DenseClassifierTask, MaskedAutoencoderTask):
    TASKS.add(_task.family, _task)
del _task


def build_task(config):
    """The task of a validated config's family, with its tokenizer."""
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


__all__ = ["TASKS", "STRATEGIES", "Task", "build_task", "build_tokenizer", "load_documents",
           "strategy_table", "CausalLMTask", "ClassifierTask", "DenseClassifierTask",
           "MaskedAutoencoderTask", "MaskedLMTask",
           "Seq2SeqLSTMTask", "Seq2SeqTransformerTask"]
