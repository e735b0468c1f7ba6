"""The SWORD zText reader: versification, block reading, markup, corrupt files."""

import os
import struct
import zlib

import pytest

from tfmask.datasets.formats.sword import (
    KJV_BOOKS,
    SwordError,
    VerseKey,
    ZTextModule,
    osis_to_text,
    slot_keys,
    slot_count,
)


def write_module(directory, texts, block_size=3):
    """A zText module whose slot i holds texts.get((testament, i), "").

    Slots are packed `block_size` non-empty entries per zlib block.
    """
    os.makedirs(directory, exist_ok=True)
    for testament in ("ot", "nt"):
        entries = [texts.get((testament, i), "").encode() for i in range(slot_count(testament))]
        blocks, index, current = [], [], b""
        for entry in entries:
            if not entry:
                index.append((0, 0, 0))
                continue
            if current and len([e for e in index if e[2] and e[0] == len(blocks)]) == block_size:
                blocks.append(current)
                current = b""
            index.append((len(blocks), len(current), len(entry)))
            current += entry
        blocks.append(current)
        bzz, bzs = b"", b""
        for block in blocks:
            packed = zlib.compress(block)
            bzs += struct.pack("<III", len(bzz), len(packed), len(block))
            bzz += packed
        for extension, data in (
            ("bzv", b"".join(struct.pack("<IIH", *e) for e in index)),
            ("bzs", bzs),
            ("bzz", bzz),
        ):
            with open(os.path.join(directory, f"{testament}.{extension}"), "wb") as f:
                f.write(data)
    return directory


def slot_of(testament, key):
    return slot_keys(testament).index(key)


GENESIS_1_1 = VerseKey("Gen", "Genesis", 1, 1)
GENESIS_1_2 = VerseKey("Gen", "Genesis", 1, 2)
JOHN_3_16 = VerseKey("John", "John", 3, 16)


def test_kjv_versification_sizes():
    assert len(KJV_BOOKS) == 66
    assert sum(len(counts.split()) for _, _, counts in KJV_BOOKS) == 1189
    assert sum(int(n) for _, _, counts in KJV_BOOKS for n in counts.split()) == 31102
    # module + testament headings, then book, chapter headings and verses
    assert slot_count("ot") == 2 + 39 + 929 + 23145 == 24115
    assert slot_count("nt") == 2 + 27 + 260 + 7957 == 8246
    assert slot_keys("ot")[2:5] == [("book", "Gen"), ("chapter", "Gen", 1), GENESIS_1_1]


def test_reads_verses_across_blocks(tmp_path):
    texts = {
        ("ot", slot_of("ot", GENESIS_1_1)): "In the <w>beginning</w>.",
        ("ot", slot_of("ot", GENESIS_1_2)): "And the earth",
        ("nt", slot_of("nt", JOHN_3_16)): "For God so loved",
    }
    texts.update({("ot", 100 + i): f"verse {i}" for i in range(7)})
    module = ZTextModule(write_module(tmp_path / "m", texts, block_size=2))
    verses = {key: markup for key, markup in module.verses()}
    assert len(verses) == 31102
    assert verses[GENESIS_1_1] == "In the <w>beginning</w>."
    assert verses[JOHN_3_16] == "For God so loved"
    assert verses[slot_keys("ot")[106]] == "verse 6"
    assert verses[VerseKey("Rev", "Revelation", 22, 21)] == ""


def test_heading_markers_are_cross_checked(tmp_path):
    wrong = {("ot", 2): '<div osisID="Exod" sID="b1" type="book"/>'}
    module = ZTextModule(write_module(tmp_path / "m", wrong))
    with pytest.raises(SwordError, match="slot 2 should start Gen but marks Exod"):
        list(module.verses())
    right = {
        ("ot", 2): '<div osisID="Gen" sID="b1" type="book"/>',
        ("ot", 3): '<chapter n="1" osisID="Gen.1" sID="Gen.1"/>',
    }
    assert len(list(ZTextModule(write_module(tmp_path / "ok", right)).verses())) == 31102


def test_missing_module(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no zText module"):
        ZTextModule(tmp_path)


def test_truncated_index(tmp_path):
    directory = write_module(tmp_path / "m", {("ot", 4): "x"})
    path = os.path.join(directory, "ot.bzv")
    data = open(path, "rb").read()
    open(path, "wb").write(data[:-5])
    with pytest.raises(SwordError, match=r"ot\.bzv is truncated"):
        list(ZTextModule(directory).verses())
    open(path, "wb").write(data[:-10])
    with pytest.raises(
        SwordError, match=r"ot\.bzv has 24114 verse slots; the KJV versification has 24115"
    ):
        list(ZTextModule(directory).verses())


def test_truncated_and_corrupt_blocks(tmp_path):
    directory = write_module(tmp_path / "m", {("ot", 4): "In the beginning " * 20})
    path = os.path.join(directory, "ot.bzz")
    data = open(path, "rb").read()
    open(path, "wb").write(data[:-4])
    with pytest.raises(SwordError, match=r"ot\.bzz is truncated: block 0"):
        list(ZTextModule(directory).verses())
    open(path, "wb").write(data[:2] + b"\x00" * (len(data) - 2))
    with pytest.raises(SwordError, match=r"ot\.bzz: block 0 is corrupt"):
        list(ZTextModule(directory).verses())


def test_missing_testament_file(tmp_path):
    directory = write_module(tmp_path / "m", {("ot", 4): "x"})
    os.remove(os.path.join(directory, "nt.bzs"))
    with pytest.raises(SwordError, match=r"nt\.bzs is missing"):
        list(ZTextModule(directory).verses())


def test_osis_to_text():
    markup = (
        '<div type="x-milestone" subType="x-preverse" sID="pv1"/><title type="psalm">'
        'A <w lemma="strong:H4210">Psalm</w>.</title> <l sID="l1"/><divineName>LORD</divineName>,'
        ' how<note placement="foot"><reference>3.1</reference>Heb. x</note> are &amp; they'
        "<lb/>increased!"
    )
    assert osis_to_text(markup, drop=("note", "title")) == "LORD, how are & they increased!"
    assert osis_to_text(markup) == "A Psalm. LORD, how are & they increased!"
