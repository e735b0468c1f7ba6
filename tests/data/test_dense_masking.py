"""FeatureMasking on tabular, time-series and image inputs, and the MaskToken
layer: masked shares, exact patch counts, span / block / patch geometry,
given and NaN masks, fills, seeds, static shapes and errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layer_harness import run_layer_test
from tfmask.data import features as F
from tfmask.data.masking import FeatureMasking
from tfmask.data.masking.dense import MISSING_INDICATOR
from tfmask.data.pipeline import mask_dataset
from tfmask.layers import MaskToken

TABULAR, SERIES, IMAGES = (4000, 16), (512, 200, 4), (64, 16, 16, 3)
SEED = [3, 7]


def normal(shape, seed=0):
    return tf.random.stateless_normal(shape, [seed, 0]) + 5.0


def mask(shape, seed=SEED, **kwargs):
    """Runs FeatureMasking on N(5, 1) inputs; returns (inputs, outputs)."""
    x = normal(shape)
    return x, FeatureMasking(**kwargs)({F.INPUTS: x}, seed=seed)


def runs(row):
    """Lengths of the runs of True in a 1-D bool array, and whether each
    touches an end of the row."""
    padded = np.concatenate([[False], row, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    starts, ends = edges[::2], edges[1::2]
    touches = (starts == 0) | (ends == len(row))
    return ends - starts, touches


def independent_units(mode, shape):
    """How many independent draws decide the mask (for the tolerance)."""
    batch, features = shape[0], shape[-1]
    if mode == "element":
        return np.prod(shape)
    if mode == "feature":
        return batch * features
    if mode == "timestep":
        return np.prod(shape[:-1])
    return batch * shape[1] / 10  # span: ~ one draw per masked + kept run pair


@pytest.mark.parametrize(
    "mode,shape",
    [("element", TABULAR), ("feature", TABULAR), ("element", SERIES), ("feature", SERIES),
     ("timestep", SERIES), ("span", SERIES), ("element", IMAGES), ("feature", IMAGES),
     ("timestep", IMAGES), ("pixel", IMAGES)],
)
@pytest.mark.parametrize("rate", [0.15, 0.4])
def test_masked_share_matches_rate(mode, shape, rate):
    x, out = mask(shape, mode=mode, rate=rate)
    keep = out[F.FEATURE_MASK].numpy()
    assert keep.shape == shape and keep.dtype == bool
    share = 1 - keep.mean()
    tolerance = 4 * np.sqrt(rate * (1 - rate) / independent_units(mode, shape)) + 0.002
    assert abs(share - rate) < tolerance, (share, tolerance)
    np.testing.assert_array_equal(out[F.INPUTS].numpy(), np.where(keep, x.numpy(), 0.0))
    np.testing.assert_array_equal(out[F.TARGETS].numpy(), x.numpy())
    np.testing.assert_array_equal(out[F.LOSS_WEIGHTS].numpy(), (~keep).astype("float32"))


@pytest.mark.parametrize("shape", [SERIES, IMAGES])
def test_timestep_and_pixel_modes_mask_every_feature_of_a_position(shape):
    for mode in ("timestep", "pixel") if len(shape) == 4 else ("timestep",):
        keep = mask(shape, mode=mode, rate=0.3)[1][F.FEATURE_MASK].numpy()
        assert np.all(keep == keep[..., :1])
        assert not np.all(keep == keep[:, :1])  # positions differ


@pytest.mark.parametrize("shape", [TABULAR, SERIES, IMAGES])
def test_feature_mode_masks_a_feature_at_every_position_of_an_example(shape):
    keep = mask(shape, mode="feature", rate=0.3)[1][F.FEATURE_MASK].numpy()
    if len(shape) > 2:
        flat = keep.reshape(shape[0], -1, shape[-1])
        assert np.all(flat == flat[:, :1])  # a channel / feature is all in or all out
    assert not np.all(keep == keep[:1])  # examples differ


def test_patch_mode_masks_an_exact_number_of_grid_aligned_patches():
    shape, size = (32, 56, 56, 3), 4  # 14 x 14 = 196 patches, as ViT-B/16 on 224
    keep = mask(shape, mode="patch", rate=0.75, patch_size=size)[1][F.FEATURE_MASK].numpy()
    patches = keep.reshape(32, 14, size, 14, size, 3)
    assert np.all(patches == patches[:, :, :1, :, :1, :1])  # whole patches, all channels
    masked = (~patches[:, :, 0, :, 0, 0]).reshape(32, -1).sum(axis=1)
    np.testing.assert_array_equal(masked, round(0.75 * 196))
    assert len({tuple(row) for row in patches[:, :, 0, :, 0, 0].reshape(32, -1)}) == 32


def test_block_is_patch_and_block_size_is_patch_size():
    x = normal((4, 8, 8, 2))
    old = FeatureMasking(0.5, mode="block", block_size=2)({F.INPUTS: x}, seed=SEED)
    new = FeatureMasking(0.5, mode="patch", patch_size=2)({F.INPUTS: x}, seed=SEED)
    np.testing.assert_array_equal(old[F.FEATURE_MASK], new[F.FEATURE_MASK])
    assert ((~new[F.FEATURE_MASK].numpy()).reshape(4, -1).sum(1) == 8 * 4 * 2).all()  # 8 of 16 2x2 patches


def test_time_blocks_are_aligned_runs_with_an_exact_count_per_row():
    shape, size, rate = (300, 50, 3), 4, 0.3  # 12 blocks of 4 + one of 2 steps
    keep = mask(shape, mode="block", rate=rate, patch_size=size)[1][F.FEATURE_MASK].numpy()
    assert np.all(keep == keep[..., :1])
    steps = keep[..., 0]
    blocks = steps[:, :48].reshape(shape[0], 12, size)
    assert np.all(blocks == blocks[:, :, :1])
    assert np.all(steps[:, 48:] == steps[:, 48:49])
    masked_blocks = (~blocks[:, :, 0]).sum(1) + ~steps[:, 48]
    np.testing.assert_array_equal(masked_blocks, round(rate * 13))


def test_spans_are_contiguous_runs_of_geometric_length():
    span_length = 4.0
    keep = mask((512, 400, 2), mode="span", rate=0.3, span_length=span_length)[1][
        F.FEATURE_MASK].numpy()
    assert np.all(keep == keep[..., :1])
    lengths = []
    for row in ~keep[..., 0]:
        row_lengths, touches = runs(row)
        lengths.extend(row_lengths[~touches])  # runs cut by an end are shorter
    lengths = np.array(lengths)
    assert abs(lengths.mean() - span_length) < 0.1, lengths.mean()
    # Geometric, not fixed: P(length = 1) = 1 / span_length.
    assert abs((lengths == 1).mean() - 1 / span_length) < 0.02
    assert lengths.max() > 3 * span_length


def test_given_mask_is_applied_exactly_and_anded_with_the_random_mode():
    x = normal(SERIES)
    observed = tf.random.stateless_uniform(SERIES, [9, 9]) > 0.2
    alone = FeatureMasking(0.0, mask_key="observed")({F.INPUTS: x, "observed": observed})
    np.testing.assert_array_equal(alone[F.FEATURE_MASK], observed)
    np.testing.assert_array_equal(alone[F.INPUTS], tf.where(observed, x, 0.0))
    assert alone[F.LOSS_WEIGHTS].numpy().sum() == 0  # nothing hidden on purpose

    random = FeatureMasking(0.3, mode="timestep")({F.INPUTS: x}, seed=SEED)[F.FEATURE_MASK].numpy()
    ones = tf.cast(observed, tf.float32)  # 0/1 numbers work as well as bool
    both = FeatureMasking(0.3, mode="timestep", mask_key="observed")(
        {F.INPUTS: x, "observed": ones}, seed=SEED)
    np.testing.assert_array_equal(both[F.FEATURE_MASK], observed.numpy() & random)
    # The loss covers what the mode hid among the values the data has.
    np.testing.assert_array_equal(both[F.LOSS_WEIGHTS], observed.numpy() & ~random)


def test_given_mask_broadcasts_over_features():
    x = normal((8, 10, 3))
    steps = tf.random.stateless_uniform((8, 10, 1), [1, 1]) > 0.5
    keep = FeatureMasking(0.0, mask_key="steps")({F.INPUTS: x, "steps": steps})[F.FEATURE_MASK]
    np.testing.assert_array_equal(keep, np.broadcast_to(steps, (8, 10, 3)))


@pytest.mark.parametrize("fill,expected", [("zero", [0.0, 0.0]), (-1.0, [-1.0, -1.0]),
                                           ("mean", [2.0, 30.0]), ("token", [0.0, 0.0])])
def test_nans_are_masked_and_filled_and_never_reach_model_or_targets(fill, expected):
    x = np.array([[[1.0, np.nan], [np.nan, 40.0], [3.0, 20.0]]] * 4, "float32")
    values = [2.0, 30.0] if fill == "mean" else None
    out = FeatureMasking(0.2, fill=fill, fill_values=values, nan_is_missing=True, indicator=True)(
        {F.INPUTS: x}, seed=SEED)
    nan = np.isnan(x)
    keep = out[F.FEATURE_MASK].numpy()
    for key in (F.INPUTS, F.TARGETS, F.LOSS_WEIGHTS, MISSING_INDICATOR):
        assert np.isfinite(out[key].numpy()).all(), key
    assert not keep[nan].any()
    fills = np.broadcast_to(np.array(expected, "float32"), x.shape)
    np.testing.assert_array_equal(out[F.INPUTS], np.where(keep, x, fills))
    np.testing.assert_array_equal(out[F.TARGETS], np.where(nan, fills, x))
    assert (out[F.LOSS_WEIGHTS].numpy()[nan] == 0).all()
    np.testing.assert_array_equal(out[MISSING_INDICATOR], 1.0 - keep)


@pytest.mark.parametrize("shape", [TABULAR, SERIES, IMAGES])
def test_mean_fill_writes_the_given_per_feature_values(shape):
    means = np.arange(shape[-1], dtype="float32") * 10 + 1
    x, out = mask(shape, rate=0.3, fill="mean", fill_values=means)
    keep = out[F.FEATURE_MASK].numpy()
    got = out[F.INPUTS].numpy()
    np.testing.assert_array_equal(got, np.where(keep, x.numpy(), means))
    feature = np.broadcast_to(np.arange(shape[-1]), shape)
    np.testing.assert_array_equal(got[~keep], means[feature[~keep]])


def test_fill_value_keeps_its_old_meaning():
    x, out = mask((4, 6, 2), rate=0.5, fill_value=-3.0)
    keep = out[F.FEATURE_MASK].numpy()
    np.testing.assert_array_equal(out[F.INPUTS], np.where(keep, x.numpy(), -3.0))


@pytest.mark.parametrize(
    "mode,shape", [("element", TABULAR), ("feature", TABULAR), ("feature", SERIES),
                   ("timestep", SERIES), ("span", SERIES), ("block", SERIES),
                   ("patch", IMAGES), ("pixel", IMAGES)])
def test_a_seed_repeats_the_mask_and_another_seed_changes_it(mode, shape):
    x = {F.INPUTS: normal(shape)}
    masker = FeatureMasking(0.3, mode=mode, patch_size=4)
    first, again = masker(x, seed=[1, 2]), masker(x, seed=[1, 2])
    other = masker(x, seed=[1, 3])
    np.testing.assert_array_equal(first[F.FEATURE_MASK], again[F.FEATURE_MASK])
    assert not np.array_equal(first[F.FEATURE_MASK], other[F.FEATURE_MASK])


@pytest.mark.parametrize(
    "mode,shape", [("element", (7, 5)), ("feature", (7, 5)), ("span", (7, 12, 5)),
                   ("block", (7, 12, 5)), ("timestep", (7, 12, 5)), ("patch", (7, 8, 8, 3)),
                   ("feature", (7, 8, 8, 3))])
def test_static_shapes_survive_a_tf_data_pipeline(mode, shape):
    batch = {F.INPUTS: np.ones(shape, "float32"), "observed": np.ones(shape, bool)}
    dataset = tf.data.Dataset.from_tensor_slices(batch).batch(3)  # batch dim is None
    masker = FeatureMasking(0.3, mode=mode, patch_size=2, mask_key="observed", indicator=True)
    spec = mask_dataset(dataset, masker, seed=0).element_spec
    expected = (None,) + shape[1:]
    for key in (F.INPUTS, F.FEATURE_MASK, F.TARGETS, F.LOSS_WEIGHTS, MISSING_INDICATOR):
        assert tuple(spec[key].shape) == expected, key
    assert spec[F.FEATURE_MASK].dtype == tf.bool


def test_patch_grid_is_checked_at_run_time_when_the_image_size_is_unknown():
    masker = FeatureMasking(0.5, mode="patch", patch_size=4)
    spec = tf.TensorSpec([None, None, None, 3])
    keep = tf.function(lambda x: masker({F.INPUTS: x}, seed=SEED)[F.FEATURE_MASK],
                       input_signature=[spec], autograph=False)
    assert (~keep(tf.ones([2, 8, 8, 3])).numpy()).sum() == 2 * 2 * 16 * 3  # 2 of 4 patches
    with pytest.raises(tf.errors.InvalidArgumentError, match="patch_size=4 must divide"):
        keep(tf.ones([2, 8, 10, 3]))


def test_tabular_inputs_are_accepted_and_modes_without_steps_refused():
    x, out = mask((5, 3), rate=0.5)
    assert out[F.INPUTS].shape == (5, 3)
    for mode in ("timestep", "span", "block", "patch"):
        with pytest.raises(ValueError, match=f"mode='{mode}' does not apply to tabular"):
            mask((5, 3), rate=0.5, mode=mode)


@pytest.mark.parametrize(
    "kwargs,batch,message",
    [({"rate": 1.5}, None, "rate=1.5 must be in"),
     ({"rate": 1.0}, None, "rate=1 would mask every value"),
     ({"rate": 0.2, "mode": "rows"}, None, "mode='rows' is not one of"),
     ({"rate": 0.2, "patch_size": 0}, None, "patch_size=0 must be an int >= 1"),
     ({"rate": 0.2, "patch_size": 2, "block_size": 3}, None, "block_size is the old name"),
     ({"rate": 0.9, "mode": "span"}, None, "can mask at most 0.75"),
     ({"rate": 0.2, "span_length": 0.5}, None, "span_length=0.5 must be >= 1"),
     ({"rate": 0.2, "fill": "median"}, None, "fill='median' must be a float or one of"),
     ({"rate": 0.2, "fill": "mean"}, None, "fill='mean' needs fill_values"),
     ({"rate": 0.2, "fill_values": [1.0]}, None, "fill='mean' needs fill_values"),
     ({"rate": 0.2, "fill": 1.0, "fill_value": 2.0}, None, "either fill or fill_value"),
     ({"rate": 0.2}, {F.INPUTS: np.ones([4], "float32")}, "needs float \\[B, F\\]"),
     ({"rate": 0.2}, {F.INPUTS: np.ones([2, 4], "int32")}, "got int32"),
     ({"rate": 0.2, "mode": "span"}, {F.INPUTS: np.ones([1, 4, 4, 1], "float32")},
      "does not apply to image"),
     ({"rate": 0.2, "mode": "patch", "patch_size": 5}, {F.INPUTS: np.ones([1, 8, 10, 1], "float32")},
      "patch_size=5 does not divide the image size 8x10"),
     ({"rate": 0.2, "fill": "mean", "fill_values": [1.0, 2.0]},
      {F.INPUTS: np.ones([2, 3], "float32")}, "fill_values has 2 values but the inputs have 3"),
     ({"rate": 0.2, "mask_key": "observed"}, {F.INPUTS: np.ones([2, 3], "float32")},
      "needs the batch keys \\['observed'\\]"),
     ({"rate": 0.2, "mask_key": "observed"},
      {F.INPUTS: np.ones([2, 3], "float32"), "observed": np.array([["a"] * 3] * 2)},
      "'observed' must be bool or 0/1 numbers")],
)
def test_bad_arguments_are_one_line_errors(kwargs, batch, message):
    with pytest.raises(ValueError, match=message) as error:
        FeatureMasking(**kwargs)(batch or {F.INPUTS: np.ones([2, 3], "float32")}, seed=SEED)
    assert "\n" not in str(error.value)


def test_mask_token_harness_and_keras_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    run_layer_test(
        MaskToken,
        {"initializer": "random_normal"},
        {"inputs": rng.normal(size=(2, 5, 4)).astype("float32"),
         "feature_mask": rng.random((2, 5, 4)) > 0.3},
        expected_output_shape=(2, 5, 4),
        tmp_path=tmp_path,
    )


def test_mask_token_writes_the_token_at_masked_positions_of_a_pipeline_batch():
    shape = (4, 6, 3)
    out = FeatureMasking(0.5, mode="timestep", fill="token")({F.INPUTS: normal(shape)}, seed=SEED)
    layer = MaskToken(initializer="random_normal")
    y = layer(out[F.INPUTS], out[F.FEATURE_MASK]).numpy()
    keep = out[F.FEATURE_MASK].numpy()
    token = np.broadcast_to(layer.token.numpy(), shape)
    np.testing.assert_array_equal(y, np.where(keep, out[F.INPUTS].numpy(), token))
    # A [..., 1] mask (whole positions) broadcasts over the features.
    np.testing.assert_array_equal(layer(out[F.INPUTS], keep[..., :1]).numpy(), y)


def test_mask_token_is_learned():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 8, 3)).astype("float32")
    keep = rng.random((64, 8, 1)) > 0.4
    layer = MaskToken(initializer="zeros")
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, keep))
    (gradient,) = tape.gradient(loss, layer.trainable_weights)
    np.testing.assert_array_equal(gradient, np.full(3, (~keep).sum(), "float32"))

    target = np.array([1.0, -2.0, 0.5], "float32")  # what masked positions should read
    inputs = {"x": keras.Input((8, 3), name="x"),
              "keep": keras.Input((8, 1), dtype="bool", name="keep")}
    model = keras.Model(inputs, MaskToken(initializer="zeros")(inputs["x"], inputs["keep"]))
    model.compile(keras.optimizers.SGD(0.5), "mse")
    model.fit({"x": x, "keep": keep}, np.where(keep, x, target), epochs=40, verbose=0)
    np.testing.assert_allclose(model.layers[-1].token.numpy(), target, atol=1e-3)
