"""Duplicate removal, and dropping texts whose copies disagree on their labels.

A corpus often repeats a text (retweets, cross-listed reviews, refrains).
Copies with the same label collapse into one example; copies that carry
different labels (the same review filed as positive and negative, a tweet
tagged two ways) say nothing reliable, so every copy is dropped and the text
is reported. When copies sit in different source splits, the copy in the
published test set wins (test > validation > train), so a test set stays
whole and no text is in two splits.

Example:
>>> rows = [{"text": "good", "label": 1}, {"text": "good", "label": 1},
...         {"text": "meh", "label": 1}, {"text": "meh", "label": 0}]
>>> kept, report = deduplicate(rows, key=("text",), label=("label",))
>>> [r["text"] for r in kept], report["duplicates_dropped"], report["conflicts"]
(['good'], 1, ['meh'])
"""

from tfmask.datasets.splits import PRESET

_PRIORITY = {"test": 0, "validation": 1, "train": 2, None: 2}


def _value(example, fields):
    values = tuple(
        tuple(example[f]) if isinstance(example[f], list) else example[f] for f in fields
    )
    return values[0] if len(values) == 1 else values


def deduplicate(examples, key, label=()):
    """Keeps one example per `key`; drops every copy of keys whose `label` differs.

    Args:
        examples: list of example dicts, in source order.
        key: feature names whose values identify a duplicate.
        label: feature names that copies must agree on.

    Returns:
        (kept examples in source order, report) where report holds
        `duplicates_dropped` (extra copies removed), `conflicts` (the
        conflicting keys, as str) and `conflict_examples_dropped`.
    """
    copies = {}
    for index, example in enumerate(examples):
        copies.setdefault(_value(example, key), []).append(index)
    kept, conflicts, conflict_examples, duplicates = [], [], 0, 0
    for group_key, indices in copies.items():
        labels = {_value(examples[i], label) for i in indices} if label else {None}
        if len(labels) > 1:
            conflicts.append(
                group_key if isinstance(group_key, str) else " | ".join(map(str, group_key))
            )
            conflict_examples += len(indices)
            continue
        best = min(indices, key=lambda i: (_PRIORITY[examples[i].get(PRESET)], i))
        kept.append(best)
        duplicates += len(indices) - 1
    report = {
        "duplicates_dropped": duplicates,
        "conflicts": conflicts,
        "conflict_examples_dropped": conflict_examples,
    }
    return [examples[i] for i in sorted(kept)], report
