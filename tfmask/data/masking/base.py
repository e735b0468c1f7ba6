"""Shared machinery of the masking strategies: seeds, budgets, unit selection,
BERT's 80/10/10 replacement and keras-hub's output convention.

Everything here is vectorised over a dense batch [B, S] and uses stateless
random ops driven by an explicit seed, so a strategy inside `tf.data` is
reproducible from a seed and re-drawn every epoch (see
`tfmask.data.pipeline.mask_dataset`).
"""

import abc

import numpy as np
import tensorflow as tf

from tfmask.data import features as F


def split_seed(seed, count):
    """`count` independent stateless seeds [count, 2] from one seed [2]."""
    return tf.random.experimental.stateless_split(seed, num=count)


def regular_token_ids(vocabulary_size, special_token_ids):
    """The ids a random replacement may use: every id but the special ones."""
    special = set(int(i) for i in special_token_ids)
    ids = np.array([i for i in range(vocabulary_size) if i not in special], np.int32)
    if ids.size == 0:
        raise ValueError("Every token id is special; no id is left for random replacement.")
    return ids


def check_fraction(name, value, allow_zero=True):
    low_ok = value >= 0 if allow_zero else value > 0
    if not (low_ok and value <= 1):
        bound = "[0, 1]" if allow_zero else "(0, 1]"
        raise ValueError(f"{name}={value} must be in {bound}.")


class MaskingStrategy(abc.ABC):
    """A callable `batch dict -> batch dict`, reproducible from a seed.

    `strategy(batch, seed=[a, b])` is deterministic in the seed (pipelines
    pass seeds, see `mask_dataset`). Without one, the call takes the next
    seed of the instance's own stream, as Keras' `SeedGenerator` does: the
    stream depends on the constructor's `seed` only, so two strategies built
    with the same seed draw the same masks, call for call, whatever else
    the process draws (`seed=None`: a non-deterministic stream).
    """

    def __init__(self, seed=None):
        self.seed = seed
        self._generator = None

    def __call__(self, batch, seed=None):
        if seed is None:
            seed = self._next_seed()
        seed = tf.cast(tf.convert_to_tensor(seed), tf.int64)
        return self.apply(dict(batch), seed)

    def _next_seed(self):
        """The next [2] seed of this instance's stream (eager or traced)."""
        if getattr(self, "_generator", None) is None:
            with tf.init_scope():  # the state variable outlives any trace
                self._generator = (
                    tf.random.Generator.from_seed(self.seed) if self.seed is not None
                    else tf.random.Generator.from_non_deterministic_state())
        return self._generator.make_seeds(1)[:, 0]

    def resources(self):
        """Lookup tables and other TF resources the strategy's ops read; an
        export that serves the strategy must track them."""
        return []

    @abc.abstractmethod
    def apply(self, batch, seed):
        """Returns the masked batch; `seed` is an int64 [2] tensor."""


def require_keys(strategy, batch, *keys):
    missing = [k for k in keys if k not in batch]
    if missing:
        raise ValueError(
            f"{type(strategy).__name__} needs the batch keys {missing} (has "
            f"{sorted(batch)}); tokenize with tfmask.data.pipeline.tokenize_batch, "
            "which provides token_ids, word_ids and padding_mask (pack does too)."
        )


def dense_int(tensor, name, rank=2):
    if isinstance(tensor, tf.RaggedTensor):
        raise ValueError(
            f"{name} is ragged; masking runs on dense, padded batches "
            "(pad to a fixed sequence length first, e.g. tokenize_batch)."
        )
    tensor = tf.convert_to_tensor(tensor)
    if tensor.shape.rank != rank:
        raise ValueError(f"{name} must have rank {rank}, got shape {tensor.shape}.")
    return tf.cast(tensor, tf.int32)


def select_units(unit_ids, priority, budget, num_units, passes=3):
    """Chooses whole units (words, entities, ...) until a token budget is spent.

    Args:
        unit_ids: int32 [B, S], unit of each token, -1 for tokens that cannot
            be chosen. Tokens of a unit need not be adjacent.
        priority: float32 [B, num_units]; lower is chosen first.
        budget: int32 [B], the most tokens to choose per row.
        num_units: static int, an upper bound on unit ids.
        passes: after each greedy pass over the units in priority order, the
            next pass retries the units that still fit in what is left; this
            approximates BERT's "skip a word that does not fit and go on".

    Returns: bool [B, S], True at the tokens of every chosen unit. A unit is
    chosen entirely or not at all, and no row exceeds its budget.
    """
    batch = tf.shape(unit_ids)[0]
    valid = unit_ids >= 0
    safe_units = tf.where(valid, unit_ids, 0)
    dump = batch * num_units  # segment for invalid tokens, dropped after
    flat_units = tf.where(
        valid, tf.range(batch)[:, None] * num_units + safe_units, dump
    )
    unit_length = tf.math.unsorted_segment_sum(
        tf.cast(valid, tf.int32), flat_units, dump + 1
    )[:-1]
    unit_length = tf.reshape(unit_length, [batch, num_units])
    token_priority = tf.gather(priority, safe_units, batch_dims=1)
    chosen = tf.zeros_like(unit_length, tf.bool)
    remaining = budget
    for _ in range(passes):
        eligible_unit = (
            (unit_length > 0) & ~chosen & (unit_length <= remaining[:, None])
        )
        eligible = valid & tf.gather(eligible_unit, safe_units, batch_dims=1)
        key = tf.where(eligible, token_priority, 2.0 + token_priority)
        order = tf.argsort(key, axis=1, stable=True)  # a unit's tokens are adjacent
        sorted_eligible = tf.gather(eligible, order, batch_dims=1)
        running = tf.cumsum(tf.cast(sorted_eligible, tf.int32), axis=1)
        sorted_units = tf.where(
            sorted_eligible, tf.gather(flat_units, order, batch_dims=1), dump
        )
        # Tokens used up to and including each unit's last token.
        unit_end = tf.math.unsorted_segment_max(running, sorted_units, dump + 1)[:-1]
        unit_end = tf.reshape(unit_end, [batch, num_units])
        take = eligible_unit & (unit_end <= remaining[:, None])
        chosen = chosen | take
        remaining = remaining - tf.reduce_sum(tf.where(take, unit_length, 0), axis=1)
    return valid & tf.gather(chosen, safe_units, batch_dims=1)


class MaskedLMStrategy(MaskingStrategy):
    """Base of the MLM strategies: candidates, budget, 80/10/10, outputs.

    Subclasses implement `select(batch, token_ids, candidates, budget, seed)`
    returning (selected [B, S] bool, unit_ids [B, S]); tokens of one unit
    share the 80/10/10 decision (a whole word or span is either all [MASK],
    all random or all kept, as in SpanBERT).
    """

    def __init__(
        self,
        vocabulary_size,
        mask_token_id,
        rate=0.15,
        mask_ratio=0.8,
        random_ratio=0.1,
        max_predictions=20,
        special_token_ids=(),
        pad_id=0,
        seed=None,
    ):
        super().__init__(seed)
        check_fraction("rate", rate, allow_zero=False)
        check_fraction("mask_ratio", mask_ratio)
        check_fraction("random_ratio", random_ratio)
        if mask_ratio + random_ratio > 1:
            raise ValueError(
                f"mask_ratio + random_ratio = {mask_ratio + random_ratio} > 1; "
                "the rest (1 - both) is the share kept unchanged."
            )
        if max_predictions < 1:
            raise ValueError(f"max_predictions={max_predictions} must be >= 1.")
        if not 0 <= mask_token_id < vocabulary_size:
            raise ValueError(
                f"mask_token_id={mask_token_id} is outside the vocabulary "
                f"[0, {vocabulary_size})."
            )
        self.vocabulary_size = vocabulary_size
        self.mask_token_id = mask_token_id
        self.rate = rate
        self.mask_ratio = mask_ratio
        self.random_ratio = random_ratio
        self.max_predictions = max_predictions
        self.special_token_ids = tuple(int(i) for i in special_token_ids)
        self.pad_id = pad_id
        unselectable = set(self.special_token_ids) | {pad_id, mask_token_id}
        self._unselectable = tf.constant(sorted(unselectable), tf.int32)
        self._regular_ids = tf.constant(regular_token_ids(vocabulary_size, unselectable))

    def candidates(self, token_ids, padding_mask):
        """True at tokens that may be masked: real (`padding_mask`), not special."""
        is_special = tf.reduce_any(
            token_ids[:, :, None] == self._unselectable[None, None, :], axis=-1
        )
        return tf.cast(padding_mask, tf.bool) & ~is_special

    def budget(self, candidates):
        """Tokens to mask per row: round(rate * candidates), >= 1, <= max_predictions."""
        count = tf.reduce_sum(tf.cast(candidates, tf.float32), axis=1)
        wanted = tf.maximum(tf.floor(self.rate * count + 0.5), 1.0)
        wanted = tf.where(count > 0, wanted, 0.0)
        return tf.cast(tf.minimum(wanted, float(self.max_predictions)), tf.int32)

    @abc.abstractmethod
    def select(self, batch, token_ids, candidates, budget, seed):
        """Returns (selected [B, S] bool, unit_ids [B, S] int32)."""

    def apply(self, batch, seed):
        require_keys(self, batch, F.TOKEN_IDS, F.PADDING_MASK)
        token_ids = dense_int(batch[F.TOKEN_IDS], F.TOKEN_IDS)
        select_seed, replace_seed, random_seed = tf.unstack(split_seed(seed, 3))
        candidates = self.candidates(token_ids, batch[F.PADDING_MASK])
        selected, unit_ids = self.select(
            batch, token_ids, candidates, self.budget(candidates), select_seed
        )
        selected = selected & candidates
        batch[F.TOKEN_IDS] = self.replace(token_ids, selected, unit_ids, replace_seed, random_seed)
        batch.update(self.predictions(token_ids, selected))
        return batch

    def replace(self, token_ids, selected, unit_ids, replace_seed, random_seed):
        """BERT's 80/10/10: [MASK], a random regular token, or unchanged."""
        shape = tf.shape(token_ids)
        num_units = tf.maximum(tf.reduce_max(unit_ids) + 1, 1)
        draws = tf.random.stateless_uniform([shape[0], num_units], replace_seed)
        decision = tf.gather(draws, tf.maximum(unit_ids, 0), batch_dims=1)
        to_mask = selected & (decision < self.mask_ratio)
        to_random = (
            selected
            & (decision >= self.mask_ratio)
            & (decision < self.mask_ratio + self.random_ratio)
        )
        random_index = tf.random.stateless_uniform(
            shape, random_seed, maxval=tf.size(self._regular_ids), dtype=tf.int32
        )
        random_ids = tf.gather(self._regular_ids, random_index)
        masked = tf.where(to_mask, self.mask_token_id, token_ids)
        return tf.where(to_random, random_ids, masked)

    def predictions(self, token_ids, selected):
        """keras-hub's convention: ascending positions padded to max_predictions."""
        length = tf.shape(token_ids)[1]
        # Larger score = earlier position; unselected tokens score 0.
        score = tf.where(selected, length - tf.range(length)[None, :], 0)
        # top_k needs at least max_predictions columns, even for short rows.
        score = tf.pad(score, [[0, 0], [0, tf.maximum(0, self.max_predictions - length)]])
        top = tf.math.top_k(score, k=self.max_predictions, sorted=True)
        weights = top.values > 0
        positions = tf.where(weights, top.indices, 0)
        return {
            F.MASK_POSITIONS: positions,
            F.MASK_IDS: tf.where(weights, tf.gather(token_ids, positions, batch_dims=1), 0),
            F.MASK_WEIGHTS: tf.cast(weights, tf.float32),
        }
