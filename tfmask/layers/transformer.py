"""Transformer encoder and decoder blocks built on `MaskedMultiHeadAttention`.

Call-compatible with keras-hub's `TransformerEncoder` and
`TransformerDecoder` (same constructor keywords, call arguments, caches and
return values; see each class), with tfmask's masking on top.
"""

import keras

from tfmask.layers.dropout import Dropout
from tfmask.layers.keras_mask import keras_mask_of
from tfmask.layers.padding_free import gather_tokens, real_token_index, scatter_tokens
from tfmask.layers.attention import MaskedMultiHeadAttention


# Activations as cheap in bfloat16 as in float32 (no transcendental function).
_CHEAP_ACTIVATIONS = (keras.activations.relu, keras.activations.linear)


def _clone_initializer(initializer):
    """A fresh initializer per sub-layer so seeded ones do not repeat."""
    return keras.initializers.get(keras.initializers.serialize(initializer))


def _split(result):
    """An attention call's result -> (output, tuple of what came after it)."""
    if isinstance(result, (tuple, list)):
        return result[0], tuple(result[1:])
    return result, ()


def _pack(outputs):
    """keras-hub's convention: a single tensor alone, else a tuple."""
    return outputs[0] if len(outputs) == 1 else tuple(outputs)


class _TransformerBlockBase(keras.layers.Layer):
    """Shared arguments, sub-layer factories and config of both blocks."""

    def __init__(
        self,
        num_heads,
        intermediate_dim,
        dropout=0.0,
        attention_dropout=None,
        activation="gelu",
        layer_norm_epsilon=1e-12,
        normalize_first=False,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.attention_dropout = dropout if attention_dropout is None else attention_dropout
        self.activation = keras.activations.get(activation)
        self.layer_norm_epsilon = layer_norm_epsilon
        self.normalize_first = normalize_first
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.supports_masking = True

    def _key_dim(self, hidden_dim):
        if hidden_dim % self.num_heads:
            raise ValueError(
                f"{type(self).__name__}: hidden size {hidden_dim} is not "
                f"divisible by num_heads={self.num_heads}; pick a number of "
                "heads that divides it."
            )
        return hidden_dim // self.num_heads

    def _attention(self, hidden_dim, name):
        # Bottom-right causal alignment (the queries are the last of the
        # keys), not the standalone layer's Keras default: a block's causal
        # queries are the newest tokens. Its calls have T == S, or a cache
        # whose `cache_update_index` places them, where the two rules agree;
        # asking for it keeps any other causal call of a block on that rule.
        return MaskedMultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=self._key_dim(hidden_dim),
            causal_alignment="bottom_right",
            dropout=self.attention_dropout,
            kernel_initializer=_clone_initializer(self.kernel_initializer),
            bias_initializer=_clone_initializer(self.bias_initializer),
            dtype=self.dtype_policy,
            name=name,
        )

    def _norm(self, hidden_dim, name):
        norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name=name
        )
        norm.build((None, None, hidden_dim))
        return norm

    def _dense(self, units, name, activation=None):
        return keras.layers.Dense(
            units,
            activation=activation,
            kernel_initializer=_clone_initializer(self.kernel_initializer),
            bias_initializer=_clone_initializer(self.bias_initializer),
            dtype=self.dtype_policy,
            name=name,
        )

    def _build_feedforward(self, hidden_dim):
        # The activation is applied in `_activate`, not inside the Dense.
        self._ffn_inner = self._dense(self.intermediate_dim, "ffn_inner")
        self._ffn_inner.build((None, None, hidden_dim))
        self._ffn_outer = self._dense(hidden_dim, "ffn_outer")
        self._ffn_outer.build((None, None, self.intermediate_dim))
        self._ffn_norm = self._norm(hidden_dim, "ffn_norm")
        self._dropout_layer = Dropout(self.dropout, dtype=self.dtype_policy)

    def _residual(self, x, sublayer, norm, training):
        """x + dropout(sublayer(x)) with pre- or post-layer-norm.

        `sublayer` maps normalised (pre-LN) or raw (post-LN) input to an
        output, or to a tuple (output, extras...) as attention returns with
        scores or a cache. Returns (new x, extras).
        """
        inputs = norm(x) if self.normalize_first else x
        y, extras = _split(sublayer(inputs))
        out = x + self._dropout_layer(y, training=training)
        return (out if self.normalize_first else norm(out)), extras

    def _activate(self, inner):
        """The feed-forward activation; in float32 for bfloat16 inputs.

        CPUs have no bfloat16 arithmetic: TensorFlow computes erf, tanh and
        exp for bfloat16 by converting every element, so exact GELU forward
        and backward on bfloat16 takes ~1.8x its float32 time (14.4 vs 8.0 ms
        for MiniLM's [830, 1536] activations), ~10% of a bf16 training step.
        Computing it in float32 and rounding once is faster and at least
        as accurate; ReLU and the identity stay as they are.
        """
        low_precision = keras.backend.standardize_dtype(inner.dtype) == "bfloat16"
        if low_precision and self.activation not in _CHEAP_ACTIVATIONS:
            wide = self.activation(keras.ops.cast(inner, "float32"))
            return keras.ops.cast(wide, "bfloat16")
        return self.activation(inner)

    def _feedforward(self, x, training):
        # Dropout on the feed-forward output only (in `_residual`), as BERT
        # and keras-hub do; none on the 4x wider inner activations.
        x, _ = self._residual(
            x, lambda h: self._ffn_outer(self._activate(self._ffn_inner(h))), self._ffn_norm,
            training
        )
        return x

    def _scores_spec(self, query_shape, key_length):
        return keras.KerasTensor(
            (query_shape[0], self.num_heads, query_shape[1], key_length),
            dtype=self.compute_dtype,
        )

    def compute_output_shape(self, inputs_shape, *args, **kwargs):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "dropout": self.dropout,
                "attention_dropout": self.attention_dropout,
                "activation": keras.activations.serialize(self.activation),
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "normalize_first": self.normalize_first,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
            }
        )
        return config


_BLOCK_ARGS_DOC = """
    Constructor keywords are keras-hub's (`intermediate_dim`, `num_heads`,
    `dropout`, `activation`, `layer_norm_epsilon`, `kernel_initializer`,
    `bias_initializer`, `normalize_first`), with the same meaning; only the
    positional order (`num_heads` first) and two defaults differ: tfmask's
    blocks default to BERT's `activation="gelu"` and
    `layer_norm_epsilon=1e-12` (keras-hub: "relu", 1e-5).

    Args:
        num_heads: int. Attention heads; must divide the hidden size.
        intermediate_dim: int. Width of the feed-forward layer.
        dropout: float. Dropout on the attention and feed-forward outputs
            (and, unless `attention_dropout` is given, on the attention
            probabilities), as keras-hub's `dropout`.
        attention_dropout: float. Dropout on attention probabilities;
            defaults to `dropout`.
        activation: feed-forward activation. Default "gelu".
        layer_norm_epsilon: float. Default 1e-12 (BERT).
        normalize_first: bool. Pre-layer-norm if True, post-layer-norm (BERT,
            the default) if False.
        kernel_initializer, bias_initializer: initializers of every sub-layer.
        **kwargs: base layer arguments.
"""


@keras.saving.register_keras_serializable(package="tfmask")
class TransformerEncoderBlock(_TransformerBlockBase):
    __doc__ = (
        """One Transformer encoder layer: self-attention + feed-forward.

    The padding mask comes from the input's Keras mask (e.g. set by
    `MaskedEmbedding`) or from `padding_mask`; it is combined with
    `attention_mask`, `segment_ids` and `use_causal_mask` in one place
    (`tfmask.masks.merge_attention_masks`), so passing a padding mask and an
    attention mask together works (keras-hub #783).

    With `padding_free=True` and a padding mask, projections, feed-forward,
    norms and dropouts run on the real tokens only (`tfmask.layers.
    padding_free`); outputs at real tokens are the same, padding positions
    get zeros. It needs dynamic shapes, so not XLA or TPUs.
"""
        + _BLOCK_ARGS_DOC
        + """        padding_free: bool. Skip padding in token-wise computations.
            Default False.

    Call arguments:
        inputs: [B, S, D].
        padding_mask: [B, S] bool; defaults to the input's Keras mask.
        attention_mask: [S, S], [B, S, S] or [B, num_heads, S, S].
        segment_ids: [B, S] packed-document ids (0 = padding).
        use_causal_mask: bool. Default False.
        training: bool.
        return_attention_scores: bool. Default False. As keras-hub: also
            return the attention probabilities [B, num_heads, S, S] (before
            dropout; zero at masked keys, all-zero rows for queries that
            see nothing).

    Returns: the output [B, S, D], or `(output, attention_scores)` with
    `return_attention_scores=True`.

    Example:
    >>> import numpy as np
    >>> block = TransformerEncoderBlock(num_heads=2, intermediate_dim=16)
    >>> x = np.zeros((1, 3, 8), "float32")
    >>> block(x, padding_mask=np.array([[1, 1, 0]], bool)).shape
    TensorShape([1, 3, 8])
    >>> outputs, scores = block(x, padding_mask=np.array([[1, 1, 0]], bool),
    ...                         return_attention_scores=True)
    >>> scores.shape  # [batch, heads, queries, keys]
    TensorShape([1, 2, 3, 3])
    >>> np.asarray(scores)[0, 0, 0].round(2).tolist()  # the padded key gets 0
    [0.5, 0.5, 0.0]
    """
    )

    def __init__(
        self,
        num_heads,
        intermediate_dim,
        dropout=0.0,
        attention_dropout=None,
        activation="gelu",
        layer_norm_epsilon=1e-12,
        normalize_first=False,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        padding_free=False,
        **kwargs,
    ):
        super().__init__(
            num_heads,
            intermediate_dim,
            dropout=dropout,
            attention_dropout=attention_dropout,
            activation=activation,
            layer_norm_epsilon=layer_norm_epsilon,
            normalize_first=normalize_first,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            **kwargs,
        )
        self.padding_free = padding_free

    def build(self, inputs_shape):
        hidden_dim = inputs_shape[-1]
        self._self_attention = self._attention(hidden_dim, "self_attention")
        self._self_attention.build(inputs_shape)
        self._self_attention_norm = self._norm(hidden_dim, "self_attention_norm")
        self._build_feedforward(hidden_dim)
        self.built = True

    def call(
        self,
        inputs,
        padding_mask=None,
        attention_mask=None,
        segment_ids=None,
        use_causal_mask=False,
        training=None,
        return_attention_scores=False,
    ):
        if padding_mask is None:
            padding_mask = keras_mask_of(inputs)
        token_index = None
        x = inputs
        if self.padding_free and padding_mask is not None:
            token_index = real_token_index(padding_mask)
            x = gather_tokens(inputs, token_index)  # [N, D]
        x, extras = self._residual(
            x,
            lambda h: self._self_attention(
                h,
                query_mask=padding_mask,
                value_mask=padding_mask,
                attention_mask=attention_mask,
                return_attention_scores=return_attention_scores,
                segment_ids=segment_ids,
                use_causal_mask=use_causal_mask,
                token_index=token_index,
                training=training,
            ),
            self._self_attention_norm,
            training,
        )
        x = self._feedforward(x, training)
        if token_index is not None:
            x = scatter_tokens(x, token_index, padding_mask)  # [B, S, D]
        return _pack([x, *extras])

    def compute_output_spec(self, inputs, padding_mask=None, attention_mask=None,
                            segment_ids=None, use_causal_mask=False, training=None,
                            return_attention_scores=False):
        output = keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)
        if not return_attention_scores:
            return output
        return output, self._scores_spec(inputs.shape, inputs.shape[1])

    def get_config(self):
        config = super().get_config()
        config["padding_free"] = self.padding_free
        return config


@keras.saving.register_keras_serializable(package="tfmask")
class TransformerDecoderBlock(_TransformerBlockBase):
    __doc__ = (
        """One Transformer decoder layer: causal self-attention, optional
    cross-attention over encoder outputs, then feed-forward.

    Cross-attention is built when the block is first called with an
    `encoder_sequence`; without one it is a decoder-only (causal LM) block.
    The encoder's padding mask comes from its Keras mask or
    `encoder_padding_mask`, so padded source tokens are never attended.

    Caches follow keras-hub's `TransformerDecoder`: the self-attention
    cache gets this call's keys/values at `self_attention_cache_update_index`;
    the cross-attention cache is filled from `encoder_sequence` in one call
    with `cross_attention_cache_update_index=0`, then read as it is (the
    encoder is not projected again) by calls without an index. A block with
    cross-attention may also be given only a `self_attention_cache` (keras-hub
    refuses this): the encoder's keys/values are then recomputed each call.
"""
        + _BLOCK_ARGS_DOC
        + """
    `decoder_sequence_shape` / `encoder_sequence_shape` keyword arguments,
    which keras-hub's `get_config()` writes, are accepted (the block is then
    built at once), so keras-hub decoder configs load; tfmask's own config
    leaves them out (Keras' build config rebuilds the block).

    Call arguments:
        decoder_sequence: [B, T, D].
        encoder_sequence: [B, S, D] or None.
        decoder_padding_mask: [B, T]; defaults to the Keras mask.
        decoder_attention_mask: extra self-attention mask ([T, T'],
            [B, T, T'] or per head), e.g. a prefix-LM mask or, in cached
            decoding, the padding of a left-padded prompt over the cache.
        encoder_padding_mask: [B, S]; defaults to the encoder's Keras mask.
        encoder_attention_mask: extra cross-attention mask [B, T, S].
        segment_ids: [B, T] packed-document ids of the decoder sequence.
        encoder_segment_ids: [B, S] packed-document ids of the encoder
            sequence (needed with `segment_ids` when packing seq2seq pairs).
        use_causal_mask: bool. Default True.
        self_attention_cache: [B, 2, T_max, heads, head_dim] or None; see
            `MaskedMultiHeadAttention`. The query padding mask is applied to
            the step's queries; keys in the cache are limited by causality
            and by `decoder_attention_mask`.
        self_attention_cache_update_index: int; position of this step.
        training: bool.
        cross_attention_cache: [B, 2, S, heads, head_dim] or None, S the
            encoder length (`encoder_padding_mask` masks its padding). Needs
            `self_attention_cache` too (as keras-hub).
        cross_attention_cache_update_index: 0 to fill the cache from
            `encoder_sequence` (every position in one call), None to reuse
            it; `encoder_sequence` must still be passed (its Keras mask, if
            any, is read; its values are not used).
        return_attention_scores: bool. Default False. Also return the
            attention probabilities [B, heads, T, keys] (before dropout) of
            self-attention, then of cross-attention (keras-hub's decoder has
            no such option; this order is tfmask's).

    Returns: a single tensor when nothing else is asked for, else a tuple:
        `output` [B, T, D];
        then, with `return_attention_scores`, `self_attention_scores`
        [B, heads, T, T or T_max] and, with cross-attention,
        `cross_attention_scores` [B, heads, T, S];
        then, with a `self_attention_cache`, the updated self cache;
        then, with a `cross_attention_cache`, the cross cache.
        So with caches and no scores it is keras-hub's `(output,
        self_attention_cache)` or `(output, self_attention_cache,
        cross_attention_cache)`.

    Example:
    >>> import numpy as np
    >>> block = TransformerDecoderBlock(num_heads=2, intermediate_dim=16)
    >>> rng = np.random.default_rng(0)
    >>> decoder = rng.normal(size=(1, 3, 8)).astype("float32")
    >>> encoder = rng.normal(size=(1, 5, 8)).astype("float32")
    >>> block(decoder, encoder).shape
    TensorShape([1, 3, 8])

    Decoding token by token; the first step fills the cross-attention cache:
    >>> self_cache = np.zeros((1, 2, 3, 2, 4), "float32")  # [B, 2, T, heads, head_dim]
    >>> cross_cache = np.zeros((1, 2, 5, 2, 4), "float32")  # [B, 2, S, heads, head_dim]
    >>> steps = []
    >>> for t in range(3):
    ...     out, self_cache, cross_cache = block(
    ...         decoder[:, t : t + 1], encoder,
    ...         self_attention_cache=self_cache, self_attention_cache_update_index=t,
    ...         cross_attention_cache=cross_cache,
    ...         cross_attention_cache_update_index=0 if t == 0 else None)
    ...     steps.append(out)
    >>> bool(np.allclose(np.concatenate(steps, 1), block(decoder, encoder), atol=1e-5))
    True
    """
    )

    def __init__(
        self,
        num_heads,
        intermediate_dim,
        dropout=0.0,
        attention_dropout=None,
        activation="gelu",
        layer_norm_epsilon=1e-12,
        normalize_first=False,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        # keras-hub's config carries the build shapes (its way to rebuild
        # before loading weights); accept them so its configs load here.
        decoder_sequence_shape = kwargs.pop("decoder_sequence_shape", None)
        encoder_sequence_shape = kwargs.pop("encoder_sequence_shape", None)
        super().__init__(
            num_heads,
            intermediate_dim,
            dropout=dropout,
            attention_dropout=attention_dropout,
            activation=activation,
            layer_norm_epsilon=layer_norm_epsilon,
            normalize_first=normalize_first,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            **kwargs,
        )
        if decoder_sequence_shape:
            self.build(decoder_sequence_shape, encoder_sequence_shape or None)

    def build(self, decoder_sequence_shape, encoder_sequence_shape=None):
        hidden_dim = decoder_sequence_shape[-1]
        self._self_attention = self._attention(hidden_dim, "self_attention")
        self._self_attention.build(decoder_sequence_shape)
        self._self_attention_norm = self._norm(hidden_dim, "self_attention_norm")
        self._cross_attention = None
        if encoder_sequence_shape is not None:
            self._cross_attention = self._attention(hidden_dim, "cross_attention")
            self._cross_attention.build(decoder_sequence_shape, encoder_sequence_shape)
            self._cross_attention_norm = self._norm(hidden_dim, "cross_attention_norm")
        self._build_feedforward(hidden_dim)
        self.built = True

    def _check_call(self, encoder_sequence, self_attention_cache, cross_attention_cache):
        has_cross = self._cross_attention is not None
        if (encoder_sequence is not None) != has_cross:
            raise ValueError(
                "TransformerDecoderBlock was built "
                + ("with" if has_cross else "without")
                + " cross-attention but called "
                + ("without" if has_cross else "with")
                + " an encoder_sequence; call it the same way every time."
            )
        if cross_attention_cache is not None and not has_cross:
            raise ValueError(
                "TransformerDecoderBlock got a cross_attention_cache but has no "
                "cross-attention (it was built without an encoder_sequence)."
            )
        if cross_attention_cache is not None and self_attention_cache is None:
            raise ValueError(
                "TransformerDecoderBlock got a cross_attention_cache but no "
                "self_attention_cache; pass both (as keras-hub), or neither."
            )
        return has_cross

    def call(
        self,
        decoder_sequence,
        encoder_sequence=None,
        decoder_padding_mask=None,
        decoder_attention_mask=None,
        encoder_padding_mask=None,
        encoder_attention_mask=None,
        segment_ids=None,
        encoder_segment_ids=None,
        use_causal_mask=True,
        self_attention_cache=None,
        self_attention_cache_update_index=None,
        training=None,
        cross_attention_cache=None,
        cross_attention_cache_update_index=None,
        return_attention_scores=False,
    ):
        has_cross = self._check_call(
            encoder_sequence, self_attention_cache, cross_attention_cache
        )
        if decoder_padding_mask is None:
            decoder_padding_mask = keras_mask_of(decoder_sequence)

        x, self_extras = self._residual(
            decoder_sequence,
            lambda h: self._self_attention(
                h,
                query_mask=decoder_padding_mask,
                # With a cache the keys are the cache, not this call's tokens.
                value_mask=None if self_attention_cache is not None else decoder_padding_mask,
                attention_mask=decoder_attention_mask,
                return_attention_scores=return_attention_scores,
                segment_ids=segment_ids,
                use_causal_mask=use_causal_mask,
                cache=self_attention_cache,
                cache_update_index=self_attention_cache_update_index,
                training=training,
            ),
            self._self_attention_norm,
            training,
        )
        cross_extras = ()
        if has_cross:
            if encoder_padding_mask is None:
                encoder_padding_mask = keras_mask_of(encoder_sequence)
            x, cross_extras = self._residual(
                x,
                lambda h: self._cross_attention(
                    h,
                    encoder_sequence,
                    query_mask=decoder_padding_mask,
                    value_mask=encoder_padding_mask,
                    attention_mask=encoder_attention_mask,
                    return_attention_scores=return_attention_scores,
                    segment_ids=segment_ids if encoder_segment_ids is not None else None,
                    key_segment_ids=encoder_segment_ids,
                    cache=cross_attention_cache,
                    cache_update_index=cross_attention_cache_update_index,
                    training=training,
                ),
                self._cross_attention_norm,
                training,
            )
        x = self._feedforward(x, training)

        # Attention results are (output, [scores], [cache]); order them as
        # output, scores (self, cross), caches (self, cross).
        n_scores = 1 if return_attention_scores else 0
        outputs = [x, *self_extras[:n_scores], *cross_extras[:n_scores]]
        outputs += [*self_extras[n_scores:], *cross_extras[n_scores:]]
        return _pack(outputs)

    def compute_output_spec(
        self,
        decoder_sequence,
        encoder_sequence=None,
        decoder_padding_mask=None,
        decoder_attention_mask=None,
        encoder_padding_mask=None,
        encoder_attention_mask=None,
        segment_ids=None,
        encoder_segment_ids=None,
        use_causal_mask=True,
        self_attention_cache=None,
        self_attention_cache_update_index=None,
        training=None,
        cross_attention_cache=None,
        cross_attention_cache_update_index=None,
        return_attention_scores=False,
    ):
        query_shape = decoder_sequence.shape
        outputs = [keras.KerasTensor(query_shape, dtype=self.compute_dtype)]
        if return_attention_scores:
            self_length = (query_shape[1] if self_attention_cache is None
                           else self_attention_cache.shape[2])
            outputs.append(self._scores_spec(query_shape, self_length))
            if encoder_sequence is not None:
                cross_length = (encoder_sequence.shape[1] if cross_attention_cache is None
                                else cross_attention_cache.shape[2])
                outputs.append(self._scores_spec(query_shape, cross_length))
        for cache in (self_attention_cache, cross_attention_cache):
            if cache is not None:
                outputs.append(keras.KerasTensor(cache.shape, dtype=cache.dtype))
        return _pack(outputs)
