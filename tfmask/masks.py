"""Boolean mask algebra: the one mask convention of tfmask.

Every mask in tfmask is a **boolean tensor where True means "may attend" (for
attention masks) or "is kept" (for token masks)**. Masks are combined with a
logical AND (`combine_masks`) and turned into numbers only at the very end,
either by `masked_softmax` (what tfmask layers use) or by `mask_to_bias` (an
additive bias for kernels that want one).

Shape letters: B batch, H heads, T query length, S key length.

| function                 | shape        | True where                              |
|--------------------------|--------------|-----------------------------------------|
| `padding_mask`           | [B, S]       | the token is not padding                |
| `causal_mask`            | [T, S]       | key j is not in the future of query i   |
| `prefix_lm_mask`         | [B, S, S]    | j is in the prefix, or j <= i           |
| `document_mask`          | [B, T, S]    | i and j are in the same (non-zero) doc  |
| `sliding_window_mask`    | [T, S]       | abs(i - j) < window                     |
| `cross_attention_mask`   | [B, T, S]    | query i and key j are both real tokens  |
| `merge_attention_masks`  | [B, (H,) T, S] | all of the above that were asked for  |

Example:

>>> import numpy as np
>>> ids = np.array([[5, 6, 7, 0]])
>>> mask = combine_masks(
...     cross_attention_mask(padding_mask(ids), padding_mask(ids)),
...     causal_mask(4),
... )
>>> np.asarray(mask[0]).astype(int).tolist()
[[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0]]
"""

import numpy as np
from keras import backend, ops


def _as_bool(mask):
    """Casts int/float masks (1 = keep) to bool; bool masks pass through."""
    mask = ops.convert_to_tensor(mask)
    if backend.standardize_dtype(mask.dtype) != "bool":
        mask = ops.not_equal(mask, 0)
    return mask


def _static_rank(tensor):
    return len(tensor.shape)


def padding_mask(token_ids, pad_id=0):
    """[B, S] mask, True at real tokens and False at `pad_id`.

    Example:
    >>> padding_mask([[4, 5, 0]]).numpy().tolist()
    [[True, True, False]]
    """
    return ops.not_equal(ops.convert_to_tensor(token_ids), pad_id)


def causal_mask(query_length, key_length=None, offset=None):
    """[T, S] mask where query i may attend key j iff j <= offset + i.

    By default `offset = key_length - query_length`, i.e. the queries are the
    last T positions of the S keys (what cached decoding needs). Pass
    `offset` explicitly when the queries sit elsewhere, e.g. at
    `cache_update_index` in a fixed-size key/value cache.

    Example:
    >>> causal_mask(2, 3).numpy().astype(int).tolist()
    [[1, 1, 0], [1, 1, 1]]
    """
    if key_length is None:
        key_length = query_length
    if (
        offset is None
        and isinstance(query_length, int)
        and isinstance(key_length, int)
        and key_length < query_length
    ):
        raise ValueError(
            f"causal_mask: key_length={key_length} is shorter than "
            f"query_length={query_length}; pass `offset` to say where the "
            "queries sit among the keys."
        )
    if offset is None:
        offset = key_length - query_length
    rows = ops.expand_dims(ops.arange(query_length, dtype="int32"), 1)
    cols = ops.expand_dims(ops.arange(key_length, dtype="int32"), 0)
    return ops.less_equal(cols, rows + ops.cast(offset, "int32"))


def prefix_lm_mask(prefix_lengths, length):
    """[B, S, S] prefix-LM mask: bidirectional inside the prefix, causal after.

    Query i may attend key j iff `j < prefix_lengths[b]` or `j <= i`.
    Prefix tokens therefore see the whole prefix but never the continuation.

    Example:
    >>> prefix_lm_mask([2], 3).numpy().astype(int).tolist()
    [[[1, 1, 0], [1, 1, 0], [1, 1, 1]]]
    """
    prefix_lengths = ops.cast(ops.convert_to_tensor(prefix_lengths), "int32")
    if _static_rank(prefix_lengths) != 1:
        raise ValueError(
            "prefix_lm_mask: prefix_lengths must be a [batch] vector of "
            f"lengths, got shape {tuple(prefix_lengths.shape)}."
        )
    cols = ops.arange(length, dtype="int32")
    in_prefix = ops.less(
        cols[None, None, :], prefix_lengths[:, None, None]
    )  # [B, 1, S]
    return ops.logical_or(causal_mask(length)[None], in_prefix)


def document_mask(segment_ids, key_segment_ids=None):
    """[B, T, S] mask for packed rows: same non-zero segment id only.

    `segment_ids` [B, T] numbers the documents packed into a row (1, 2, ...)
    and uses 0 for padding. Pass `key_segment_ids` [B, S] for cross-attention
    between two packed sequences.

    Example:
    >>> document_mask([[1, 1, 2, 0]]).numpy()[0].astype(int).tolist()
    [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    """
    query_ids = ops.convert_to_tensor(segment_ids)
    key_ids = (
        query_ids
        if key_segment_ids is None
        else ops.convert_to_tensor(key_segment_ids)
    )
    for name, ids in (("segment_ids", query_ids), ("key_segment_ids", key_ids)):
        if _static_rank(ids) != 2:
            raise ValueError(
                f"document_mask: {name} must be [batch, length], got shape "
                f"{tuple(ids.shape)}."
            )
    query_ids = query_ids[:, :, None]
    key_ids = ops.cast(key_ids, query_ids.dtype)[:, None, :]
    return ops.logical_and(
        ops.equal(query_ids, key_ids), ops.not_equal(query_ids, 0)
    )


def sliding_window_mask(length, window, key_length=None, offset=0):
    """[T, S] band mask: query i may attend key j iff abs(i + offset - j) < window.

    Same definition as Keras' `MultiHeadAttention(sliding_window=...)`;
    combine it with `causal_mask` for the causal window of Mistral-style
    models (each token sees itself and `window - 1` tokens before it).
    `offset` places query i at key position `i + offset`, as in `causal_mask`
    (0: Keras' top-left alignment).

    Example:
    >>> sliding_window_mask(4, 2).numpy().astype(int).tolist()
    [[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 1], [0, 0, 1, 1]]
    """
    if isinstance(window, int) and window < 1:
        raise ValueError(
            f"sliding_window_mask: window must be >= 1, got {window}."
        )
    key_length = length if key_length is None else key_length
    rows = ops.expand_dims(ops.arange(length, dtype="int32"), 1) + ops.cast(offset, "int32")
    cols = ops.expand_dims(ops.arange(key_length, dtype="int32"), 0)
    return ops.less(ops.abs(rows - cols), window)


def cross_attention_mask(query_padding, key_padding):
    """[B, T, S] mask from a query padding mask [B, T] and key one [B, S].

    Either may be None: the result then broadcasts over that axis
    ([B, 1, S] or [B, T, 1]). Rows of padded queries are all False, so the
    attention output there is zero.

    Example:
    >>> cross_attention_mask([[True, False]], [[True, True, False]]).numpy(
    ... ).astype(int).tolist()
    [[[1, 1, 0], [0, 0, 0]]]
    """
    masks = []
    if query_padding is not None:
        query_padding = _as_bool(query_padding)
        _check_rank("query_padding", query_padding, (2,))
        masks.append(query_padding[:, :, None])
    if key_padding is not None:
        key_padding = _as_bool(key_padding)
        _check_rank("key_padding", key_padding, (2,))
        masks.append(key_padding[:, None, :])
    return combine_masks(*masks)


def _check_rank(name, tensor, ranks, hint=""):
    if _static_rank(tensor) not in ranks:
        allowed = " or ".join(f"rank {r}" for r in ranks)
        raise ValueError(
            f"{name} must have {allowed}, got shape {tuple(tensor.shape)}."
            + (f" {hint}" if hint else "")
        )


def _broadcast_shape(shape_a, shape_b):
    """Static broadcast of two shapes (None = unknown); None if impossible."""
    rank = max(len(shape_a), len(shape_b))
    shape_a = (1,) * (rank - len(shape_a)) + tuple(shape_a)
    shape_b = (1,) * (rank - len(shape_b)) + tuple(shape_b)
    result = []
    for a, b in zip(shape_a, shape_b):
        if a is None or b is None:
            result.append(b if a == 1 else a if b == 1 else (a or b))
        elif a == 1 or b == 1 or a == b:
            result.append(max(a, b))
        else:
            return None
    return tuple(result)


def combine_masks(*masks):
    """Logical AND of masks with numpy broadcasting; `None` entries ignored.

    Returns None when every mask is None. Int and float masks are read as
    "non-zero = keep". Shapes are aligned from the right, so a [B, S] key
    padding mask must be expanded to [B, 1, S] first (`cross_attention_mask`
    does that); a clear error says so when the shapes cannot broadcast.

    Example:
    >>> combine_masks(None, [[True, False]], [[True, True]]).numpy().tolist()
    [[True, False]]
    """
    masks = [_as_bool(m) for m in masks if m is not None]
    if not masks:
        return None
    combined = masks[0]
    shape = tuple(combined.shape)
    for mask in masks[1:]:
        new_shape = _broadcast_shape(shape, tuple(mask.shape))
        if new_shape is None:
            raise ValueError(
                f"combine_masks: mask shapes {shape} and {tuple(mask.shape)} "
                "do not broadcast. Expand [B, S] padding masks to [B, 1, S] "
                "(see cross_attention_mask) and [B, T, S] masks to "
                "[B, 1, T, S] before combining with per-head masks."
            )
        shape = new_shape
        combined = ops.logical_and(combined, mask)
    return combined


def merge_attention_masks(
    query_length,
    key_length,
    query_mask=None,
    key_mask=None,
    attention_mask=None,
    use_causal_mask=False,
    causal_offset=None,
    segment_ids=None,
    key_segment_ids=None,
    sliding_window=None,
):
    """Merges every mask an attention layer can receive into one.

    This is the single place where tfmask attention decides what a query may
    see; the layers only call it. Each argument adds a constraint:

    - `query_mask` [B, T]: padded queries see nothing (their output is 0).
    - `key_mask` [B, S]: padded keys are never seen.
    - `attention_mask` [T, S], [B, T, S] or [B, H, T, S]: any custom mask.
    - `use_causal_mask`: `causal_mask(T, S, causal_offset)`.
    - `segment_ids` [B, T] (+ `key_segment_ids` [B, S] for cross-attention):
      `document_mask`, so packed documents never see each other.
    - `sliding_window`: `sliding_window_mask` with the causal mask's
      query positions (`causal_offset`, default `S - T`).

    Returns a bool mask of rank 3 ([B or 1, T, S]) or rank 4 (when
    `attention_mask` is per head), or None when no constraint was given.

    Example:
    >>> m = merge_attention_masks(3, 3, query_mask=[[1, 1, 0]],
    ...                           key_mask=[[1, 1, 0]], use_causal_mask=True)
    >>> m.numpy()[0].astype(int).tolist()
    [[1, 0, 0], [1, 1, 0], [0, 0, 0]]
    """
    if key_segment_ids is not None and segment_ids is None:
        raise ValueError(
            "merge_attention_masks got key_segment_ids without segment_ids; "
            "pass the query's segment_ids too (or neither)."
        )
    masks = []
    if query_mask is not None or key_mask is not None:
        masks.append(cross_attention_mask(query_mask, key_mask))
    if use_causal_mask:
        masks.append(causal_mask(query_length, key_length, causal_offset)[None])
    if segment_ids is not None:
        masks.append(document_mask(segment_ids, key_segment_ids))
    if sliding_window is not None:
        offset = key_length - query_length if causal_offset is None else causal_offset
        masks.append(sliding_window_mask(query_length, sliding_window, key_length, offset)[None])
    per_head = False
    if attention_mask is not None:
        attention_mask = _as_bool(attention_mask)
        _check_rank(
            "attention_mask",
            attention_mask,
            (2, 3, 4),
            "Use [T, S], [B, T, S] or [B, num_heads, T, S].",
        )
        per_head = _static_rank(attention_mask) == 4
        _check_trailing_dims(attention_mask, query_length, key_length)
    if per_head:
        masks = [m[:, None] for m in masks]
    if attention_mask is not None:
        masks.append(attention_mask)
    return combine_masks(*masks)


def _check_trailing_dims(attention_mask, query_length, key_length):
    """Raises when a custom mask's [T, S] disagrees with the inputs."""
    expected = (query_length, key_length)
    actual = tuple(attention_mask.shape[-2:])
    for want, got in zip(expected, actual):
        if isinstance(want, int) and got is not None and got not in (1, want):
            raise ValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)} but "
                f"the query/key lengths are {query_length}/{key_length}; its "
                "last two axes must be [query_length, key_length]."
            )


def mask_fill_value(dtype):
    """The large negative number tfmask writes at masked logits.

    A quarter of the most negative finite value of `dtype` (-16376 in
    float16, about -8.5e37 in float32 and bfloat16): far below any real logit
    so softmax gives exactly 0, yet up to four such fills can be added (two
    biases plus logits) without overflowing to -inf, which would turn a
    fully masked row into NaN.
    """
    dtype = backend.standardize_dtype(dtype)
    if dtype == "bfloat16":
        import ml_dtypes

        finfo = ml_dtypes.finfo(ml_dtypes.bfloat16)
    else:
        finfo = np.finfo(dtype)
    return float(finfo.min) / 4.0


def mask_to_bias(mask, dtype="float32"):
    """Turns a bool mask into an additive bias: 0 where True, fill elsewhere.

    The fill is `mask_fill_value(dtype)`, finite in float16 and bfloat16 even
    after two biases are added. Prefer `masked_softmax`, which also zeroes
    rows that have nothing to attend to.

    Example:
    >>> mask_to_bias([[True, False]], "float16").numpy().tolist()
    [[0.0, -16376.0]]
    """
    mask = _as_bool(mask)
    fill = ops.cast(mask_fill_value(dtype), dtype)
    return ops.where(mask, ops.zeros((), dtype=dtype), fill)


def masked_softmax(scores, mask=None, axis=-1):
    """Softmax over `axis` that ignores masked entries; safe in low precision.

    Computes in float32 whatever the input dtype (float16 logits overflow in
    `exp`): masked logits get `mask_fill_value("float32")` added, so their
    `exp` underflows to exactly 0, and rows with nothing to attend to are
    multiplied by 0, so they give an all-zero row instead of NaN or a uniform
    distribution. `mask` may be smaller than `scores` and broadcast (e.g.
    [B, 1, T, S] against [B, H, T, S]); the bias is built at the mask's size,
    once, not per head. The result has the dtype of `scores`.

    Example:
    >>> masked_softmax([[1.0, 1.0, 5.0]], [[True, True, False]]).numpy().tolist()
    [[0.5, 0.5, 0.0]]
    """
    scores = ops.convert_to_tensor(scores)
    out_dtype = scores.dtype
    logits = ops.cast(scores, "float32")
    if mask is not None:
        mask = _as_bool(mask)
        logits = logits + mask_to_bias(mask, "float32")
    if isinstance(axis, (tuple, list)):  # attention over several axes (Keras' attention_axes)
        axis = tuple(axis)
        probs = ops.exp(logits - ops.logsumexp(logits, axis=axis, keepdims=True))
    else:
        probs = ops.softmax(logits, axis=axis)
    if mask is not None:
        probs = probs * ops.cast(ops.any(mask, axis=axis, keepdims=True), "float32")
    return ops.cast(probs, out_dtype)
