"""Models over dense inputs: tabular rows [F], series [T, F], images [H, W, C].

`DenseEncoder` turns one example into a vector: it standardises the raw
values with the training split's mean and variance (stored in the layer, so
the saved model reads raw data), puts a learned token at hidden values
(`fill: token`), can read a missingness indicator, and encodes with

- `"mlp"`: the flattened values through `num_layers` GELU layers, or
- `"transformer"`: tokens (one per feature of a row, per time step of a
  series, per `patch_size` x `patch_size` patch of an image), a learned
  position embedding, `TransformerEncoderBlock`s and mean pooling.

`DenseClassifierModel` adds class logits; `MaskedAutoencoderModel`
reconstructs every input value, standardised (its loss counts the hidden
ones only).
A classifier starts from an autoencoder run through `encoder` weights.

Example:
>>> import numpy as np
>>> model = DenseClassifierModel(input_shape=(6,), num_classes=3, hidden_dim=8, num_layers=1)
>>> model({"inputs": np.zeros((2, 6), "float32")}).shape
TensorShape([2, 3])
"""

import math

import keras
from keras import ops

from tfmask.data.features import MISSING_INDICATOR
from tfmask.layers import MaskToken, TransformerEncoderBlock

ENCODERS = ("mlp", "transformer")


def _tokens(x, shape, patch_size):
    """[B, *shape] -> [B, N, D]: features of a row, steps of a series, patches."""
    if len(shape) == 1:
        return ops.expand_dims(x, -1)
    if len(shape) == 2:
        return x
    height, width, channels = shape
    p = patch_size
    x = ops.reshape(x, (-1, height // p, p, width // p, p, channels))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (-1, (height // p) * (width // p), p * p * channels))


@keras.saving.register_keras_serializable(package="tfmask")
class DenseEncoder(keras.layers.Layer):
    """Raw dense example -> [B, hidden_dim] (see the module docstring).

    Args:
        input_shape: the example's shape without the batch axis.
        encoder: "mlp" (default) or "transformer".
        hidden_dim, num_layers: width and depth. num_heads,
            intermediate_dim: transformer blocks.
        dropout: float. patch_size: image patches for the transformer.
        mean, variance: per-feature statistics (last axis) of the training
            split, or None for no standardisation.
        token: learn a token for hidden values (call with `feature_mask`).
        indicator: the call also takes `missing_indicator` (1 = hidden).
    """

    def __init__(self, input_shape, encoder="mlp", hidden_dim=64, num_layers=2, num_heads=4,
                 intermediate_dim=128, dropout=0.1, patch_size=4, mean=None, variance=None,
                 token=False, indicator=False, **kwargs):
        super().__init__(**kwargs)
        if encoder not in ENCODERS:
            raise ValueError(f"encoder={encoder!r} is not one of {ENCODERS}.")
        self.example_shape = tuple(int(d) for d in input_shape)
        if encoder == "transformer" and len(self.example_shape) == 3 and any(
                d % patch_size for d in self.example_shape[:2]):
            raise ValueError(f"patch_size={patch_size} must divide the image size "
                             f"{self.example_shape[:2]}.")
        self.encoder, self.hidden_dim, self.num_layers = encoder, hidden_dim, num_layers
        self.num_heads, self.intermediate_dim = num_heads, intermediate_dim
        self.dropout, self.patch_size = dropout, patch_size
        self.mean = None if mean is None else [float(v) for v in mean]
        self.variance = None if variance is None else [float(v) for v in variance]
        self.token, self.indicator = token, indicator
        self.mask_token = MaskToken(dtype=self.dtype_policy, name="mask_token") if token else None
        if encoder == "mlp":
            self.layers_ = [keras.layers.Dense(hidden_dim, activation="gelu",
                                               dtype=self.dtype_policy, name=f"dense_{i}")
                            for i in range(num_layers)]
        else:
            self.projection = keras.layers.Dense(hidden_dim, dtype=self.dtype_policy,
                                                 name="projection")
            self.blocks = [TransformerEncoderBlock(num_heads, intermediate_dim, dropout=dropout,
                                                   normalize_first=True,
                                                   dtype=self.dtype_policy,
                                                   name=f"encoder_block_{i}")
                           for i in range(num_layers)]
            self.final_norm = keras.layers.LayerNormalization(dtype=self.dtype_policy,
                                                              name="final_norm")
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=self.dtype_policy)

    def build(self, input_shape=None):
        if self.encoder == "transformer":
            count = _tokens(ops.zeros((1,) + self.example_shape), self.example_shape,
                            self.patch_size).shape[1]
            self.positions = self.add_weight(
                shape=(count, self.hidden_dim), name="positions",
                initializer=keras.initializers.TruncatedNormal(stddev=0.02))
        self.built = True

    def call(self, inputs, feature_mask=None, missing_indicator=None, training=False):
        x = ops.cast(inputs, self.compute_dtype)
        if self.mean is not None:  # raw values in, standardised inside the model
            mean = ops.cast(ops.array(self.mean), self.compute_dtype)
            scale = ops.cast(ops.sqrt(ops.array(self.variance) + 1e-6), self.compute_dtype)
            x = (x - mean) / scale
        if self.mask_token is not None:
            x = self.mask_token(x, feature_mask)
        if self.indicator:
            x = ops.concatenate([x, ops.cast(missing_indicator, x.dtype)], axis=-1)
        if self.encoder == "mlp":
            x = ops.reshape(x, (-1, math.prod(x.shape[1:])))
            for layer in self.layers_:
                x = self.dropout_layer(layer(x), training=training)
            return x
        shape = self.example_shape[:-1] + (x.shape[-1],)
        x = self.projection(_tokens(x, shape, self.patch_size))
        x = self.dropout_layer(x + ops.cast(self.positions, x.dtype), training=training)
        for block in self.blocks:
            x = block(x, training=training)
        return ops.mean(self.final_norm(x), axis=1)

    def get_config(self):
        return {**super().get_config(), "input_shape": self.example_shape,
                "encoder": self.encoder, "hidden_dim": self.hidden_dim,
                "num_layers": self.num_layers, "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim, "dropout": self.dropout,
                "patch_size": self.patch_size, "mean": self.mean, "variance": self.variance,
                "token": self.token, "indicator": self.indicator}


def dense_inputs(input_shape, token=False, indicator=False):
    """keras.Input per model input: `inputs`, and `feature_mask` /
    `missing_indicator` when the encoder reads them."""
    inputs = {"inputs": keras.Input(input_shape, name="inputs")}
    if token:
        inputs["feature_mask"] = keras.Input(input_shape, dtype="bool", name="feature_mask")
    if indicator:
        inputs[MISSING_INDICATOR] = keras.Input(input_shape, name=MISSING_INDICATOR)
    return inputs


def _encoder_graph(encoder, dtype):
    """(DenseEncoder, symbolic inputs, encoded [B, hidden]) for a model."""
    layer = DenseEncoder(**encoder, dtype=dtype, name="encoder")
    inputs = dense_inputs(encoder["input_shape"], encoder.get("token", False),
                          encoder.get("indicator", False))
    encoded = layer(inputs["inputs"], feature_mask=inputs.get("feature_mask"),
                    missing_indicator=inputs.get(MISSING_INDICATOR))
    return layer, inputs, encoded


class _DenseModel(keras.Model):
    """Functional model around a `DenseEncoder`; config = constructor args."""

    def get_config(self):
        return dict(self._arguments)

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="tfmask")
class DenseClassifierModel(_DenseModel):
    """`DenseEncoder` + class logits [B, num_classes] (float32).

    Args: input_shape, num_classes, and `DenseEncoder`'s arguments.
    """

    def __init__(self, input_shape, num_classes, dtype=None, name="dense_classifier", **encoder):
        encoder = {"input_shape": tuple(input_shape), **encoder}
        encoder_layer, inputs, encoded = _encoder_graph(encoder, dtype)
        logits = keras.layers.Dense(num_classes, dtype="float32", name="logits")(encoded)
        super().__init__(inputs=inputs, outputs=logits, name=name)
        self.encoder = encoder_layer
        self._arguments = {"input_shape": encoder["input_shape"], "num_classes": num_classes,
                           "dtype": dtype, "name": name,
                           **{k: v for k, v in encoder.items() if k != "input_shape"}}


@keras.saving.register_keras_serializable(package="tfmask")
class MaskedAutoencoderModel(_DenseModel):
    """`DenseEncoder` + a linear decoder back to every input value (float32).

    Trained on masked inputs with the loss on the hidden values only, the
    encoder learns to infer what is missing from what is seen.
    """

    def __init__(self, input_shape, dtype=None, name="masked_autoencoder", **encoder):
        encoder = {"input_shape": tuple(input_shape), **encoder}
        encoder_layer, inputs, encoded = _encoder_graph(encoder, dtype)
        flat = keras.layers.Dense(math.prod(encoder["input_shape"]), dtype="float32",
                                  name="decoder")(encoded)
        reconstruction = keras.layers.Reshape(encoder["input_shape"], name="reconstruction")(flat)
        super().__init__(inputs=inputs, outputs=reconstruction, name=name)
        self.encoder = encoder_layer
        self._arguments = {"input_shape": encoder["input_shape"], "dtype": dtype, "name": name,
                           **{k: v for k, v in encoder.items() if k != "input_shape"}}
