"""Padding-free under XLA: one compiled function per bucket of token counts.

XLA compiles for static shapes, but a padding-free batch holds a varying
number N of real tokens. `TokenBuckets` traces the step once per slot count
of a small set (eighths of the batch's B x S positions by default), each
under `tfmask.layers.padding_free.token_slots`, and runs the smallest one
that holds the batch's tokens. XLA compiles a bucket the first time a batch
lands in it, so a run compiles only the buckets its data reaches (one or two
on sentence data), and a batch pays for at most an eighth of B x S in empty
slots instead of all of its padding.

Replicas agree on one bucket (the largest any of them needs), because the
step's all-reduces must run in the same function on every replica.

Example:
>>> import tensorflow as tf
>>> buckets = TokenBuckets(lambda mask: mask, total_tokens=8, count=4)
>>> buckets.sizes
[2, 4, 6, 8]
>>> int(buckets.bucket_of(tf.constant([[True, True, True], [False, False, False]])))
1
"""

import functools
import math

import tensorflow as tf

from tfmask.layers.padding_free import token_slots


class TokenBuckets:
    """`function(*args)` compiled with XLA per token-slot bucket.

    Args:
        padding_mask_of: args -> the [B, S] padding mask the model's
            padding-free layers gather with.
        total_tokens: B x S of the largest batch (the last bucket).
        count: number of buckets (sizes total * k / count, k = 1..count).
        function: the step to compile; set later with `wrap` if None.
    """

    def __init__(self, padding_mask_of, total_tokens, count=8, function=None):
        self.padding_mask_of = padding_mask_of
        self.sizes = sorted({math.ceil(total_tokens * k / count) for k in range(1, count + 1)})
        self._compiled = None
        if function is not None:
            self.wrap(function)

    def wrap(self, function):
        def with_slots(size, *args):
            with token_slots(size):
                return function(*args)

        self._compiled = [tf.function(functools.partial(with_slots, size), jit_compile=True)
                          for size in self.sizes]
        return self

    def bucket_of(self, padding_mask):
        """The index of the smallest bucket that holds this batch's real tokens."""
        tokens = tf.math.count_nonzero(padding_mask, dtype=tf.int32)
        # A batch larger than planned would lose tokens in the last bucket.
        tf.debugging.assert_less_equal(
            tokens, self.sizes[-1],
            message=f"a batch holds more real tokens than the {self.sizes[-1]} token slots "
                    "planned for it (B x S); build TokenBuckets with its largest batch")
        return tf.reduce_sum(tf.cast(tf.constant(self.sizes, tf.int32) < tokens, tf.int32))

    def __call__(self, *args):
        bucket = self.bucket_of(self.padding_mask_of(*args))
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            # Each replica may need another bucket: all take the largest.
            needed = context.all_reduce("sum", tf.one_hot(bucket, len(self.sizes)))
            bucket = tf.reduce_max(tf.where(needed > 0)[:, 0])
        branches = [functools.partial(compiled, *args) for compiled in self._compiled]
        return tf.switch_case(tf.cast(bucket, tf.int32), branches)
