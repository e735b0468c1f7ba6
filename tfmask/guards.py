"""`guarded`: make a value wait for the checks that guard it.

In a graph (a `tf.function`, a `tf.data` map), a `tf.debugging.assert_*` or
`tf.debugging.Assert` op is ordered only against stateful ops: nothing makes
the ops that read a bad value wait for it. A later op (a gather, a reshape,
a negative pad) can then fail first with a raw error such as "Incompatible
shapes" instead of the check's clear message. `guarded(value, *checks)`
returns `value` made to depend on the checks, so everything computed from it
runs after them. The same holds for any op that must run before the value is
used, such as a stateful counter update.

Example (an empty row fails with the check's message, not a raw slice error):
>>> @tf.function
... def first(row):
...     check = tf.debugging.assert_positive(tf.size(row), message="the row is empty")
...     return guarded(row, check)[0]
>>> int(first(tf.constant([7, 8])))
7
>>> first(tf.constant([], tf.int32))
Traceback (most recent call last):
...
tensorflow.python.framework.errors_impl.InvalidArgumentError: ...the row is empty...
"""

import tensorflow as tf


def guarded(value, *checks):
    """`value` (a tensor or a nested structure of them) depending on every
    check that is not None.

    Eagerly the checks have already run (eager asserts return None), so the
    value comes back as it is; so it does when no check is left.
    """
    checks = [check for check in checks if check is not None]
    if not checks or tf.executing_eagerly():
        return value
    with tf.control_dependencies(checks):
        return tf.nest.map_structure(tf.identity, value)
