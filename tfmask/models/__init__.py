"""Model builders: masked-LM encoder, classifier, causal LM, token classifier,
Transformer and LSTM seq2seq, dense classifier and masked autoencoder, each a functional Keras
model rebuilt from its hyper-parameters."""

from tfmask.models.dense import DenseClassifierModel, DenseEncoder, MaskedAutoencoderModel
from tfmask.models.mlm import ClassifierModel, MaskedLMModel, TokenClassifierModel
from tfmask.models.seq2seq import CausalLMModel, Seq2SeqLSTMModel, Seq2SeqTransformerModel

__all__ = [
    "CausalLMModel",
    "ClassifierModel",
    "DenseClassifierModel",
    "DenseEncoder",
    "MaskedAutoencoderModel",
    "MaskedLMModel",
    "Seq2SeqLSTMModel",
    "Seq2SeqTransformerModel",
    "TokenClassifierModel",
]
