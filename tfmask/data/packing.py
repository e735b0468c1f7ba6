"""Packing documents into fixed-length rows, so that padding is not trained on.

`pack` turns an unbatched dataset of variable-length documents (dicts of
1-D token lists) into rows of exactly `sequence_length` tokens holding
several documents each, with the features that keep them apart
(see `tfmask.data.features`):

| key            | dtype | shape | meaning |
|----------------|-------|-------|---------|
| each of `keys` | as in | [S]   | the documents' values side by side, then padding |
| `segment_ids`  | int32 | [S]   | 1, 2, ... per document in the row, 0 on padding |
| `position_ids` | int32 | [S]   | position inside its own document, 0 on padding |
| `padding_mask` | bool  | [S]   | True at real tokens (`segment_ids > 0`) |

Feed `segment_ids` to attention (`tfmask.masks.document_mask`) so packed
documents never see each other, and `position_ids` to the position
embedding so every document starts at position 0.

The algorithm is first-fit decreasing bin packing inside windows of
`window_size` documents, written in TensorFlow ops (no `py_function`), so
it runs inside `tf.data` at full speed and every output shape is static.
`packing_report` measures what it saves on a finite dataset.

Example:
>>> docs = tf.data.Dataset.from_generator(
...     lambda: iter([[5, 6, 7], [8, 9], [10, 11, 12, 13]]),
...     output_signature=tf.TensorSpec([None], tf.int32),
... ).map(lambda ids: {"token_ids": ids})
>>> rows = [{k: v.numpy().tolist() for k, v in row.items()} for row in pack(docs, 6)]
>>> len(rows)
2
>>> rows[0]["token_ids"], rows[0]["segment_ids"], rows[0]["position_ids"]
([10, 11, 12, 13, 8, 9], [1, 1, 1, 1, 2, 2], [0, 1, 2, 3, 0, 1])
>>> rows[1]["token_ids"], rows[1]["padding_mask"]
([5, 6, 7, 0, 0, 0], [True, True, True, False, False, False])
"""

import dataclasses

import tensorflow as tf

from tfmask.data import features as F
from tfmask.guards import guarded

AUTOTUNE = tf.data.AUTOTUNE
OVERLONG_MODES = ("split", "truncate", "fail")
PACKED_KEYS = (F.SEGMENT_IDS, F.POSITION_IDS, F.PADDING_MASK)

# Keys whose values index something inside a document (its words, its
# entities); -1 means "none" (special tokens, padding) in tfmask batches.
INDEX_KEYS = (F.WORD_IDS, F.ENTITY_IDS)

# Order of the per-window counters that `packing_report` adds up.
_STATS = ("documents", "pieces", "tokens", "rows", "truncated_documents", "dropped_tokens")


def first_fit_decreasing(lengths, capacity):
    """Assigns items to bins of `capacity` by first-fit decreasing.

    Items are taken longest first (ties in input order); each goes to the
    first bin with room for it, a new bin when none has. Every length must
    be in [1, capacity].

    Items of one length are placed together, which gives exactly the same
    bins as placing them one by one (each fills the first bin with room
    until it is full, then the next), in one step per *distinct* length
    instead of one per item.

    Args:
        lengths: [N] int tensor.
        capacity: int, the bin size.

    Returns:
        (bins, offsets, slots), [N] int32 each, in input order: the bin of
        each item, where it starts in its bin, and its rank in the bin
        (0, 1, ... in placement order, i.e. along the bin).

    Example:
    >>> bins, offsets, slots = first_fit_decreasing([3, 5, 2, 4], 8)
    >>> bins.numpy().tolist(), offsets.numpy().tolist(), slots.numpy().tolist()
    ([0, 0, 1, 1], [5, 0, 4, 0], [1, 0, 1, 0])
    """
    lengths = tf.cast(tf.convert_to_tensor(lengths), tf.int32)
    n = tf.size(lengths)
    order = tf.argsort(lengths, direction="DESCENDING", stable=True)
    sorted_lengths = tf.gather(lengths, order)
    distinct, group = tf.unique(sorted_lengths)  # longest first
    group_sizes = tf.math.unsorted_segment_sum(tf.ones_like(group), group, tf.size(distinct))
    group_starts = tf.cumsum(group_sizes, exclusive=True)

    def place(g, room, count, bins, offsets, slots):
        length, size, start = distinct[g], group_sizes[g], group_starts[g]
        fits = room // length  # how many more of these each bin takes
        ends = tf.cumsum(fits)  # ... and bins 0..b together
        item = tf.range(size)
        # Unused bins have full room, so a bin is always found.
        chosen = tf.searchsorted(ends, item, side="right", out_type=tf.int32)
        within = item - (tf.gather(ends, chosen) - tf.gather(fits, chosen))
        where = (start + item)[:, None]
        bins = tf.tensor_scatter_nd_update(bins, where, chosen)
        offsets = tf.tensor_scatter_nd_update(
            offsets, where, capacity - tf.gather(room, chosen) + within * length
        )
        slots = tf.tensor_scatter_nd_update(slots, where, tf.gather(count, chosen) + within)
        taken = tf.math.unsorted_segment_sum(tf.ones_like(chosen), chosen, n)
        return g + 1, room - taken * length, count + taken, bins, offsets, slots

    zeros = tf.zeros([n], tf.int32)
    _, _, _, bins, offsets, slots = tf.while_loop(
        lambda g, *_: g < tf.size(distinct),
        place,
        (tf.constant(0), tf.fill([n], tf.cast(capacity, tf.int32)), zeros, zeros, zeros, zeros),
    )
    inverse = tf.math.invert_permutation(order)  # sorted order -> input order
    return tf.gather(bins, inverse), tf.gather(offsets, inverse), tf.gather(slots, inverse)


def _check_arguments(dataset, sequence_length, window_size, overlong, keys, pad_values, index_keys):
    if overlong not in OVERLONG_MODES:
        raise ValueError(f"overlong={overlong!r} is not one of {OVERLONG_MODES}.")
    for name, value in (("sequence_length", sequence_length), ("window_size", window_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}.")
    keys = (keys,) if isinstance(keys, str) else tuple(keys)
    if not keys:
        raise ValueError("keys is empty; name the token features to pack, e.g. ('token_ids',).")
    spec = dataset.element_spec
    if not isinstance(spec, dict):
        raise ValueError(
            f"pack needs a dataset of dicts, got elements of {type(spec).__name__}; "
            "map them to {'token_ids': ids} first."
        )
    for key in keys:
        if key in PACKED_KEYS:
            raise ValueError(f"{key!r} is written by pack; drop it from keys.")
        if key not in spec:
            raise ValueError(f"pack: the dataset has no {key!r} (it has {sorted(spec)}); fix keys.")
        key_spec = spec[key]
        flat = isinstance(key_spec, tf.TensorSpec) or (
            isinstance(key_spec, tf.RaggedTensorSpec) and key_spec.ragged_rank == 0
        )
        if not flat or key_spec.shape.rank != 1:
            raise ValueError(
                f"pack: {key!r} must be a 1-D token list per document, got {key_spec}; "
                "pack takes an unbatched dataset (call dataset.unbatch() first)."
            )
        if key_spec.dtype == tf.string:
            raise ValueError(f"pack: {key!r} holds strings; tokenize before packing.")
    pad_values = dict(pad_values or {})
    unknown = set(pad_values) - set(keys)
    if unknown:
        raise ValueError(f"pad_values names {sorted(unknown)}, which are not in keys {keys}.")
    pads = {k: pad_values.get(k, -1 if k in INDEX_KEYS else 0) for k in keys}
    if index_keys is None:
        index_keys = tuple(k for k in keys if k in INDEX_KEYS)
    index_keys = tuple(index_keys)
    if set(index_keys) - set(keys):
        raise ValueError(f"index_keys {index_keys} must be among keys {keys}.")
    return keys, pads, index_keys


def _window_packer(sequence_length, overlong, keys, pads, index_keys, build_rows=True):
    """The function packing one window (a ragged batch of documents)."""
    S = sequence_length

    def pack_window(window):
        ragged = {}
        for key in keys:
            value = window[key]
            if not isinstance(value, tf.RaggedTensor):  # equal lengths batch densely
                value = tf.RaggedTensor.from_tensor(value)
            ragged[key] = value.with_row_splits_dtype(tf.int64)
        lengths = ragged[keys[0]].row_lengths()
        checks = [
            tf.debugging.Assert(
                tf.reduce_all(tf.equal(ragged[key].row_lengths(), lengths)),
                [f"pack: {key!r} and {keys[0]!r} differ in length in a document; every key "
                 "in `keys` needs one value per token."],
            )
            for key in keys[1:]
        ]
        documents = tf.size(lengths, out_type=tf.int64)
        values = {key: ragged[key].values for key in keys}
        overflow = tf.maximum(lengths - S, 0)
        truncated = tf.math.count_nonzero(overflow)
        dropped = tf.reduce_sum(overflow)
        if overlong == "fail":
            longest = tf.reduce_max(tf.concat([lengths, [0]], 0))
            checks.append(tf.debugging.Assert(longest <= S, [tf.strings.join([
                "pack: a document has ", tf.strings.as_string(longest),
                f" tokens, more than sequence_length={S}; pass overlong='split' or 'truncate'.",
            ])]))
            truncated = dropped = tf.constant(0, tf.int64)
        elif overlong == "truncate":
            position = tf.range(tf.size(values[keys[0]], out_type=tf.int64)) - tf.repeat(
                ragged[keys[0]].row_starts(), lengths
            )
            values = {key: tf.boolean_mask(v, position < S) for key, v in values.items()}
            lengths = tf.minimum(lengths, S)
        else:  # split: cut the token stream at new boundaries, nothing moves
            truncated = dropped = tf.constant(0, tf.int64)
            pieces = (lengths + S - 1) // S
            piece_doc = tf.repeat(tf.range(tf.size(lengths, out_type=tf.int64)), pieces)
            piece_index = tf.range(tf.reduce_sum(pieces)) - tf.repeat(
                tf.cumsum(pieces, exclusive=True), pieces
            )
            lengths = tf.minimum(tf.gather(lengths, piece_doc) - piece_index * S, S)
        lengths = tf.boolean_mask(lengths, lengths > 0)  # empty documents hold nothing
        lengths = guarded(tf.cast(lengths, tf.int32), *checks)

        bins, offsets, slots = first_fit_decreasing(lengths, S)
        num_rows = tf.reduce_max(tf.concat([bins, [-1]], 0)) + 1
        total = tf.size(values[keys[0]])
        stats = tf.cast(tf.stack([documents, tf.cast(tf.size(lengths), tf.int64),
                                  tf.cast(total, tf.int64), tf.cast(num_rows, tf.int64),
                                  truncated, dropped]), tf.int64)
        if not build_rows:
            return stats

        # Every token's document, position in it, and place in the output.
        doc = tf.repeat(tf.range(tf.size(lengths)), lengths)
        position = tf.range(total) - tf.gather(tf.cumsum(lengths, exclusive=True), doc)
        row = tf.gather(bins, doc)
        where = tf.stack([row, tf.gather(offsets, doc) + position], axis=1)
        shape = tf.stack([num_rows, S])

        def scatter(updates, pad):
            base = tf.fill(shape, tf.cast(pad, updates.dtype))
            return tf.ensure_shape(tf.tensor_scatter_nd_update(base, where, updates), [None, S])

        rows = {}
        for key in keys:
            token_values = values[key]
            if key in index_keys:
                token_values = _renumber(token_values, doc, bins, slots)
            rows[key] = scatter(token_values, pads[key])
        rows[F.SEGMENT_IDS] = scatter(tf.gather(slots, doc) + 1, 0)
        rows[F.POSITION_IDS] = scatter(position, 0)
        rows[F.PADDING_MASK] = rows[F.SEGMENT_IDS] > 0
        return rows, stats

    return pack_window


def _renumber(values, doc, bins, slots):
    """Shifts per-document indices (word ids, ...) so they stay unique in a row.

    A document whose indices go up to k uses k + 1 numbers; documents later
    in the same row start after those of the earlier ones. -1 stays -1.
    """
    num_docs = tf.size(bins)
    used = tf.maximum(
        tf.math.unsorted_segment_max(tf.cast(values, tf.int64), doc, num_docs) + 1, 0
    )
    # Exclusive running sum of `used` over the documents of each row, in
    # row order: sort by (row, slot), cumsum, subtract each row's start.
    order = tf.argsort(tf.cast(bins, tf.int64) * tf.cast(num_docs + 1, tf.int64)
                       + tf.cast(slots, tf.int64))
    running = tf.cumsum(tf.gather(used, order), exclusive=True)
    sorted_bins = tf.gather(bins, order)
    row_start = tf.math.segment_min(running, sorted_bins)
    shift = tf.scatter_nd(order[:, None], running - tf.gather(row_start, sorted_bins),
                          tf.shape(used, out_type=tf.int32))
    shifted = tf.cast(values, tf.int64) + tf.gather(shift, doc)
    return tf.where(values >= 0, tf.cast(shifted, values.dtype), values)


def _windows(dataset, sequence_length, window_size, overlong, keys, pad_values, index_keys,
             build_rows=True):
    keys, pads, index_keys = _check_arguments(
        dataset, sequence_length, window_size, overlong, keys, pad_values, index_keys
    )
    packer = _window_packer(sequence_length, overlong, keys, pads, index_keys, build_rows)
    return _batch_window(dataset, window_size).map(
        packer, num_parallel_calls=AUTOTUNE, deterministic=True
    )


def _batch_window(dataset, window_size):
    """Groups documents into windows, as ragged batches, the fastest way possible.

    Documents that are ragged already (what `unbatch()` gives after a batched
    tokenizer) batch natively, ~10x faster than `ragged_batch`, which runs a
    conversion per document; it is only needed for variable-length dense
    tensors. The whole element is batched: a per-document map selecting
    `keys` would cost more than the packing itself.
    """
    def batchable(spec):
        return isinstance(spec, tf.RaggedTensorSpec) or (
            isinstance(spec, tf.TensorSpec) and spec.shape.is_fully_defined()
        )

    specs = tf.nest.flatten(dataset.element_spec, expand_composites=False)
    if all(batchable(spec) for spec in specs):
        return dataset.batch(window_size)
    return dataset.ragged_batch(window_size)


def pack(dataset, sequence_length, window_size=1024, overlong="split", keys=(F.TOKEN_IDS,),
         pad_values=None, index_keys=None):
    """Packs documents into rows of exactly `sequence_length` tokens.

    Args:
        dataset: an **unbatched** dataset of dicts; each key of `keys` is a
            1-D tensor (a document's tokens, or a per-token feature of the
            same length such as `word_ids`). Other keys are dropped: a
            per-document value has no place in a row of several documents.
        sequence_length: int S, the row length.
        window_size: documents packed together. Larger windows pack tighter
            and cost more (time grows with window size times the number of
            distinct lengths in it).
        overlong: what to do with a document longer than S:
            "split" (default) cuts it into pieces of S tokens, each packed
            as its own document (nothing is lost); "truncate" keeps the
            first S tokens (`packing_report` counts what is dropped);
            "fail" stops iteration with an error naming the length.
        keys: the token features to pack, all of one length per document.
        pad_values: dict key -> padding value. Default: -1 for `word_ids`
            and `entity_ids` (tfmask's "no word / no entity"), 0 otherwise.
        index_keys: keys whose non-negative values index something inside
            the document (words, entities). They are shifted so that they
            stay unique within a row, as whole-word and entity masking
            expect (they group tokens by equal index). Default: `word_ids`
            and `entity_ids`, when packed. Pass () to keep values as they are.

    Returns:
        An unbatched dataset of rows: each of `keys` [S], plus
        `segment_ids`, `position_ids` [S] int32 and `padding_mask` [S] bool,
        all with static shapes, ready for `.batch(b, drop_remainder=True)`.
        Documents are never split across rows (except overlong ones cut by
        "split"). Rows come out longest documents first within each
        window; shuffle after packing if order matters.

    To see what packing saves, run `packing_report` with the same arguments
    on a finite sample, e.g. `print(packing_report(docs.take(10_000), 512))`.

    Example:
    >>> docs = tf.data.Dataset.from_tensor_slices(
    ...     {"token_ids": tf.ragged.constant([[1, 2, 3, 4, 5], [6, 7]])})
    >>> rows = pack(docs, 4)
    >>> rows.element_spec["token_ids"].shape
    TensorShape([4])
    >>> [(r["token_ids"].numpy().tolist(), r["segment_ids"].numpy().tolist()) for r in rows]
    [([1, 2, 3, 4], [1, 1, 1, 1]), ([6, 7, 5, 0], [1, 1, 2, 0])]
    """
    windows = _windows(dataset, sequence_length, window_size, overlong, keys, pad_values,
                       index_keys)
    return windows.map(lambda rows, stats: rows).unbatch()


@dataclasses.dataclass(frozen=True)
class PackingReport:
    """What packing did to a finite dataset; `str()` gives the one-line summary.

    Attributes:
        sequence_length: S.
        documents: input documents (empty ones included).
        pieces: non-empty documents after over-long handling (a document
            split in three counts three); without packing, each would fill
            one row.
        tokens: real tokens in the rows.
        rows: rows after packing.
        truncated_documents, dropped_tokens: what `overlong="truncate"` cut.
    """

    sequence_length: int
    documents: int
    pieces: int
    tokens: int
    rows: int
    truncated_documents: int = 0
    dropped_tokens: int = 0

    @property
    def rows_before(self):
        """Rows needed with one document (piece) per row."""
        return self.pieces

    @property
    def padding_before(self):
        """Fraction of padding with every document padded to S."""
        return self._padding(self.rows_before)

    @property
    def padding_after(self):
        """Fraction of padding in the packed rows."""
        return self._padding(self.rows)

    def _padding(self, rows):
        return 1.0 - self.tokens / (rows * self.sequence_length) if rows else 0.0

    def __str__(self):
        text = (
            f"padding {self.padding_before:.1%} -> {self.padding_after:.1%} over "
            f"{self.documents:,} documents in {self.rows:,} rows"
        )
        if self.dropped_tokens:
            text += (f"; truncation dropped {self.dropped_tokens:,} tokens of "
                     f"{self.truncated_documents:,} documents")
        return text


def packing_report(dataset, sequence_length, window_size=1024, overlong="split",
                   keys=(F.TOKEN_IDS,)):
    """Measures padding before and after `pack` on a finite dataset.

    Runs the same windows and bin packing as `pack` with the same
    arguments (the rows themselves are not built), in one pass.

    Example:
    >>> docs = tf.data.Dataset.from_tensor_slices(
    ...     {"token_ids": tf.ragged.constant([[1, 2, 3], [4], [5, 6], [7, 8]])})
    >>> print(packing_report(docs, 4))
    padding 50.0% -> 0.0% over 4 documents in 2 rows
    """
    windows = _windows(dataset, sequence_length, window_size, overlong, keys, None, (),
                       build_rows=False)
    totals = windows.reduce(tf.zeros([len(_STATS)], tf.int64), lambda total, s: total + s)
    return PackingReport(sequence_length, **dict(zip(_STATS, (int(v) for v in totals.numpy()))))
