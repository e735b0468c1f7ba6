"""WordPiece tokenization that also returns which word each piece belongs to."""

import tensorflow as tf
import tensorflow_text as tf_text
from tensorflow_text.python.ops.bert_tokenizer import BasicTokenizer

from tfmask.text.segmentation import Segmenter
from tfmask.text.special_tokens import SpecialTokens


def read_vocabulary(vocabulary):
    """The tokens of a vocab.txt path (or a list), trailing empty lines dropped."""
    if isinstance(vocabulary, (list, tuple)):
        return list(vocabulary)
    try:
        with open(vocabulary, encoding="utf-8") as f:
            tokens = [line.rstrip("\n") for line in f]
    except FileNotFoundError:
        raise FileNotFoundError(
            f"Vocabulary file {vocabulary!r} does not exist; pass a vocab.txt "
            "path or train one with tfmask.text.train_wordpiece_vocabulary."
        ) from None
    except UnicodeDecodeError as error:
        raise ValueError(
            f"Vocabulary file {vocabulary!r} is not UTF-8 text (byte {error.start}); pass a "
            "vocab.txt with one token per line."
        ) from None
    except IsADirectoryError:
        raise ValueError(f"Vocabulary {vocabulary!r} is a folder; pass its vocab.txt.") from None
    while tokens and not tokens[-1]:
        tokens.pop()
    return tokens


def _pieces_and_word_ids(pieces, word_of_unit=None):
    """[B, W, P] ragged pieces -> ([B, N] ids, [B, N] word index in its row).

    `word_of_unit`, ragged int [B, W], regroups the W units into words (a
    segmenter's): each piece then takes its unit's word."""
    token_ids = pieces.merge_dims(1, 2)
    # Global word index of every piece, minus the index of the row's first word.
    global_word = pieces.values.value_rowids()
    if word_of_unit is not None:
        return token_ids, token_ids.with_flat_values(
            tf.gather(word_of_unit.flat_values, global_word))
    row_of_word = pieces.value_rowids()
    first_word_of_row = tf.gather(pieces.row_splits, tf.gather(row_of_word, global_word))
    local_word = tf.cast(global_word - first_word_of_row, tf.int32)
    word_ids = token_ids.with_flat_values(local_word)
    return token_ids, word_ids


class WordPieceTokenizer:
    """BERT WordPiece tokenizer returning token ids, word ids and words.

    Built on `tensorflow_text.BertTokenizer`, so it runs inside `tf.data`
    graphs on batches of strings. BERT's basic tokenization splits on
    whitespace and punctuation and puts every CJK character in its own word,
    as BERT does for Chinese. **Word ids come from that split** (the ragged
    word dimension of the tokenizer's output), not from guessing with `##`, so
    whole-word masking works for any vocabulary; with a `segmenter`, runs of
    CJK characters are grouped into the segmenter's words instead (Chinese
    whole-word masking; the token ids stay the same); for text that is
    already segmented into words (e.g. gold Chinese word segmentation),
    `tokenize_words` keeps those words as the unit.

    Args:
        vocabulary: path of a `vocab.txt` (one token per line) or a list.
        lowercase: lower-case and strip accents (uncased BERT). Default True.
        special_tokens: `SpecialTokens`; every named one must be in the vocab.
        segmenter: None (BERT's split), a `tfmask.text.Segmenter` or its name
            (`data.segmenter`, e.g. "rjieba"): the words of `tokenize`.

    Example:
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "un",
    ...          "##believ", "##able", "!"]
    >>> tokenizer = WordPieceTokenizer(vocab)
    >>> out = tokenizer.tokenize(["The unbelievable!"])
    >>> out["token_ids"].to_list(), out["word_ids"].to_list()
    ([[5, 6, 7, 8, 9]], [[0, 1, 1, 1, 2]])
    """

    def __init__(self, vocabulary, lowercase=True, special_tokens=None, segmenter=None):
        self.vocabulary = read_vocabulary(vocabulary)
        self.segmenter = Segmenter(segmenter) if isinstance(segmenter, str) else segmenter
        self.lowercase = lowercase
        self.special_tokens = special_tokens or SpecialTokens()
        self._index = {token: i for i, token in enumerate(self.vocabulary)}
        missing = [t for t in self.special_tokens.named() if t not in self._index]
        if missing:
            raise ValueError(
                f"The vocabulary lacks the special tokens {missing}; add them "
                "or pass SpecialTokens(...) naming the ones it uses."
            )
        table = tf.lookup.StaticVocabularyTable(
            tf.lookup.KeyValueTensorInitializer(
                self.vocabulary, tf.range(len(self.vocabulary), dtype=tf.int64)
            ),
            num_oov_buckets=1,
        )
        self._tokenizer = tf_text.BertTokenizer(
            table,
            lower_case=lowercase,
            token_out_type=tf.int32,
            unknown_token=self.special_tokens.unk,
        )
        # The same word split BertTokenizer uses, for features that need words.
        self._basic = BasicTokenizer(lower_case=lowercase)

    @property
    def vocabulary_size(self):
        return len(self.vocabulary)

    @property
    def module(self):
        """The tensorflow-text tokenizer (a `tf.Module` holding the vocabulary
        table), for exports that must track it."""
        return self._tokenizer

    def token_to_id(self, token):
        if token not in self._index:
            raise KeyError(f"{token!r} is not in the vocabulary")
        return self._index[token]

    def id_to_token(self, token_id):
        return self.vocabulary[token_id]

    @property
    def pad_id(self):
        return self.token_to_id(self.special_tokens.pad)

    @property
    def cls_id(self):
        return self.token_to_id(self.special_tokens.cls)

    @property
    def sep_id(self):
        return self.token_to_id(self.special_tokens.sep)

    @property
    def mask_id(self):
        return self.token_to_id(self.special_tokens.mask)

    @property
    def unk_id(self):
        return self.token_to_id(self.special_tokens.unk)

    def special_token_ids(self):
        """Ids of every special token in the vocabulary (named + sentinels)."""
        return sorted(
            self._index[t] for t in self.special_tokens.reserved() if t in self._index
        )

    def sentinel_ids(self, count):
        """Ids of the first `count` sentinels (span corruption)."""
        names = [self.special_tokens.sentinel(i) for i in range(count)]
        missing = [n for n in names if n not in self._index]
        if missing:
            raise ValueError(
                f"The vocabulary has no sentinel tokens {missing[:3]}...; "
                "reserve them when training it (SpecialTokens.num_sentinels)."
            )
        return [self._index[n] for n in names]

    # Not converted by AutoGraph (here and in `tokenize_words`): their Python
    # branches are on Python values, and converting tensorflow-text's own
    # functions beneath them cost ~2 s every time a process first traces a
    # pipeline, an evaluation or an export.
    @tf.autograph.experimental.do_not_convert
    def tokenize(self, texts, segment=True):
        """Strings [B] -> dict of ragged `token_ids`, `word_ids`, `words` [B, None].

        Words are BERT's split, or the segmenter's words when there is one
        and `segment`. The token ids are the same either way: graphs that
        need only them pass `segment=False` (a SavedModel cannot hold the
        Python segmenter)."""
        texts = tf.convert_to_tensor(texts, tf.string)
        pieces = self._tokenizer.tokenize(texts)  # [B, W, P]
        if self.segmenter is None or not segment:
            token_ids, word_ids = _pieces_and_word_ids(pieces)
            return {"token_ids": token_ids, "word_ids": word_ids,
                    "words": self._basic.tokenize(texts)}
        # The pieces' W units are the basic split below: the segmenter groups them.
        words, word_of_unit = self.segmenter.group(*self._basic.tokenize_with_offsets(texts),
                                                   batch_size=texts.shape[0])
        token_ids, word_ids = _pieces_and_word_ids(pieces, word_of_unit)
        return {"token_ids": token_ids, "word_ids": word_ids, "words": words}

    @tf.autograph.experimental.do_not_convert
    def tokenize_words(self, words, empty_as_unk=False):
        """Pre-segmented words, ragged [B, W] strings -> same dict as `tokenize`.

        Each given word is one unit for `word_ids`, even when BERT's basic
        tokenizer would split it further (every Chinese character, say).
        `empty_as_unk`: a word that tokenizes to nothing (a zero-width space,
        a control character) becomes one [UNK] instead of vanishing, so every
        word keeps a piece (token classification tags every word).
        """
        if not isinstance(words, tf.RaggedTensor):
            words = tf.ragged.constant(words) if isinstance(words, list) else words
        pieces = self._tokenizer.tokenize(words)  # [B, W, w, P]
        pieces = pieces.merge_dims(2, 3)  # [B, W, P]
        if empty_as_unk:
            empty = tf.cast(tf.equal(pieces.values.row_lengths(), 0), tf.int64)
            unk = tf.RaggedTensor.from_row_lengths(
                tf.fill([tf.reduce_sum(empty)], tf.cast(self.unk_id, pieces.dtype)), empty)
            pieces = pieces.with_values(tf.concat([pieces.values, unk], axis=1))
        token_ids, word_ids = _pieces_and_word_ids(pieces)
        return {"token_ids": token_ids, "word_ids": word_ids, "words": words}

    def encode(self, texts, sequence_length, framing="cls_sep", reserve=0):
        """Strings [B] -> framed dense rows (see `frame`): `"cls_sep"` is
        BERT's [CLS] text [SEP], `"eos"` text [SEP] (decoders, seq2seq),
        `"none"` the text alone.

        Example:
        >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"]
        >>> rows = WordPieceTokenizer(vocab).encode(["a b"], 5, framing="eos")
        >>> rows["token_ids"].numpy().tolist()
        [[5, 6, 3, 0, 0]]
        """
        token_ids = self.tokenize(texts, segment=False)["token_ids"]
        return self.frame(token_ids, sequence_length, framing, reserve)

    def frame(self, token_ids, sequence_length, framing="cls_sep", reserve=0, word_ids=None):
        """Ragged ids [B, None] -> framed dense rows with this vocabulary's ids."""
        if framing not in FRAMINGS:
            raise ValueError(f"framing={framing!r} is not one of {FRAMINGS}.")
        start = self.cls_id if framing == "cls_sep" else None
        end = None if framing == "none" else self.sep_id
        return frame(token_ids, sequence_length, self.pad_id, start, end, word_ids, reserve)

    def detokenize(self, token_ids):
        """Ids [B, N] (dense or ragged) -> strings [B], pieces merged."""
        words = self._tokenizer.detokenize(token_ids)
        return tf.strings.reduce_join(words, axis=-1, separator=" ")


FRAMINGS = ("cls_sep", "eos", "none")


def frame(token_ids, sequence_length, pad_id, start_id=None, end_id=None, word_ids=None,
          reserve=0):
    """Ragged token rows -> fixed-length rows: the one place tfmask frames text.

    Puts `start_id` (e.g. [CLS]) before and `end_id` (e.g. [SEP] as end of
    sequence) after each row's tokens, truncating the tokens so that the row
    plus `reserve` free slots fits `sequence_length`, then pads with `pad_id`.
    The padding mask comes from the row lengths, never from comparing ids
    with `pad_id` (a start token may equal the pad id, as in T5).

    Args:
        token_ids: ragged int [B, None].
        sequence_length: int, the static row length S.
        pad_id: int, the id padding slots hold.
        start_id, end_id: ids to add, or None for none.
        word_ids: optional ragged int [B, None]; -1 at added and padding slots.
        reserve: slots kept free at the end for a later stage (span corruption
            appends its own end token).

    Returns: dict of dense [B, S] int32 `token_ids` (and `word_ids`), bool
    `padding_mask`, and [B] bool `truncated` (True where tokens were cut).

    Example:
    >>> rows = frame(tf.ragged.constant([[7, 8, 9], [5]]), 4, pad_id=0, start_id=2, end_id=3)
    >>> rows["token_ids"].numpy().tolist(), rows["truncated"].numpy().tolist()
    ([[2, 7, 8, 3], [2, 5, 3, 0]], [True, False])
    >>> rows["padding_mask"].numpy().tolist()
    [[True, True, True, True], [True, True, True, False]]
    """
    added = (start_id is not None) + (end_id is not None)
    room = sequence_length - added - reserve
    if room < 1:
        raise ValueError(f"sequence_length={sequence_length} leaves no room for tokens after "
                         f"{added} framing token(s) and {reserve} reserved; raise it.")
    truncated = token_ids.row_lengths() > room
    token_ids = tf.cast(token_ids[:, :room], tf.int32)
    batch = token_ids.nrows()
    parts, word_parts = [], []
    minus_one = tf.fill([batch, 1], -1)
    if start_id is not None:
        parts.append(tf.fill([batch, 1], tf.cast(start_id, tf.int32)))
        word_parts.append(minus_one)
    parts.append(token_ids)
    if word_ids is not None:
        word_parts.append(tf.cast(word_ids[:, :room], tf.int32))
    if end_id is not None:
        parts.append(tf.fill([batch, 1], tf.cast(end_id, tf.int32)))
        word_parts.append(minus_one)
    token_ids = tf.concat(parts, axis=1) if len(parts) > 1 else token_ids
    shape = [None, sequence_length]
    rows = {
        "token_ids": token_ids.to_tensor(default_value=pad_id, shape=shape),
        "padding_mask": tf.sequence_mask(token_ids.row_lengths(), sequence_length),
        "truncated": truncated,
    }
    if word_ids is not None:
        word_ids = tf.concat(word_parts, axis=1) if len(word_parts) > 1 else word_parts[0]
        rows["word_ids"] = word_ids.to_tensor(default_value=-1, shape=shape)
    return rows


def add_special_tokens(token_ids, word_ids, sequence_length, cls_id, sep_id, pad_id=0):
    """[CLS] tokens [SEP], truncated and padded to a static `sequence_length`
    (BERT's framing; see `frame`). Returns `token_ids`, `word_ids` (-1 at
    [CLS], [SEP] and padding), `padding_mask` and `truncated`."""
    if sequence_length < 3:
        raise ValueError(f"sequence_length must be >= 3 for [CLS] x [SEP], got {sequence_length}.")
    return frame(token_ids, sequence_length, pad_id, start_id=cls_id, end_id=sep_id,
                 word_ids=word_ids)
