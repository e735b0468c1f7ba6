"""Dense feature masks for continuous inputs: Y = M * X + (1 - M) * fill.

Tabular rows [B, F], time series [B, T, F] and images [B, H, W, C]. The mask
M (True = kept) is the AND of up to three sources: a random `mode`, a mask
given by the data (`mask_key`, e.g. which values were really observed) and
NaNs in the inputs (`nan_is_missing`).
"""

import numbers

import numpy as np
import tensorflow as tf

from tfmask.data import features as F
from tfmask.data.masking.base import MaskingStrategy, check_fraction, split_seed
from tfmask.guards import guarded

MISSING_INDICATOR = F.MISSING_INDICATOR  # re-exported: FeatureMasking(indicator=True)
MODES = ("element", "feature", "timestep", "pixel", "span", "block", "patch")
FILLS = ("zero", "mean", "token")
# Modes each input rank accepts: 2 = [B, F], 3 = [B, T, F], 4 = [B, H, W, C].
RANK_MODES = {
    2: ("element", "feature"),
    3: ("element", "feature", "timestep", "span", "block", "patch"),
    4: ("element", "feature", "timestep", "pixel", "block", "patch"),
}
RANK_NAMES = {2: "tabular [B, F]", 3: "time-series [B, T, F]", 4: "image [B, H, W, C]"}


def bernoulli_keep(shape, rate, seed):
    """bool `shape`, each entry False (masked) independently with P = `rate`."""
    return tf.random.stateless_uniform(shape, seed) >= rate


def exact_count_keep(batch, units, rate, seed):
    """bool [batch, units] with exactly round(rate * units) False per row.

    The masked units are a uniformly random subset (MAE's random shuffle),
    not independent coin flips, so every row hides the same number.

    Example:
    >>> keep = exact_count_keep(3, 10, 0.3, tf.constant([1, 2], tf.int64))
    >>> (10 - tf.reduce_sum(tf.cast(keep, tf.int32), axis=1)).numpy().tolist()
    [3, 3, 3]
    """
    noise = tf.random.stateless_uniform([batch, units], seed)
    rank = tf.argsort(tf.argsort(noise, axis=1), axis=1)
    count = tf.cast(tf.floor(rate * tf.cast(units, tf.float32) + 0.5), tf.int32)
    return rank >= count


def geometric_lengths(shape, mean, seed):
    """int32 run lengths >= 1, geometric with the given mean (>= 1)."""
    if mean <= 1:
        return tf.ones(shape, tf.int32)
    uniform = 1.0 - tf.random.stateless_uniform(shape, seed)  # (0, 1]
    lengths = 1.0 + tf.floor(tf.math.log(uniform) / tf.math.log(1.0 - 1.0 / mean))
    return tf.cast(tf.minimum(lengths, 2.0**30), tf.int32)


def span_keep(batch, steps, rate, span_length, seed):
    """bool [batch, steps]: masked spans of geometric length (mean `span_length`).

    A two-state Markov chain (Zerveas et al. 2021): masked runs have mean
    `span_length`, kept runs mean span_length * (1 - rate) / rate, and the
    first step is masked with P = rate, so every step is masked with
    P = `rate` exactly. Vectorised: alternating run lengths are drawn, and
    each step looks up the run it falls in.

    Example:
    >>> keep = span_keep(2, 12, 0.5, 3.0, tf.constant([0, 4], tf.int64))
    >>> keep.shape
    TensorShape([2, 12])
    """
    if rate == 0:
        return tf.ones([batch, steps], tf.bool)
    start_seed, masked_seed, kept_seed = tf.unstack(split_seed(seed, 3))
    first_masked = tf.random.stateless_uniform([batch, 1], start_seed) < rate
    # Run k has the first run's state when k is even, the other state if odd.
    run_masked = tf.math.logical_xor(first_masked, tf.range(steps) % 2 == 1)
    masked_lengths = geometric_lengths([batch, steps], span_length, masked_seed)
    kept_lengths = geometric_lengths([batch, steps], span_length * (1 - rate) / rate, kept_seed)
    # A run of >= `steps` covers the rest of the row: clip so the sum cannot overflow.
    lengths = tf.minimum(tf.where(run_masked, masked_lengths, kept_lengths), steps)
    run_ends = tf.cumsum(lengths, axis=1)
    positions = tf.broadcast_to(tf.range(steps), [batch, steps])
    run_of_step = tf.searchsorted(run_ends, positions, side="right")
    return ~tf.gather(run_masked, run_of_step, batch_dims=1)


def time_block_keep(shape, size, rate, seed):
    """bool [B, T, 1]: blocks of `size` steps, exactly round(rate * blocks) masked.

    A last partial block (T not a multiple of `size`) is one block too.
    """
    blocks = (shape[1] + size - 1) // size
    keep = exact_count_keep(shape[0], blocks, rate, seed)
    return tf.repeat(keep, size, axis=1)[:, : shape[1], None]


def check_patch_grid(static_shape, size):
    """ValueError unless `size` divides the (static) image height and width."""
    height, width = static_shape[1], static_shape[2]
    for extent in (height, width):
        if extent is not None and extent % size:
            raise ValueError(
                f"FeatureMasking: patch_size={size} does not divide the image size "
                f"{height}x{width}; resize or crop to a multiple of it."
            )


def patch_keep(shape, size, rate, seed):
    """bool [B, H, W, 1]: size x size patches on the grid, round(rate * patches) masked."""
    rows, cols = shape[1] // size, shape[2] // size
    check = tf.debugging.assert_equal(
        [rows * size, cols * size], shape[1:3],
        message=f"FeatureMasking: patch_size={size} must divide the image height and width",
    )
    # The grid waits for the check, or a mismatched shape fails first with a raw
    # "Incompatible shapes" from a later op (see tfmask.guards).
    rows, cols = guarded((rows, cols), check)
    keep = tf.reshape(exact_count_keep(shape[0], rows * cols, rate, seed), [-1, rows, cols])
    keep = tf.repeat(tf.repeat(keep, size, axis=1), size, axis=2)
    return keep[..., None]


def feature_shape(shape, rank):
    """[B, F] -> [B, F]; [B, T, F] -> [B, 1, F]; [B, H, W, C] -> [B, 1, 1, C]."""
    return tf.concat([shape[:1], tf.ones([rank - 2], tf.int32), shape[-1:]], axis=0)


def position_shape(shape):
    """One draw per time step / pixel: the shape with its last axis set to 1."""
    return tf.concat([shape[:-1], [1]], axis=0)


def as_keep_mask(values, name):
    """A given mask (bool, or numbers with non-zero = kept) as bool."""
    values = tf.convert_to_tensor(values)
    if values.dtype == tf.bool:
        return values
    if not (values.dtype.is_floating or values.dtype.is_integer):
        raise ValueError(f"FeatureMasking: {name!r} must be bool or 0/1 numbers, got {values.dtype.name}.")
    return values != 0


class FeatureMasking(MaskingStrategy):
    """Masks dense inputs: tabular [B, F], time series [B, T, F], images [B, H, W, C].

    The mask M (bool, True = kept) is the AND of
      * a random `mode`, hiding a share `rate` of the values:
        - "element": each value independently (P(masked) = rate);
        - "feature": whole features per example: a column of [B, F], one
          feature over all steps of [B, T, F], a channel of an image;
        - "timestep" (alias "pixel" for images): all features of a time step
          / all channels of a pixel; not for [B, F];
        - "span" ([B, T, F] only): contiguous runs of steps whose lengths are
          geometric with mean `span_length`, each step masked with
          P = rate (Zerveas et al. 2021's Markov chain, all features at once);
        - "block" / "patch": exactly round(rate * blocks) blocks per example,
          a random subset as in MAE: runs of `patch_size` steps for
          [B, T, F] (a shorter last block counts as one), `patch_size` x
          `patch_size` patches on the grid for images (the patch size must
          divide the height and width; a ValueError says so otherwise);
      * a mask given by the data under `mask_key` (bool or 0/1, True / 1 =
        present), applied exactly, e.g. the values really missing;
      * with `nan_is_missing=True`, NaN inputs (they become masked, so no
        NaN reaches the model or the targets).

    Outputs (added to the batch):
      * `key` (default "inputs"): the masked inputs, M * X + (1 - M) * fill;
      * `feature_mask`: M, bool, the inputs' shape;
      * `targets`: the original X (NaN replaced by the fill);
      * `loss_weights`: float32, the inputs' shape, 1 where the random mode
        hid a value the data has (not given-missing, not NaN): weight a
        reconstruction loss with it, e.g.
        `tfmask.losses.masked_mean_squared_error(targets, predictions,
        loss_weights)`. Without `mask_key` / NaNs it equals `~feature_mask`;
      * `missing_indicator` (with `indicator=True`): 1 - M in the inputs'
        dtype, to tell a model what is missing (e.g. concatenated to the
        inputs).

    Args:
        rate: float in [0, 1), share of values the random mode hides; 0 =
            only the given / NaN masks.
        mode: one of "element" (default), "feature", "timestep", "pixel",
            "span", "block", "patch".
        patch_size: int, block length ("block"/"patch"). Default 4.
        span_length: float >= 1, mean span length for "span". Default 3; a
            rate above span_length / (span_length + 1) is refused (kept runs
            would need to be shorter than one step).
        key: batch key of the dense input. Default "inputs".
        fill: what masked values become: "zero" (default), a float, "mean"
            (the per-feature `fill_values`, e.g. train-split column means) or
            "token" (zeros here; `tfmask.layers.MaskToken` in the model
            replaces masked positions by a learned vector).
        fill_values: per-feature values [F] for fill="mean", broadcast over
            the last axis.
        mask_key: batch key of a given keep mask (same shape as the inputs
            or broadcastable, e.g. [B, T, 1]), or None.
        nan_is_missing: bool, treat NaN inputs as missing. Default False.
        indicator: bool, add `missing_indicator`. Default False.
        block_size: old name of `patch_size`.
        fill_value: old name of a float `fill`.
        seed: int.

    Example:
    >>> import numpy as np
    >>> x = np.array([[1.0, np.nan, 3.0], [4.0, 5.0, np.nan]], "float32")
    >>> masker = FeatureMasking(0.0, fill="mean", fill_values=[2.5, 5.0, 3.0],
    ...                         nan_is_missing=True, indicator=True)
    >>> out = masker({"inputs": x}, seed=[0, 1])
    >>> out["inputs"].numpy().tolist()
    [[1.0, 5.0, 3.0], [4.0, 5.0, 3.0]]
    >>> out["missing_indicator"].numpy().tolist()
    [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    >>> patches = FeatureMasking(0.25, mode="patch", patch_size=2)
    >>> keep = patches({"inputs": tf.ones([1, 4, 4, 3])}, seed=[0, 1])["feature_mask"]
    >>> int(tf.reduce_sum(tf.cast(~keep, tf.int32)))  # 1 patch of 4: 2 x 2 x 3
    12
    """

    def __init__(
        self,
        rate,
        mode="element",
        patch_size=None,
        span_length=3.0,
        key=F.INPUTS,
        fill="zero",
        fill_values=None,
        mask_key=None,
        nan_is_missing=False,
        indicator=False,
        block_size=None,
        fill_value=None,
        seed=None,
    ):
        super().__init__(seed)
        check_fraction("rate", rate)
        if rate == 1:
            raise ValueError("rate=1 would mask every value; use rate < 1.")
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} is not one of {MODES}.")
        self.rate = rate
        self.mode = mode
        self.patch_size = self._patch_size(patch_size, block_size)
        self.span_length = self._span_length(span_length, rate, mode)
        self.fill, self.fill_values = self._fill(fill, fill_values, fill_value)
        self.key = key
        self.mask_key = mask_key
        self.nan_is_missing = nan_is_missing
        self.indicator = indicator

    @property
    def block_size(self):
        return self.patch_size

    @staticmethod
    def _patch_size(patch_size, block_size):
        if patch_size is not None and block_size is not None and patch_size != block_size:
            raise ValueError(
                f"patch_size={patch_size} and block_size={block_size} differ; "
                "block_size is the old name of patch_size, pass one."
            )
        size = next((s for s in (patch_size, block_size) if s is not None), 4)
        if not isinstance(size, numbers.Integral) or size < 1:
            raise ValueError(f"patch_size={size!r} must be an int >= 1.")
        return int(size)

    @staticmethod
    def _span_length(span_length, rate, mode):
        if not span_length >= 1:
            raise ValueError(f"span_length={span_length} must be >= 1.")
        if mode == "span" and rate > span_length / (span_length + 1):
            raise ValueError(
                f"mode='span' with span_length={span_length} can mask at most "
                f"{span_length / (span_length + 1):.3g} of the steps, got rate={rate}; "
                "use longer spans or a lower rate."
            )
        return float(span_length)

    @staticmethod
    def _fill(fill, fill_values, fill_value):
        if fill_value is not None:
            if not (isinstance(fill, str) and fill == "zero"):
                raise ValueError("pass either fill or fill_value (its old name), not both.")
            fill = fill_value
        is_number = isinstance(fill, numbers.Real) and not isinstance(fill, bool)
        if not (is_number or (isinstance(fill, str) and fill in FILLS)):
            raise ValueError(f"fill={fill!r} must be a float or one of {FILLS}.")
        if (fill == "mean") != (fill_values is not None):
            raise ValueError("fill='mean' needs fill_values (one value per feature), and only it uses them.")
        if fill_values is not None:
            fill_values = np.asarray(fill_values, np.float32)
            if fill_values.ndim != 1:
                raise ValueError(f"fill_values must be a vector [F], got shape {fill_values.shape}.")
        return (float(fill) if is_number else fill), fill_values

    def fill_tensor(self, inputs):
        """What masked values become, broadcastable to the inputs."""
        if self.fill == "mean":
            features = inputs.shape[-1]
            if features is not None and features != self.fill_values.shape[0]:
                raise ValueError(
                    f"FeatureMasking: fill_values has {self.fill_values.shape[0]} values "
                    f"but the inputs have {features} features."
                )
            return tf.cast(self.fill_values, inputs.dtype)
        value = 0.0 if isinstance(self.fill, str) else self.fill
        return tf.constant(value, inputs.dtype)

    def check_keys(self, batch):
        missing = [k for k in (self.key, self.mask_key) if k is not None and k not in batch]
        if missing:
            raise ValueError(f"FeatureMasking needs the batch keys {missing} (has {sorted(batch)}).")

    def check_inputs(self, inputs):
        rank = inputs.shape.rank
        if rank not in RANK_MODES or not inputs.dtype.is_floating:
            raise ValueError(
                f"FeatureMasking needs float [B, F], [B, T, F] or [B, H, W, C] inputs under "
                f"{self.key!r}, got {inputs.dtype.name} with shape {inputs.shape}."
            )
        if self.mode not in RANK_MODES[rank]:
            raise ValueError(
                f"FeatureMasking: mode={self.mode!r} does not apply to {RANK_NAMES[rank]} "
                f"inputs (shape {inputs.shape}); use one of {RANK_MODES[rank]}."
            )
        if rank == 4 and self.mode in ("block", "patch"):
            check_patch_grid(inputs.shape, self.patch_size)

    def random_keep(self, inputs, seed):
        """The random mode's keep mask, broadcastable to the inputs."""
        shape, rank = tf.shape(inputs), inputs.shape.rank
        if self.mode == "element":
            return bernoulli_keep(shape, self.rate, seed)
        if self.mode == "feature":
            return bernoulli_keep(feature_shape(shape, rank), self.rate, seed)
        if self.mode in ("timestep", "pixel"):
            return bernoulli_keep(position_shape(shape), self.rate, seed)
        if self.mode == "span":
            return span_keep(shape[0], shape[1], self.rate, self.span_length, seed)[..., None]
        if rank == 3:
            return time_block_keep(shape, self.patch_size, self.rate, seed)
        return patch_keep(shape, self.patch_size, self.rate, seed)

    def present(self, batch, inputs):
        """True where the data has a value: the given mask AND not NaN."""
        present = tf.ones_like(inputs, tf.bool)
        if self.mask_key is not None:
            present = present & as_keep_mask(batch[self.mask_key], self.mask_key)
        if self.nan_is_missing:
            present = present & ~tf.math.is_nan(inputs)
        return present

    def apply(self, batch, seed):
        self.check_keys(batch)
        inputs = tf.convert_to_tensor(batch[self.key])
        self.check_inputs(inputs)
        fill = self.fill_tensor(inputs)
        present = self.present(batch, inputs)
        hidden = present & ~self.random_keep(inputs, seed)
        keep = present & ~hidden
        keep.set_shape(inputs.shape)
        hidden.set_shape(inputs.shape)
        targets = tf.where(tf.math.is_nan(inputs), fill, inputs) if self.nan_is_missing else inputs
        batch[self.key] = tf.where(keep, inputs, fill)
        batch[F.TARGETS] = targets
        batch[F.FEATURE_MASK] = keep
        batch[F.LOSS_WEIGHTS] = tf.cast(hidden, tf.float32)
        if self.indicator:
            batch[MISSING_INDICATOR] = 1 - tf.cast(keep, inputs.dtype)
        return batch
