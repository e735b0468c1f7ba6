"""Composing a tf.data pipeline: text -> tokens -> fixed-length batches -> masks.

    texts --batch--> tokenize_batch --> (TermMasking) --> mask_dataset(strategy)

Each stage is a plain function over dicts of tensors (see
`tfmask.data.features`), so stages can be tested alone and reordered.
Dynamic masking: `mask_dataset` pairs every batch with seeds from
`tf.data.Dataset.random(seed, rerandomize_each_iteration=True)`, so masks
are reproducible from `seed` yet different in every epoch.
"""

import tensorflow as tf

from tfmask.data import features as F
from tfmask.guards import guarded

AUTOTUNE = tf.data.AUTOTUNE


def entity_ids_from_bio(tags):
    """Word-level entity tags, ragged [B, W] strings -> entity index per word.

    Reads the usual tagging schemes: BIO (IOB2), IOB1 (an entity may start
    with I-, B- only splits two adjacent entities of one type), IOBES and
    BILOU (S-/U- single-word entity, E-/L- its last word), and bare type
    tags (IO: "PER PER" is one entity). Entities are numbered 0, 1, ...
    within each row; words tagged "O" (or shorter than 3 characters) get -1.
    A word continues the previous word's entity when its tag is I-, E-, L-
    or bare, of the same type, and that entity is still open (the previous
    tag is not O, E-, S-, L- or U-); any other tagged word starts a new one
    (the usual lenient reading of broken sequences).

    Example:
    >>> tags = tf.ragged.constant([["B-PER", "I-PER", "O", "B-LOC", "I-ORG"],
    ...                            ["S-PER", "B-LOC", "E-LOC", "I-LOC", "O"]])
    >>> entity_ids_from_bio(tags).to_list()
    [[0, 0, -1, 1, 2], [0, 1, 1, 2, -1]]
    """
    dense = tags.to_tensor(default_value="O")
    prefixed = tf.strings.regex_full_match(dense, "[BIESLU]-.+")
    prefix = tf.where(prefixed, tf.strings.substr(dense, 0, 2), "I-")  # bare tags: inside
    kind = tf.strings.regex_replace(dense, "^[BIESLU]-(.)", "\\1")
    outside = tf.equal(dense, "O") | (tf.strings.length(dense) < 3)
    closes = outside | tf.reduce_any(prefix[..., None] == ["E-", "S-", "L-", "U-"], axis=-1)
    previous_kind = tf.pad(kind[:, :-1], [[0, 0], [1, 0]])
    previous_closed = tf.pad(closes[:, :-1], [[0, 0], [1, 0]], constant_values=True)
    inside = tf.reduce_any(prefix[..., None] == ["I-", "E-", "L-"], axis=-1)
    continues = inside & ~previous_closed & tf.equal(kind, previous_kind)
    starts = ~outside & ~continues
    index = tf.cumsum(tf.cast(starts, tf.int32), axis=1) - 1
    dense_ids = tf.where(outside, -1, index)
    return tf.RaggedTensor.from_tensor(dense_ids, lengths=tags.row_lengths())


def aligned_tags(words, tags):
    """`tags`, guarded by a check that every row has one tag per word: a
    words/tags length mismatch would otherwise shift every later tag onto
    the wrong word, silently."""
    words_per_row, tags_per_row = words.row_lengths(), tags.row_lengths()
    check = tf.debugging.Assert(
        tf.reduce_all(tf.equal(words_per_row, tags_per_row)),
        ["a document's words and tags differ in length (one tag per word is needed); fix "
         "the data. Words per document:", words_per_row, "tags per document:", tags_per_row],
        summarize=8)
    return guarded(tags, check)


def words_to_tokens(word_values, word_ids, fill=-1):
    """Spreads a per-word feature [B, W] (ragged or dense) onto tokens via `word_ids`."""
    if isinstance(word_values, tf.RaggedTensor):
        word_values = word_values.to_tensor(default_value=fill)
    width = tf.shape(word_values)[1]
    valid = (word_ids >= 0) & (word_ids < width)
    gathered = tf.gather(word_values, tf.clip_by_value(word_ids, 0, tf.maximum(width - 1, 0)),
                         batch_dims=1)
    return tf.where(valid, gathered, fill)


def tokenize_batch(batch, tokenizer, sequence_length, text_key=F.TEXT, words_key=None,
                   framing="cls_sep", reserve=0):
    """Tokenizes a batch of texts (or pre-segmented words) to fixed length.

    Frames the rows (`framing`, see `WordPieceTokenizer.frame`: [CLS] ...
    [SEP] by default), emits `padding_mask` (the one source of padding
    downstream), truncates to `sequence_length` (flagging
    `truncated` rows, so a pipeline can count them), pads, and keeps every
    other key of the batch (labels, ...). With `words_key`, the batch holds
    ragged words (gold segmentation) instead of text, and a `tags` key of
    word-level BIO tags, if present, becomes token-level `entity_ids`.
    """
    batch = dict(batch)
    if words_key is not None:
        words = batch.pop(words_key)
        if not isinstance(words, tf.RaggedTensor):
            words = tf.RaggedTensor.from_tensor(words, padding="")
        static_batch = words.shape[0]
        tokens = tokenizer.tokenize_words(words)
    else:
        texts = batch.pop(text_key)
        static_batch = texts.shape[0]
        tokens = tokenizer.tokenize(texts)
    dense = tokenizer.frame(tokens[F.TOKEN_IDS], sequence_length, framing, reserve,
                            word_ids=tokens[F.WORD_IDS])
    # Ragged ops lose the static batch size; drop_remainder batches keep it.
    batch.update(
        {k: tf.ensure_shape(v, [static_batch] + v.shape[1:]) for k, v in dense.items()}
    )
    batch[F.WORDS] = tokens[F.WORDS]
    if "tags" in batch:
        tags = batch.pop("tags")
        if words_key is not None:
            tags = aligned_tags(words, tags)
        entities = entity_ids_from_bio(tags)
        batch[F.ENTITY_IDS] = words_to_tokens(entities, batch[F.WORD_IDS])
    return batch


def mask_dataset(dataset, strategy, seed, dynamic=True, num_parallel_calls=AUTOTUNE):
    """Applies a masking strategy to every batch, seeded per batch.

    Args:
        dataset: batches (dicts of dense tensors).
        strategy: a `tfmask.data.masking` strategy.
        seed: int; the same seed gives the same masks.
        dynamic: True (default) re-draws masks every epoch (RoBERTa's dynamic
            masking); False repeats epoch one's masks (BERT's static masking).

    Example:
    >>> from tfmask.data.masking import RandomTokenMasking
    >>> ds = tf.data.Dataset.from_tensors({"token_ids": tf.constant([[5, 6, 7, 8]]),
    ...                                    "padding_mask": tf.ones([1, 4], tf.bool)})
    >>> masked = mask_dataset(ds, RandomTokenMasking(20, 4, max_predictions=2), seed=1)
    >>> sorted(next(iter(masked)))
    ['mask_ids', 'mask_positions', 'mask_weights', 'padding_mask', 'token_ids']
    """
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=dynamic).batch(2)
    return tf.data.Dataset.zip((dataset, seeds)).map(
        lambda batch, batch_seed: strategy(batch, seed=batch_seed),
        num_parallel_calls=num_parallel_calls,
        deterministic=True,
    )


def text_pipeline(
    dataset,
    tokenizer,
    sequence_length,
    batch_size,
    strategies=(),
    seed=0,
    dynamic=True,
    words_key=None,
    drop_remainder=True,
    shuffle_buffer=None,
    text_key=F.TEXT,
    framing="cls_sep",
    reserve=0,
):
    """Documents -> fixed-length, masked batches, ready for a model.

    Batches raw examples first (tokenizing a batch of strings is much faster
    than one at a time), tokenizes, drops the ragged `words` unless a
    strategy needs them, then applies `strategies` in order, each with its
    own seed stream. `drop_remainder=True` keeps every shape static (XLA,
    TPU). `framing` and `reserve` are `WordPieceTokenizer.frame`'s.
    """
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=dynamic)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    dataset = dataset.map(
        lambda batch: tokenize_batch(batch, tokenizer, sequence_length, text_key=text_key,
                                     words_key=words_key, framing=framing, reserve=reserve),
        num_parallel_calls=AUTOTUNE,
        deterministic=True,
    )
    for index, strategy in enumerate(strategies):
        dataset = mask_dataset(dataset, strategy, seed=seed * 1000 + index, dynamic=dynamic)
    dataset = dataset.map(lambda batch: {k: v for k, v in batch.items() if k != F.WORDS})
    return dataset.prefetch(AUTOTUNE)
