"""Deterministic train/validation/test splits, and tfds-style split strings.

Splits are drawn once, at prepare time, from a hash of each example's
group with a fixed seed (`SEED`): a group is the document itself (its
de-duplication key) or, where a dataset offers it, a feature such as
`movie_name`, so that no movie lands in two splits. Groups are ordered by
`sha256(f"{SEED}:{group}")`; the first ones fill the held-out splits
(`round(fraction * n)` examples each, whole groups at a time), the rest is
train. Hashing keys, not positions, keeps the split of an example fixed
even if the source were reordered. Examples a source already assigns to a
split (a published test set) keep it; held-out splits are then carved from
the rest only for the splits the source does not provide.

Within a split, examples are stored in the same hash order, so
`dataset.take(n)` is a fixed sample rather than the first source rows.

Example:
>>> examples = [{"text": str(i)} for i in range(10)]
>>> splits = assign_splits(examples, lambda e: e["text"], (("test", 0.2), ("validation", 0.1)))
>>> sorted(splits.count(s) for s in ("train", "validation", "test"))
[1, 2, 7]
>>> parse_split("train[:10%]+test", {"train": 50, "validation": 5, "test": 5})
[('train', 0, 5), ('test', 0, 5)]
"""

import hashlib
import re

SEED = 1234
SPLITS = ("train", "validation", "test")
PRESET = "_split"  # optional key of a parsed example: the split its source gave it
_SLICE = re.compile(r"^(\w+)(?:\[(-?\d+%?)?:(-?\d+%?)?\])?$")


def rank(group, seed=SEED):
    """A stable pseudo-random 64-bit rank of a group key."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{group}".encode("utf-8")).digest()[:8], "big")


def assign_splits(examples, group_of, holdout, seed=SEED):
    """Split name per example (same order as `examples`).

    Args:
        examples: dicts; one may carry `_split` ("train", "validation" or
            "test") when its source assigns it.
        group_of: example -> group key (str); a group never straddles splits.
        holdout: ((split, fraction), ...) drawn from the unassigned and
            "train" examples, in this order, for splits no example is
            preset to.
        seed: the hash seed.
    """
    result = [e.get(PRESET) or "train" for e in examples]
    for split in result:
        if split not in SPLITS:
            raise ValueError(f"Preset split {split!r} is not one of {SPLITS}.")
    preset = {e.get(PRESET) for e in examples} - {None, "train"}
    pool = [i for i, split in enumerate(result) if split == "train"]
    groups = {}
    for i in pool:
        groups.setdefault(str(group_of(examples[i])), []).append(i)
    ordered = sorted(groups, key=lambda g: (rank(g, seed), g))
    position = 0
    for split, fraction in holdout:
        if split in preset:
            continue
        target, taken = round(fraction * len(pool)), 0
        while taken < target and position < len(ordered):
            for i in groups[ordered[position]]:
                result[i] = split
            taken += len(groups[ordered[position]])
            position += 1
    return result


def order_within_split(indices, key_of, seed=SEED):
    """Indices sorted by the hash of their key: a fixed, shuffled order."""
    return sorted(indices, key=lambda i: (rank("order:" + str(key_of(i)), seed), i))


def _bound(text, size):
    if text is None:
        return None
    value = round(size * int(text[:-1]) / 100) if text.endswith("%") else int(text)
    return max(-size, min(size, value))


def parse_split(expression, sizes):
    """ "train", "train+validation", "train[:1000]", "test[-10%:]", "all"
    -> [(split, start, stop), ...] with absolute indices.

    Args:
        expression: the split string.
        sizes: split -> number of examples.
    """
    pieces = []
    for part in expression.replace(" ", "").split("+"):
        found = _SLICE.match(part)
        name = found.group(1) if found else None
        if name == "all" and found.group(0) == "all":
            pieces += [(s, 0, sizes[s]) for s in SPLITS if s in sizes]
            continue
        if found is None or name not in sizes:
            raise ValueError(
                f"Split {part!r} is not valid; use one of {sorted(sizes)} or 'all', joined "
                "with '+' and sliced like 'train[:1000]' or 'train[:10%]'."
            )
        size = sizes[name]
        start, stop = slice(_bound(found.group(2), size), _bound(found.group(3), size)).indices(
            size
        )[:2]
        pieces.append((name, start, max(start, stop)))
    return pieces
