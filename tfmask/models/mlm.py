"""BERT-style masked-LM encoder with a tied `MaskedLMHead`, and the classifier."""

import keras

from tfmask.data import features as F
from tfmask.layers import Dropout, MaskedLMHead
from tfmask.models.encoder import EncoderStack, symbolic_inputs

ENCODER_ARGS = (
    "vocabulary_size", "num_layers", "num_heads", "hidden_dim", "intermediate_dim",
    "max_length", "dropout", "attention_dropout", "activation", "layer_norm_epsilon",
    "normalize_first", "position", "num_segments", "padding_free",
)


class _EncoderModel(keras.Model):
    """Functional model subclass: the graph is rebuilt from hyper-parameters
    in `from_config`, so ties between layers (embedding <-> MLM head) survive
    saving and loading, which a plain functional model would break."""

    def _encoder_config(self):
        return {name: getattr(self, name) for name in ENCODER_ARGS}

    def _store(self, **kwargs):
        for name, value in kwargs.items():
            setattr(self, name, value)

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="tfmask")
class MaskedLMModel(_EncoderModel):
    """Encoder + tied MLM head: logits at `mask_positions` only.

    Inputs: `token_ids` [B, S], `padding_mask` [B, S] (bool, True at real
    tokens, as the pipeline emits it), `mask_positions` [B, P]; with `packed=True`
    also `segment_ids` and `position_ids` [B, S] (rows packed with
    `tfmask.data.packing.pack`; documents never attend to each other).
    Output: logits [B, P, vocabulary_size]. `padding_free=True` runs the
    encoder's token-wise layers on real tokens only (same logits, less work;
    under XLA within `token_slots`, see `tfmask.layers.padding_free`).

    Example:
    >>> import numpy as np
    >>> model = MaskedLMModel(vocabulary_size=50, num_layers=1, num_heads=2,
    ...                       hidden_dim=8, intermediate_dim=16, max_length=16)
    >>> model({"token_ids": np.array([[2, 5, 4, 7, 3, 0]]),
    ...        "padding_mask": np.array([[1, 1, 1, 1, 1, 0]], bool),
    ...        "mask_positions": np.array([[2, 0]])}).shape
    TensorShape([1, 2, 50])
    """

    def __init__(self, vocabulary_size, num_layers, num_heads, hidden_dim, intermediate_dim,
                 max_length, dropout=0.1, attention_dropout=None, activation="gelu",
                 layer_norm_epsilon=1e-12, normalize_first=False, position="learned",
                 num_segments=2, packed=False, max_predictions=None,
                 padding_free=False, **kwargs):
        dtype = kwargs.pop("dtype", None)
        stack = EncoderStack(vocabulary_size, num_layers, num_heads, hidden_dim,
                             intermediate_dim, max_length, dropout, attention_dropout,
                             activation, layer_norm_epsilon, normalize_first, position,
                             num_segments, padding_free=padding_free, dtype=dtype)
        names = [F.TOKEN_IDS, F.PADDING_MASK] + F.row_keys(packed)
        inputs = symbolic_inputs(
            names, extra={F.MASK_POSITIONS: ((max_predictions,), "int32")}
        )
        sequence = stack(inputs[F.TOKEN_IDS], inputs[F.PADDING_MASK],
                         segment_ids=inputs.get(F.SEGMENT_IDS),
                         position_ids=inputs.get(F.POSITION_IDS))
        # BERT's head transform uses the encoder's activation (HF `hidden_act`).
        head = MaskedLMHead(token_embedding=stack.embedding, intermediate_activation=activation,
                            layer_norm_epsilon=layer_norm_epsilon, dtype=dtype,
                            name="mlm_head")
        logits = head(sequence, inputs[F.MASK_POSITIONS])
        logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logits)
        super().__init__(inputs=inputs, outputs=logits, dtype=dtype, **kwargs)
        self.stack = stack
        self._store(vocabulary_size=vocabulary_size, num_layers=num_layers, num_heads=num_heads,
                    hidden_dim=hidden_dim, intermediate_dim=intermediate_dim,
                    max_length=max_length, dropout=dropout, attention_dropout=attention_dropout,
                    activation=activation, layer_norm_epsilon=layer_norm_epsilon,
                    normalize_first=normalize_first, position=position,
                    num_segments=num_segments, packed=packed,
                    max_predictions=max_predictions, padding_free=padding_free)

    def get_config(self):
        return {**self._encoder_config(), "packed": self.packed,
                "max_predictions": self.max_predictions, "name": self.name,
                "trainable": self.trainable}


@keras.saving.register_keras_serializable(package="tfmask")
class ClassifierModel(_EncoderModel):
    """Encoder + pooled classification head, for fine-tuning.

    Pooling: `"cls"` (the first token, BERT) or `"mean"` (mean over real
    tokens: padding is excluded through `padding_mask`). Inputs `token_ids`
    and `padding_mask` [B, S]; output logits [B, num_classes] in float32.

    Example:
    >>> import numpy as np
    >>> model = ClassifierModel(num_classes=2, vocabulary_size=50, num_layers=1,
    ...                         num_heads=2, hidden_dim=8, intermediate_dim=16,
    ...                         max_length=16)
    >>> model({"token_ids": np.array([[2, 5, 6, 3, 0]]),
    ...        "padding_mask": np.array([[1, 1, 1, 1, 0]], bool)}).shape
    TensorShape([1, 2])
    """

    def __init__(self, num_classes, vocabulary_size, num_layers, num_heads, hidden_dim,
                 intermediate_dim, max_length, dropout=0.1, attention_dropout=None,
                 activation="gelu", layer_norm_epsilon=1e-12, normalize_first=False,
                 position="learned", num_segments=2, pooling="cls",
                 classifier_dropout=None, padding_free=False, **kwargs):
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling={pooling!r} must be 'cls' or 'mean'.")
        dtype = kwargs.pop("dtype", None)
        stack = EncoderStack(vocabulary_size, num_layers, num_heads, hidden_dim,
                             intermediate_dim, max_length, dropout, attention_dropout,
                             activation, layer_norm_epsilon, normalize_first, position,
                             num_segments, padding_free=padding_free, dtype=dtype)
        inputs = symbolic_inputs([F.TOKEN_IDS, F.PADDING_MASK])
        padding = inputs[F.PADDING_MASK]
        sequence = stack(inputs[F.TOKEN_IDS], padding)
        if pooling == "cls":
            pooled = sequence[:, 0]  # [CLS]
            pooled = keras.layers.Dense(hidden_dim, activation="tanh", dtype=dtype,
                                        name="pooler")(pooled)
        else:
            pooled = keras.layers.GlobalAveragePooling1D(dtype=dtype, name="mean_pool")(
                sequence, mask=padding)
        rate = dropout if classifier_dropout is None else classifier_dropout
        pooled = Dropout(rate, dtype=dtype, name="classifier_dropout")(pooled)
        logits = keras.layers.Dense(num_classes, dtype=dtype, name="classifier")(pooled)
        logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logits)
        super().__init__(inputs=inputs, outputs=logits, dtype=dtype, **kwargs)
        self.stack = stack
        self._store(num_classes=num_classes, vocabulary_size=vocabulary_size,
                    num_layers=num_layers, num_heads=num_heads, hidden_dim=hidden_dim,
                    intermediate_dim=intermediate_dim, max_length=max_length, dropout=dropout,
                    attention_dropout=attention_dropout, activation=activation,
                    layer_norm_epsilon=layer_norm_epsilon, normalize_first=normalize_first,
                    position=position, num_segments=num_segments, pooling=pooling, classifier_dropout=classifier_dropout,
                    padding_free=padding_free)

    def get_config(self):
        return {**self._encoder_config(), "num_classes": self.num_classes,
                "pooling": self.pooling, "classifier_dropout": self.classifier_dropout,
                "name": self.name, "trainable": self.trainable}



@keras.saving.register_keras_serializable(package="tfmask")
class TokenClassifierModel(_EncoderModel):
    """Encoder + a tag per token (named-entity recognition), for fine-tuning.

    Inputs `token_ids` and `padding_mask` [B, S]; output logits
    [B, S, num_tags] in float32 (the task reads those of each word's first
    piece, `tfmask.data.tagging`).

    Example:
    >>> import numpy as np
    >>> model = TokenClassifierModel(num_tags=5, vocabulary_size=50, num_layers=1,
    ...                              num_heads=2, hidden_dim=8, intermediate_dim=16,
    ...                              max_length=16)
    >>> model({"token_ids": np.array([[2, 5, 6, 3, 0]]),
    ...        "padding_mask": np.array([[1, 1, 1, 1, 0]], bool)}).shape
    TensorShape([1, 5, 5])
    """

    def __init__(self, num_tags, vocabulary_size, num_layers, num_heads, hidden_dim,
                 intermediate_dim, max_length, dropout=0.1, attention_dropout=None,
                 activation="gelu", layer_norm_epsilon=1e-12, normalize_first=False,
                 position="learned", num_segments=2, classifier_dropout=None,
                 padding_free=False, **kwargs):
        dtype = kwargs.pop("dtype", None)
        # The encoder's arguments by name (ENCODER_ARGS are EncoderStack's).
        encoder = {name: value for name, value in locals().items() if name in ENCODER_ARGS}
        stack = EncoderStack(**encoder, dtype=dtype)
        inputs = symbolic_inputs([F.TOKEN_IDS, F.PADDING_MASK])
        sequence = stack(inputs[F.TOKEN_IDS], inputs[F.PADDING_MASK])
        rate = dropout if classifier_dropout is None else classifier_dropout
        sequence = Dropout(rate, dtype=dtype, name="tagger_dropout")(sequence)
        # Not "classifier": a classifier run's head has another shape and
        # must not be copied into this one (`from_pretrained` copies by name).
        logits = keras.layers.Dense(num_tags, dtype=dtype, name="tagger")(sequence)
        logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logits)
        super().__init__(inputs=inputs, outputs=logits, dtype=dtype, **kwargs)
        self.stack = stack
        self._store(num_tags=num_tags, classifier_dropout=classifier_dropout, **encoder)

    def get_config(self):
        return {**self._encoder_config(), "num_tags": self.num_tags,
                "classifier_dropout": self.classifier_dropout, "name": self.name,
                "trainable": self.trainable}
