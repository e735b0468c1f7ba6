"""Delimited files (CSV, TSV) with a header line: one document per row.

Read with Python's `csv` module in a generator (records gathered into
batches); quoted fields may hold delimiters and newlines.
"""

import csv

import tensorflow as tf

from tfmask.data import features as F
from tfmask.data.sources.core import (
    FILE_KEY,
    RECORD_KEY,
    SourceError,
    base_spec,
    check_mode,
    check_names,
    document_spec,
    field_spec,
    finish,
    first_document,
    generator_batches,
    open_text,
    resolve_paths,
    signature,
    to_bytes,
)


def _csv_rows(files, text_column, extra_columns, delimiter):
    """Yields (path, line number, {column: value}) for every data row."""
    # Documents are often longer than the csv module's default cell limit
    # (131,072 characters); raise it for this process.
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    wanted = (text_column, *extra_columns)
    for path in files:
        with open_text(path) as f:
            reader = csv.reader(f, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                continue  # empty file; an all-empty source fails up front
            index = _column_index(header, wanted, path)
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                if len(row) < len(header):
                    raise SourceError(
                        f"{path} line {reader.line_num} has {len(row)} columns but the "
                        f"header has {len(header)}; check the delimiter and quoting."
                    )
                yield path, reader.line_num, {name: row[i] for name, i in index.items()}


def _column_index(header, wanted, path):
    index = {}
    for name in wanted:
        if name not in header:
            raise SourceError(
                f"{path} has no column {name!r} (header: {', '.join(map(repr, header))}); "
                "pass text_column=/extra_columns= with the right names."
            )
        index[name] = header.index(name)
    return index


def csv_files(paths, text_column="text", extra_columns=(), delimiter=",", on_decode_error="fail"):
    """CSV files with a header line: one document per row.

    Args:
        paths: a path, glob or list of them. Every file needs the header.
        text_column: the column holding the document; it becomes `text`.
        extra_columns: more columns to keep under their own names: a
            sequence of names (kept as strings) or a dict name -> declared
            type (see `field_spec`; int or float columns are parsed, a bad
            value fails naming the file, line and column; a list type such
            as "string[None]" splits the cell on whitespace, e.g. words or
            tags). It may repeat `text_column` (its words as a list).
        delimiter: one character, e.g. "\\t" for TSV.
        on_decode_error: "fail", "replace" or "skip" (see `tfmask.data.sources`).

    Quoted fields may hold delimiters and newlines; line numbers in errors
    are those where a row ends. Missing columns fail when the source is
    built, naming the column and the file.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.csv")
    >>> _ = open(path, "w").write('label,text\\n1,"a, b"\\n')
    >>> [(int(d["label"]), d["text"].numpy()) for d in
    ...  csv_files(path, extra_columns={"label": "int64"})]
    [(1, b'a, b')]
    """
    check_mode(on_decode_error)
    files = resolve_paths(paths)
    names = tuple(extra_columns)
    check_names(names, text_column, "extra_columns")
    spec = base_spec()
    for name in names:
        declared = extra_columns.get(name) if isinstance(extra_columns, dict) else None
        spec[name] = field_spec(name, tf.string if declared is None else declared)
        if spec[name].shape.rank != 0 and spec[name].shape.as_list() != [None]:
            raise SourceError(f"CSV column {name!r} cannot be {signature(spec[name])}; declare "
                              "a scalar type or a whitespace-separated list such as int64[None].")
    # Every header is checked now (one line per file), not at training time.
    for path in files:
        with open_text(path) as f:
            header = next(csv.reader(f, delimiter=delimiter), None)
        if header is not None:
            _column_index(header, (text_column, *names), path)
    first_document(
        _csv_rows(files, text_column, names, delimiter), lambda row: row[text_column], files
    )

    def records():
        for path, number, row in _csv_rows(files, text_column, names, delimiter):
            example = {F.TEXT: to_bytes(row[text_column]), FILE_KEY: path, RECORD_KEY: number}
            for name in names:
                if spec[name].shape.rank:  # a list: whitespace-separated values
                    example[name] = [_parse_cell(v, spec[name].dtype, name, path, number)
                                     for v in row[name].split()]
                else:
                    example[name] = _parse_cell(row[name], spec[name].dtype, name, path, number)
            yield example

    batches = generator_batches(records, spec, "lines")
    return finish(batches, on_decode_error, "line", element_spec=document_spec(spec))


def _parse_cell(value, dtype, name, path, number):
    if dtype == tf.string:
        return to_bytes(value)
    try:
        if dtype == tf.bool:
            return {"true": True, "false": False, "1": True, "0": False}[value.strip().lower()]
        return int(value) if dtype.is_integer else float(value)
    except (ValueError, KeyError):
        raise SourceError(
            f"{path} line {number}: column {name!r} holds {value!r}, not a "
            f"{dtype.name}; fix the cell or read the column as a string."
        ) from None

