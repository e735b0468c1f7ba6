"""Terms and patterns in text: hidden from a classifier (`TermMasking`:
names, ages, genders before fine-tuning) or predicted first by a masked LM
(`KeyTermUnits` + `EntityMasking`: key-term / salient-span masking). Both
match words with one `TermMatcher`."""

import re
import unicodedata

import tensorflow as tf

from tfmask.data import features as F
from tfmask.data.masking.base import (
    MaskingStrategy,
    dense_int,
    regular_token_ids,
    require_keys,
)
from tfmask.data.pipeline import words_to_tokens

REPLACEMENTS = ("mask", "random", "drop")


def uncased(text):
    """What an uncased BERT tokenizer makes of a word: lower case, accents
    stripped ("José" -> "jose"), so listed terms compare with its words."""
    decomposed = unicodedata.normalize("NFD", text.lower())
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


class TermMatcher:
    """Which words of a batch are listed terms or match a pattern.

    A word matches when it equals a listed term (multi-word terms match runs
    of words, e.g. "tom hanks") or fully matches one of the regular
    expressions (RE2 syntax). Terms are compared lower-cased and without
    accents when `lowercase` (as an uncased tokenizer's words are).

    Example:
    >>> import tensorflow as tf
    >>> matcher = TermMatcher(terms=["tom hanks"], patterns=[r"\\d+"])
    >>> matcher(tf.ragged.constant([["tom", "hanks", "is", "66"]])).numpy().tolist()
    [[True, True, False, True]]
    """

    def __init__(self, terms=(), patterns=(), lowercase=True, owner="TermMatcher"):
        terms = [uncased(t) if lowercase else t for t in terms]
        terms = [" ".join(t.split()) for t in terms if t.strip()]
        if not terms and not patterns:
            raise ValueError(f"{owner} needs at least one term or pattern.")
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"Pattern {pattern!r} is not a valid regex: {error}.") from None
        self._pattern = "|".join(f"(?:{p})" for p in patterns) if patterns else None
        terms_by_length = {}
        for term in terms:
            terms_by_length.setdefault(len(term.split()), set()).add(term)
        self._tables = {
            n: tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(sorted(ts), tf.ones(len(ts), tf.int32)),
                default_value=0,
            )
            for n, ts in terms_by_length.items()
        }

    def resources(self):
        """The term lookup tables (an export that serves the matcher tracks them)."""
        return list(self._tables.values())

    def __call__(self, words):
        """Words [B, W] (ragged, or dense padded with "") -> dense bool [B, W_max]."""
        if not isinstance(words, tf.RaggedTensor):
            words = tf.RaggedTensor.from_tensor(words, padding="")
        dense_words = words.to_tensor(default_value="")
        matched = tf.zeros(tf.shape(dense_words), tf.bool)
        if self._pattern is not None:
            matched = tf.strings.regex_full_match(dense_words, self._pattern) & (dense_words != "")
        width = tf.shape(dense_words)[1]
        for n, table in self._tables.items():
            grams = tf.strings.ngrams(words, n, separator=" ").to_tensor(default_value="")
            hits = table.lookup(grams) > 0  # [B, W - n + 1]
            # A hit at j covers words j .. j + n - 1.
            for offset in range(n):
                shifted = tf.pad(hits, [[0, 0], [offset, 0]])[:, :width]
                shifted = tf.pad(shifted, [[0, 0], [0, width - tf.shape(shifted)[1]]])
                matched = matched | shifted
        return matched


class KeyTermUnits(MaskingStrategy):
    """Marks key terms as the units `EntityMasking` masks first.

    Salient-span / key-term masking for masked-LM pre-training (REALM's
    salient spans, Guu et al. 2020; selective masking of task-relevant words,
    Gu et al. 2020): every run of consecutive matching words (a listed term,
    multi-word terms included, or a pattern such as r"\\d+") becomes one
    unit in `entity_ids` [B, S] (-1 elsewhere), so `EntityMasking` masks
    whole key terms before filling the budget with other words. Needs
    `word_ids` and the ragged `words`; deterministic (the seed is unused).

    Example:
    >>> import tensorflow as tf
    >>> units = KeyTermUnits(terms=["tom hanks"], patterns=[r"\\d+"])
    >>> batch = {"word_ids": tf.constant([[-1, 0, 1, 2, 3, 3, -1]]),
    ...          "words": tf.ragged.constant([["tom", "hanks", "is", "66"]])}
    >>> units(batch, seed=[0, 0])["entity_ids"].numpy().tolist()
    [[-1, 0, 0, -1, 1, 1, -1]]
    """

    def __init__(self, terms=(), patterns=(), lowercase=True):
        super().__init__(seed=None)
        self._matcher = TermMatcher(terms, patterns, lowercase, "KeyTermUnits")

    def resources(self):
        return self._matcher.resources()

    def apply(self, batch, seed):
        require_keys(self, batch, F.WORD_IDS, F.WORDS)
        matched = self._matcher(batch[F.WORDS])
        previous = tf.pad(matched, [[0, 0], [1, 0]])[:, :-1]
        starts = matched & ~previous
        run = tf.math.cumsum(tf.cast(starts, tf.int32), axis=1) - 1
        units = tf.where(matched, run, -1)
        batch[F.ENTITY_IDS] = words_to_tokens(units, dense_int(batch[F.WORD_IDS], F.WORD_IDS))
        return batch


class TermMasking(MaskingStrategy):
    """Hides given terms or word patterns from the model, token by token.

    A word matches when it equals a listed term (multi-word terms match runs
    of words, e.g. "tom hanks") or fully matches one of the regular
    expressions (e.g. r"\\d+" for ages, r"he|she|him|her" for gender). Every
    token of a matching word is then replaced by [MASK] (`"mask"`), by random
    regular tokens (`"random"`), or removed (`"drop"`, the row is re-packed to
    the left and re-padded, so shapes stay static). Matching is on the words
    of the batch (`words`, ragged [B, W], as `WordPieceTokenizer` returns
    them, lower-cased if the tokenizer is); `word_ids` ties tokens to words.

    Needs the batch's `padding_mask`. Outputs the modified `token_ids`,
    `word_ids`, `padding_mask` and `term_mask` [B, S], which follows
    tfmask's one convention, True = kept: False where a token was replaced
    (for "drop", where the original token was removed, in the original
    positions).

    Args:
        terms: iterable of strings (compared lower-cased when `lowercase`).
        patterns: iterable of regular expressions (RE2 syntax), full match.
        replacement: "mask" (default), "random" or "drop".
        mask_token_id: needed for "mask".
        vocabulary_size, special_token_ids: needed for "random".
        lowercase: lower-case terms before matching. Default True.
        pad_id: int. Default 0.
        seed: int.

    Example:
    >>> import tensorflow as tf
    >>> masker = TermMasking(terms=["tom hanks"], patterns=[r"\\d+"], mask_token_id=4)
    >>> batch = {"token_ids": tf.constant([[10, 11, 12, 13, 14]]),
    ...          "word_ids": tf.constant([[0, 1, 2, 3, 3]]),
    ...          "padding_mask": tf.constant([[True] * 5]),
    ...          "words": tf.ragged.constant([["tom", "hanks", "is", "66"]])}
    >>> masker(batch)["token_ids"].numpy().tolist()
    [[4, 4, 12, 4, 4]]
    """

    def __init__(
        self,
        terms=(),
        patterns=(),
        replacement="mask",
        mask_token_id=None,
        vocabulary_size=None,
        special_token_ids=(),
        lowercase=True,
        pad_id=0,
        seed=None,
    ):
        super().__init__(seed)
        if replacement not in REPLACEMENTS:
            raise ValueError(f"replacement={replacement!r} is not one of {REPLACEMENTS}.")
        self._matcher = TermMatcher(terms, patterns, lowercase, "TermMasking")
        if replacement == "mask" and mask_token_id is None:
            raise ValueError("replacement='mask' needs mask_token_id.")
        if replacement == "random" and vocabulary_size is None:
            raise ValueError("replacement='random' needs vocabulary_size.")
        self.replacement = replacement
        self.mask_token_id = mask_token_id
        self.pad_id = pad_id
        if replacement == "random":
            unusable = set(special_token_ids) | {pad_id}
            self._regular_ids = tf.constant(regular_token_ids(vocabulary_size, unusable))

    def resources(self):
        return self._matcher.resources()

    def matching_words(self, words):
        """Ragged words [B, W] -> dense bool [B, W_max], True at matches."""
        return self._matcher(words)

    def apply(self, batch, seed):
        require_keys(self, batch, F.TOKEN_IDS, F.WORD_IDS, F.WORDS, F.PADDING_MASK)
        token_ids = dense_int(batch[F.TOKEN_IDS], F.TOKEN_IDS)
        word_ids = dense_int(batch[F.WORD_IDS], F.WORD_IDS)
        matched_words = self._matcher(batch[F.WORDS])
        hit = words_to_tokens(matched_words, word_ids, fill=False)
        batch[F.TERM_MASK] = ~hit  # True = kept
        if self.replacement == "mask":
            batch[F.TOKEN_IDS] = tf.where(hit, self.mask_token_id, token_ids)
        elif self.replacement == "random":
            index = tf.random.stateless_uniform(
                tf.shape(token_ids), seed, maxval=tf.size(self._regular_ids), dtype=tf.int32
            )
            batch[F.TOKEN_IDS] = tf.where(hit, tf.gather(self._regular_ids, index), token_ids)
        else:
            shape = tf.shape(token_ids)
            keep = ~hit
            batch[F.TOKEN_IDS] = tf.ragged.boolean_mask(token_ids, keep).to_tensor(
                self.pad_id, shape=shape
            )
            batch[F.WORD_IDS] = tf.ragged.boolean_mask(word_ids, keep).to_tensor(-1, shape=shape)
            batch[F.TOKEN_IDS] = tf.ensure_shape(batch[F.TOKEN_IDS], token_ids.shape)
            batch[F.WORD_IDS] = tf.ensure_shape(batch[F.WORD_IDS], word_ids.shape)
            # Real tokens that survive, moved to the left like the ids.
            kept = tf.reduce_sum(tf.cast(tf.cast(batch[F.PADDING_MASK], tf.bool) & keep,
                                         tf.int32), axis=1)
            batch[F.PADDING_MASK] = tf.sequence_mask(kept, shape[1])
        return batch
