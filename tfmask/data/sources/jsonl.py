"""JSON Lines files: one JSON object per line, the document in one of its fields.

Read by a Python generator (records gathered into batches); extra fields
are typed from the first record or declared (see `field_spec`), and a line
that does not fit fails naming the file and line.
"""

import json

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
    open_binary,
    resolve_paths,
    signature,
    to_bytes,
)


def _json_spec(value, name, where):
    """Per-record TensorSpec of a JSON value (for `extra_fields` given by name)."""
    if isinstance(value, list):
        if not value:
            raise SourceError(
                f"Field {name!r} is an empty list at {where}, so its type is unknown; "
                f"pass extra_fields={{{name!r}: tf.TensorSpec([None], dtype)}}."
            )
        return tf.TensorSpec([None], _json_spec(value[0], name, where).dtype)
    for kind, dtype in ((bool, tf.bool), (int, tf.int64), (float, tf.float32), (str, tf.string)):
        if isinstance(value, kind):
            return tf.TensorSpec([], dtype)
    raise SourceError(
        f"Field {name!r} at {where} is a JSON {type(value).__name__}, which has no "
        f"tensor type; pass extra_fields={{{name!r}: tf.TensorSpec(...)}} or drop it."
    )


def _jsonl_records(files, text_field, extra_fields):
    """Yields (path, line number, record dict) of every non-blank line."""
    for path in files:
        with open_binary(path) as f:
            for number, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                where = f"{path} line {number}"
                try:
                    # surrogateescape keeps invalid bytes for on_decode_error.
                    record = json.loads(raw.decode("utf-8-sig", "surrogateescape"))
                except json.JSONDecodeError as e:
                    raise SourceError(
                        f"{where} is not valid JSON ({e.msg}); fix or remove the line."
                    ) from None
                if not isinstance(record, dict):
                    raise SourceError(
                        f"{where} is a JSON {type(record).__name__}, not an object; "
                        "each line must be one object."
                    )
                for name in (text_field, *extra_fields):
                    if name not in record:
                        fields = ", ".join(map(repr, record)) or "none"
                        raise SourceError(
                            f"{where} has no field {name!r} (it has {fields}); "
                            "pass text_field=/extra_fields= with the right names."
                        )
                yield path, number, record


def _json_value(value, name, spec, path, number):
    if value is None:
        if name is None:
            return b""  # a null text: counted and dropped as an empty document
        raise SourceError(
            f"{path} line {number}: field {name!r} is null; fill it or leave it out "
            "of extra_fields."
        )
    if name is None and not isinstance(value, str):
        raise SourceError(
            f"{path} line {number}: the text field is a JSON {type(value).__name__}, "
            "not a string or a list of strings; pass the text field as text_field=."
        )
    if name is not None and not _json_fits(value, spec):
        raise SourceError(
            f"{path} line {number}: field {name!r} holds {_json_kind(value)} "
            f"{_shorten(value)}, not {signature(spec)}; fix the line or declare the field's "
            f"type in extra_fields (e.g. {{{name!r}: {_json_kind_signature(value)!r}}})."
        )
    if spec.dtype == tf.string:
        return [to_bytes(v) for v in value] if isinstance(value, list) else to_bytes(value)
    return value


_JSON_KINDS = ((bool, "bool"), (int, "int64"), (float, "float32"), (str, "string"))


def _json_scalar_fits(value, dtype):
    if dtype == tf.string:
        return isinstance(value, str)
    if dtype == tf.bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if dtype.is_integer else isinstance(value, (int, float))


def _json_fits(value, spec):
    """Whether a JSON value has the declared type (scalar, or 1-D list)."""
    if spec.shape.rank == 0:
        return not isinstance(value, (list, dict)) and _json_scalar_fits(value, spec.dtype)
    if spec.shape.as_list() == [None]:
        return isinstance(value, list) and all(_json_scalar_fits(v, spec.dtype) for v in value)
    return True  # fixed shapes: checked when the batch is built


def _json_kind(value):
    if isinstance(value, list):
        return "a list"
    for kind, name in _JSON_KINDS:
        if isinstance(value, kind):
            return f"a {name}"
    return f"a JSON {type(value).__name__}"


def _json_kind_signature(value):
    first = value[0] if isinstance(value, list) and value else value
    name = next((n for kind, n in _JSON_KINDS if isinstance(first, kind)), "string")
    return f"{name}[None]" if isinstance(value, list) else name



def _shorten(value, width=40):
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 3] + "..."



def jsonl_files(paths, text_field="text", extra_fields=(), on_decode_error="fail"):
    """JSON Lines files: one JSON object per line, the document in `text_field`.

    Args:
        paths: a path, glob or list of them.
        text_field: the field holding the document; it becomes `text`.
            A null value counts as an empty document; a list of strings
            (pre-tokenized words) is joined with single spaces.
        extra_fields: more fields to keep, under their own names: a sequence
            of names (types taken from the first document: str, int ->
            int64, float -> float32, bool, or a list of one of them), or a
            dict name -> declared type (see `field_spec`: "int64",
            "string[None]", a dtype or a `tf.TensorSpec`) when the first
            document is not representative. It may repeat `text_field`
            (words kept as a list besides the joined `text`).
        on_decode_error: "fail", "replace" or "skip" (see `tfmask.data.sources`).

    A malformed line, a non-object line or a record without a field fails
    with the file and line number. Blank lines are ignored.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.jsonl")
    >>> _ = open(path, "w").write('{"body": "hi", "id": 7}\\n')
    >>> [int(d["id"]) for d in jsonl_files(path, "body", ["id"])]
    [7]
    """
    check_mode(on_decode_error)
    files = resolve_paths(paths)
    names = tuple(extra_fields)
    check_names(names, text_field, "extra_fields")
    path, number, first = first_document(
        _jsonl_records(files, text_field, names), lambda record: record[text_field], files
    )
    spec = base_spec()
    for name in names:
        given = extra_fields[name] if isinstance(extra_fields, dict) else None
        if given is not None:
            spec[name] = field_spec(name, given)
        else:
            spec[name] = _json_spec(first[name], name, f"{path} line {number}")
        _json_value(first[name], name, spec[name], path, number)  # a wrong type fails now

    def records():
        for path, number, record in _jsonl_records(files, text_field, names):
            text = record[text_field]
            if isinstance(text, list) and all(isinstance(w, str) for w in text):
                text = " ".join(text)  # pre-tokenized words: the text is them, spaced
            example = {F.TEXT: _json_value(text, None, spec[F.TEXT], path, number),
                       FILE_KEY: path, RECORD_KEY: number}
            for name in names:
                example[name] = _json_value(record[name], name, spec[name], path, number)
            yield example

    batches = generator_batches(records, spec, "lines")
    return finish(batches, on_decode_error, "line", element_spec=document_spec(spec))

