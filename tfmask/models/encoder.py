"""The Transformer encoder stack shared by the MLM and classifier models."""

import keras

from tfmask.layers import MaskedEmbedding, TransformerEncoderBlock


class EncoderStack:
    """Embedding + N encoder blocks, built once, callable on symbolic inputs.

    Padding comes from the caller's `padding_mask` (the pipeline's), never
    from the token ids. Not a layer itself: models call it inside their functional graph, so
    every block appears as a named layer of the model (`embedding`,
    `encoder_block_0`, ...), which the pretrained-weight importer relies on.
    """

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_heads,
        hidden_dim,
        intermediate_dim,
        max_length,
        dropout=0.1,
        attention_dropout=None,
        activation="gelu",
        layer_norm_epsilon=1e-12,
        normalize_first=False,
        position="learned",
        num_segments=2,
        padding_free=False,
        dtype=None,
    ):
        initializer = keras.initializers.TruncatedNormal(stddev=0.02)
        self.embedding = MaskedEmbedding(
            vocabulary_size, hidden_dim, max_length, pad_id=None,
            num_segments=num_segments, position=position, dropout=dropout,
            layer_norm_epsilon=layer_norm_epsilon, dtype=dtype, name="embedding",
        )
        self.blocks = [
            TransformerEncoderBlock(
                num_heads, intermediate_dim, dropout=dropout,
                attention_dropout=attention_dropout, activation=activation,
                layer_norm_epsilon=layer_norm_epsilon, normalize_first=normalize_first,
                kernel_initializer=initializer, padding_free=padding_free, dtype=dtype,
                name=f"encoder_block_{i}",
            )
            for i in range(num_layers)
        ]
        self.final_norm = None
        if normalize_first:  # pre-LN stacks need a last norm
            self.final_norm = keras.layers.LayerNormalization(
                epsilon=layer_norm_epsilon, dtype=dtype, name="final_norm"
            )

    @property
    def layers(self):
        """The encoder's layers: embedding, blocks, the final norm if any."""
        return [self.embedding, *self.blocks] + ([self.final_norm] if self.final_norm else [])

    def __call__(self, token_ids, padding_mask, segment_ids=None, position_ids=None,
                 token_type_ids=None, use_causal_mask=False):
        x = self.embedding(token_ids, token_type_ids=token_type_ids, position_ids=position_ids)
        for block in self.blocks:
            x = block(x, padding_mask=padding_mask, segment_ids=segment_ids,
                      use_causal_mask=use_causal_mask)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x


def symbolic_inputs(names, length=None, extra=None):
    """keras.Input for each named int32 sequence feature, plus `extra` specs.
    Names ending in `padding_mask` are bool."""
    inputs = {name: keras.Input((length,), dtype="bool" if name.endswith("padding_mask")
                                else "int32", name=name) for name in names}
    for name, (shape, dtype) in (extra or {}).items():
        inputs[name] = keras.Input(shape, dtype=dtype, name=name)
    return inputs
