"""Keras 3 layers of tfmask, written with `keras.ops` and mask-aware."""

from tfmask.layers.attention import MaskedMultiHeadAttention, MultiHeadAttention
from tfmask.layers.dropout import Dropout
from tfmask.layers.embedding import MaskedEmbedding, sinusoidal_positions
from tfmask.layers.heads import MaskedLMHead, TiedProjection
from tfmask.layers.lstm_decoder import MaskedLSTMDecoder
from tfmask.layers.mask_token import MaskToken
from tfmask.layers.transformer import TransformerDecoderBlock, TransformerEncoderBlock

__all__ = [
    "Dropout",
    "MaskToken",
    "MaskedEmbedding",
    "MaskedLMHead",
    "MaskedLSTMDecoder",
    "MaskedMultiHeadAttention",
    "MultiHeadAttention",
    "TiedProjection",
    "TransformerDecoderBlock",
    "TransformerEncoderBlock",
    "sinusoidal_positions",
]
