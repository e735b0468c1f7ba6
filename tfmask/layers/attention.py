"""Masked multi-head attention: a drop-in for Keras' MultiHeadAttention that
honours every mask, never gives NaN, and adds KV caches, packed documents
and padding-free tokens."""

import keras
from keras import ops

from tfmask.layers.dropout import Dropout
from tfmask.layers.keras_mask import keras_mask_of
from tfmask.layers.padding_free import gather_tokens, scatter_tokens
from tfmask import masks as mask_ops

CAUSAL_ALIGNMENTS = ("top_left", "bottom_right")


# The class is named as Keras' own: Keras' weights files address the layers
# of a model by class name, so with the same name a model saved with Keras'
# layer loads into one built with this one, and back. It is registered (and
# exported) as MaskedMultiHeadAttention too, the name saved configs carry.
@keras.saving.register_keras_serializable(package="tfmask", name="MaskedMultiHeadAttention")
class MultiHeadAttention(keras.layers.MultiHeadAttention):
    """`keras.layers.MultiHeadAttention` that honours every mask it is given.

    Also exported as `tfmask.layers.MaskedMultiHeadAttention`. A subclass of
    Keras' layer with the same constructor arguments, weights, variable
    paths, default names and call semantics, so it replaces it by changing
    an import, and weights saved from one (`save_weights`, `.keras` weights,
    TF checkpoints) load into the other. What it adds:

    - every mask goes through one pure function
      (`tfmask.masks.merge_attention_masks`): padding of queries and keys,
      custom masks, causal, sliding window and packed-document
      `segment_ids`; no combination of options drops one (the failure
      behind keras #23038);
    - a query with nothing to attend to gets a context of exactly zero (and
      zero scores; its output is the output projection's bias), never NaN
      or a uniform average, in float16 and bfloat16 too; softmax runs in
      float32 with a finite fill;
    - key/value caches for incremental decoding and for cross-attention;
    - padding-free self-attention over the real tokens only (`token_index`).

    Which path computes attention: the fused
    `keras.ops.dot_product_attention` (cuDNN / flash kernels where the
    backend has them; on TensorFlow the same einsum-softmax composite) when
    `fused=True`, no scores are returned, no attention dropout is active
    in this call and `value_dim == key_dim`; otherwise einsum + masked
    softmax. Both give the same
    numbers (tested).

    The causal rule, the same in eager and traced calls: query i sits at key
    position `i + offset` and sees keys `j <= i + offset`, where
    `offset = cache_update_index` with a cache, else `0` for
    `causal_alignment="top_left"` (the default, Keras' rule: a
    lower-triangular [T, S] mask from the top-left corner) or `S - T` for
    `"bottom_right"` (the queries are the last T of the S keys, as in
    cached decoding and FlashAttention 2). The two differ only when
    `T != S`. Queries placed before every key (`T > S`, bottom right) see
    nothing (zero context). The sliding window uses the same positions.
    Inputs above rank 3 take Keras' own path, whose causal mask is
    top-left only (a causal call there with "bottom_right" is refused).

    Args:
        num_heads, key_dim, value_dim, dropout, use_bias, output_shape,
        attention_axes, sliding_window, flash_attention, kernel_initializer,
        bias_initializer, kernel_regularizer, bias_regularizer,
        activity_regularizer, kernel_constraint, bias_constraint, use_gate,
        seed: as `keras.layers.MultiHeadAttention`.
        causal_alignment: "top_left" (default, as Keras' layer) or
            "bottom_right" (what tfmask's decoder blocks use); see the
            causal rule above. Saved in the config; a config without it
            (an older one, or Keras' own layer's) gets the default.
        fused: bool. Route through `keras.ops.dot_product_attention` when
            the call allows it. Default True.
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Call arguments (rank-3 inputs; inputs of higher rank with
    `attention_axes` take Keras' path, with the NaN-free softmax, and
    refuse the tfmask-only arguments):
        query: [B, T, D_q].
        value: [B, S, D_v]; None means self-attention on `query`.
        key: [B, S, D_k]; defaults to `value`.
        query_mask, value_mask, key_mask: [B, T] / [B, S] padding masks.
            Filled automatically from Keras masks of the inputs.
        attention_mask: custom mask, [T, S], [B, T, S] or [B, num_heads, T, S].
        return_attention_scores: bool. Also return the attention
            probabilities [B, num_heads, T, S] (before dropout).
        training: bool. Enables dropout.
        use_causal_mask: bool. The causal rule above.
        segment_ids: [B, T] packed-document ids (0 = padding); with
            `key_segment_ids` [B, S] for cross-attention. Documents never
            attend to each other.
        cache: [B, 2, S_max, num_heads, key_dim] keys and values
            (`init_cache` makes one). With `cache_update_index` this call's
            keys and values are written at that position (self-attention
            decoding); without it the cache is read as it is and `key` /
            `value` are not projected (a cross-attention cache, keras-hub's
            convention).
        cache_update_index: int or scalar tensor; see `cache`.
        token_index: int32 [N] or None. Padding-free self-attention: `query`
            is then [N, D], the real tokens of a [B, T] batch whose padding
            mask `query_mask` must be given, at the flat positions
            `token_index` (`tfmask.layers.padding_free`). Projections run on
            the N tokens only; the output is [N, output_dim].

    Returns:
        `output` [B, T, D_out]; then `scores` if `return_attention_scores`;
        then the updated `cache` if a cache was passed. A single tensor when
        neither was asked for, else a tuple.

    Example:
    >>> import numpy as np
    >>> layer = MultiHeadAttention(num_heads=2, key_dim=4)
    >>> x = np.random.rand(1, 3, 8).astype("float32")
    >>> layer(x, query_mask=np.array([[1, 1, 0]]), use_causal_mask=True).shape
    TensorShape([1, 3, 8])
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        value_dim=None,
        dropout=0.0,
        use_bias=True,
        output_shape=None,
        attention_axes=None,
        sliding_window=None,
        flash_attention=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        use_gate=False,
        seed=None,
        causal_alignment="top_left",
        fused=True,
        **kwargs,
    ):
        if causal_alignment not in CAUSAL_ALIGNMENTS:
            raise ValueError(
                f"causal_alignment={causal_alignment!r}; use one of "
                f"{', '.join(map(repr, CAUSAL_ALIGNMENTS))}."
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout}; use a rate in [0, 1).")
        super().__init__(
            num_heads=num_heads,
            key_dim=key_dim,
            value_dim=value_dim,
            dropout=dropout,
            use_bias=use_bias,
            output_shape=output_shape,
            attention_axes=attention_axes,
            sliding_window=sliding_window,
            flash_attention=flash_attention,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            use_gate=use_gate,
            seed=seed,
            **kwargs,
        )
        self.flash_attention = flash_attention
        self.causal_alignment = causal_alignment
        self.fused = fused

    def build(self, query_shape, value_shape=None, key_shape=None):
        query_shape = tuple(query_shape)
        if len(query_shape) == 2:  # padding-free tokens [N, D] (see `token_index`)
            query_shape = (None,) + query_shape
        super().build(query_shape, query_shape if value_shape is None else value_shape,
                      key_shape)
        # Masks are consumed by this layer; the projections just pass them
        # along instead of warning that they would drop them.
        for projection in (self._query_dense, self._key_dense, self._value_dense,
                           getattr(self, "_gate_dense", None)):
            if projection is not None:
                projection.supports_masking = True

    def _build_attention(self, rank):
        # Keras builds its own Dropout here; at rate 0 it holds no seed
        # generator, so ours is the layer's only one (one random stream in
        # checkpoints). tfmask's Dropout: same semantics, exact rate in
        # bfloat16, Philox on TensorFlow (XLA's ThreeFry is ~100x slower on CPU).
        rate, self._dropout = self._dropout, 0.0
        try:
            super()._build_attention(rank)
        finally:
            self._dropout = rate
        self._dropout_layer = Dropout(rate=rate, dtype=self.dtype_policy, seed=self.seed)

    def _masked_softmax(self, attention_scores, attention_mask=None):
        """Keras' path (inputs above rank 3): the NaN-free softmax."""
        if attention_mask is None:
            return super()._masked_softmax(attention_scores)
        expansion_axis = -len(self._attention_axes) * 2 - 1
        for _ in range(len(attention_scores.shape) - len(attention_mask.shape)):
            attention_mask = ops.expand_dims(attention_mask, axis=expansion_axis)
        return mask_ops.masked_softmax(attention_scores, attention_mask,
                                       axis=self._softmax.axis)

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
        return_attention_scores=False,
        training=None,
        use_causal_mask=False,
        segment_ids=None,
        key_segment_ids=None,
        cache=None,
        cache_update_index=None,
        token_index=None,
    ):
        if len(query.shape) > 3:
            return self._call_high_rank(
                query, value, key, query_mask, value_mask, key_mask, attention_mask,
                return_attention_scores, training, use_causal_mask,
                segment_ids, key_segment_ids, cache, token_index)
        # Keras fills `*_mask` arguments only when a call has several tensor
        # arguments, so read the masks attached to the inputs ourselves.
        if query_mask is None:
            query_mask = keras_mask_of(query)
        if value_mask is None and value is not None:
            value_mask = keras_mask_of(value)
        if key_mask is None and key is not None:
            key_mask = keras_mask_of(key)
        reads_cache = cache is not None and cache_update_index is None
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
        if reads_cache and use_causal_mask:
            raise ValueError(
                "use_causal_mask with a cache needs `cache_update_index`, the "
                "position of this call's first query among the cached keys."
            )

        gate = None
        if token_index is not None:
            query_heads, key_heads, value_heads = self._padding_free_projections(
                query, query_mask, token_index, self_attention, cache
            )
            if self._use_gate:
                gate = ops.squeeze(self._gate_dense(ops.expand_dims(query, 0)), 0)  # [N, H, V]
        else:
            if self._use_gate:
                gate = self._gate_dense(query)  # [B, T, H, V]
            query_heads = self._query_dense(query)  # [B, T, H, K]
            if not reads_cache:
                key_heads = self._key_dense(key)  # [B, S, H, K]
                value_heads = self._value_dense(value)  # [B, S, H, V]

        offset = None
        if cache is not None:
            if reads_cache:
                key_heads, value_heads = cache[:, 0, ...], cache[:, 1, ...]
            else:
                start = [0, cache_update_index, 0, 0]
                key_heads = ops.slice_update(cache[:, 0, ...], start, key_heads)
                value_heads = ops.slice_update(cache[:, 1, ...], start, value_heads)
                cache = ops.stack([key_heads, value_heads], axis=1)
                offset = cache_update_index

        query_length = ops.shape(query_heads)[1]
        key_length = ops.shape(key_heads)[1]
        if offset is None:
            offset = 0 if self.causal_alignment == "top_left" else key_length - query_length
        mask = mask_ops.merge_attention_masks(
            query_length,
            key_length,
            query_mask=query_mask,
            key_mask=mask_ops.combine_masks(value_mask, key_mask),
            attention_mask=attention_mask,
            use_causal_mask=use_causal_mask,
            causal_offset=offset,
            segment_ids=segment_ids,
            key_segment_ids=key_segment_ids,
            sliding_window=self._sliding_window,
        )

        context, probs = self._compute_attention(query_heads, key_heads, value_heads, mask,
                                                 training, return_attention_scores)
        if token_index is not None:
            context = gather_tokens(context, token_index)  # [N, H, V]
            if gate is not None:
                context = ops.multiply(context, gate)
            # expand/squeeze, not [None]/[0]: slicing has a costly gradient.
            output = ops.squeeze(self._output_dense(ops.expand_dims(context, 0)), 0)  # [N, D]
        else:
            if gate is not None:
                context = ops.multiply(context, gate)
            output = self._output_dense(context)

        outputs = [output]
        if return_attention_scores:
            outputs.append(probs)
        if cache is not None:
            outputs.append(cache)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def _compute_attention(self, query, key, value, attention_mask=None, training=None,
                           return_attention_scores=False, use_causal_mask=False):
        """Keras' extension point: context [B, T, H, V] and probabilities
        [B, H, T, S] (None from the fused path) from projected heads and the
        merged mask ([T, S], [B, T, S] or [B|1, H|1, T, S]). Subclasses may
        override it, as with Keras."""
        if len(query.shape) != 4 or use_causal_mask:  # Keras' own path (attention_axes)
            return super()._compute_attention(query, key, value, attention_mask, training,
                                              return_attention_scores, use_causal_mask)
        if self._flash_attention and return_attention_scores:
            raise ValueError(  # Keras' message: flash kernels never form the scores
                "Returning attention scores is not supported when flash "
                "attention is enabled. Please disable flash attention to access"
                " attention scores.")
        query_heads, key_heads, value_heads, mask = query, key, value, attention_mask
        if mask is not None:
            mask = ops.cast(mask, "bool")
            for _ in range(4 - len(mask.shape)):  # [T, S] / [B, T, S] -> [B|1, H|1, T, S]
                mask = ops.expand_dims(mask, -3)
        # A tensor `training` may be true: only a Python False/None rules
        # dropout out.
        dropping = self._dropout > 0 and training is not None and training is not False
        # JAX's fused kernel needs values as wide as keys.
        if (self.fused and not return_attention_scores and not dropping
                and self._key_dim == self._value_dim):
            context = ops.dot_product_attention(
                query_heads, key_heads, value_heads, mask=mask,
                scale=self._inverse_sqrt_key_dim, flash_attention=self._flash_attention)
            if mask is None:
                return context, None
            # The fused kernel averages all keys for a query that sees none;
            # tfmask's rule is an output of zero.
            sees_any = ops.any(mask, axis=-1, keepdims=True)  # [B|1, H|1, T, 1]
            sees_any = ops.transpose(sees_any, (0, 2, 1, 3))  # [B|1, T, H|1, 1]
            return ops.where(sees_any, context, ops.zeros((), context.dtype)), None
        query_heads = ops.multiply(
            query_heads, ops.cast(self._inverse_sqrt_key_dim, query_heads.dtype)
        )
        scores = ops.einsum("bthd,bshd->bhts", query_heads, key_heads)  # [B, H, T, S]
        probs = mask_ops.masked_softmax(scores, mask)
        dropped = self._dropout_layer(probs, training=training)
        return ops.einsum("bhts,bshd->bthd", dropped, value_heads), probs  # [B, T, H, V]

    def _call_high_rank(self, query, value, key, query_mask, value_mask, key_mask,
                        attention_mask, return_attention_scores, training, use_causal_mask,
                        segment_ids, key_segment_ids, cache, token_index):
        """Inputs above rank 3 (`attention_axes`): Keras' computation."""
        extras = {"segment_ids": segment_ids, "key_segment_ids": key_segment_ids,
                  "cache": cache, "token_index": token_index}
        given = [name for name, v in extras.items() if v is not None]
        if use_causal_mask and self.causal_alignment != "top_left":
            given.append(f'use_causal_mask with causal_alignment="{self.causal_alignment}"')
        if given:
            raise ValueError(
                f"{', '.join(given)} work with rank-3 inputs [B, T, D]; the query "
                f"has rank {len(query.shape)}."
            )
        return super().call(
            query, query if value is None else value, key, query_mask=query_mask,
            value_mask=value_mask, key_mask=key_mask, attention_mask=attention_mask,
            return_attention_scores=return_attention_scores, training=training,
            use_causal_mask=use_causal_mask)

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

    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None):
        query_shape = tuple(query_shape)
        return super().compute_output_shape(
            query_shape, query_shape if value_shape is None else value_shape, key_shape)

    def compute_output_spec(self, query, value=None, key=None, query_mask=None,
                            value_mask=None, key_mask=None, attention_mask=None,
                            return_attention_scores=False, training=None,
                            use_causal_mask=False, segment_ids=None, key_segment_ids=None,
                            cache=None, cache_update_index=None, token_index=None):
        value_shape = query.shape if value is None else value.shape
        output = keras.KerasTensor(
            self.compute_output_shape(query.shape, value_shape,
                                      None if key is None else key.shape),
            dtype=self.compute_dtype)
        specs = [output]
        if return_attention_scores:
            key_length = cache.shape[2] if cache is not None else value_shape[1]
            specs.append(keras.KerasTensor(
                (query.shape[0], self.num_heads, query.shape[1], key_length),
                dtype=self.compute_dtype))
        if cache is not None:
            specs.append(keras.KerasTensor(cache.shape, dtype=cache.dtype))
        return specs[0] if len(specs) == 1 else tuple(specs)

    def get_config(self):
        config = super().get_config()
        config.update({"flash_attention": self.flash_attention,
                       "causal_alignment": self.causal_alignment,
                       "fused": self.fused})
        return config


MaskedMultiHeadAttention = MultiHeadAttention
