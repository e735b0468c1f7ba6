"""Masked metrics: accuracy, cross-entropy and perplexity over weighted
positions only (e.g. the masked tokens of MLM, the response of a prompt).

Each keeps two running sums (weighted value, total weight) and divides at the
end, so the result is the exact weighted mean over everything seen, not a
mean of per-batch means.
"""

import keras
from keras import ops

from tfmask.losses import per_token_crossentropy


class _WeightedMean(keras.metrics.Metric):
    """Running sum(w * value) / sum(w); subclasses define `_values`."""

    def __init__(self, name, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.weighted_sum = self.add_variable(
            shape=(), initializer="zeros", dtype="float32", name="weighted_sum"
        )
        self.total_weight = self.add_variable(
            shape=(), initializer="zeros", dtype="float32", name="total_weight"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        values = ops.cast(self._values(y_true, y_pred), "float32")
        if sample_weight is None:
            weights = ops.ones_like(values)
        else:
            weights = ops.broadcast_to(ops.cast(sample_weight, "float32"), ops.shape(values))
        values = ops.where(weights > 0, values * weights, 0.0)
        self.weighted_sum.assign_add(ops.sum(values))
        self.total_weight.assign_add(ops.sum(weights))

    def _mean(self):
        return ops.divide_no_nan(self.weighted_sum, self.total_weight)

    def result(self):
        return self._mean()

    def reset_state(self):
        self.weighted_sum.assign(0.0)
        self.total_weight.assign(0.0)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="tfmask")
class MaskedAccuracy(_WeightedMean):
    """Fraction of weighted positions whose arg-max prediction is the label.

    Example:
    >>> import numpy as np
    >>> m = MaskedAccuracy()
    >>> m.update_state([[1, 0]], np.array([[[0., 1.], [0., 1.]]]), [[1, 0]])
    >>> float(m.result())
    1.0
    """

    def __init__(self, name="masked_accuracy", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def _values(self, y_true, y_pred):
        predicted = ops.argmax(y_pred, axis=-1)
        return ops.equal(ops.cast(y_true, predicted.dtype), predicted)


@keras.saving.register_keras_serializable(package="tfmask")
class MaskedCrossEntropy(_WeightedMean):
    """Weighted mean cross-entropy (nats) of logits over weighted positions."""

    def __init__(self, name="masked_cross_entropy", from_logits=True, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.from_logits = from_logits

    def _values(self, y_true, y_pred):
        return per_token_crossentropy(y_true, y_pred, self.from_logits)

    def get_config(self):
        return {**super().get_config(), "from_logits": self.from_logits}


@keras.saving.register_keras_serializable(package="tfmask")
class MaskedPerplexity(MaskedCrossEntropy):
    """exp(weighted mean cross-entropy) over weighted positions.

    Example:
    >>> import numpy as np
    >>> m = MaskedPerplexity()
    >>> m.update_state([[0, 1]], np.zeros((1, 2, 4), "float32"), [[1, 1]])
    >>> round(float(m.result()), 3)
    4.0
    """

    def __init__(self, name="masked_perplexity", from_logits=True, dtype=None):
        super().__init__(name=name, from_logits=from_logits, dtype=dtype)

    def result(self):
        return ops.exp(self._mean())


def entity_scores(true_rows, predicted_rows, scheme):
    """Entity-level micro precision, recall and F1, and F1 per entity type,
    of tag sequences (lists of lists of strings), scored as the field scores
    NER: conlleval's span rules, through `seqeval`'s default mode (an entity
    counts only when its type and both boundaries match; a stray I- starts
    an entity, in BIO as in IOB1). `scheme` is the tags' (`tfmask.data.tagging`):
    BILOU's L-/U- are read as IOBES's E-/S-.

    Example:
    >>> scores = entity_scores([["B-PER", "I-PER", "O", "B-LOC"]],
    ...                        [["B-PER", "I-PER", "O", "B-ORG"]], "bio")
    >>> scores["entity_f1"], scores["f1_PER"], scores["f1_LOC"]
    (0.5, 1.0, 0.0)
    """
    from seqeval.metrics import classification_report

    from tfmask.data.tagging import conlleval_tags

    true = [conlleval_tags(row, scheme) for row in true_rows]
    predicted = [conlleval_tags(row, scheme) for row in predicted_rows]
    report = classification_report(true, predicted, output_dict=True, zero_division=0)
    micro = report.pop("micro avg")
    scores = {"entity_precision": float(micro["precision"]),
              "entity_recall": float(micro["recall"]), "entity_f1": float(micro["f1-score"])}
    for kind, values in sorted(report.items()):
        if not kind.endswith(" avg"):
            scores[f"f1_{kind}"] = float(values["f1-score"])
    return scores
