"""Chinese word segmentation inside `tf.data`, for whole-word masking.

BERT's basic tokenizer puts every CJK character in its own word, so on raw
Chinese text "whole-word" masking masks characters. Chinese BERT-wwm masks
the words of a segmenter instead; `Segmenter` does that here:

- runs of adjacent CJK characters are cut into words by the segmenter;
- everything else keeps BERT's basic split (whitespace and punctuation), so
  mixed text such as "他用Python写程序" gives 他/用/python/写/程序 (the
  tokenizer lower-cases);
- a segmenter word only ever groups whole units of BERT's split, so the
  WordPiece token ids are exactly those without a segmenter; only the word
  ids (which tokens mask together) change.

The segmenter is **rjieba** (the Rust jieba-rs through a small binding),
chosen by `benchmarks/segmenters.py` on People's Daily (test split, gold
words, span F1; see `benchmarks/results/segmenters.md`):

- the same dictionary and HMM as jieba, so the same words: span F1 0.803
  for both against People's Daily's gold words (P 0.824, R 0.782; the gold
  standard's conventions differ from jieba's, e.g. １９９３年 is one word
  there), against 0.367 for BERT's one word per character;
- ~13x the speed of jieba in one process (1.08M vs 84k characters/s on 2
  shared CPU cores), and no dictionary to build at first use (jieba spends
  ~1.3 s on it);
- a 4.6 MB wheel without dependencies, released in 2026, where jieba (pure
  Python, 42 MB installed) was last released in 2020;
- spacy-pkuseg (a CRF) ships no model: it downloads one from GitHub on first
  use, which machines that reach only package registries cannot, and it
  segments ~19k characters/s (a model trained here on People's Daily
  itself scores F1 0.92, but in-domain: an upper bound, not comparable).

Python segmenters run through `tf.numpy_function` (one call per batch); the
op is stateless, so graphs that use only the token ids never run it.

Example:
>>> segmenter = Segmenter("rjieba")
>>> [w.decode() for w in segmenter(["我是一个程序员"]).to_list()[0]]
['我', '是', '一个', '程序员']
>>> [w.decode() for w in segmenter(["他用Python写程序!"]).to_list()[0]]
['他', '用', 'Python', '写', '程序', '!']
"""

import re

import numpy as np
import tensorflow as tf
from tensorflow_text.python.ops.bert_tokenizer import BasicTokenizer

# The CJK ideographs BERT's basic tokenizer splits one per word (its ranges).
CJK_CHARACTER = ("[\\x{4E00}-\\x{9FFF}\\x{3400}-\\x{4DBF}\\x{20000}-\\x{2A6DF}"
                 "\\x{2A700}-\\x{2B73F}\\x{2B740}-\\x{2B81F}\\x{2B820}-\\x{2CEAF}"
                 "\\x{F900}-\\x{FAFF}\\x{2F800}-\\x{2FA1F}]")

_CJK_PYTHON = re.compile("[\u4E00-\u9FFF\u3400-\u4DBF\U00020000-\U0002A6DF"
                         "\U0002A700-\U0002CEAF\uF900-\uFAFF\U0002F800-\U0002FA1F]")


def needs_segmenter(term):
    """True when `term` can match words only with a segmenter: one of its
    words (whitespace-separated) holds a CJK character and more than one
    character, while BERT's split makes every CJK character a word.

    >>> needs_segmenter("程序员"), needs_segmenter("程 序 员"), needs_segmenter("tom hanks")
    (True, False, False)
    """
    return any(len(part) > 1 and _CJK_PYTHON.search(part) for part in term.split())


def _rjieba():
    import rjieba

    return rjieba.cut


# data.segmenter name -> loader of `cut(text) -> list of words`.
SEGMENTERS = {"rjieba": _rjieba}


def check_segmenter_name(name):
    """None when `name` is a known segmenter, else the one-line reason."""
    if name in SEGMENTERS:
        return None
    return (f"data.segmenter={name!r} is not a known segmenter; known: "
            f"{', '.join(SEGMENTERS)} (or null for BERT's one word per character).")


class Segmenter:
    """Cuts text into words: a segmenter on CJK runs, BERT's split elsewhere.

    Args:
        name: a key of `SEGMENTERS` ("rjieba").

    Calling it maps strings [B] to ragged words [B, W] (original case, BERT's
    control characters dropped), inside or outside `tf.data`. `group` does
    the same on the units of a BERT basic tokenizer the caller already ran
    (the WordPiece tokenizer passes its own, lower-cased ones).

    Example:
    >>> words = Segmenter("rjieba")(["他是程序员", "hello, 世界"])
    >>> [[w.decode() for w in row] for row in words.to_list()]
    [['他', '是', '程序员'], ['hello', ',', '世界']]
    """

    def __init__(self, name="rjieba"):
        problem = check_segmenter_name(name)
        if problem:
            raise ValueError(problem)
        self.name = name
        try:
            self._cut = SEGMENTERS[name]()
        except ImportError:
            raise ImportError(f"data.segmenter={name} needs the {name} package; "
                              f"pip install {name}.") from None
        self._units = BasicTokenizer(lower_case=False)

    def __call__(self, texts):
        texts = tf.convert_to_tensor(texts, tf.string)
        units, starts, ends = self._units.tokenize_with_offsets(texts)
        return self.group(units, starts, ends, batch_size=texts.shape[0])[0]

    def cut(self, run):
        """One run of CJK characters (a Python str) -> its words."""
        return self._cut(run)

    def group(self, units, starts, ends, batch_size=None):
        """BERT basic-tokenizer units with byte offsets, ragged [B, U] ->
        (words, ragged strings [B, W]; word of each unit, ragged int32 [B, U],
        numbered from 0 in each row). A word is a run of units, joined.
        `batch_size` (static B, when known) is restored on the words, which
        `tf.numpy_function` and the ragged ops lose."""
        flat = units.flat_values
        cjk = tf.strings.regex_full_match(flat, CJK_CHARACTER)
        # A unit continues a CJK run when it and the one before are CJK, in
        # the same row, with no byte between them (no space, no dropped char).
        rows = units.value_rowids()
        after_previous = tf.concat([[False], (rows[1:] == rows[:-1])
                                    & (starts.flat_values[1:] == ends.flat_values[:-1])], 0)
        joins_run = cjk & tf.concat([[False], cjk[:-1]], 0) & after_previous
        starts_word = tf.numpy_function(self._word_starts, [flat, joins_run], tf.bool,
                                        stateful=False, name="segment_cjk_runs")
        starts_word.set_shape(flat.shape)
        word_index = tf.cumsum(tf.cast(starts_word, tf.int64)) - 1  # global, per unit
        count = tf.reduce_sum(tf.cast(starts_word, tf.int64))
        words_per_row = tf.math.unsorted_segment_sum(tf.cast(starts_word, tf.int64), rows,
                                                     units.nrows())
        words_per_row = tf.ensure_shape(words_per_row, [batch_size])
        words = tf.RaggedTensor.from_row_lengths(
            tf.strings.unsorted_segment_join(flat, word_index, count), words_per_row,
            validate=False)
        first_word_of_row = tf.gather(words.row_splits, rows)
        local = tf.cast(word_index - first_word_of_row, tf.int32)
        return words, units.with_flat_values(local)

    def _word_starts(self, units, joins_run):
        """numpy: True where a unit starts a word: every unit outside CJK
        runs, and inside a run (a unit, then units that `joins_run`) the
        first unit of each word the segmenter cuts the run into."""
        starts = ~joins_run
        begins = np.flatnonzero(starts)
        ends = np.append(begins[1:], len(units))
        runs = ends - begins > 1
        for begin, end in zip(begins[runs], ends[runs]):
            position = begin
            for word in self._cut(b"".join(units[begin:end]).decode("utf-8")):
                if position < end:
                    starts[position] = True
                position += len(word)
        return starts
