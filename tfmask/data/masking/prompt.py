"""Loss masks for causal-LM fine-tuning: learn the response, not the prompt."""

import tensorflow as tf

from tfmask.data import features as F
from tfmask.data.masking.base import MaskingStrategy, dense_int, require_keys
from tfmask.data.targets import next_token_targets

ON_MISSING = ("error", "zero_weights")


class PromptLossMasking(MaskingStrategy):
    """Next-token labels with loss weights 1 on response tokens only.

    Each row of `token_ids` [B, S] holds prompt + response (+ padding). The
    response starts right after the first occurrence of `response_marker`
    (a list of token ids, e.g. the tokens of "### Response:"), or at
    `batch[prompt_length_key]` when the prompt lengths are known. Needs the
    batch's `padding_mask`. Outputs `labels` [B, S] (token t+1, from
    `tfmask.data.targets.next_token_targets`) and `loss_weights` [B, S]: 1
    where the label is a response token, 0 on the prompt, the marker and
    padding.

    A row whose marker is missing, or whose response was truncated away,
    would silently train on nothing (trl #1191). By default that is an
    error naming the row and the fix; `on_missing="zero_weights"` keeps the
    row with zero weights instead (count them with `loss_weights`).

    Args:
        response_marker: list of token ids, or None with `prompt_length_key`.
        prompt_length_key: batch key of int [B] prompt lengths (in tokens).
        on_missing: "error" (default) or "zero_weights".

    Example:
    >>> import tensorflow as tf
    >>> masking = PromptLossMasking(response_marker=[7, 8])
    >>> out = masking({"token_ids": tf.constant([[5, 6, 7, 8, 20, 21, 0]]),
    ...                "padding_mask": tf.constant([[1, 1, 1, 1, 1, 1, 0]]) > 0})
    >>> out["loss_weights"].numpy().tolist()
    [[0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]]
    """

    def __init__(self, response_marker=None, prompt_length_key=None, on_missing="error"):
        super().__init__(seed=None)
        if (response_marker is None) == (prompt_length_key is None):
            raise ValueError(
                "PromptLossMasking needs exactly one of response_marker (token ids) "
                "or prompt_length_key."
            )
        if response_marker is not None and len(response_marker) == 0:
            raise ValueError("response_marker is empty; pass the marker's token ids.")
        if on_missing not in ON_MISSING:
            raise ValueError(f"on_missing={on_missing!r} is not one of {ON_MISSING}.")
        self.response_marker = None if response_marker is None else [int(i) for i in response_marker]
        self.prompt_length_key = prompt_length_key
        self.on_missing = on_missing

    def _response_start(self, batch, token_ids):
        """Index of the first response token per row, and whether it exists."""
        if self.prompt_length_key is not None:
            start = tf.cast(batch[self.prompt_length_key], tf.int32)
            return start, tf.ones_like(start, tf.bool)
        length = tf.shape(token_ids)[1]
        marker = self.response_marker
        hits = tf.ones_like(token_ids, tf.bool)
        for offset, marker_id in enumerate(marker):
            shifted = tf.pad(token_ids[:, offset:], [[0, 0], [0, offset]], constant_values=-1)
            hits = hits & (shifted == marker_id)
        found = tf.reduce_any(hits, axis=1)
        first = tf.argmax(tf.cast(hits, tf.int32), axis=1, output_type=tf.int32)
        return tf.where(found, first + len(marker), length), found

    def apply(self, batch, seed):
        require_keys(self, batch, F.TOKEN_IDS, F.PADDING_MASK)
        token_ids = dense_int(batch[F.TOKEN_IDS], F.TOKEN_IDS)
        start, found = self._response_start(batch, token_ids)
        labels, graded = next_token_targets(token_ids, batch[F.PADDING_MASK],
                                            batch.get(F.SEGMENT_IDS))
        label_position = tf.range(1, tf.shape(token_ids)[1] + 1)[None, :]
        weights = (label_position >= start[:, None]) & (graded > 0)
        has_response = tf.reduce_any(weights, axis=1)
        if self.on_missing == "error":
            marker = self.response_marker
            tf.debugging.Assert(
                tf.reduce_all(found),
                [
                    f"PromptLossMasking: response marker {marker} not found in row(s)",
                    tf.where(~found)[:, 0],
                    "; check that the marker ids match the tokenizer and that "
                    "prompts are not truncated before the marker.",
                ],
            )
            tf.debugging.Assert(
                tf.reduce_all(has_response),
                [
                    "PromptLossMasking: no response token left (truncated?) in row(s)",
                    tf.where(~has_response)[:, 0],
                    "; raise the sequence length or shorten the prompts.",
                ],
            )
        batch[F.LABELS] = labels
        batch[F.LOSS_WEIGHTS] = tf.cast(weights, tf.float32)
        return batch
