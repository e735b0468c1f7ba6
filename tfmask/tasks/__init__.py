"""Model families as tasks: each owns its contract from config to batch to model.

`TASKS` (`tfmask.tasks.registry`) is the one list of families; a config is
loaded and resolved by its family with `load_config` / `config_from_dict`.

Example:
>>> TASKS.names()  # doctest: +NORMALIZE_WHITESPACE
['causal_lm', 'classifier', 'dense_classifier', 'masked_autoencoder', 'mlm', 'seq2seq_lstm',
 'seq2seq_transformer', 'token_classifier']
>>> TASKS.get("classifier").strategies
('none', 'term', 'random', 'whole_word', 'span')
"""

from tfmask.tasks.base import Task, build_tokenizer, load_documents
from tfmask.tasks.causal_lm import CausalLMTask
from tfmask.tasks.classifier import ClassifierTask
from tfmask.tasks.dense import DenseClassifierTask, MaskedAutoencoderTask
from tfmask.tasks.mlm import MaskedLMTask
from tfmask.tasks.registry import (
    STRATEGIES,
    TASKS,
    build_task,
    config_from_dict,
    load_config,
    resolve_config,
    strategy_table,
)
from tfmask.tasks.seq2seq_lstm import Seq2SeqLSTMTask
from tfmask.tasks.seq2seq_transformer import Seq2SeqTransformerTask
from tfmask.tasks.token_classifier import TokenClassifierTask

__all__ = ["TASKS", "STRATEGIES", "Task", "build_task", "build_tokenizer", "config_from_dict",
           "load_config", "load_documents", "resolve_config", "strategy_table",
           "CausalLMTask", "ClassifierTask", "DenseClassifierTask", "MaskedAutoencoderTask",
           "MaskedLMTask", "Seq2SeqLSTMTask", "Seq2SeqTransformerTask", "TokenClassifierTask"]
