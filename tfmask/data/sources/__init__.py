"""Documents into `tf.data`: text, JSONL, CSV, TFRecord, CoNLL files and TFDS.

Every source returns a `tf.data.Dataset` of dicts with the document in
`text` (tf.string, see `tfmask.data.features`) plus the extra fields asked
for, one document per element, files read in the order given.

| source           | one document per                  | reader | module |
|------------------|-----------------------------------|--------|--------|
| `text_files`     | line, or blank-line separated paragraph | `TextLineDataset` | `text` |
| `jsonl_files`    | JSON object per line              | Python generator | `jsonl` |
| `csv_files`      | row (with a header line)          | Python generator | `delimited` |
| `tfrecord_files` | `tf.train.Example` record         | `TFRecordDataset` | `tfrecord` |
| `conll_files`    | sentence of a CoNLL column file   | Python generator | `conll` |
| `tfds_source`    | example of a TFDS split           | `tfds.load` | `tfds` |

What every source does the same way (`core` holds the shared machinery):

- `paths` is a path, a glob or a list of them (`gs://...` works too). A
  missing file, a glob that matches nothing, or a source with no document
  at all raises `SourceError` (a `ValueError`) when the source is built,
  not an empty dataset at training time. The check reads only up to the
  first real document.
- Empty and whitespace-only documents are dropped and counted.
- Invalid UTF-8 is handled by `on_decode_error`: "fail" (default) stops
  iteration with an error naming the file and line (record) number;
  "replace" writes U+FFFD for the bad bytes; "skip" drops the document.
  Replaced and skipped documents are counted.
- The counts live in `dataset.stats`, a `SourceStats` attached to the
  returned dataset (keep a reference to it: `dataset.map(...)` returns a new
  dataset without the attribute). They are exact once iteration has ended
  and accumulate over epochs (`stats.reset()` starts again).
"""

from tfmask.data.sources.core import (
    AUTOTUNE,
    DECODE_ERROR_MODES,
    LIST_SUFFIXES,
    SourceError,
    SourceStats,
    field_spec,
    resolve_paths,
)
from tfmask.data.sources.text import TEXT_UNITS, text_files
from tfmask.data.sources.jsonl import jsonl_files
from tfmask.data.sources.delimited import csv_files
from tfmask.data.sources.tfrecord import tfrecord_features, tfrecord_files
from tfmask.data.sources.conll import conll_files, read_sentences
from tfmask.data.sources.tfds import tfds_source

__all__ = [
    "AUTOTUNE",
    "DECODE_ERROR_MODES",
    "LIST_SUFFIXES",
    "TEXT_UNITS",
    "SourceError",
    "SourceStats",
    "conll_files",
    "csv_files",
    "field_spec",
    "jsonl_files",
    "read_sentences",
    "resolve_paths",
    "text_files",
    "tfds_source",
    "tfrecord_features",
    "tfrecord_files",
]
