"""Text to token ids and word ids: WordPiece tokenizer, Chinese word segmentation and
vocabulary training."""

from tfmask.text.segmentation import SEGMENTERS, Segmenter
from tfmask.text.special_tokens import SpecialTokens
from tfmask.text.tokenizer import WordPieceTokenizer, add_special_tokens
from tfmask.text.vocabulary import train_wordpiece_vocabulary

__all__ = [
    "SEGMENTERS",
    "Segmenter",
    "SpecialTokens",
    "WordPieceTokenizer",
    "add_special_tokens",
    "train_wordpiece_vocabulary",
]
