"""Jane Austen's six novels as paragraphs (English running text).

Source: the R lazy-load database
`usr/lib/R/site-library/janeaustenr/data/Rdata.rdb` of the Debian package
r-cran-janeaustenr 1.0.0-1 (MIT; the texts are public domain), one
character vector of lines per novel (`emma`, `mansfieldpark`,
`northangerabbey`, `persuasion`, `prideprejudice`, `sensesensibility`):
73,422 lines, 717,537 whitespace-separated words. Read by our own R reader
(`formats/rdata_reader.py`).

    text  string  one paragraph: consecutive non-blank lines joined by a
                  space, whitespace collapsed

A paragraph is the document unit: long enough for a 128-token MLM window,
natural to pack. Dropped: chapter and volume headings, the title block
before the first chapter (title, "By Jane Austen", the year), end markers
("THE END", "Finis") and other all-capital headings: 9,993 paragraphs
keeping 716,901 of the 717,537 words. Short repeated dialogue ('"Yes."',
'"Oh!"') is de-duplicated like everything else (24 copies): 9,969
paragraphs. Splits: 7,975 / 997 / 997 (train / validation / test).

Example (after `python -m tfmask.datasets prepare austen`):

    from tfmask import datasets
    paragraphs = datasets.load("austen", split="train")
"""

import collections
import re

from tfmask.datasets.cache import DebianPackage, source_file
from tfmask.datasets.errors import SourceFormatError
from tfmask.datasets.formats.rdata_reader import LazyLoadDB, to_python
from tfmask.datasets.records import Feature
from tfmask.datasets.registry import DatasetSpec, Parsed

PACKAGE = DebianPackage("r-cran-janeaustenr", "1.0.0-1")
PATH = "usr/lib/R/site-library/janeaustenr/data/Rdata.rdb"
BOOKS = (
    "sensesensibility",
    "prideprejudice",
    "mansfieldpark",
    "emma",
    "northangerabbey",
    "persuasion",
)
_HEADING = re.compile(r"^(chapter|volume)\s+([ivxlc]+|\d+)\.?$", re.I)
_END = re.compile(r"^(the end|finis)\.?$", re.I)
FRONT_MATTER_WORDS = 8  # before chapter 1, shorter paragraphs are the title block


def paragraphs(lines):
    """Lines -> paragraphs (blank-line separated, lines joined by a space)."""
    current = []
    for line in list(lines) + [""]:
        if line and line.strip():
            current.append(line.strip())
        elif current:
            yield " ".join(" ".join(current).split())
            current = []


def is_heading(paragraph):
    """Chapter/volume headings, end markers and all-capital title lines."""
    if _HEADING.match(paragraph) or _END.match(paragraph):
        return True
    return not re.search(r"[a-z]", paragraph) and '"' not in paragraph


def novel_paragraphs(lines):
    """The paragraphs of one novel's text, headings and title block removed."""
    started = False
    for paragraph in paragraphs(lines):
        if _HEADING.match(paragraph):
            started = True
        if is_heading(paragraph):
            continue
        if not started and len(paragraph.split()) < FRONT_MATTER_WORDS:
            continue
        yield paragraph


def parse(folders):
    path = source_file(folders[PACKAGE.name], PATH)
    database = LazyLoadDB(path)
    missing = [b for b in BOOKS if b not in database.names]
    if missing:
        raise SourceFormatError(f"{path} lacks the novels {missing}; is it janeaustenr's data?")
    examples, stats = [], collections.defaultdict(dict)
    for book in BOOKS:
        lines = to_python(database[book])
        if not isinstance(lines, list) or not all(isinstance(x, str) or x is None for x in lines):
            raise SourceFormatError(f"{path}: {book!r} is not a character vector of lines.")
        lines = [line or "" for line in lines]
        kept = list(novel_paragraphs(lines))
        stats["lines"][book] = len(lines)
        stats["words"][book] = sum(len(line.split()) for line in lines)
        stats["paragraphs"][book] = len(kept)
        examples += [{"text": p} for p in kept]
    stats = dict(stats)
    stats["total_words"] = sum(stats["words"].values())
    stats["kept_words"] = sum(len(e["text"].split()) for e in examples)
    return Parsed(examples, stats)


AUSTEN = DatasetSpec(
    name="austen",
    task="running text",
    language="en",
    description="one paragraph of a Jane Austen novel (six novels)",
    size="9,969 paragraphs",
    license="MIT (package), public domain (texts)",
    sources=(PACKAGE,),
    features={"text": Feature("string", "one paragraph")},
    parse=parse,
)
