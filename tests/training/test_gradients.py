"""clip_global_gradients: the global norm of dense, summed gradients."""

import numpy as np
import tensorflow as tf

from tfmask.training.trainer import clip_global_gradients


def test_repeated_embedding_slices_are_summed_before_the_norm():
    # Two slices for row 0: the true gradient row is [3, 4] + [3, 4] = [6, 8], norm 10
    # (the norm of the slices as listed would be sqrt(50)).
    slices = tf.IndexedSlices(tf.constant([[3.0, 4.0], [3.0, 4.0]]), tf.constant([0, 0]),
                              tf.constant([3, 2]))
    [clipped] = clip_global_gradients([slices], clipnorm=5.0)
    np.testing.assert_allclose(clipped.numpy(), [[3.0, 4.0], [0, 0], [0, 0]], rtol=1e-6)


def test_norm_below_the_threshold_passes_unchanged_and_none_is_kept():
    gradients = [tf.constant([0.3, 0.4]), None]
    clipped = clip_global_gradients(gradients, clipnorm=1.0)
    assert clipped[1] is None
    np.testing.assert_array_equal(clipped[0].numpy(), np.float32([0.3, 0.4]))


def test_norm_is_global_over_all_variables():
    gradients = [tf.constant([3.0]), tf.constant([4.0])]
    clipped = clip_global_gradients(gradients, clipnorm=1.0)
    np.testing.assert_allclose([float(g[0]) for g in clipped], [0.6, 0.8], rtol=1e-6)


def test_loss_scaled_gradients_are_clipped_at_the_scaled_threshold():
    # float16 loss scaling: gradients carry the factor 1024; the clip applies
    # to the true gradient [3, 4] (norm 5) -> [0.6, 0.8], still scaled.
    [clipped] = clip_global_gradients([tf.constant([3.0, 4.0]) * 1024], clipnorm=1.0,
                                      loss_scale=tf.constant(1024.0))
    np.testing.assert_allclose(clipped.numpy() / 1024, [0.6, 0.8], rtol=1e-6)


def test_overflowing_gradients_stay_non_finite_for_the_loss_scale_optimizer():
    [clipped] = clip_global_gradients([tf.constant([np.inf, 1.0])], clipnorm=1.0)
    assert not np.isfinite(clipped.numpy()).all()


def test_no_clipnorm_only_densifies():
    slices = tf.IndexedSlices(tf.constant([[1.0, 2.0]]), tf.constant([1]), tf.constant([2, 2]))
    [dense] = clip_global_gradients([slices], clipnorm=None)
    np.testing.assert_array_equal(dense.numpy(), [[0, 0], [1.0, 2.0]])
