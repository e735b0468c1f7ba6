"""Amazon fine-food reviews (English sentiment), from R's modeldata package.

Source: the R lazy-load database
`usr/lib/R/site-library/modeldata/data/Rdata.rdb` of the Debian package
r-cran-modeldata 1.1.0-1 (MIT), objects `training_data` (4,000 reviews:
2,600 great / 1,400 other) and `testing_data` (1,000: 658 / 342), tibbles
with `product`, `review` and `score` (a factor). Read by our own R reader
(`formats/rdata_reader.py`).

    text   string  the review (~73 words), `<br />` breaks and runs of
                   spaces turned into single spaces
    label  int64   1 = great (5 stars), 0 = other

The published test set is kept whole: 1,000 reviews. The training set
repeats 21 of its own texts (20 verbatim, 1 after the whitespace clean-up)
and 7 texts of the test set; those copies are dropped, leaving 3,972, of
which 10% (397) become validation. No text carries both labels.
4,972 reviews; splits 3,575 / 397 / 1,000 (train / validation / test).

Example (after `python -m tfmask.datasets prepare fine_foods`):

    from tfmask import datasets
    test = datasets.load("fine_foods", split="test")
"""

import collections
import re

from tfmask.datasets.cache import DebianPackage, source_file
from tfmask.datasets.errors import SourceFormatError
from tfmask.datasets.formats.rdata_reader import LazyLoadDB, to_python
from tfmask.datasets.records import Feature
from tfmask.datasets.registry import DatasetSpec, Parsed
from tfmask.datasets.splits import PRESET

PACKAGE = DebianPackage("r-cran-modeldata", "1.1.0-1")
PATH = "usr/lib/R/site-library/modeldata/data/Rdata.rdb"
OBJECTS = {"training_data": "train", "testing_data": "test"}
LABELS = {"other": 0, "great": 1}
_BREAK = re.compile(r"<br\s*/?>", re.I)


def _clean(text):
    return " ".join(_BREAK.sub(" ", text).split())


def parse(folders):
    path = source_file(folders[PACKAGE.name], PATH)
    database = LazyLoadDB(path)
    missing = [name for name in OBJECTS if name not in database.names]
    if missing:
        raise SourceFormatError(f"{path} lacks the objects {missing}; is it modeldata's data?")
    examples, stats = [], {}
    for name, split in OBJECTS.items():
        table = to_python(database[name])
        if not isinstance(table, dict) or not {"review", "score"} <= set(table):
            raise SourceFormatError(
                f"{path}: object {name!r} is not a table with review and score."
            )
        scores = table["score"]
        unknown = set(scores) - set(LABELS)
        if unknown:
            raise SourceFormatError(
                f"{path}: object {name!r} has unknown scores {sorted(unknown)}."
            )
        stats[name] = dict(collections.Counter(scores))
        examples += [
            {"text": _clean(review), "label": LABELS[score], PRESET: split}
            for review, score in zip(table["review"], scores)
            if review and review.strip()
        ]
    return Parsed(examples, stats)


FINE_FOODS = DatasetSpec(
    name="fine_foods",
    task="sentiment",
    language="en",
    description="one Amazon fine-food review (~73 words), great (5 stars) or not",
    size="4,972 reviews (3,972 train + 1,000 test)",
    license="MIT",
    sources=(PACKAGE,),
    features={
        "text": Feature("string", "the review"),
        "label": Feature("int64", "1 = great (5 stars), 0 = other"),
    },
    parse=parse,
    label=("label",),
    holdout=(("validation", 0.1),),
)
