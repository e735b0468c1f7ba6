"""Dense feature masks for continuous inputs: Y = M * X."""

import tensorflow as tf

from tfmask.data import features as F
from tfmask.data.masking.base import MaskingStrategy, check_fraction, require_keys

MODES = ("element", "timestep", "block")


class FeatureMasking(MaskingStrategy):
    """Masks dense inputs: sequences [B, T, F] or images [B, H, W, C].

    `M` is drawn with P(masked) = `rate` at one of three granularities:
    `"element"` (each value), `"timestep"` (all features of a time step, or
    all channels of a pixel), `"block"` (runs of `block_size` time steps, or
    `block_size` x `block_size` image patches, each masked as one). The
    output holds `inputs` = M * X + (1 - M) * fill_value, the `feature_mask`
    M (bool, True = kept, broadcast to the input's shape) and `targets` = X,
    so a model can be trained to reconstruct what was hidden (weight the
    loss with `~feature_mask`).

    Args:
        rate: float in [0, 1), share of values masked.
        mode: "element" (default), "timestep" or "block".
        block_size: int, for mode="block". Default 4.
        key: batch key of the dense input. Default "inputs".
        fill_value: float written at masked values. Default 0.
        seed: int.

    Example:
    >>> import tensorflow as tf
    >>> masker = FeatureMasking(rate=0.5, mode="timestep")
    >>> out = masker({"inputs": tf.ones([2, 6, 3])}, seed=[0, 1])
    >>> bool(tf.reduce_all(out["inputs"] == tf.cast(out["feature_mask"], tf.float32)))
    True
    """

    def __init__(self, rate, mode="element", block_size=4, key=F.INPUTS, fill_value=0.0, seed=None):
        super().__init__(seed)
        check_fraction("rate", rate)
        if rate == 1:
            raise ValueError("rate=1 would mask every value; use rate < 1.")
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} is not one of {MODES}.")
        if block_size < 1:
            raise ValueError(f"block_size={block_size} must be >= 1.")
        self.rate = rate
        self.mode = mode
        self.block_size = block_size
        self.key = key
        self.fill_value = fill_value

    def _keep(self, shape, rank, seed):
        if self.mode == "element":
            return tf.random.stateless_uniform(shape, seed) >= self.rate
        # One draw per time step / pixel, shared by its features / channels.
        position_shape = tf.concat([shape[:-1], [1]], axis=0)
        if self.mode == "timestep":
            return tf.random.stateless_uniform(position_shape, seed) >= self.rate
        size = self.block_size
        if rank == 3:  # [B, T, F]: blocks of `size` steps
            blocks = (shape[1] + size - 1) // size
            draw = tf.random.stateless_uniform([shape[0], blocks, 1], seed) >= self.rate
            return tf.repeat(draw, size, axis=1)[:, : shape[1]]
        # [B, H, W, C]: size x size patches
        rows, cols = (shape[1] + size - 1) // size, (shape[2] + size - 1) // size
        draw = tf.random.stateless_uniform([shape[0], rows, cols, 1], seed) >= self.rate
        draw = tf.repeat(tf.repeat(draw, size, axis=1), size, axis=2)
        return draw[:, : shape[1], : shape[2]]

    def apply(self, batch, seed):
        require_keys(self, batch, self.key)
        inputs = tf.convert_to_tensor(batch[self.key])
        rank = inputs.shape.rank
        if rank not in (3, 4) or not inputs.dtype.is_floating:
            raise ValueError(
                f"FeatureMasking needs float [B, T, F] or [B, H, W, C] inputs under "
                f"{self.key!r}, got {inputs.dtype.name} with shape {inputs.shape}."
            )
        keep = tf.broadcast_to(self._keep(tf.shape(inputs), rank, seed), tf.shape(inputs))
        fill = tf.cast(self.fill_value, inputs.dtype)
        batch[F.TARGETS] = inputs
        batch[self.key] = tf.where(keep, inputs, fill)
        batch[F.FEATURE_MASK] = keep
        return batch
