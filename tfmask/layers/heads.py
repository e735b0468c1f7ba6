"""Masked-LM head: gather masked positions, transform, project with tied weights."""

import keras
from keras import ops

from tfmask.layers.embedding import MaskedEmbedding


def tied_embedding(token_embedding, owner):
    """The `MaskedEmbedding` a head ties to (deserialised from a config if needed)."""
    if isinstance(token_embedding, dict):
        token_embedding = keras.layers.deserialize(token_embedding)
    if not isinstance(token_embedding, MaskedEmbedding):
        raise ValueError(
            f"{owner} needs token_embedding=<a tfmask MaskedEmbedding> to tie weights to, "
            f"got {type(token_embedding).__name__}."
        )
    return token_embedding


@keras.saving.register_keras_serializable(package="tfmask")
class MaskedLMHead(keras.layers.Layer):
    """BERT's masked-LM head, computed only at the masked positions.

    Gathers the `mask_positions` [B, P] from the encoder output [B, S, D]
    *before* the vocabulary projection, so the expensive [D, V] matmul runs
    on B*P rows instead of B*S (P is ~15% of S). Then dense + activation +
    layer norm, and logits = x @ E^T + b with E the token table of a
    `MaskedEmbedding` (weights tied, as BERT).

    Args:
        token_embedding: the `MaskedEmbedding` whose table is reused.
        intermediate_activation: activation of the transform. Default "gelu".
        layer_norm_epsilon: float. Default 1e-12.
        kernel_initializer: initializer of the transform kernel.
        bias_initializer: initializer of the biases.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: [B, S, D] encoder output.
        mask_positions: int [B, P] positions to predict (padding entries of
            it point anywhere valid, e.g. 0, and carry weight 0 in the loss).

    Returns: logits [B, P, vocabulary_size] in the compute dtype.

    A tied head keeps a reference to the embedding layer. In a saved model
    the tie is restored by the model that owns both (tfmask model builders
    do); a lone head saved on its own carries a copy of the embedding.

    Example:
    >>> import numpy as np
    >>> embed = MaskedEmbedding(vocabulary_size=10, hidden_dim=4, max_length=8)
    >>> head = MaskedLMHead(token_embedding=embed)
    >>> logits = head(embed(np.array([[3, 4, 5]])), np.array([[0, 2]]))
    >>> logits.shape
    TensorShape([1, 2, 10])
    """

    def __init__(
        self,
        token_embedding,
        intermediate_activation="gelu",
        layer_norm_epsilon=1e-12,
        kernel_initializer=None,
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.token_embedding = tied_embedding(token_embedding, "MaskedLMHead")
        self.intermediate_activation = keras.activations.get(intermediate_activation)
        self.layer_norm_epsilon = layer_norm_epsilon
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer or keras.initializers.TruncatedNormal(stddev=0.02)
        )
        self.bias_initializer = keras.initializers.get(bias_initializer)

    @property
    def vocabulary_size(self):
        return self.token_embedding.vocabulary_size

    def build(self, inputs_shape, mask_positions_shape=None):
        hidden_dim = self.token_embedding.hidden_dim
        if not self.token_embedding.built:
            self.token_embedding.build((None, None))
        self._transform = keras.layers.Dense(
            hidden_dim,
            activation=self.intermediate_activation,
            kernel_initializer=keras.initializers.get(
                keras.initializers.serialize(self.kernel_initializer)
            ),
            bias_initializer=keras.initializers.get(
                keras.initializers.serialize(self.bias_initializer)
            ),
            dtype=self.dtype_policy,
            name="transform",
        )
        self._transform.build(tuple(inputs_shape[:1]) + (None, inputs_shape[-1]))
        self._layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name="layer_norm"
        )
        self._layer_norm.build((None, None, hidden_dim))
        self.output_bias = self.add_weight(
            name="output_bias",
            shape=(self.vocabulary_size,),
            initializer=self.bias_initializer,
        )
        self.built = True

    def call(self, inputs, mask_positions):
        mask_positions = ops.cast(mask_positions, "int32")
        # [B, S, D] -> [B, P, D]
        x = ops.take_along_axis(inputs, mask_positions[:, :, None], axis=1)
        x = self._layer_norm(self._transform(x))
        embeddings = ops.cast(self.token_embedding.embeddings, x.dtype)
        logits = ops.matmul(x, ops.transpose(embeddings))  # [B, P, V]
        return logits + ops.cast(self.output_bias, logits.dtype)

    def compute_mask(self, inputs, mask=None):
        return None  # the loss weights (mask_weights) say which rows count

    def compute_output_shape(self, inputs_shape, mask_positions_shape):
        return tuple(mask_positions_shape) + (self.vocabulary_size,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "token_embedding": keras.layers.serialize(self.token_embedding),
                "intermediate_activation": keras.activations.serialize(
                    self.intermediate_activation
                ),
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="tfmask")
class TiedProjection(keras.layers.Layer):
    """Logits for every position from a `MaskedEmbedding`'s table: x @ E^T + b.

    The output layer of causal and seq2seq language models, tied to the input
    embedding (Press & Wolf 2017). Use `MaskedLMHead` instead when only a
    few positions are predicted. Padded positions keep the input's Keras
    mask, so masked losses and metrics skip them.

    Args:
        token_embedding: the `MaskedEmbedding` to tie to.
        **kwargs: base layer arguments.

    Example:
    >>> import numpy as np
    >>> embed = MaskedEmbedding(vocabulary_size=10, hidden_dim=4, max_length=8)
    >>> TiedProjection(embed)(embed(np.array([[3, 4, 0]]))).shape
    TensorShape([1, 3, 10])
    """

    def __init__(self, token_embedding, **kwargs):
        super().__init__(**kwargs)
        self.token_embedding = tied_embedding(token_embedding, "TiedProjection")
        self.supports_masking = True

    def build(self, inputs_shape):
        if not self.token_embedding.built:
            self.token_embedding.build((None, None))
        self.output_bias = self.add_weight(
            name="output_bias", shape=(self.token_embedding.vocabulary_size,),
            initializer="zeros",
        )
        self.built = True

    def call(self, inputs):
        embeddings = ops.cast(self.token_embedding.embeddings, inputs.dtype)
        logits = ops.matmul(inputs, ops.transpose(embeddings))
        return logits + ops.cast(self.output_bias, logits.dtype)

    def compute_output_shape(self, inputs_shape):
        return tuple(inputs_shape[:-1]) + (self.token_embedding.vocabulary_size,)

    def get_config(self):
        config = super().get_config()
        config["token_embedding"] = keras.layers.serialize(self.token_embedding)
        return config
