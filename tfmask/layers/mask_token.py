"""A learned mask token for dense inputs (BERT's [MASK] for continuous values)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfmask")
class MaskToken(keras.layers.Layer):
    """Replaces masked positions of dense inputs by a learned vector.

    The companion of `tfmask.data.masking.FeatureMasking(fill="token")`: the
    data pipeline zero-fills what it hides and emits `feature_mask` (True =
    kept); this layer writes a trainable token [D] there instead, broadcast
    over the last axis (D features of a time step, channels of a pixel, or
    the embedding size of patch tokens, as MAE / SimMIM's mask token), so
    the model can tell "hidden" apart from "the value 0".

    Args:
        initializer: initializer of the token. Default
            TruncatedNormal(stddev=0.02), as BERT's tables.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: float [..., D].
        feature_mask: bool (or 0/1) mask, True = kept; the inputs' shape or
            broadcastable to it (e.g. [..., 1] for whole positions).

    Returns: where(feature_mask, inputs, token), the inputs' shape.

    Example:
    >>> import numpy as np
    >>> layer = MaskToken(initializer="ones")
    >>> x = np.full((1, 2, 3), 5.0, "float32")
    >>> mask = np.array([[[True, True, True], [True, False, True]]])
    >>> layer(x, mask).numpy().tolist()
    [[[5.0, 5.0, 5.0], [5.0, 1.0, 5.0]]]
    """

    def __init__(self, initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.initializer = keras.initializers.get(
            initializer or keras.initializers.TruncatedNormal(stddev=0.02)
        )

    def build(self, inputs_shape, feature_mask_shape=None):
        features = inputs_shape[-1]
        if features is None:
            raise ValueError(
                f"MaskToken needs a known last dimension, got inputs of shape {inputs_shape}."
            )
        self.token = self.add_weight(
            shape=(features,), initializer=self.initializer, name="token"
        )
        self.built = True

    def call(self, inputs, feature_mask):
        keep = ops.cast(feature_mask, "bool")
        token = ops.cast(self.token, inputs.dtype)
        return ops.where(keep, inputs, token)

    def compute_output_shape(self, inputs_shape, feature_mask_shape=None):
        return tuple(inputs_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"initializer": keras.initializers.serialize(self.initializer)})
        return config
