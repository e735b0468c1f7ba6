"""Masking strategies: callables `batch dict -> batch dict`, seeded, static shapes.

| strategy              | what it masks                                   | needs |
|-----------------------|-------------------------------------------------|-------|
| `RandomTokenMasking`  | BERT 80/10/10 on random tokens                   | token_ids |
| `WholeWordMasking`    | all pieces of random words                       | + word_ids |
| `SpanMasking`         | SpanBERT spans of whole words (geometric length) | + word_ids |
| `EntityMasking`       | whole entities first, then words                 | + word_ids, entity_ids |
| `SpanCorruption`      | T5 sentinels; encoder/decoder features           | token_ids |
| `TermMasking`         | nuisance terms / regex words (mask/random/drop)  | token_ids, word_ids, words |
| `KeyTermUnits`        | key terms as units for `EntityMasking` (MLM)     | word_ids, words |
| `FeatureMasking`      | dense [B, F], [B, T, F], [B, H, W, C]: element, feature, timestep, span, patch; data / NaN masks | inputs (+ mask_key) |
| `PromptLossMasking`   | loss weights 0 on prompt tokens                  | token_ids |
"""

from tfmask.data.masking.base import MaskedLMStrategy, MaskingStrategy, select_units
from tfmask.data.masking.dense import FeatureMasking
from tfmask.data.masking.mlm import EntityMasking, RandomTokenMasking, SpanMasking, WholeWordMasking
from tfmask.data.masking.prompt import PromptLossMasking
from tfmask.data.masking.span_corruption import (
    SpanCorruption,
    random_spans_noise_mask,
    span_corruption_lengths,
)
from tfmask.data.masking.terms import KeyTermUnits, TermMasking, TermMatcher

__all__ = [
    "EntityMasking",
    "FeatureMasking",
    "KeyTermUnits",
    "MaskedLMStrategy",
    "MaskingStrategy",
    "PromptLossMasking",
    "RandomTokenMasking",
    "SpanCorruption",
    "SpanMasking",
    "TermMasking",
    "TermMatcher",
    "WholeWordMasking",
    "random_spans_noise_mask",
    "select_units",
    "span_corruption_lengths",
]
