"""What a decoder is graded on: next-token labels and shifted decoder inputs.

Both are transforms of a batch's tokens and its `padding_mask` (never of a
comparison with the pad id), shared by the causal-LM task, prompt-loss
masking, translation and span corruption.
"""

import tensorflow as tf


def next_token_targets(token_ids, padding_mask, segment_ids=None):
    """Labels and loss weights for predicting token i + 1 at position i.

    Args:
        token_ids: int [B, S].
        padding_mask: bool [B, S], True at real tokens.
        segment_ids: optional int [B, S] of packed rows; a position is never
            graded on the first token of the next document.

    Returns: (labels int32 [B, S], weights float32 [B, S]); the last real
    token of each row (or document) and padding get weight 0, and their
    label is 0.

    Example:
    >>> labels, weights = next_token_targets(
    ...     tf.constant([[5, 6, 7, 0]]), tf.constant([[True, True, True, False]]))
    >>> labels.numpy().tolist(), weights.numpy().tolist()
    ([[6, 7, 0, 0]], [[1.0, 1.0, 0.0, 0.0]])
    """
    token_ids = tf.cast(token_ids, tf.int32)
    padding_mask = tf.cast(padding_mask, tf.bool)
    next_real = tf.pad(padding_mask[:, 1:], [[0, 0], [0, 1]])
    graded = padding_mask & next_real
    if segment_ids is not None:
        same = tf.pad(segment_ids[:, 1:], [[0, 0], [0, 1]], constant_values=-1) == segment_ids
        graded = graded & same
    labels = tf.where(graded, tf.pad(token_ids[:, 1:], [[0, 0], [0, 1]]), 0)
    return labels, tf.cast(graded, tf.float32)


def decoder_inputs(targets, start_id):
    """Teacher forcing: targets [B, T] shifted right behind `start_id`.

    For right-padded targets, decoder input i is real exactly where target i
    is (position 0 holds the start token, whatever its id), so the targets'
    padding mask is also the decoder's.

    Example:
    >>> decoder_inputs(tf.constant([[7, 8, 3, 0]]), start_id=0).numpy().tolist()
    [[0, 7, 8, 3]]
    """
    targets = tf.cast(targets, tf.int32)
    start = tf.fill([tf.shape(targets)[0], 1], tf.cast(start_id, tf.int32))
    return tf.concat([start, targets[:, :-1]], axis=1)
