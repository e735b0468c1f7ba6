"""A small reader for R's serialization format and lazy-load databases.

R packages ship their data sets as a lazy-load database: `Rdata.rdx` is an
index (a serialized R list, gzip-compressed) that maps each object name to
an (offset, length) pair in `Rdata.rdb`; each `.rdb` record is one object,
serialized with R's XDR format and compressed:

    record  = 4-byte big-endian uncompressed length, then
              zlib data                       (index says compressed = TRUE, 1)
              or a type byte and the data     (compressed = 2 or 3):
                 "Z" raw LZMA2, "2" bzip2, "1" zlib, "0" stored

A serialized object is "X\\n", three version integers (and, in version 3,
the native encoding), then items: a flags integer (type in the low byte,
has-attributes bit 9, has-tag bit 10), then type-specific content. Only
what data sets use is read: vectors (logical, integer, double, complex,
character, list, raw), pairlists, symbols, references, factors, data frames
and tibbles, and the ALTREP compact sequences and wrappers. Closures,
environments and byte code raise `RDataError`.

Every problem (bad magic, truncated record, unknown type, bad compression)
raises `RDataError`, a ValueError whose message starts with the file name.

Example (a serialized character vector, as `serialize(c("a", NA), NULL)`
writes it):
>>> import struct
>>> def i(*v): return struct.pack(">%di" % len(v), *v)
>>> data = b"X\\n" + i(2, 0x040201, 0x020300) + i(16, 2) + i(0x40009, 1) + b"a" + i(9, -1)
>>> unserialize(data).value
['a', None]
"""

import bz2
import dataclasses
import gzip
import lzma
import os
import struct
import zlib

import numpy as np

# SEXP type codes (R's Rinternals.h) and the pseudo-types of serialize.c.
NILSXP, SYMSXP, LISTSXP, CLOSXP, ENVSXP, PROMSXP, LANGSXP = 0, 1, 2, 3, 4, 5, 6
CHARSXP, LGLSXP, INTSXP, REALSXP, CPLXSXP, STRSXP = 9, 10, 13, 14, 15, 16
DOTSXP, VECSXP, EXPRSXP, RAWSXP, S4SXP = 17, 19, 20, 24, 25
ALTREP_SXP, EMPTYENV_SXP, BASEENV_SXP = 238, 242, 241
PERSISTSXP, PACKAGESXP, NAMESPACESXP, BASENAMESPACE_SXP = 247, 248, 249, 250
MISSINGARG_SXP, UNBOUNDVALUE_SXP, GLOBALENV_SXP, NILVALUE_SXP, REFSXP = 251, 252, 253, 254, 255

NA_INTEGER = -(2**31)
_PAIRLISTS = {
    LISTSXP: "pairlist",
    LANGSXP: "language",
    CLOSXP: "closure",
    PROMSXP: "promise",
    DOTSXP: "dots",
}
_CONSTANTS = {
    EMPTYENV_SXP: "emptyenv",
    BASEENV_SXP: "baseenv",
    GLOBALENV_SXP: "globalenv",
    UNBOUNDVALUE_SXP: "unbound",
    MISSINGARG_SXP: "missing",
    BASENAMESPACE_SXP: "basenamespace",
}
_NUMERIC = {
    LGLSXP: ("logical", ">i4", 4),
    INTSXP: ("integer", ">i4", 4),
    REALSXP: ("double", ">f8", 8),
    CPLXSXP: ("complex", ">c16", 16),
}
_LATIN1_MASK, _BYTES_MASK = 1 << 2, 1 << 1


class RDataError(ValueError):
    """An R data file is corrupt, truncated or uses an unsupported feature."""


@dataclasses.dataclass
class RObject:
    """One R value.

    Attributes:
        kind: R's type name: "NULL", "logical", "integer", "double",
            "complex", "character", "list", "raw", "symbol", "pairlist", ...
        value: numpy array (logical/integer/double/complex; NA integers are
            -2**31, NA doubles NaN), list of str or None (character), list
            of RObject (list), bytes (raw), str (symbol), list of
            (tag, RObject) (pairlist).
        attributes: attribute name -> RObject (names, class, levels, ...).
    """

    kind: str
    value: object = None
    attributes: dict = dataclasses.field(default_factory=dict)

    @property
    def classes(self):
        cls = self.attributes.get("class")
        return list(cls.value) if cls is not None else []


NULL = RObject("NULL")


class _Stream:
    def __init__(self, data, where):
        self.data, self.pos, self.where = memoryview(data), 0, where

    def take(self, n):
        if n < 0 or self.pos + n > len(self.data):
            raise RDataError(
                f"{self.where}: truncated: needs {n} bytes at byte {self.pos} but only "
                f"{len(self.data) - self.pos} are left."
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def integer(self):
        return struct.unpack(">i", self.take(4))[0]

    def length(self):
        n = self.integer()
        if n == -1:  # long vector: two more integers
            upper, lower = struct.unpack(">II", self.take(8))
            n = (upper << 32) + lower
        elif n < -1:
            raise RDataError(f"{self.where}: negative vector length {n} at byte {self.pos - 4}.")
        return n


class _Reader:
    """R's ReadItem for the XDR format, kept to the types data sets use."""

    def __init__(self, stream):
        self.s = stream
        self.refs = []

    def item(self):
        flags = self.s.integer()
        kind = flags & 0xFF
        has_attr, has_tag = bool(flags & (1 << 9)), bool(flags & (1 << 10))
        if kind == NILVALUE_SXP:
            return NULL
        if kind in _CONSTANTS:
            return RObject(_CONSTANTS[kind])
        if kind == REFSXP:
            index = (flags >> 8) or self.s.integer()
            if not 1 <= index <= len(self.refs):
                raise RDataError(f"{self.s.where}: reference {index} points to no earlier object.")
            return self.refs[index - 1]
        if kind == SYMSXP:
            symbol = RObject("symbol", self.item().value[0])
            self.refs.append(symbol)
            return symbol
        if kind in (PACKAGESXP, NAMESPACESXP, PERSISTSXP):
            self.s.integer()  # always 0
            names = [self._charsxp() for _ in range(self.s.length())]
            obj = RObject(
                {PACKAGESXP: "package", NAMESPACESXP: "namespace", PERSISTSXP: "persistent"}[kind],
                names,
            )
            self.refs.append(obj)
            return obj
        if kind in _PAIRLISTS:
            return self._pairlist(kind, has_attr, has_tag)
        if kind == ALTREP_SXP:
            return self._altrep()
        if kind == CHARSXP:  # only inside symbols; character vectors read their own
            self.s.pos -= 4
            return RObject("character", [self._charsxp()])
        if kind in _NUMERIC:
            name, dtype, size = _NUMERIC[kind]
            n = self.s.length()
            obj = RObject(name, np.frombuffer(self.s.take(n * size), dtype).astype(dtype[1:]))
        elif kind == STRSXP:
            obj = RObject("character", [self._charsxp() for _ in range(self.s.length())])
        elif kind in (VECSXP, EXPRSXP):
            obj = RObject(
                "list" if kind == VECSXP else "expression",
                [self.item() for _ in range(self.s.length())],
            )
        elif kind == RAWSXP:
            obj = RObject("raw", bytes(self.s.take(self.s.length())))
        elif kind == S4SXP:
            obj = RObject("S4")
        else:
            raise RDataError(
                f"{self.s.where}: R object type {kind} at byte {self.s.pos - 4} is not "
                "supported (closures, environments and byte code are not data)."
            )
        if has_attr:
            obj.attributes = self._attributes(self.item())
        return obj

    def _charsxp(self):
        flags = self.s.integer()
        if flags & 0xFF != CHARSXP:
            raise RDataError(
                f"{self.s.where}: expected a string (type 9) at byte {self.s.pos - 4}, "
                f"found type {flags & 0xFF}."
            )
        n = self.s.integer()
        if n == -1:
            return None  # NA_character_
        raw = bytes(self.s.take(n))
        levels = flags >> 12
        if levels & _BYTES_MASK:
            return raw.decode("latin-1")
        encoding = "latin-1" if levels & _LATIN1_MASK else "utf-8"
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError as error:
            raise RDataError(
                f"{self.s.where}: a string is not valid {encoding} ({error})."
            ) from None

    def _pairlist(self, kind, has_attr, has_tag):
        cells, attributes = [], {}
        while True:
            attr = self.item() if has_attr else None
            if attr is not None and not cells:
                attributes = self._attributes(attr)
            tag = self.item().value if has_tag else None
            cells.append((tag, self.item()))
            # The tail is the next cell (read iteratively: pairlists can be long).
            flags = self.s.integer()
            if flags & 0xFF not in (kind, LISTSXP):
                self.s.pos -= 4
                tail = self.item()
                if tail is not NULL:
                    cells.append((None, tail))
                break
            has_attr, has_tag = bool(flags & (1 << 9)), bool(flags & (1 << 10))
        if kind == CLOSXP:
            raise RDataError(f"{self.s.where}: holds an R function, which is not data.")
        return RObject(_PAIRLISTS[kind], cells, attributes)

    def _attributes(self, pairlist):
        if pairlist.kind != "pairlist":
            raise RDataError(f"{self.s.where}: attributes are a {pairlist.kind}, not a pairlist.")
        return {tag: value for tag, value in pairlist.value}

    def _altrep(self):
        info, state, attributes = self.item(), self.item(), self.item()
        name = info.value[0][1].value if info.kind == "pairlist" else None
        if name in ("compact_intseq", "compact_realseq"):
            n, start, step = (float(v) for v in state.value[:3])
            values = start + step * np.arange(int(n))
            obj = RObject(
                *(
                    ("integer", values.astype(np.int32))
                    if name == "compact_intseq"
                    else ("double", values)
                )
            )
        elif name is not None and name.startswith("wrap_"):
            obj = dataclasses.replace(state.value[0])  # list(x, metadata)
        elif name == "deferred_string":
            source = state.value[0][1]
            obj = RObject(
                "character",
                [None if _is_na(v, source.kind) else _r_number(v) for v in source.value],
            )
        else:
            raise RDataError(f"{self.s.where}: ALTREP class {name!r} is not supported.")
        if attributes is not NULL:
            obj.attributes = self._attributes(attributes)
        return obj


def _is_na(value, kind):
    return value == NA_INTEGER if kind == "integer" else np.isnan(value)


def _r_number(value):
    """as.character() of a number, for deferred strings (15 significant digits)."""
    return str(int(value)) if float(value).is_integer() else f"{value:.15g}"


def unserialize(data, where="<bytes>"):
    """Bytes of `serialize(x, NULL)` (XDR, version 2 or 3) -> `RObject`."""
    stream = _Stream(data, where)
    magic = bytes(stream.take(2))
    if magic != b"X\n":
        raise RDataError(
            f"{where}: not R's XDR serialization (starts with {magic!r}, expected b'X\\n')."
        )
    version = stream.integer()
    stream.take(8)  # writer and minimal reader R versions
    if version == 3:
        stream.take(stream.integer())  # native encoding name
    elif version != 2:
        raise RDataError(f"{where}: serialization version {version} is not 2 or 3.")
    return _Reader(stream).item()


def _decompress_file(raw, where):
    """gzip / bzip2 / xz / uncompressed, recognised by the magic bytes."""
    try:
        if raw[:2] == b"\x1f\x8b":
            return gzip.decompress(raw)
        if raw[:3] == b"BZh":
            return bz2.decompress(raw)
        if raw[:6] == b"\xfd7zXZ\x00":
            return lzma.decompress(raw)
    except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error) as error:
        raise RDataError(f"{where}: corrupt or truncated compressed data ({error}).") from None
    return raw


def read_rds(path):
    """An `.rds` file (or a lazy-load `.rdx` index) -> `RObject`."""
    with open(path, "rb") as f:
        raw = f.read()
    return unserialize(_decompress_file(raw, path), path)


def _decompress_record(record, compressed, where):
    if len(record) < 4:
        raise RDataError(f"{where}: record of {len(record)} bytes is truncated.")
    size = struct.unpack(">I", record[:4])[0]
    body = record[4:]
    kind = b"1"
    if compressed in (2, 3):
        kind, body = body[:1], body[1:]
    try:
        if kind == b"Z":
            out = lzma.decompress(
                body, format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2, "preset": 6}]
            )
        elif kind == b"2":
            out = bz2.decompress(body)
        elif kind == b"0":
            out = bytes(body)
        else:
            out = zlib.decompress(body)
    except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error) as error:
        raise RDataError(f"{where}: corrupt or truncated compressed record ({error}).") from None
    if len(out) != size:
        raise RDataError(f"{where}: record decompresses to {len(out)} bytes, header says {size}.")
    return out


class LazyLoadDB:
    """The objects of an R lazy-load database (`NAME.rdb` + `NAME.rdx`).

    Args:
        rdb_path: path of the `.rdb` file; the index is the `.rdx` next to it.

    Example (`names` and `db["emma"]` on janeaustenr's `data/Rdata.rdb`):

        db = LazyLoadDB(".../janeaustenr/data/Rdata.rdb")
        db.names        # ['emma', 'mansfieldpark', ...]
        to_python(db["emma"])[:2]   # ['EMMA', '']
    """

    def __init__(self, rdb_path):
        self.rdb_path = os.fspath(rdb_path)
        self.rdx_path = os.path.splitext(self.rdb_path)[0] + ".rdx"
        for path in (self.rdb_path, self.rdx_path):
            if not os.path.exists(path):
                raise FileNotFoundError(f"{path} does not exist.")
        index = to_python(read_rds(self.rdx_path))
        if not isinstance(index, dict) or "variables" not in index:
            raise RDataError(f"{self.rdx_path}: not a lazy-load index (no 'variables').")
        self._variables = index["variables"]
        compressed = index.get("compressed", [1])
        self._compressed = int(np.asarray(compressed).ravel()[0])

    @property
    def names(self):
        return list(self._variables)

    def __getitem__(self, name):
        if name not in self._variables:
            raise KeyError(f"{self.rdb_path} has no object {name!r}; it has {self.names}.")
        offset, length = (int(v) for v in np.asarray(self._variables[name]).ravel()[:2])
        where = f"{self.rdb_path} (object {name!r})"
        with open(self.rdb_path, "rb") as f:
            f.seek(offset)
            record = f.read(length)
        if len(record) != length:
            raise RDataError(
                f"{where}: truncated: the record needs bytes {offset}..{offset + length} "
                f"but the file ends at byte {offset + len(record)}."
            )
        return unserialize(_decompress_record(record, self._compressed, where), where)


def to_python(obj):
    """`RObject` -> plain Python: the shapes data sets need.

    character -> list of str (None for NA); factor -> list of level labels;
    data frame / tibble -> dict column -> values; named list -> dict;
    list -> list; logical/integer/double -> numpy array; NULL -> None.

    Example:
    >>> factor = RObject("integer", np.array([2, 1], np.int32),
    ...                  {"levels": RObject("character", ["great", "other"]),
    ...                   "class": RObject("character", ["factor"])})
    >>> to_python(factor)
    ['other', 'great']
    """
    if obj.kind == "NULL":
        return None
    if "factor" in obj.classes:
        levels = obj.attributes["levels"].value
        return [None if code == NA_INTEGER else levels[code - 1] for code in obj.value]
    if obj.kind in ("list", "expression"):
        values = [to_python(v) for v in obj.value]
        names = obj.attributes.get("names")
        if names is not None and len(names.value) == len(values):
            return dict(zip(names.value, values))
        return values
    if obj.kind == "pairlist":
        return {tag: to_python(value) for tag, value in obj.value}
    return obj.value
