"""The R serialization / lazy-load reader: synthetic objects, real janeaustenr data, errors."""

import bz2
import gzip
import lzma
import os
import struct
import zlib

import numpy as np
import pytest

from tfmask.datasets import austen
from tfmask.datasets.formats.rdata_reader import (
    NA_INTEGER,
    LazyLoadDB,
    RDataError,
    read_rds,
    to_python,
    unserialize,
)

# ---------------------------------------------------------------- a tiny XDR writer
NIL = struct.pack(">i", 254)


def ints(*values):
    return struct.pack(f">{len(values)}i", *values)


def charsxp(text):
    if text is None:
        return ints(9, -1)
    raw = text.encode("utf-8")
    levels = 64 if text.isascii() else 8  # ASCII_MASK / UTF8_MASK
    return ints(9 | levels << 12, len(raw)) + raw


def symbol(name):
    return ints(1) + charsxp(name)


def attributed(flags, attributes):
    return flags | (1 << 9) if attributes else flags


def pairlist(cells):
    """cells: [(tag bytes or None, item bytes)] -> LISTSXP chain."""
    out = b""
    for tag, item in cells:
        out += ints(2 | (1 << 10 if tag else 0)) + (tag or b"") + item
    return out + NIL


def strsxp(values, attributes=b""):
    body = ints(attributed(16, attributes), len(values)) + b"".join(map(charsxp, values))
    return body + attributes


def intsxp(values, attributes=b""):
    return ints(attributed(13, attributes), len(values), *values) + attributes


def realsxp(values):
    return ints(14, len(values)) + struct.pack(f">{len(values)}d", *values)


def lglsxp(values):
    return ints(10, len(values), *values)


def vecsxp(items, attributes=b""):
    return ints(attributed(19, attributes), len(items)) + b"".join(items) + attributes


def serialize(item, version=3):
    head = b"X\n" + ints(version, 0x040201, 0x030500)
    if version == 3:
        head += ints(5) + b"UTF-8"
    return head + item


def data_frame():
    """data.frame(review = c("good", "bad"), score = factor(c("great", "other")))."""
    factor = intsxp(
        [1, 2],
        pairlist(
            [
                (symbol("levels"), strsxp(["great", "other"])),
                (symbol("class"), strsxp(["factor"])),
            ]
        ),
    )
    return vecsxp(
        [strsxp(["good", "bad"]), factor],
        pairlist(
            [
                # the second "class" symbol is a back-reference to the first (index 2)
                (symbol("names"), strsxp(["review", "score"])),
                (ints(2 << 8 | 255), strsxp(["data.frame"])),
                (symbol("row.names"), intsxp([NA_INTEGER, -2])),
            ]
        ),
    )


def compress_record(data, kind):
    size = struct.pack(">I", len(data))
    if kind == "zlib":
        return size + zlib.compress(data)
    if kind == "Z":
        return (
            size
            + b"Z"
            + lzma.compress(
                data, format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2, "preset": 6}]
            )
        )
    if kind == "2":
        return size + b"2" + bz2.compress(data)
    return size + b"0" + data


def write_lazyload(directory, objects, kind="zlib"):
    """A Rdata.rdb / Rdata.rdx pair holding `objects` (name -> item bytes)."""
    rdb, entries = b"", []
    for item in objects.values():
        record = compress_record(serialize(item), kind)
        entries.append(intsxp([len(rdb), len(record)]))
        rdb += record
    compressed = lglsxp([1]) if kind == "zlib" else intsxp([3])
    index = vecsxp(
        [
            vecsxp(entries, pairlist([(symbol("names"), strsxp(list(objects)))])),
            vecsxp([]),
            compressed,
        ],
        pairlist([(symbol("names"), strsxp(["variables", "references", "compressed"]))]),
    )
    path = os.path.join(directory, "Rdata.rdb")
    with open(path, "wb") as f:
        f.write(rdb)
    with open(os.path.join(directory, "Rdata.rdx"), "wb") as f:
        f.write(gzip.compress(serialize(index)))
    return path


# ---------------------------------------------------------------- values
def test_vectors_and_missing_values():
    assert unserialize(serialize(strsxp(["a", None, "ü"]))).value == ["a", None, "ü"]
    assert unserialize(serialize(intsxp([1, NA_INTEGER]), version=2)).value.tolist() == [
        1,
        NA_INTEGER,
    ]
    doubles = unserialize(serialize(realsxp([1.5, float("nan")]))).value
    assert doubles[0] == 1.5 and np.isnan(doubles[1])
    assert to_python(unserialize(serialize(NIL))) is None


def test_data_frame_with_factor_and_symbol_reference():
    frame = unserialize(serialize(data_frame()))
    assert frame.classes == ["data.frame"]
    assert to_python(frame) == {"review": ["good", "bad"], "score": ["great", "other"]}


def test_compact_intseq_altrep():
    info = pairlist(
        [(None, symbol("compact_intseq")), (None, symbol("base")), (None, intsxp([13]))]
    )
    altrep = ints(238) + info + realsxp([4.0, 3.0, 1.0]) + NIL
    assert unserialize(serialize(altrep)).value.tolist() == [3, 4, 5, 6]


def test_long_pairlist_is_read_iteratively():
    cells = [(symbol(f"k{i}"), intsxp([i])) for i in range(5000)]
    result = to_python(unserialize(serialize(pairlist(cells))))
    assert len(result) == 5000 and result["k4999"].tolist() == [4999]


@pytest.mark.parametrize("kind", ["zlib", "Z", "2", "0"])
def test_lazyload_database_every_compression(tmp_path, kind):
    path = write_lazyload(tmp_path, {"reviews": data_frame(), "lines": strsxp(["x", "y"])}, kind)
    database = LazyLoadDB(path)
    assert database.names == ["reviews", "lines"]
    assert to_python(database["lines"]) == ["x", "y"]
    assert to_python(database["reviews"])["score"] == ["great", "other"]


# ---------------------------------------------------------------- errors name the file
def test_bad_magic():
    with pytest.raises(RDataError, match="not R's XDR serialization"):
        unserialize(b"RDX2\n" + serialize(NIL), "x.rds")


def test_truncated_object_names_the_file():
    data = serialize(strsxp(["abcdef"]))
    with pytest.raises(RDataError, match=r"^x\.rds: truncated"):
        unserialize(data[:-3], "x.rds")


def test_unsupported_type():
    with pytest.raises(RDataError, match="type 4 .* not supported"):
        unserialize(serialize(ints(4, 0)), "env.rds")  # an environment


def test_truncated_rdb(tmp_path):
    path = write_lazyload(tmp_path, {"lines": strsxp(["x" * 200])})
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 10)
    with pytest.raises(RDataError, match=r"Rdata\.rdb \(object 'lines'\): truncated"):
        LazyLoadDB(path)["lines"]


def test_corrupt_record(tmp_path):
    path = write_lazyload(tmp_path, {"lines": strsxp(["x" * 200])})
    data = bytearray(open(path, "rb").read())
    data[10:14] = b"\xff\xff\xff\xff"
    open(path, "wb").write(bytes(data))
    with pytest.raises(RDataError, match=r"Rdata\.rdb \(object 'lines'\): corrupt or truncated"):
        LazyLoadDB(path)["lines"]


def test_corrupt_index(tmp_path):
    path = write_lazyload(tmp_path, {"lines": strsxp(["x"])})
    rdx = tmp_path / "Rdata.rdx"
    rdx.write_bytes(rdx.read_bytes()[:30])
    with pytest.raises(RDataError, match=r"Rdata\.rdx: corrupt or truncated"):
        LazyLoadDB(path)


def test_missing_index(tmp_path):
    path = write_lazyload(tmp_path, {"lines": strsxp(["x"])})
    os.remove(tmp_path / "Rdata.rdx")
    with pytest.raises(FileNotFoundError, match=r"Rdata\.rdx does not exist"):
        LazyLoadDB(path)


def test_unknown_object(tmp_path):
    database = LazyLoadDB(write_lazyload(tmp_path, {"lines": strsxp(["x"])}))
    with pytest.raises(KeyError, match="has no object 'emma'"):
        database["emma"]


def test_read_rds_plain_and_gzip(tmp_path):
    for name, data in (
        ("a.rds", serialize(strsxp(["a"]))),
        ("b.rds", gzip.compress(serialize(strsxp(["b"])))),
    ):
        (tmp_path / name).write_bytes(data)
    assert read_rds(tmp_path / "a.rds").value == ["a"]
    assert read_rds(tmp_path / "b.rds").value == ["b"]


# ---------------------------------------------------------------- the real janeaustenr data
def test_janeaustenr_novels(prepared):
    prepared("austen")
    from tfmask.datasets import cache

    folder = cache.fetch(austen.PACKAGE)
    database = LazyLoadDB(os.path.join(folder, austen.PATH))
    assert sorted(database.names) == sorted(austen.BOOKS)
    pride = to_python(database["prideprejudice"])
    assert len(pride) == 13030
    assert pride[:3] == ["PRIDE AND PREJUDICE", "", "By Jane Austen"]
    assert "It is a truth universally acknowledged, that a single man in possession" in pride
