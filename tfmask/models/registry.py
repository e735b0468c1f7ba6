"""An explicit registry of model families (no registration by import side effect).

A family bundles what the trainer needs to know about a model:
how to build it from the model config, how to split a batch into
(inputs, labels, loss weights), and which metrics to report.
"""

import dataclasses
from typing import Callable


@dataclasses.dataclass(frozen=True)
class ModelFamily:
    name: str
    build: Callable  # (model_config, vocabulary_size, **extra) -> keras.Model
    split_batch: Callable  # batch dict -> (inputs dict, labels, sample_weight or None)
    metrics: Callable  # () -> list of keras metrics
    description: str


class Registry:
    """Name -> item, rejecting duplicates and naming the choices on a miss."""

    def __init__(self, kind):
        self.kind = kind
        self._items = {}

    def add(self, name, item):
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered.")
        self._items[name] = item
        return item

    def get(self, name):
        if name not in self._items:
            raise ValueError(
                f"Unknown {self.kind} {name!r}; choose one of {sorted(self._items)}."
            )
        return self._items[name]

    def names(self):
        return sorted(self._items)

    def __contains__(self, name):
        return name in self._items
