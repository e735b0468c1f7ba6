"""Masked multi-head attention with every mask in one code path, and a KV cache."""

import math

import keras
from keras import ops

from tfmask.layers.dropout import Dropout
from tfmask.layers.keras_mask import keras_mask_of
from tfmask.layers.padding_free import gather_tokens, scatter_tokens
from tfmask import masks as mask_ops


@keras.saving.register_keras_serializable(package="tfmask")
class MaskedMultiHeadAttention(keras.layers.Layer):
    """Multi-head attention that honours every mask it is given, always.

    All masks go through one pure function (`tfmask.masks.merge_attention_masks`)
    and there is a single attention path, so no combination of options can
    drop one of them (the failure behind keras #23038, where the causal mask
    vanished once dropout or returned scores were on). Softmax runs in float32
    with a finite fill, and a query with nothing to attend to gets an output
    of exactly zero, never NaN, in float16 and bfloat16 too.

    Weights have the same shapes and names as `keras.layers.MultiHeadAttention`
    (`query`, `key`, `value`, `attention_output` EinsumDense layers), so the
    two layers can exchange weights.

    Args:
        num_heads: int. Number of attention heads.
        key_dim: int. Size of each head for query and key.
        value_dim: int. Size of each head for value. Defaults to `key_dim`.
        output_dim: int. Size of the output. Defaults to the query's last dim.
        dropout: float. Dropout on the attention probabilities. Default 0.
        use_bias: bool. Whether the projections have biases. Default True.
        kernel_initializer: initializer for the projection kernels.
        bias_initializer: initializer for the projection biases.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments:
        query: [B, T, D_q].
        value: [B, S, D_v]; None means self-attention on `query`.
        key: [B, S, D_k]; defaults to `value`.
        query_mask, value_mask, key_mask: [B, T] / [B, S] padding masks.
            Filled automatically from Keras masks of the inputs.
        attention_mask: custom mask, [T, S], [B, T, S] or [B, num_heads, T, S].
        use_causal_mask: bool. Query i sees keys up to its own position.
        segment_ids: [B, T] packed-document ids (0 = padding); with
            `key_segment_ids` [B, S] for cross-attention. Documents never
            attend to each other.
        cache: [B, 2, S_max, num_heads, key_dim] key/value cache for
            incremental self-attention decoding (`init_cache` makes one).
        cache_update_index: int or scalar tensor; where this call's keys and
            values are written into the cache. The causal mask then places
            query i at key position `cache_update_index + i`. Keys that are
            not yet written are never seen when `use_causal_mask=True`.
        return_attention_scores: bool. Also return the attention
            probabilities [B, num_heads, T, S] (before dropout).
        token_index: int32 [N] or None. Padding-free self-attention: `query`
            is then [N, D], the real tokens of a [B, T] batch whose padding
            mask `query_mask` must be given, at the flat positions
            `token_index` (`tfmask.layers.padding_free`). Projections run on
            the N tokens only; the output is [N, output_dim].
        training: bool. Enables dropout.

    Returns:
        `output` [B, T, output_dim]; then `scores` if
        `return_attention_scores`; then the updated `cache` if a cache was
        passed. A single tensor when neither was asked for, else a tuple.

    Example:
    >>> import numpy as np
    >>> layer = MaskedMultiHeadAttention(num_heads=2, key_dim=4)
    >>> x = np.random.rand(1, 3, 8).astype("float32")
    >>> layer(x, query_mask=np.array([[1, 1, 0]]),
    ...       use_causal_mask=True).shape
    TensorShape([1, 3, 8])
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        value_dim=None,
        output_dim=None,
        dropout=0.0,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim if value_dim is not None else key_dim
        self.output_dim = output_dim
        self.dropout = dropout
        self.use_bias = use_bias
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def _projection(self, name, equation, output_shape, bias_axes):
        projection = keras.layers.EinsumDense(
            equation,
            output_shape=output_shape,
            bias_axes=bias_axes if self.use_bias else None,
            kernel_initializer=keras.initializers.get(
                keras.initializers.serialize(self.kernel_initializer)
            ),
            bias_initializer=keras.initializers.get(
                keras.initializers.serialize(self.bias_initializer)
            ),
            dtype=self.dtype_policy,
            name=name,
        )
        # Masks are consumed by this layer; the projections just pass them
        # along instead of warning that they would drop them.
        projection.supports_masking = True
        return projection

    def build(self, query_shape, value_shape=None, key_shape=None):
        if len(query_shape) == 2:  # padding-free tokens [N, D] (see `token_index`)
            query_shape = (None,) + tuple(query_shape)
        value_shape = query_shape if value_shape is None else value_shape
        key_shape = value_shape if key_shape is None else key_shape
        heads = self.num_heads
        # [B, T, D] x [D, H, K] -> [B, T, H, K]
        self._query_dense = self._projection(
            "query", "abc,cde->abde", (None, heads, self.key_dim), "de"
        )
        self._query_dense.build(query_shape)
        self._key_dense = self._projection(
            "key", "abc,cde->abde", (None, heads, self.key_dim), "de"
        )
        self._key_dense.build(key_shape)
        self._value_dense = self._projection(
            "value", "abc,cde->abde", (None, heads, self.value_dim), "de"
        )
        self._value_dense.build(value_shape)
        output_dim = self.output_dim or query_shape[-1]
        # [B, T, H, V] x [H, V, D] -> [B, T, D]
        self._output_dense = self._projection(
            "attention_output", "abcd,cde->abe", (None, output_dim), "e"
        )
        self._output_dense.build(
            (query_shape[0], query_shape[1], heads, self.value_dim)
        )
        self._dropout_layer = Dropout(
            self.dropout, dtype=self.dtype_policy
        )
        self.built = True

    def init_cache(self, batch_size, max_length, dtype=None):
        """An all-zero key/value cache [B, 2, max_length, heads, key_dim]."""
        if self.value_dim != self.key_dim:
            raise ValueError(
                "The key/value cache needs value_dim == key_dim, got "
                f"{self.value_dim} and {self.key_dim}."
            )
        return ops.zeros(
            (batch_size, 2, max_length, self.num_heads, self.key_dim),
            dtype=dtype or self.compute_dtype,
        )

    def call(
        self,
        query,
        value=None,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        attention_mask=None,
        use_causal_mask=False,
        segment_ids=None,
        key_segment_ids=None,
        cache=None,
        cache_update_index=None,
        return_attention_scores=False,
        token_index=None,
        training=None,
    ):
        # Keras fills `*_mask` arguments only when a call has several tensor
        # arguments, so read the masks attached to the inputs ourselves.
        if query_mask is None:
            query_mask = keras_mask_of(query)
        if value_mask is None and value is not None:
            value_mask = keras_mask_of(value)
        if key_mask is None and key is not None:
            key_mask = keras_mask_of(key)
        self_attention = value is None
        if self_attention:
            value = query
            # With a cache the keys are the cache, not this call's queries,
            # so the query padding cannot serve as the key padding.
            if value_mask is None and cache is None:
                value_mask = query_mask
            if key_segment_ids is None:
                key_segment_ids = segment_ids
        elif segment_ids is not None and key_segment_ids is None:
            raise ValueError(
                "Cross-attention got `segment_ids` for the queries but no "
                "`key_segment_ids`; pass the packed-document ids of the keys."
            )
        if key is None:
            key = value
            key_mask = None  # the value mask already covers the keys

        if token_index is not None:
            query_heads, key_heads, value_heads = self._padding_free_projections(
                query, query_mask, token_index, self_attention, cache
            )
        else:
            query_heads = self._query_dense(query)  # [B, T, H, K]
            key_heads = self._key_dense(key)  # [B, S, H, K]
            value_heads = self._value_dense(value)  # [B, S, H, V]

        causal_offset = None
        if cache is not None:
            if cache_update_index is None:
                raise ValueError(
                    "A cache was passed without `cache_update_index`; pass "
                    "the position of this step's first token in the cache."
                )
            start = [0, cache_update_index, 0, 0]
            key_heads = ops.slice_update(cache[:, 0, ...], start, key_heads)
            value_heads = ops.slice_update(cache[:, 1, ...], start, value_heads)
            cache = ops.stack([key_heads, value_heads], axis=1)
            causal_offset = cache_update_index

        query_length = ops.shape(query_heads)[1]
        key_length = ops.shape(key_heads)[1]
        mask = mask_ops.merge_attention_masks(
            query_length,
            key_length,
            query_mask=query_mask,
            key_mask=mask_ops.combine_masks(value_mask, key_mask),
            attention_mask=attention_mask,
            use_causal_mask=use_causal_mask,
            causal_offset=causal_offset,
            segment_ids=segment_ids,
            key_segment_ids=key_segment_ids,
        )
        if mask is not None and len(mask.shape) == 3:
            mask = mask[:, None]  # [B, 1, T, S], broadcast over heads

        query_heads = ops.multiply(
            query_heads,
            ops.cast(1.0 / math.sqrt(self.key_dim), query_heads.dtype),
        )
        scores = ops.einsum(
            "bthd,bshd->bhts", query_heads, key_heads
        )  # [B, H, T, S]
        probs = mask_ops.masked_softmax(scores, mask)
        dropped = self._dropout_layer(probs, training=training)
        context = ops.einsum(
            "bhts,bshd->bthd", dropped, value_heads
        )  # [B, T, H, V]
        if token_index is not None:
            # expand/squeeze, not [None]/[0]: slicing has a costly gradient.
            context = ops.expand_dims(gather_tokens(context, token_index), 0)  # [1, N, H, V]
            output = ops.squeeze(self._output_dense(context), 0)  # [N, D]
        else:
            output = self._output_dense(context)

        outputs = [output]
        if return_attention_scores:
            outputs.append(probs)
        if cache is not None:
            outputs.append(cache)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def _padding_free_projections(self, tokens, query_mask, token_index, self_attention,
                                  cache):
        """[N, D] real tokens -> query/key/value heads [B, T, H, K], zero at padding."""
        if not self_attention or cache is not None:
            raise ValueError(
                "token_index (padding-free attention) works for self-attention "
                "without a cache; drop `value`/`key`/`cache` or `token_index`."
            )
        if query_mask is None:
            raise ValueError(
                "token_index needs `query_mask`, the [B, T] padding mask the "
                "tokens were gathered with."
            )
        heads = []
        for projection in (self._query_dense, self._key_dense, self._value_dense):
            projected = ops.squeeze(projection(ops.expand_dims(tokens, 0)), 0)  # [N, H, K]
            heads.append(scatter_tokens(projected, token_index, query_mask))
        return heads

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "value_dim": self.value_dim,
                "output_dim": self.output_dim,
                "dropout": self.dropout,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
            }
        )
        return config
