"""A small reader for SWORD zText Bible modules (`ot`/`nt` `.bzv`, `.bzs`, `.bzz`).

A zText module stores each testament in three files:

    .bzv  one 10-byte record per verse slot, little-endian `<IIH`:
          (block number, start inside the block, size in bytes)
    .bzs  one 12-byte record per block, `<III`:
          (offset in .bzz, compressed size, uncompressed size)
    .bzz  the blocks, each zlib-compressed (`CompressType=ZIP`)

Slot i of a testament is fixed by the versification, not by the text: slot 0
is the module heading, slot 1 the testament heading, then for every book a
book-introduction slot and, for every chapter, a chapter-heading slot
followed by one slot per verse. Two modules with the same versification
therefore align slot by slot. This reader knows the KJV versification
(`KJV_BOOKS`: 66 books, 1,189 chapters, 31,102 verses), checks that the
index has exactly that many slots, and cross-checks the book and chapter
markers that OSIS modules write into the heading slots, so a module with
another versification fails loudly instead of shifting every reference.

Corrupt or truncated files raise `SwordError` (a ValueError) naming the file.

Example (a one-verse module written on the fly; real ones come from the
Debian packages `sword-text-kjv` and `sword-text-sparv`):
>>> import os, struct, tempfile, zlib
>>> directory = tempfile.mkdtemp()
>>> block = b"In the <w>beginning</w>.<note>Heb. x</note>"
>>> slots = [(0, 0, 0)] * 4 + [(0, 0, len(block))]
>>> slots += [(0, 0, 0)] * (slot_count("ot") - len(slots))
>>> files = {"ot.bzv": b"".join(struct.pack("<IIH", *s) for s in slots),
...          "ot.bzz": zlib.compress(block),
...          "ot.bzs": struct.pack("<III", 0, len(zlib.compress(block)), len(block))}
>>> for name, data in files.items():
...     _ = open(os.path.join(directory, name), "wb").write(data)
>>> verse, markup = next(iter(ZTextModule(directory).verses()))
>>> verse.reference, osis_to_text(markup)
('Genesis 1:1', 'In the beginning.')
"""

import dataclasses
import html
import os
import re
import struct
import zlib

INDEX_RECORD = struct.Struct("<IIH")  # .bzv: block, start, size
BLOCK_RECORD = struct.Struct("<III")  # .bzs: offset, compressed size, size
TESTAMENTS = ("ot", "nt")
OT_BOOKS = 39

# The KJV versification (SWORD's default, canon.h): OSIS book id, English
# name, verses per chapter. Checked against the book and chapter markers of
# the engKJV2006eb module and the known totals (tests/datasets/test_sword.py).
# fmt: off
KJV_BOOKS = (
    ("Gen", "Genesis",
     "31 25 24 26 32 22 24 22 29 32 32 20 18 24 21 16 27 33 38 18 34 24 20 67 34 35 46 22 "
     "35 43 55 32 20 31 29 43 36 30 23 23 57 38 34 34 28 34 31 22 33 26"),
    ("Exod", "Exodus",
     "22 25 22 31 23 30 25 32 35 29 10 51 22 31 27 36 16 27 25 26 36 31 33 18 40 37 21 43 "
     "46 38 18 35 23 35 35 38 29 31 43 38"),
    ("Lev", "Leviticus",
     "17 16 17 35 19 30 38 36 24 20 47 8 59 57 33 34 16 30 37 27 24 33 44 23 55 46 34"),
    ("Num", "Numbers",
     "54 34 51 49 31 27 89 26 23 36 35 16 33 45 41 50 13 32 22 29 35 41 30 25 18 65 23 31 "
     "40 16 54 42 56 29 34 13"),
    ("Deut", "Deuteronomy",
     "46 37 29 49 33 25 26 20 29 22 32 32 18 29 23 22 20 22 21 20 23 30 25 22 19 19 26 68 "
     "29 20 30 52 29 12"),
    ("Josh", "Joshua", "18 24 17 24 15 27 26 35 27 43 23 24 33 15 63 10 18 28 51 9 45 34 16 33"),
    ("Judg", "Judges", "36 23 31 24 31 40 25 35 57 18 40 15 25 20 20 31 13 31 30 48 25"),
    ("Ruth", "Ruth", "22 23 18 22"),
    ("1Sam", "1 Samuel",
     "28 36 21 22 12 21 17 22 27 27 15 25 23 52 35 23 58 30 24 42 15 23 29 22 44 25 12 25 "
     "11 31 13"),
    ("2Sam", "2 Samuel",
     "27 32 39 12 25 23 29 18 13 19 27 31 39 33 37 23 29 33 43 26 22 51 39 25"),
    ("1Kgs", "1 Kings", "53 46 28 34 18 38 51 66 28 29 43 33 34 31 34 34 24 46 21 43 29 53"),
    ("2Kgs", "2 Kings",
     "18 25 27 44 27 33 20 29 37 36 21 21 25 29 38 20 41 37 37 21 26 20 37 20 30"),
    ("1Chr", "1 Chronicles",
     "54 55 24 43 26 81 40 40 44 14 47 40 14 17 29 43 27 17 19 8 30 19 32 31 31 32 34 21 "
     "30"),
    ("2Chr", "2 Chronicles",
     "17 18 17 22 14 42 22 18 31 19 23 16 22 15 19 14 19 34 11 37 20 12 21 27 28 23 9 27 "
     "36 27 21 33 25 33 27 23"),
    ("Ezra", "Ezra", "11 70 13 24 17 22 28 36 15 44"),
    ("Neh", "Nehemiah", "11 20 32 23 19 19 73 18 38 39 36 47 31"),
    ("Esth", "Esther", "22 23 15 17 14 14 10 17 32 3"),
    ("Job", "Job",
     "22 13 26 21 27 30 21 22 35 22 20 25 28 22 35 22 16 21 29 29 34 30 17 25 6 14 23 28 "
     "25 31 40 22 33 37 16 33 24 41 30 24 34 17"),
    ("Ps", "Psalms",
     "6 12 8 8 12 10 17 9 20 18 7 8 6 7 5 11 15 50 14 9 13 31 6 10 22 12 14 9 11 12 24 11 "
     "22 22 28 12 40 22 13 17 13 11 5 26 17 11 9 14 20 23 19 9 6 7 23 13 11 11 17 12 8 12 "
     "11 10 13 20 7 35 36 5 24 20 28 23 10 12 20 72 13 19 16 8 18 12 13 17 7 18 52 17 16 "
     "15 5 23 11 13 12 9 9 5 8 28 22 35 45 48 43 13 31 7 10 10 9 8 18 19 2 29 176 7 8 9 4 "
     "8 5 6 5 6 8 8 3 18 3 3 21 26 9 8 24 13 10 7 12 15 21 10 20 14 9 6"),
    ("Prov", "Proverbs",
     "33 22 35 27 23 35 27 36 18 32 31 28 25 35 33 33 28 24 29 30 31 29 35 34 28 28 27 28 "
     "27 33 31"),
    ("Eccl", "Ecclesiastes", "18 26 22 16 20 12 29 17 18 20 10 14"),
    ("Song", "Song of Solomon", "17 17 11 16 16 13 13 14"),
    ("Isa", "Isaiah",
     "31 22 26 6 30 13 25 22 21 34 16 6 22 32 9 14 14 7 25 6 17 25 18 23 12 21 13 29 24 33 "
     "9 20 24 17 10 22 38 22 8 31 29 25 28 28 25 13 15 22 26 11 23 15 12 17 13 12 21 14 21 "
     "22 11 12 19 12 25 24"),
    ("Jer", "Jeremiah",
     "19 37 25 31 31 30 34 22 26 25 23 17 27 22 21 21 27 23 15 18 14 30 40 10 38 24 22 17 "
     "32 24 40 44 26 22 19 32 21 28 18 16 18 22 13 30 5 28 7 47 39 46 64 34"),
    ("Lam", "Lamentations", "22 22 66 22 22"),
    ("Ezek", "Ezekiel",
     "28 10 27 17 17 14 27 18 11 22 25 28 23 23 8 63 24 32 14 49 32 31 49 27 17 21 36 26 "
     "21 26 18 32 33 31 15 38 28 23 29 49 26 20 27 31 25 24 23 35"),
    ("Dan", "Daniel", "21 49 30 37 31 28 28 27 27 21 45 13"),
    ("Hos", "Hosea", "11 23 5 19 15 11 16 14 17 15 12 14 16 9"),
    ("Joel", "Joel", "20 32 21"),
    ("Amos", "Amos", "15 16 15 13 27 14 17 14 15"),
    ("Obad", "Obadiah", "21"),
    ("Jonah", "Jonah", "17 10 10 11"),
    ("Mic", "Micah", "16 13 12 13 15 16 20"),
    ("Nah", "Nahum", "15 13 19"),
    ("Hab", "Habakkuk", "17 20 19"),
    ("Zeph", "Zephaniah", "18 15 20"),
    ("Hag", "Haggai", "15 23"),
    ("Zech", "Zechariah", "21 13 10 14 11 15 14 23 17 12 17 14 9 21"),
    ("Mal", "Malachi", "14 17 18 6"),
    ("Matt", "Matthew",
     "25 23 17 25 48 34 29 34 38 42 30 50 58 36 39 28 27 35 30 34 46 46 39 51 46 75 66 20"),
    ("Mark", "Mark", "45 28 35 41 43 56 37 38 50 52 33 44 37 72 47 20"),
    ("Luke", "Luke", "80 52 38 44 39 49 50 56 62 42 54 59 35 35 32 31 37 43 48 47 38 71 56 53"),
    ("John", "John", "51 25 36 54 47 71 53 59 41 42 57 50 38 31 27 33 26 40 42 31 25"),
    ("Acts", "Acts",
     "26 47 26 37 42 15 60 40 43 48 30 25 52 28 41 40 34 28 41 38 40 30 35 27 27 32 44 31"),
    ("Rom", "Romans", "32 29 31 25 21 23 25 39 33 21 36 21 14 23 33 27"),
    ("1Cor", "1 Corinthians", "31 16 23 21 13 20 40 13 27 33 34 31 13 40 58 24"),
    ("2Cor", "2 Corinthians", "24 17 18 18 21 18 16 24 15 18 33 21 14"),
    ("Gal", "Galatians", "24 21 29 31 26 18"),
    ("Eph", "Ephesians", "23 22 21 32 33 24"),
    ("Phil", "Philippians", "30 30 21 23"),
    ("Col", "Colossians", "29 23 25 18"),
    ("1Thess", "1 Thessalonians", "10 20 13 18 28"),
    ("2Thess", "2 Thessalonians", "12 17 18"),
    ("1Tim", "1 Timothy", "20 15 16 16 25 21"),
    ("2Tim", "2 Timothy", "18 26 17 22"),
    ("Titus", "Titus", "16 15 15"),
    ("Phlm", "Philemon", "25"),
    ("Heb", "Hebrews", "14 18 19 16 14 20 28 13 28 39 40 29 25"),
    ("Jas", "James", "27 26 18 17 20"),
    ("1Pet", "1 Peter", "25 25 22 19 14"),
    ("2Pet", "2 Peter", "21 22 18"),
    ("1John", "1 John", "10 29 24 21 21"),
    ("2John", "2 John", "13"),
    ("3John", "3 John", "14"),
    ("Jude", "Jude", "25"),
    ("Rev", "Revelation", "20 29 22 11 14 17 17 13 21 11 19 17 18 20 8 21 18 24 21 15 27 21"),
)
# fmt: on


class SwordError(ValueError):
    """A SWORD module file is corrupt, truncated or has another versification."""


@dataclasses.dataclass(frozen=True)
class VerseKey:
    """One verse of the KJV versification."""

    book: str  # OSIS id, e.g. "Gen"
    name: str  # English name, e.g. "Genesis"
    chapter: int
    verse: int

    @property
    def reference(self):
        return f"{self.name} {self.chapter}:{self.verse}"

    @property
    def osis(self):
        return f"{self.book}.{self.chapter}.{self.verse}"


def _books(testament):
    return KJV_BOOKS[:OT_BOOKS] if testament == "ot" else KJV_BOOKS[OT_BOOKS:]


def slot_keys(testament):
    """Slot index -> VerseKey, or ("book", osis) / ("chapter", osis, n) for headings."""
    keys = [("module",), ("testament",)]
    for book, name, counts in _books(testament):
        keys.append(("book", book))
        for chapter, verses in enumerate(counts.split(), 1):
            keys.append(("chapter", book, chapter))
            keys.extend(VerseKey(book, name, chapter, v) for v in range(1, int(verses) + 1))
    return keys


def slot_count(testament):
    """Number of index slots of a KJV-versified testament."""
    return len(slot_keys(testament))


_BOOK_MARK = re.compile(r'<div\b[^>]*\btype="book"[^>]*>')
_CHAPTER_MARK = re.compile(r"<chapter\b[^>]*>")
_OSIS_ID = re.compile(r'\bosisID="([^"]+)"')


def _marker_ids(pattern, markup):
    """osisIDs of the start markers (sID, not eID) that `pattern` finds."""
    ids = []
    for tag in pattern.findall(markup):
        found = _OSIS_ID.search(tag)
        if found and "sID=" in tag:
            ids.append(found.group(1))
    return ids


class ZTextModule:
    """The verses of one zText module folder (the one with `ot.bzv`...).

    Args:
        directory: the module's data folder, e.g.
            `.../modules/texts/ztext/engKJV2006eb`. A testament whose three
            files are all absent is skipped (NT-only modules exist).
    """

    def __init__(self, directory):
        self.directory = os.fspath(directory)
        present = [t for t in TESTAMENTS if os.path.exists(self._path(t, "bzv"))]
        if not present:
            raise FileNotFoundError(
                f"{self.directory} holds no zText module (no ot.bzv or nt.bzv)."
            )
        self.testaments = present

    def _path(self, testament, extension):
        return os.path.join(self.directory, f"{testament}.{extension}")

    def _read(self, testament, extension, record=None):
        path = self._path(testament, extension)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise SwordError(f"{path} is missing; the module is incomplete.") from None
        if record is not None and len(data) % record.size:
            raise SwordError(
                f"{path} is truncated: {len(data)} bytes is not a whole number of "
                f"{record.size}-byte records."
            )
        return path, data

    def entries(self, testament):
        """Yields (slot key, OSIS markup) for every slot of one testament."""
        bzv_path, index = self._read(testament, "bzv", INDEX_RECORD)
        bzs_path, blocks = self._read(testament, "bzs", BLOCK_RECORD)
        bzz_path, compressed = self._read(testament, "bzz")
        keys = slot_keys(testament)
        slots = len(index) // INDEX_RECORD.size
        if slots != len(keys):
            raise SwordError(
                f"{bzv_path} has {slots} verse slots; the KJV versification has "
                f"{len(keys)}: the file is truncated or the module uses another "
                "versification."
            )
        cache = {}

        def block(number):
            if number not in cache:
                if (number + 1) * BLOCK_RECORD.size > len(blocks):
                    raise SwordError(f"{bzs_path} has no block {number}: the file is truncated.")
                offset, size, full = BLOCK_RECORD.unpack_from(blocks, number * BLOCK_RECORD.size)
                if offset + size > len(compressed):
                    raise SwordError(
                        f"{bzz_path} is truncated: block {number} ends at byte "
                        f"{offset + size}, the file at {len(compressed)}."
                    )
                try:
                    data = zlib.decompress(compressed[offset : offset + size])
                except zlib.error as error:
                    raise SwordError(f"{bzz_path}: block {number} is corrupt ({error}).") from None
                if len(data) != full:
                    raise SwordError(
                        f"{bzz_path}: block {number} has {len(data)} bytes, {bzs_path} says {full}."
                    )
                cache.clear()  # blocks are read in order; keep one
                cache[number] = data
            return cache[number]

        for i, key in enumerate(keys):
            number, start, size = INDEX_RECORD.unpack_from(index, i * INDEX_RECORD.size)
            markup = ""
            if size:
                data = block(number)
                if start + size > len(data):
                    raise SwordError(
                        f"{bzv_path}: slot {i} points past the end of block {number}; "
                        "the index is corrupt."
                    )
                try:
                    markup = data[start : start + size].decode("utf-8")
                except UnicodeDecodeError as error:
                    raise SwordError(f"{bzz_path}: slot {i} is not UTF-8 ({error}).") from None
            self._check_markers(key, markup, bzv_path, i)
            yield key, markup

    def _check_markers(self, key, markup, path, i):
        """OSIS heading markers must name the slot they sit in."""
        if isinstance(key, VerseKey) or key[0] in ("module", "testament"):
            return
        if key[0] == "book":
            found, expected = _marker_ids(_BOOK_MARK, markup), key[1]
        else:
            found, expected = _marker_ids(_CHAPTER_MARK, markup), f"{key[1]}.{key[2]}"
        if found and expected not in found:
            raise SwordError(
                f"{path}: slot {i} should start {expected} but marks {found[0]}; the "
                "module does not use the KJV versification."
            )

    def verses(self):
        """Yields (VerseKey, OSIS markup) for every verse slot, in canonical order."""
        for testament in self.testaments:
            for key, markup in self.entries(testament):
                if isinstance(key, VerseKey):
                    yield key, markup


_BREAK_TAGS = re.compile(r"<(?:lb|l|lg|div|p|milestone|chapter|verse)\b[^>]*/>")
_TAG = re.compile(r"<[^>]*>")


def osis_to_text(markup, drop=("note",)):
    """Plain text of OSIS markup: elements in `drop` removed with their
    content, other tags removed (line and paragraph milestones become
    spaces), entities decoded, whitespace collapsed.

    Example:
    >>> osis_to_text('<title>A Psalm.</title><w n="1">LORD</w>, how<note>x</note>',
    ...              drop=("note", "title"))
    'LORD, how'
    """
    for element in drop:
        markup = re.sub(rf"<{element}\b[^>]*?(?<!/)>.*?</{element}>", "", markup, flags=re.S)
    markup = _BREAK_TAGS.sub(" ", markup)
    text = html.unescape(_TAG.sub("", markup))
    return " ".join(text.split())
