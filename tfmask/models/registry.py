"""An explicit registry (no registration by import side effect).

`tfmask.tasks.TASKS` maps each model family to its `Task` class; users
add a family with `TASKS.add(name, TaskSubclass)`, and the config
validator, the trainer, `predict` and `inspect` all read that one list.

Example:
>>> families = Registry("model family")
>>> _ = families.add("mlm", print)
>>> families.add("mlm", print)
Traceback (most recent call last):
...
ValueError: model family 'mlm' is already registered.
>>> families.get("mln")
Traceback (most recent call last):
...
ValueError: Unknown model family 'mln'; choose one of ['mlm'].
"""


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

    def remove(self, name):
        """Unregisters `name` (and returns its item)."""
        self.get(name)
        return self._items.pop(name)

    def names(self):
        return sorted(self._items)

    def __contains__(self, name):
        return name in self._items
