"""English-Spanish Bible verse pairs: King James Version and Reina-Valera 1909.

Sources: the SWORD zText modules `engKJV2006eb` (Debian sword-text-kjv
14.3-1) and `spaRV1909eb` (sword-text-sparv 2.60-1), both public domain,
read by our own zText reader (`formats/sword.py`). Both use the KJV
versification (31,102 verse slots), so slot i of one is meant to be slot i
of the other.

    en         string  the KJV verse
    es         string  the RV1909 verse
    reference  string  e.g. "Genesis 1:1"

Text: OSIS markup and footnotes (`<note>`) removed, the KJV's paragraph
sign "¶" removed, whitespace collapsed. Psalm superscriptions are kept:
the KJV marks them as a `<title>` inside verse 1, RV1909 writes them as
plain text of verse 1 ("A Psalm of David. The LORD is my shepherd..." /
"Salmo de David. JEHOVÁ es mi pastor...").

Alignment is checked, not assumed. RV1909 follows Spanish verse numbering
in a few chapters (Jonah 1:17 is its 2:1, Job 39-41, Numbers 13 and 30,
...): its text there sits one or more slots away from the KJV's. Both
modules tag words with Strong's numbers, so a pair is scored by the
overlap (Jaccard) of its two sets. A verse whose Spanish text matches a
neighbouring slot (within 3) at least 0.3 better than its own is
displaced; a chapter with two or more displaced or near-disjoint (< 0.2)
verses is dropped whole. Verses missing in either module are dropped.

Counts: 31,102 slots; 31,084 with text in both (BRIEF's 31,150 also counts
the 66 book-title slots); 12 chapters (Num 13, 30; Judg 14; 1 Sam 24;
1 Kgs 22; 1 Chr 1, 21; 2 Chr 33; Job 39, 40; Hos 12; Jonah 2) and
2 Cor 13:13 dropped as misaligned (326 verses): 30,758 pairs; 165 repeat
an earlier pair word for word in both languages ("And the LORD spake
unto Moses, saying,", the offerings of Numbers 7): 30,593 pairs. Splits: 24,475 / 3,059 / 3,059
(train / validation / test).

Example (after `python -m tfmask.datasets prepare kjv_rv1909`):

    from tfmask import datasets
    pairs = datasets.load("kjv_rv1909", split="train")
"""

import collections
import os
import re

from tfmask.datasets.cache import DebianPackage
from tfmask.datasets.errors import SourceFormatError
from tfmask.datasets.formats.sword import ZTextModule, osis_to_text
from tfmask.datasets.records import Feature
from tfmask.datasets.registry import DatasetSpec, Parsed

KJV = DebianPackage("sword-text-kjv", "14.3-1")
RV1909 = DebianPackage("sword-text-sparv", "2.60-1")
MODULES = "usr/share/sword/modules/texts/ztext"
KJV_MODULE, RV1909_MODULE = "engKJV2006eb", "spaRV1909eb"
NEIGHBOURS = 3  # slots searched for displaced text
DISPLACED_MARGIN = 0.3  # a neighbour must fit this much better
DISJOINT = 0.2  # below this a verse pair shares almost no Strong's numbers
_LEMMA = re.compile(r'lemma="([^"]*)"')
_NOTE = re.compile(r"<note\b.*?</note>", re.S)


def strongs_numbers(markup):
    """The Strong's numbers tagged in a verse ("strong:H7225" -> "H7225")."""
    found = _LEMMA.findall(_NOTE.sub("", markup))
    return frozenset(n.replace("strong:", "") for value in found for n in value.split())


def verse_text(markup):
    text = osis_to_text(markup, drop=("note",))
    return " ".join(text.replace("\u00b6", " ").split())


def _overlap(a, b):
    return len(a & b) / len(a | b) if a and b else None


def misaligned(keys, english, spanish):
    """(misaligned chapters, displaced verse indices) by Strong's-number overlap.

    Args:
        keys: VerseKey per slot.
        english, spanish: Strong's number sets per slot (empty when untagged).

    Returns:
        a set of (book, chapter) to drop whole, and a set of slot indices
        whose Spanish text belongs to another slot.
    """
    n = len(keys)
    flagged, displaced = set(), set()
    for i in range(n):
        own = _overlap(english[i], spanish[i])
        if own is None:
            continue  # untagged: nothing to judge by
        nearby = [
            _overlap(english[i], spanish[j]) or 0.0
            for j in range(max(0, i - NEIGHBOURS), min(n, i + NEIGHBOURS + 1))
            if j != i
        ]
        if nearby and max(nearby) >= own + DISPLACED_MARGIN:
            displaced.add(i)
        if own < DISJOINT or i in displaced:
            flagged.add(i)
    per_chapter = collections.Counter((keys[i].book, keys[i].chapter) for i in flagged)
    return {chapter for chapter, count in per_chapter.items() if count >= 2}, displaced


def parse(folders):
    kjv = ZTextModule(os.path.join(folders[KJV.name], MODULES, KJV_MODULE))
    rv = ZTextModule(os.path.join(folders[RV1909.name], MODULES, RV1909_MODULE))
    keys, en, es, en_numbers, es_numbers = [], [], [], [], []
    for (key, en_markup), (rv_key, es_markup) in zip(kjv.verses(), rv.verses()):
        if key != rv_key:
            raise SourceFormatError(f"{rv.directory}: slot {rv_key} where {key} was expected.")
        keys.append(key)
        en.append(verse_text(en_markup))
        es.append(verse_text(es_markup))
        en_numbers.append(strongs_numbers(en_markup))
        es_numbers.append(strongs_numbers(es_markup))
    both = [i for i in range(len(keys)) if en[i] and es[i]]
    chapters, displaced = misaligned(keys, en_numbers, es_numbers)
    dropped = {i for i in both if (keys[i].book, keys[i].chapter) in chapters or i in displaced}
    examples = [
        {"en": en[i], "es": es[i], "reference": keys[i].reference} for i in both if i not in dropped
    ]
    names = {key.book: key.name for key in keys}
    stats = {
        "verse_slots": len(keys),
        "english_verses": sum(1 for t in en if t),
        "spanish_verses": sum(1 for t in es if t),
        "verses_in_both": len(both),
        "misaligned_dropped": len(dropped),
        "misaligned_chapters": [
            f"{names[b]} {c}"
            for b, c in sorted(chapters, key=lambda bc: (list(names).index(bc[0]), bc[1]))
        ],
        "displaced_verses": [
            keys[i].reference
            for i in sorted(displaced)
            if (keys[i].book, keys[i].chapter) not in chapters
        ],
    }
    return Parsed(examples, stats)


KJV_RV1909 = DatasetSpec(
    name="kjv_rv1909",
    task="parallel",
    language="en-es",
    description="one Bible verse in English (KJV) and Spanish (Reina-Valera 1909)",
    size="30,593 verse pairs",
    license="public domain",
    sources=(KJV, RV1909),
    features={
        "en": Feature("string", "the verse in the King James Version"),
        "es": Feature("string", "the verse in the Reina-Valera 1909"),
        "reference": Feature("string", 'book chapter:verse, e.g. "Genesis 1:1"'),
    },
    parse=parse,
    key=("en", "es"),
)


# Instruction-style prompts built from the same verse pairs, for prompt-loss
# masking in causal-LM fine-tuning: only the Spanish after the marker is graded.
PROMPT_MARKER = "### response:"


def parse_prompts(folders):
    parsed = parse(folders)
    examples = [
        {"text": f"translate to spanish: {e['en']} {PROMPT_MARKER} {e['es']}",
         "reference": e["reference"]}
        for e in parsed.examples
    ]
    return Parsed(examples, parsed.stats)


KJV_RV1909_PROMPTS = DatasetSpec(
    name="kjv_rv1909_prompts",
    task="instruction",
    language="en-es",
    description=("one instruction: 'translate to spanish: ' + a KJV verse + "
                 f"' {PROMPT_MARKER} ' + its Reina-Valera 1909 verse"),
    size="30,593 prompts",
    license="public domain",
    sources=(KJV, RV1909),
    features={
        "text": Feature("string", f"the prompt, '{PROMPT_MARKER}', the response"),
        "reference": Feature("string", 'book chapter:verse, e.g. "Genesis 1:1"'),
    },
    parse=parse_prompts,
)
