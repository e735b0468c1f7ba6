"""Word-level tags for token classification (NER): schemes, units, windows, entities.

A tagged document is `words` [W] and `tags` [W], one tag per word, in one of
the field's schemes (`SCHEMES`): BIO (IOB2), IOB1, IOBES or BILOU. The
token-classification pipeline (`tfmask.tasks.token_classifier`) runs

    words, tags --units--> units, unit tags --WordPiece--> pieces
        --first piece of each unit carries its tag (BERT's NER recipe)-->
        --windows of `width` pieces, `stride` apart--> framed rows

- units (`character_units`): for Chinese (`data.tag_unit: character`), each
  word is re-split the way BERT's basic tokenizer splits text (one unit per
  CJK character, Latin runs and punctuation as BERT splits them) and its tag
  spread over the parts: B- on the first, I- on the rest (E-/L- on the last
  where the scheme ends entities so). Raw text at prediction is split the
  same way, so a model reads and predicts the units it was trained on.
- windows (`windows`): a document longer than a row is read through
  overlapping windows; each piece is *owned* by one window, the one where it
  sits nearest the middle, and only owned pieces carry labels, so no piece
  is trained twice or scored twice and no entity is cut by truncation.
- entities (`entity_spans`): spans decoded with conlleval's rules, the rules
  `seqeval` (default mode) and `tfmask.metrics.entity_scores` score with, so
  what `predict` and the SavedModel show is what the F1 counts.

Example:
>>> words = tf.ragged.constant([["江泽民", "说"]])
>>> tags = tf.ragged.constant([["B-PER", "O"]])
>>> units, unit_tags = character_units(words, tags)  # the same rules serve every scheme
>>> [u.decode() for u in units.flat_values.numpy()], unit_tags.to_list()
(['江', '泽', '民', '说'], [[b'B-PER', b'I-PER', b'I-PER', b'O']])
"""

import tensorflow as tf
from tensorflow_text.python.ops.bert_tokenizer import BasicTokenizer

from tfmask.data.pipeline import entity_ids_from_bio

# Scheme -> the prefixes its tags may carry (besides the tag "O").
SCHEMES = {"bio": "BI", "iob1": "BI", "iobes": "BIES", "bilou": "BILU"}
TAG_UNITS = ("word", "character")
IGNORED = -1  # label of a piece that is neither scored nor trained


# ------------------------------------------------------------ schemes (Python)
def split_tag(tag):
    """"B-PER" -> ("B", "PER"); "O" -> ("O", None); anything else -> None."""
    if tag == "O":
        return "O", None
    if len(tag) > 2 and tag[1] == "-" and tag[0] in "BIESLU":
        return tag[0], tag[2:]
    return None


def stray_inside(tags):
    """Index of the first I- (or E-/L-) tag that continues no entity of its
    type (after O, another type, or a closed entity), or None. BIO (IOB2)
    forbids it; IOB1 reads it as an entity's start."""
    previous_prefix, previous_type = "O", None
    for index, tag in enumerate(tags):
        prefix, kind = split_tag(tag) or ("O", None)
        if prefix in "IEL" and (previous_prefix not in "BI" or previous_type != kind):
            return index
        previous_prefix, previous_type = prefix, kind
    return None


def scheme_of(prefixes, has_stray_inside):
    """The scheme that tags with `prefixes` are written in: IOBES if E-/S-
    occur, BILOU if L-/U- do, else BIO, or IOB1 when an I- starts an entity.
    None when E/S and L/U are mixed."""
    if prefixes & set("ES") and prefixes & set("LU"):
        return None
    if prefixes & set("ES"):
        return "iobes"
    if prefixes & set("LU"):
        return "bilou"
    return "iob1" if has_stray_inside else "bio"


def tag_set(types, scheme):
    """The tags a model predicts: O, then every prefix of `scheme` per type.

    >>> tag_set({"PER", "LOC"}, "bio")
    ['O', 'B-LOC', 'I-LOC', 'B-PER', 'I-PER']
    """
    return ["O"] + [f"{prefix}-{kind}" for kind in sorted(types) for prefix in SCHEMES[scheme]]


def conlleval_tags(tags, scheme):
    """Tags as seqeval's default (conlleval) mode reads them: BILOU's L-/U-
    are IOBES's E-/S-; the other schemes are read as they are."""
    if scheme != "bilou":
        return list(tags)
    return ["E" + t[1:] if t.startswith("L-") else "S" + t[1:] if t.startswith("U-") else t
            for t in tags]


# ------------------------------------------------------------ graph functions
def _prefix_and_type(tags):
    prefixed = tf.strings.regex_full_match(tags, "[BIESLU]-.+")
    prefix = tf.where(prefixed, tf.strings.substr(tags, 0, 1), "O")
    kind = tf.where(prefixed, tf.strings.regex_replace(tags, "^[BIESLU]-", ""), "")
    return prefix, kind


def spread_tag(tags, unit, count):
    """The tag of part `unit` of `count` of a word tagged `tags` (tensors of
    one shape): B- opens the entity on the first part, I- continues it, and a
    word that ends its entity (E-, S-, L-, U-) ends it on its last part."""
    prefix, kind = _prefix_and_type(tags)
    first, last = tf.equal(unit, 0), tf.equal(unit, count - 1)
    single = first & last
    opening = tf.where(tf.equal(prefix, "S") | tf.equal(prefix, "U"), "B",
                       tf.where(tf.equal(prefix, "E") | tf.equal(prefix, "L"), "I", prefix))
    closing = tf.where(tf.equal(prefix, "S") | tf.equal(prefix, "E"), "E",
                       tf.where(tf.equal(prefix, "U") | tf.equal(prefix, "L"), "L", "I"))
    new_prefix = tf.where(single, prefix, tf.where(first, opening,
                                                   tf.where(last, closing, "I")))
    return tf.where(tf.equal(prefix, "O"), "O", tf.strings.join([new_prefix, "-", kind]))


def character_units(words, tags):
    """Words [B, W] and their tags -> BERT basic units [B, U] and unit tags:
    one unit per CJK character, Latin runs and punctuation as BERT splits
    them. A word the split leaves empty stays one unit (tagged as it was)."""
    parts = BasicTokenizer(lower_case=False).tokenize(words)  # [B, W, U]
    per_word = parts.values  # [B*W, U]
    count = per_word.row_lengths()
    kept = tf.RaggedTensor.from_row_lengths(
        tf.boolean_mask(words.flat_values, tf.equal(count, 0)), tf.cast(tf.equal(count, 0),
                                                                         tf.int64))
    per_word = tf.concat([per_word, kept], axis=1)  # empty words keep themselves
    count = per_word.row_lengths()
    unit = tf.ragged.range(count).flat_values
    word_of_unit = per_word.value_rowids()
    spread = spread_tag(tf.gather(tags.flat_values, word_of_unit), unit,
                        tf.gather(count, word_of_unit))
    units = words.with_flat_values(per_word).merge_dims(1, 2)
    return units, units.with_flat_values(spread)


def text_units(texts, tag_unit):
    """Raw texts [B] -> (units [B, U], byte starts, byte ends): split on
    whitespace (`word`: the data's words are written space-separated) or
    the way BERT splits text (`character`). Offsets index the original
    bytes (no case folding, which would move them)."""
    if tag_unit == "word":
        import tensorflow_text as tf_text

        return tf_text.WhitespaceTokenizer().tokenize_with_offsets(texts)
    return BasicTokenizer(lower_case=False).tokenize_with_offsets(texts)


def first_pieces(word_ids):
    """Ragged word ids [B, N] -> True at the first piece of each word.

    >>> first_pieces(tf.ragged.constant([[0, 0, 1], [0, 1, 1]])).to_list()
    [[True, False, True], [True, True, False]]
    """
    flat = word_ids.flat_values
    previous = tf.concat([[-1], flat[:-1]], axis=0)  # flat ops: ragged slices trace slowly
    row_start = tf.equal(tf.ragged.range(word_ids.row_lengths()).flat_values, 0)
    return word_ids.with_flat_values(tf.not_equal(flat, previous) | row_start)


def framed(values, width):
    """Ragged rows [K, <=width] -> dense [K, width + 2]: -1 at [CLS], [SEP]
    and padding, the layout `WordPieceTokenizer.frame` gives word ids (a
    dense pad, much cheaper to trace than framing ragged rows again).

    >>> framed(tf.ragged.constant([[5, 6], [7]]), 3).numpy().tolist()
    [[-1, 5, 6, -1, -1], [-1, 7, -1, -1, -1]]
    """
    dense = values.to_tensor(default_value=-1, shape=[None, width])
    return tf.pad(dense, [[0, 0], [1, 1]], constant_values=-1)


def windows(features, width, stride):
    """Ragged per-document features [B, N] (equal row lengths) -> windows.

    Each row becomes windows of at most `width` entries starting every
    `stride` (a row no longer than `width` is one window). Returns
    (windowed features [K, <=width], `row` [K] the document row of each
    window, `owned` [K, <=width]): an entry is owned by the one window where
    it sits nearest the middle (the first and last windows own their outer
    edges), so owned entries cover every row exactly once.

    Example:
    >>> ids = tf.ragged.constant([[1, 2, 3, 4, 5], [6]])
    >>> out, row, owned = windows({"ids": ids}, width=3, stride=2)
    >>> out["ids"].to_list(), row.numpy().tolist()
    ([[1, 2, 3], [3, 4, 5], [6]], [0, 0, 1])
    >>> owned.to_list()
    [[True, True, False], [True, True, True], [True]]
    """
    first = next(iter(features.values()))
    length = first.row_lengths()
    extra = tf.maximum(length - width, 0)
    count = 1 + (extra + stride - 1) // stride  # windows per row
    row = tf.repeat(tf.range(first.nrows()), count)
    index = tf.ragged.range(count).flat_values  # window index within its row
    start = index * stride
    end = tf.minimum(start + width, tf.gather(length, row))
    offset = tf.gather(first.row_splits[:-1], row)
    positions = tf.ragged.range(start, end)  # [K, None] positions in the row
    window = positions.value_rowids()  # the window of every entry
    # Flat ops throughout: broadcasting ragged tensors traces ~10x slower.
    source = positions.flat_values + tf.gather(offset, window)  # into the flat values
    gathered = {key: positions.with_flat_values(tf.gather(value.flat_values, source))
                for key, value in features.items()}
    margin = (width - stride) // 2
    last = tf.gather(tf.gather(count, row) - 1, window)
    owner = tf.clip_by_value((positions.flat_values - margin) // stride, 0, last)
    owned = positions.with_flat_values(tf.equal(owner, tf.gather(index, window)))
    return gathered, row, owned


def entity_spans(tags):
    """Tags [B, U] (ragged strings) -> entities, ragged [B, E] each:
    `start` and `end` (unit indices, end exclusive) and `type`, decoded with
    conlleval's rules (BILOU's L-/U- read as E-/S-).

    Example:
    >>> spans = entity_spans(tf.ragged.constant([["B-PER", "I-PER", "O", "I-LOC"]]))
    >>> spans["start"].to_list(), spans["end"].to_list(), spans["type"].to_list()
    ([[0, 3]], [[2, 4]], [[b'PER', b'LOC']])
    """
    tags = tf.ragged.map_flat_values(
        lambda t: tf.strings.regex_replace(tf.strings.regex_replace(t, "^L-", "E-"),
                                           "^U-", "S-"), tags)
    ids = entity_ids_from_bio(tags)  # [B, U], -1 outside entities
    counts = tf.maximum(tf.reduce_max(ids, axis=1) + 1, 0)  # entities per row (empty: 0)
    count = tf.reduce_sum(counts)
    row_start = tf.cumsum(counts, exclusive=True)
    inside = tf.where(ids.flat_values >= 0)[:, 0]
    row = tf.gather(ids.value_rowids(), inside)
    segment = tf.gather(ids.flat_values, inside) + tf.gather(row_start, row)
    unit = tf.gather(tf.ragged.range(ids.row_lengths()).flat_values, inside)
    start = tf.math.unsorted_segment_min(unit, segment, count)
    end = tf.math.unsorted_segment_max(unit, segment, count) + 1
    _, kind = _prefix_and_type(tags.flat_values)
    first_unit = tf.gather(ids.row_splits[:-1],
                           tf.repeat(tf.range(ids.nrows(), dtype=tf.int64), counts)) + start
    spans = {"start": start, "end": end, "type": tf.gather(kind, first_unit)}
    return {key: tf.RaggedTensor.from_row_lengths(value, counts) for key, value in spans.items()}


def character_offsets(texts, byte_offsets):
    """Byte offsets [B, E] (ragged) into `texts` [B] -> character offsets."""
    _, char_starts = tf.strings.unicode_decode_with_offsets(texts, "UTF-8")
    big = tf.cast(tf.int32.max, char_starts.dtype)
    dense = char_starts.to_tensor(default_value=big)
    dense = tf.concat([dense, tf.fill([tf.shape(dense)[0], 1], big)], axis=1)
    found = tf.searchsorted(dense, tf.cast(byte_offsets.to_tensor(default_value=0),
                                           dense.dtype), side="left")
    return tf.RaggedTensor.from_tensor(found, lengths=byte_offsets.row_lengths())

