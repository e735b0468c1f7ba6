"""Masked-LM strategies: random tokens, whole words, spans, entities.

All take a dense batch with `token_ids` [B, S] (and `word_ids` /
`entity_ids` where they need units) and return keras-hub's convention:
masked `token_ids`, `mask_positions`, `mask_ids`, `mask_weights`,
`padding_mask`. Shapes stay static: [B, S] and [B, max_predictions].
"""

import math

import tensorflow as tf

from tfmask.data import features as F
from tfmask.data.masking.base import MaskedLMStrategy, dense_int, require_keys, select_units

_MLM_ARGS = """
    Args:
        vocabulary_size: int.
        mask_token_id: int, id of [MASK].
        rate: float, share of maskable tokens to select. Default 0.15.
        mask_ratio: share of selected units replaced by [MASK]. Default 0.8.
        random_ratio: share replaced by a random non-special token. Default
            0.1; the rest is left unchanged (but still predicted).
        max_predictions: int, static length of the prediction outputs; the
            per-row count is min(max_predictions, round(rate * maskable)).
        special_token_ids: ids never selected nor used as random tokens
            (padding and [MASK] are always excluded).
        pad_id: int. Default 0.
        seed: int, seed used when a call passes no seed.
"""


class RandomTokenMasking(MaskedLMStrategy):
    __doc__ = (
        """BERT's masking: exactly round(rate * maskable) random tokens per row.

    Each selected token becomes [MASK] (mask_ratio), a random regular token
    (random_ratio) or stays (the rest), decided per token.
"""
        + _MLM_ARGS
        + """
    Example:
    >>> import tensorflow as tf
    >>> strategy = RandomTokenMasking(vocabulary_size=100, mask_token_id=4,
    ...                               max_predictions=4, special_token_ids=[2, 3])
    >>> out = strategy({"token_ids": tf.constant([[2, 10, 11, 12, 13, 3, 0]]),
    ...                 "padding_mask": tf.constant([[1, 1, 1, 1, 1, 1, 0]]) > 0},
    ...                seed=[1, 2])
    >>> out["mask_positions"].shape, float(tf.reduce_sum(out["mask_weights"]))
    (TensorShape([1, 4]), 1.0)
    """
    )

    def select(self, batch, token_ids, candidates, budget, seed):
        shape = tf.shape(token_ids)
        scores = tf.where(candidates, tf.random.stateless_uniform(shape, seed), -1.0)
        # Pad so top_k works for rows shorter than max_predictions.
        scores = tf.pad(scores, [[0, 0], [0, tf.maximum(0, self.max_predictions - shape[1])]],
                        constant_values=-1.0)
        top = tf.math.top_k(scores, k=self.max_predictions).indices  # [B, P]
        take = tf.range(self.max_predictions)[None, :] < budget[:, None]
        rows = tf.broadcast_to(tf.range(shape[0])[:, None], tf.shape(top))
        indices = tf.stack([rows, top], axis=-1)
        indices = tf.boolean_mask(indices, take)
        selected = tf.scatter_nd(indices, tf.ones(tf.shape(indices)[:1], tf.int32), shape) > 0
        positions = tf.broadcast_to(tf.range(shape[1])[None, :], shape)
        return selected, positions


class WholeWordMasking(MaskedLMStrategy):
    __doc__ = (
        """Selects whole words, all their pieces, until the token budget is spent.

    Needs `word_ids` [B, S] (word index of each token, -1 for special tokens
    and padding), which `tfmask.text.WordPieceTokenizer` takes from its own
    word split, so it works for Chinese (one character = one word, or gold
    words via `tokenize_words`) and for vocabularies without `##`. The
    80/10/10 decision is made per word.
"""
        + _MLM_ARGS
        + """
    Example:
    >>> import tensorflow as tf
    >>> strategy = WholeWordMasking(vocabulary_size=100, mask_token_id=4, rate=0.5)
    >>> out = strategy({"token_ids": tf.constant([[10, 11, 12, 13]]),
    ...                 "padding_mask": tf.ones([1, 4], tf.bool),
    ...                 "word_ids": tf.constant([[0, 0, 1, 1]])}, seed=[0, 1])
    >>> out["mask_weights"].numpy()[0, :3].tolist()
    [1.0, 1.0, 0.0]
    """
    )

    def select(self, batch, token_ids, candidates, budget, seed):
        require_keys(self, batch, F.WORD_IDS)
        word_ids = dense_int(batch[F.WORD_IDS], F.WORD_IDS)
        units = tf.where(candidates, word_ids, -1)
        num_units = tf.shape(token_ids)[1]
        priority = tf.random.stateless_uniform(tf.shape(token_ids), seed)
        return select_units(units, priority, budget, num_units), units


class SpanMasking(MaskedLMStrategy):
    __doc__ = (
        """SpanBERT: contiguous spans of whole words.

    Repeatedly draws a span length in words from a geometric distribution
    (p=0.2) truncated at `max_span_length`=10 (mean 3.8 words, as SpanBERT),
    and a uniformly random starting word; a span is kept when it overlaps no
    earlier span and fits in the row's remaining budget. At most
    `num_proposals` spans are tried per row (default 2 * max_predictions),
    vectorised over the batch. The 80/10/10 decision is made per span.
    Needs `word_ids`.

    Extra args:
        geometric_p: float. Default 0.2.
        max_span_length: int, in words. Default 10.
        num_proposals: int or None.
"""
        + _MLM_ARGS
    )

    def __init__(self, *args, geometric_p=0.2, max_span_length=10, num_proposals=None, **kwargs):
        super().__init__(*args, **kwargs)
        if not 0 < geometric_p < 1:
            raise ValueError(f"geometric_p={geometric_p} must be in (0, 1).")
        if max_span_length < 1:
            raise ValueError(f"max_span_length={max_span_length} must be >= 1.")
        self.geometric_p = geometric_p
        self.max_span_length = max_span_length
        self.num_proposals = num_proposals or 2 * self.max_predictions

    def span_lengths(self, shape, seed):
        """Truncated-geometric lengths in [1, max_span_length] by inverse CDF."""
        q = 1.0 - self.geometric_p
        tail = 1.0 - q**self.max_span_length  # P(L <= max) before truncation
        u = tf.random.stateless_uniform(shape, seed)
        lengths = tf.floor(tf.math.log1p(-u * tail) / math.log(q)) + 1.0
        return tf.cast(tf.clip_by_value(lengths, 1.0, float(self.max_span_length)), tf.int32)

    def select(self, batch, token_ids, candidates, budget, seed):
        require_keys(self, batch, F.WORD_IDS)
        word_ids = dense_int(batch[F.WORD_IDS], F.WORD_IDS)
        valid = candidates & (word_ids >= 0)
        start_seed, length_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        batch_size = tf.shape(token_ids)[0]
        shape = [batch_size, self.num_proposals]
        num_words = tf.reduce_max(tf.where(valid, word_ids, -1), axis=1) + 1  # [B]
        starts = tf.cast(
            tf.random.stateless_uniform(shape, start_seed)
            * tf.cast(num_words, tf.float32)[:, None],
            tf.int32,
        )
        lengths = self.span_lengths(shape, length_seed)
        selected = tf.zeros_like(valid)
        span_ids = tf.fill(tf.shape(token_ids), -1)
        used = tf.zeros([batch_size], tf.int32)
        for i in range(self.num_proposals):
            start, end = starts[:, i : i + 1], starts[:, i : i + 1] + lengths[:, i : i + 1]
            covered = valid & (word_ids >= start) & (word_ids < end)
            count = tf.reduce_sum(tf.cast(covered, tf.int32), axis=1)
            overlaps = tf.reduce_any(covered & selected, axis=1)
            accept = (count > 0) & ~overlaps & (used + count <= budget)
            newly = covered & accept[:, None]
            selected = selected | newly
            span_ids = tf.where(newly, i, span_ids)
            used = used + tf.where(accept, count, 0)
        return selected, span_ids


class EntityMasking(MaskedLMStrategy):
    __doc__ = (
        """Masks whole entities first, then fills the budget with whole words.

    Needs `entity_ids` [B, S] (index of the entity each token belongs to, -1
    outside entities; `tfmask.data.pipeline` derives it from BIO tags) and
    `word_ids`. Each entity is a candidate with probability
    `entity_probability`; candidate entities are chosen first, in random
    order, as long as they fit in the budget (ERNIE-style knowledge
    masking); the rest of the budget goes to random whole words and
    remaining entities. An entity is never partly masked.

    Extra args:
        entity_probability: float in [0, 1]. Default 1.0 (every entity first).
"""
        + _MLM_ARGS
    )

    def __init__(self, *args, entity_probability=1.0, **kwargs):
        super().__init__(*args, **kwargs)
        if not 0 <= entity_probability <= 1:
            raise ValueError(f"entity_probability={entity_probability} must be in [0, 1].")
        self.entity_probability = entity_probability

    def select(self, batch, token_ids, candidates, budget, seed):
        require_keys(self, batch, F.WORD_IDS, F.ENTITY_IDS)
        word_ids = dense_int(batch[F.WORD_IDS], F.WORD_IDS)
        entity_ids = dense_int(batch[F.ENTITY_IDS], F.ENTITY_IDS)
        length = tf.shape(token_ids)[1]
        # Units: entity e -> e; a word w outside entities -> length + w.
        units = tf.where(entity_ids >= 0, entity_ids, length + word_ids)
        units = tf.where(candidates & (word_ids >= 0), units, -1)
        num_units = 2 * length
        draw_seed, first_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        shape = [tf.shape(token_ids)[0], num_units]
        order = tf.random.stateless_uniform(shape, draw_seed)
        is_entity = tf.range(num_units)[None, :] < length
        first = is_entity & (tf.random.stateless_uniform(shape, first_seed) < self.entity_probability)
        priority = tf.where(first, order, 1.0 + order)
        return select_units(units, priority, budget, num_units), units
