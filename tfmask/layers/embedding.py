"""Token + position (+ token type) embedding that emits the padding mask."""

import math

import keras
from keras import ops

from tfmask import masks as mask_ops
from tfmask.layers.dropout import Dropout

POSITION_KINDS = ("learned", "sinusoidal")


def lookup(table, ids):
    """`table(ids)` for a `keras.layers.Embedding`, reading only the rows.

    Keras' Embedding takes rows from the whole table as a tensor; on
    TensorFlow that reads (copies) the variable, twice (for the gather and
    for its shape): 2 x 47 MB a step for MiniLM's 30522 x 384 table (the
    main job's step time does not change measurably on 2 CPU cores; the
    memory traffic does). Gathering from the resource
    variable reads just the rows; same values, same row-wise (IndexedSlices)
    gradient. Other backends, LoRA and quantized tables take Keras' call.
    """
    if (keras.backend.backend() != "tensorflow" or table.lora_enabled
            or table.quantization_mode is not None):
        return table(ids)
    import tensorflow as tf

    rows = tf.gather(table.embeddings.value, ids)  # a ResourceGather: only these rows
    return ops.cast(rows, table.compute_dtype)


def sinusoidal_positions(position_ids, hidden_dim, dtype="float32"):
    """Transformer sine/cosine encodings of arbitrary (e.g. reset) positions.

    `position_ids` [B, S] -> [B, S, hidden_dim]; the first half of the
    features are sines, the second half cosines (Vaswani et al. 2017).
    """
    half = hidden_dim // 2
    # 1 / 10000^(2i / d) for i in [0, d/2)
    inverse_freq = ops.exp(
        ops.arange(half, dtype="float32") * (-math.log(10000.0) / max(half, 1))
    )
    angles = ops.cast(position_ids, "float32")[..., None] * inverse_freq
    encoding = ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)
    if hidden_dim % 2:
        encoding = ops.pad(encoding, [[0, 0]] * (len(encoding.shape) - 1) + [[0, 1]])
    return ops.cast(encoding, dtype)


@keras.saving.register_keras_serializable(package="tfmask")
class MaskedEmbedding(keras.layers.Layer):
    """Token + position (+ token type) embedding, layer norm and dropout.

    Standalone, its Keras mask is the padding mask (False where the id is `pad_id`,
    like Keras' `mask_zero`), so every mask-aware layer downstream (tfmask
    blocks, Keras RNNs, losses) sees the padding without being told. tfmask's
    models build it with `pad_id=None` (no Keras mask) and pass the
    pipeline's `padding_mask` to every block instead, as keras-hub's
    backbones do: padding then has one source, the data pipeline. Positions can be passed explicitly: packed
    rows restart positions at each document (`position_ids` from
    `tfmask.data` packing), which is what makes a packed document look
    exactly like the same document alone.

    Args:
        vocabulary_size: int. Number of token ids.
        hidden_dim: int. Embedding size.
        max_length: int. Longest sequence (size of the learned position table;
            also the bound checked for sinusoidal positions).
        pad_id: int or None. The padding token id, masked out through the
            Keras mask; None = no Keras mask (pass padding masks explicitly).
            Default 0.
        num_segments: int. Number of token types in BERT's sense (sentence A /
            sentence B), fed as `token_type_ids`; 0 (default) disables them.
            Packed-document ids are not token types and never go here.
        position: "learned" (default, BERT) or "sinusoidal".
        dropout: float. Dropout after the layer norm. Default 0.
        layer_norm_epsilon: float. Default 1e-12 (BERT's value).
        embeddings_initializer: initializer of all tables. Default
            TruncatedNormal(stddev=0.02), as BERT.
        **kwargs: base layer arguments.

    Call arguments:
        token_ids: int [B, S].
        token_type_ids: int [B, S] in [0, num_segments), optional; all 0
            when omitted (BERT's default).
        position_ids: int [B, S], optional; defaults to 0..S-1.
        training: bool.

    Example:
    >>> import numpy as np
    >>> embed = MaskedEmbedding(vocabulary_size=10, hidden_dim=4, max_length=8)
    >>> x = embed(np.array([[3, 4, 0]]))
    >>> x.shape, embed.compute_mask(np.array([[3, 4, 0]])).numpy().tolist()
    (TensorShape([1, 3, 4]), [[True, True, False]])
    """

    def __init__(
        self,
        vocabulary_size,
        hidden_dim,
        max_length,
        pad_id=0,
        num_segments=0,
        position="learned",
        dropout=0.0,
        layer_norm_epsilon=1e-12,
        embeddings_initializer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if position not in POSITION_KINDS:
            raise ValueError(
                f"MaskedEmbedding: position={position!r} is not one of "
                f"{POSITION_KINDS}."
            )
        self.vocabulary_size = vocabulary_size
        self.hidden_dim = hidden_dim
        self.max_length = max_length
        self.pad_id = pad_id
        self.num_segments = num_segments
        self.position = position
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.embeddings_initializer = keras.initializers.get(
            embeddings_initializer
            or keras.initializers.TruncatedNormal(stddev=0.02)
        )
        self.supports_masking = True

    def _table(self, size, name):
        return keras.layers.Embedding(
            size,
            self.hidden_dim,
            embeddings_initializer=keras.initializers.get(
                keras.initializers.serialize(self.embeddings_initializer)
            ),
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, token_ids_shape, token_type_ids_shape=None, position_ids_shape=None):
        self.token_embedding = self._table(self.vocabulary_size, "token_embedding")
        self.token_embedding.build(token_ids_shape)
        self.position_embedding = None
        if self.position == "learned":
            self.position_embedding = self._table(self.max_length, "position_embedding")
            self.position_embedding.build(token_ids_shape)
        self.token_type_embedding = None
        if self.num_segments:
            self.token_type_embedding = self._table(
                self.num_segments, "token_type_embedding"
            )
            self.token_type_embedding.build(token_ids_shape)
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name="layer_norm"
        )
        self.layer_norm.build(tuple(token_ids_shape) + (self.hidden_dim,))
        self._dropout_layer = Dropout(self.dropout, dtype=self.dtype_policy)
        self.built = True

    @property
    def embeddings(self):
        """The [vocabulary_size, hidden_dim] token table (for tied heads)."""
        return self.token_embedding.embeddings

    def call(self, token_ids, token_type_ids=None, position_ids=None, training=None):
        length = token_ids.shape[1]
        if isinstance(length, int) and length > self.max_length:
            raise ValueError(
                f"MaskedEmbedding got sequences of length {length} but "
                f"max_length={self.max_length}; raise max_length or truncate."
            )
        if token_type_ids is not None and not self.num_segments:
            raise ValueError(
                "MaskedEmbedding got token_type_ids but num_segments=0; "
                "construct it with num_segments > 0."
            )
        x = lookup(self.token_embedding, token_ids)
        if position_ids is None:
            position_ids = ops.arange(ops.shape(token_ids)[1], dtype="int32")[None]
        if self.position == "learned":
            positions = lookup(self.position_embedding, position_ids)
        else:
            positions = sinusoidal_positions(
                position_ids, self.hidden_dim, self.compute_dtype
            )
        x = x + positions
        if self.token_type_embedding is not None:
            # Without explicit types every token is type 0, as in BERT (a
            # pretrained table's row 0 is part of every input).
            if token_type_ids is None:
                token_type_ids = ops.zeros_like(token_ids)
            x = x + lookup(self.token_type_embedding, token_type_ids)
        x = self.layer_norm(x)
        return self._dropout_layer(x, training=training)

    def compute_mask(self, token_ids, mask=None):
        if self.pad_id is None:
            return None
        return mask_ops.padding_mask(token_ids, self.pad_id)

    def compute_output_shape(self, token_ids_shape, *args, **kwargs):
        return tuple(token_ids_shape) + (self.hidden_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "hidden_dim": self.hidden_dim,
                "max_length": self.max_length,
                "pad_id": self.pad_id,
                "num_segments": self.num_segments,
                "position": self.position,
                "dropout": self.dropout,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "embeddings_initializer": keras.initializers.serialize(
                    self.embeddings_initializer
                ),
            }
        )
        return config
