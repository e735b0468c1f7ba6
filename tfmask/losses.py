"""Masked losses: only positions with non-zero weight count, and they are
averaged over the *sum of weights*, not over every position.

With Keras' default `sum_over_batch_size`, a batch where 15 of 128 positions
are masked divides by 128 and shrinks the loss ~8x; and a batch with no
weighted position at all must give 0, not NaN. Both are handled here.
"""

import keras
from keras import ops


def per_token_crossentropy(labels, logits, from_logits=True):
    """Sparse cross-entropy per position, computed in float32 ([B, P])."""
    return keras.losses.sparse_categorical_crossentropy(
        ops.convert_to_tensor(labels),
        ops.cast(logits, "float32"),
        from_logits=from_logits,
    )


def weighted_crossentropy_sum(labels, logits, weights=None, from_logits=True):
    """(sum of weight * cross-entropy, sum of weights): the one weighted loss.

    Training divides the first by the *global* weight sum (over replicas),
    evaluation accumulates both; `masked_sparse_categorical_crossentropy`
    divides them. Weight-0 positions contribute exactly 0, whatever their
    label (`where`, not multiply: a garbage label may give inf).

    Example:
    >>> import numpy as np
    >>> logits = np.log(np.array([[[0.5, 0.5], [0.9, 0.1]]], "float32"))
    >>> total, weight = weighted_crossentropy_sum([[0, 1]], logits, [[1, 0]])
    >>> round(float(total), 4), float(weight)
    (0.6931, 1.0)
    """
    losses = per_token_crossentropy(labels, logits, from_logits)
    if weights is None:
        weights = ops.ones_like(losses)
    weights = ops.cast(weights, "float32")
    return ops.sum(ops.where(weights > 0, losses * weights, 0.0)), ops.sum(weights)


def masked_sparse_categorical_crossentropy(labels, logits, weights=None, from_logits=True):
    """Weighted mean cross-entropy over the positions whose weight is > 0.

    Args:
        labels: int [B, P] target ids.
        logits: [B, P, V] (or probabilities if `from_logits=False`).
        weights: [B, P] loss weights (e.g. `mask_weights`); None = all 1.

    Returns: float32 scalar; 0 when every weight is 0.

    Example:
    >>> import numpy as np
    >>> logits = np.log(np.array([[[0.5, 0.5], [0.9, 0.1]]], "float32"))
    >>> float(masked_sparse_categorical_crossentropy([[0, 1]], logits, [[1, 0]]))
    0.693...
    """
    total, weight = weighted_crossentropy_sum(labels, logits, weights, from_logits)
    return ops.divide_no_nan(total, weight)


def masked_mean_squared_error(targets, predictions, weights=None):
    """Weighted mean squared error over the elements whose weight is > 0.

    The reconstruction loss of dense masking: weight with the elements that
    were hidden (`FeatureMasking`'s `loss_weights`, or `~feature_mask`), so
    kept elements do not count and the mean is over the hidden ones only.
    Weight-0 elements contribute exactly 0, even if their target is NaN or
    inf, and so does their gradient.

    Args:
        targets: float [...] true values.
        predictions: float [...], the targets' shape.
        weights: [...] weights (bool or float), the targets' shape or
            broadcastable to it (e.g. [B, T, 1]); None = all 1.

    Returns: float32 scalar, sum(w * (p - t)^2) / sum(w); 0 when every
    weight is 0.

    Example:
    >>> float(masked_mean_squared_error([[1.0, 2.0, 9.0]], [[2.0, 4.0, 0.0]], [[1, 1, 0]]))
    2.5
    """
    total, weight = weighted_squared_error_sum(targets, predictions, weights)
    return ops.divide_no_nan(total, weight)


def weighted_squared_error_sum(targets, predictions, weights=None):
    """(sum of weight * squared error, sum of weights), as
    `weighted_crossentropy_sum` for dense reconstruction (the trainer's
    loss terms of a masked autoencoder).

    Example:
    >>> total, weight = weighted_squared_error_sum([[1.0, 9.0]], [[3.0, 0.0]], [[1, 0]])
    >>> float(total), float(weight)
    (4.0, 1.0)
    """
    targets = ops.cast(targets, "float32")
    predictions = ops.cast(predictions, "float32")
    if weights is None:
        weights = ops.ones_like(predictions)
    weights = ops.broadcast_to(ops.cast(weights, "float32"), ops.shape(predictions))
    # Mask the difference before squaring: a NaN target at weight 0 would
    # otherwise give NaN gradients through the square.
    error = ops.where(weights > 0, predictions - targets, 0.0)
    return ops.sum(weights * ops.square(error)), ops.sum(weights)


@keras.saving.register_keras_serializable(package="tfmask")
class MaskedSparseCategoricalCrossentropy(keras.losses.Loss):
    """Keras loss: cross-entropy averaged over the sum of `sample_weight`.

    Pass the mask weights as `sample_weight` (Keras' `fit` does this with
    `(x, y, sample_weight)` datasets). Logits are cast to float32 first, so
    mixed-precision models are safe.

    Example:
    >>> loss = MaskedSparseCategoricalCrossentropy()
    >>> import numpy as np
    >>> logits = np.zeros((1, 2, 4), "float32")
    >>> round(float(loss([[1, 2]], logits, sample_weight=[[1, 0]])), 4)
    1.3863
    """

    def __init__(
        self,
        from_logits=True,
        reduction="mean_with_sample_weight",
        name="masked_sparse_categorical_crossentropy",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits = from_logits

    def call(self, y_true, y_pred):
        return per_token_crossentropy(y_true, y_pred, self.from_logits)

    def get_config(self):
        config = super().get_config()
        config.update({"from_logits": self.from_logits})
        return config
