"""WordNet 3.0 glosses (English running text): definitions with their examples.

Source: `usr/share/wordnet/data.{noun,verb,adj,adv}` of the Debian package
wordnet-base 1:3.0-37 (WordNet 3.0 license: use, copy, modify and
distribute with the copyright notice). Each non-header line is one synset:
`offset lex_filenum ss_type w_cnt word lex_id ... | gloss`, Latin-1. The
gloss holds `;`-separated definitions and quoted example sentences:
117,659 synsets, 135,988 definitions, 48,247 examples, 1.46M words.

    text  string  one synset's gloss as WordNet prints it, e.g.
                  'without musical accompaniment; "they performed a cappella"'

The synset gloss is the document unit: a definition together with the
examples that use the word, so masked words can be predicted from their
own definition. 117,659 glosses, 626 of them repeated (the same gloss for
several synsets): 117,033 documents. Splits: 93,627 / 11,703 / 11,703
(train / validation / test).

Every line is checked: its offset field must equal its byte offset in the
file (WordNet's own index), so a damaged or truncated file is caught.

Example (after `python -m tfmask.datasets prepare wordnet`):

    from tfmask import datasets
    glosses = datasets.load("wordnet", split="train")
"""

from tfmask.datasets.cache import DebianPackage, source_file
from tfmask.datasets.errors import SourceFormatError
from tfmask.datasets.records import Feature
from tfmask.datasets.registry import DatasetSpec, Parsed

PACKAGE = DebianPackage("wordnet-base", "1:3.0-37")
FOLDER = "usr/share/wordnet"
PARTS_OF_SPEECH = ("noun", "verb", "adj", "adv")


def read_glosses(path):
    """Yields the gloss of every synset line of one `data.POS` file."""
    with open(path, "rb") as f:
        data = f.read()
    if not data.endswith(b"\n"):
        raise SourceFormatError(f"{path} is truncated: it does not end with a newline.")
    offset = 0
    for number, line in enumerate(data[:-1].split(b"\n"), 1):
        start, offset = offset, offset + len(line) + 1
        if line.startswith(b"  "):  # license header
            continue
        head, bar, gloss = line.decode("latin-1").partition(" | ")
        fields = head.split(" ", 1)
        if not bar or not fields[0].isdigit() or int(fields[0]) != start:
            raise SourceFormatError(
                f"{path} line {number} is not a synset line starting at byte {start} "
                "(damaged or truncated file)."
            )
        yield gloss


def split_gloss(gloss):
    """Gloss -> (definitions, examples): parts in double quotes are examples."""
    parts = [p.strip() for p in gloss.split(";") if p.strip()]
    examples = [p for p in parts if p.startswith('"')]
    return [p for p in parts if not p.startswith('"')], examples


def parse(folders):
    examples, stats = [], {"synsets": {}, "definitions": 0, "examples": 0, "words": 0}
    for pos in PARTS_OF_SPEECH:
        path = source_file(folders[PACKAGE.name], f"{FOLDER}/data.{pos}")
        glosses = [" ".join(g.split()) for g in read_glosses(path)]
        stats["synsets"][pos] = len(glosses)
        for gloss in glosses:
            definitions, sentences = split_gloss(gloss)
            stats["definitions"] += len(definitions)
            stats["examples"] += len(sentences)
            stats["words"] += len(gloss.split())
        examples += [{"text": g} for g in glosses if g]
    return Parsed(examples, stats)


WORDNET = DatasetSpec(
    name="wordnet",
    task="running text",
    language="en",
    description="one WordNet synset's gloss: its definitions and example sentences",
    size="117,033 glosses",
    license="WordNet 3.0 license",
    sources=(PACKAGE,),
    features={"text": Feature("string", 'the gloss: definitions; "example sentences"')},
    parse=parse,
)
