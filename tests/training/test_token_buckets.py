"""Padding-free under XLA: the smallest bucket that holds a batch's tokens
runs, each bucket compiles once, and results equal the dynamic layout."""

import numpy as np
import pytest
import tensorflow as tf

from tfmask.layers.padding_free import _slots
from tfmask.training.token_buckets import TokenBuckets


def mask_with(real, rows=4, length=8):
    flat = np.zeros(rows * length, bool)
    flat[:real] = True
    return tf.constant(flat.reshape(rows, length))


def test_each_batch_runs_the_smallest_bucket_that_holds_it():
    traced_with = []

    def step(mask):
        traced_with.append(_slots())  # Python: runs once per trace
        return tf.constant(_slots())

    buckets = TokenBuckets(lambda mask: mask, total_tokens=32, function=step)
    assert buckets.sizes == [4, 8, 12, 16, 20, 24, 28, 32]
    for real, slots in [(1, 4), (4, 4), (5, 8), (17, 20), (32, 32), (6, 8)]:
        assert int(buckets(mask_with(real))) == slots
    # Eager calls trace each bucket they reach once, and no other.
    assert sorted(traced_with) == [4, 8, 20, 32]


def test_a_batch_larger_than_planned_is_refused_not_truncated():
    buckets = TokenBuckets(lambda mask: mask, total_tokens=16,
                           function=lambda mask: tf.constant(0))
    with pytest.raises(tf.errors.InvalidArgumentError, match="more real tokens than the 16"):
        buckets(mask_with(20))


def test_inside_a_graph_every_bucket_is_traced_and_one_runs():
    buckets = TokenBuckets(lambda mask: mask, total_tokens=32, count=4,
                           function=lambda mask: tf.constant(_slots()))
    run = tf.function(buckets)
    assert [int(run(mask_with(n))) for n in (3, 9, 30)] == [8, 16, 32]
