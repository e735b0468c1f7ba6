"""Transformer encoder and decoder blocks built on `MaskedMultiHeadAttention`."""

import keras


from tfmask.layers.dropout import Dropout
from tfmask.layers.keras_mask import keras_mask_of
from tfmask.layers.padding_free import gather_tokens, real_token_index, scatter_tokens
from tfmask.layers.attention import MaskedMultiHeadAttention


def _clone_initializer(initializer):
    """A fresh initializer per sub-layer so seeded ones do not repeat."""
    return keras.initializers.get(keras.initializers.serialize(initializer))


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
        return MaskedMultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=self._key_dim(hidden_dim),
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
        self._ffn_inner = self._dense(self.intermediate_dim, "ffn_inner", self.activation)
        self._ffn_inner.build((None, None, hidden_dim))
        self._ffn_outer = self._dense(hidden_dim, "ffn_outer")
        self._ffn_outer.build((None, None, self.intermediate_dim))
        self._ffn_norm = self._norm(hidden_dim, "ffn_norm")
        self._dropout_layer = Dropout(self.dropout, dtype=self.dtype_policy)

    def _residual(self, x, sublayer, norm, training):
        """x + dropout(sublayer(x)) with pre- or post-layer-norm.

        `sublayer` maps normalised (pre-LN) or raw (post-LN) input to output.
        """
        inputs = norm(x) if self.normalize_first else x
        y = self._dropout_layer(sublayer(inputs), training=training)
        out = x + y
        return out if self.normalize_first else norm(out)

    def _feedforward(self, x, training):
        # Dropout on the feed-forward output only (in `_residual`), as BERT
        # and keras-hub do; none on the 4x wider inner activations.
        return self._residual(
            x, lambda h: self._ffn_outer(self._ffn_inner(h)), self._ffn_norm, training
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
    Args:
        num_heads: int. Attention heads; must divide the hidden size.
        intermediate_dim: int. Width of the feed-forward layer.
        dropout: float. Dropout on the attention and feed-forward outputs.
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

    Example:
    >>> import numpy as np
    >>> block = TransformerEncoderBlock(num_heads=2, intermediate_dim=16)
    >>> block(np.zeros((1, 3, 8), "float32"),
    ...       padding_mask=np.array([[1, 1, 0]], bool)).shape
    TensorShape([1, 3, 8])
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
    ):
        if padding_mask is None:
            padding_mask = keras_mask_of(inputs)
        token_index = None
        x = inputs
        if self.padding_free and padding_mask is not None:
            token_index = real_token_index(padding_mask)
            x = gather_tokens(inputs, token_index)  # [N, D]
        x = self._residual(
            x,
            lambda h: self._self_attention(
                h,
                query_mask=padding_mask,
                value_mask=padding_mask,
                attention_mask=attention_mask,
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
        return x

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
"""
        + _BLOCK_ARGS_DOC
        + """
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

    Returns: the output [B, T, D], or `(output, cache)` with a cache.

    Example:
    >>> import numpy as np
    >>> block = TransformerDecoderBlock(num_heads=2, intermediate_dim=16)
    >>> block(np.zeros((1, 3, 8), "float32"),
    ...       np.zeros((1, 5, 8), "float32")).shape
    TensorShape([1, 3, 8])
    """
    )

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
    ):
        has_cross = self._cross_attention is not None
        if (encoder_sequence is not None) != has_cross:
            raise ValueError(
                "TransformerDecoderBlock was built "
                + ("with" if has_cross else "without")
                + " cross-attention but called "
                + ("without" if has_cross else "with")
                + " an encoder_sequence; call it the same way every time."
            )
        if decoder_padding_mask is None:
            decoder_padding_mask = keras_mask_of(decoder_sequence)
        new_cache = []

        def self_attend(h):
            result = self._self_attention(
                h,
                query_mask=decoder_padding_mask,
                value_mask=None if self_attention_cache is not None else decoder_padding_mask,
                attention_mask=decoder_attention_mask,
                segment_ids=segment_ids,
                use_causal_mask=use_causal_mask,
                cache=self_attention_cache,
                cache_update_index=self_attention_cache_update_index,
                training=training,
            )
            if self_attention_cache is None:
                return result
            new_cache.append(result[1])
            return result[0]

        x = self._residual(
            decoder_sequence, self_attend, self._self_attention_norm, training
        )
        if has_cross:
            if encoder_padding_mask is None:
                encoder_padding_mask = keras_mask_of(encoder_sequence)
            x = self._residual(
                x,
                lambda h: self._cross_attention(
                    h,
                    encoder_sequence,
                    query_mask=decoder_padding_mask,
                    value_mask=encoder_padding_mask,
                    attention_mask=encoder_attention_mask,
                    segment_ids=segment_ids if encoder_segment_ids is not None else None,
                    key_segment_ids=encoder_segment_ids,
                    training=training,
                ),
                self._cross_attention_norm,
                training,
            )
        x = self._feedforward(x, training)
        if self_attention_cache is not None:
            return x, new_cache[0]
        return x
