"""`load` and `list_datasets`: prepared corpora, TFDS and local files as `tf.data`.

    load("rotten_tomatoes", split="train")                  a prepared registry dataset
    load("rotten_tomatoes", split="test", split_by="movie_name")
    load("austen", split="train[:1000]+validation")          tfds-style split strings
    load("tfds:imdb_reviews", split="test")                  tensorflow_datasets.load
    load("file:reviews.jsonl", split="all", label_field="stars")
    load("file:data/{split}.csv", split="validation")        one file per split
    load("file:ner/{split}.conll", split="train")            CoNLL: text, words, tags

Registry datasets must be prepared first (`python -m tfmask.datasets prepare
NAME`); otherwise `DatasetNotPreparedError` says exactly that. Their cache
files are checked against the checksums of the manifest once per process.
Examples come in a fixed pseudo-random order (see `splits`), so
`take(n)` is a sample, not the first rows of the source; shuffle for training.

Local files (`file:PATH`) go through `tfmask.data.sources` (for CoNLL,
`tfmask.data.sources.conll`). The format follows the extension, or the
`format` option ("txt", "jsonl", "csv", "tsv", "tfrecord", "conll", e.g. for
CoNLL-2003's `train.txt`):

    .txt              one document per line (`text` only)
    .jsonl            the document in `text_field` (default "text"; a list
                      of strings is joined with spaces)
    .csv / .tsv       with a header line; the document in column `text_field`
    .tfrecord         `tf.train.Example`s; the string feature `text_field`
    .conll            token-per-line columns, blank lines between sentences:
                      `text`, `words`, `tags` (`token_column`, default 0;
                      `tag_column`, default -1 the last, None for no tags)

`extra_fields` keeps more fields (JSONL/CSV/TFRecord), in the declaration
format of `tfmask.data.sources.field_spec`: a mapping name -> "string",
"int64", "float32", "bool", with "[None]" for a list, e.g.

    load("file:ner.jsonl", split="all", text_field="words",
         extra_fields={"words": "string[None]", "tags": "string[None]", "stars": "int64"})

(JSONL also takes a list of names, typed from the first record; CSV list
cells are whitespace-separated.) List fields come out as ragged tensors
per example, like the registry's `words`/`tags`. An integer `label_field`,
if given, becomes `label`. A declared field that is missing or has another
type fails naming the file and line. A PATH holding `{split}` names one
file per split. Otherwise the file is one pool: split "all" is all of it,
and "train"/"validation"/"test" are a fixed 80/10/10 partition by a
fingerprint of `text` (identical texts share a split; CoNLL and word-list
JSONL have a `text` of the words joined by spaces). A PATH may be a glob
(`file:shards/part-*.jsonl`, `file:data/{split}-*.tfrecord`): its files are
read one after the other, in sorted order, record by record (nothing holds
more than a file name per file), and the hash split is taken per record.

`shard=(N, i)` asks for one of N workers' share by whole files: files
i, i + N, ... of the sorted list (`file_shard`), when PATH matches at least
N files; otherwise `load` returns None and the caller shards another way
(`tfmask.tasks.base.Task.documents` keeps every N-th example).
"""

import os

import tensorflow as tf

from tfmask.data import features as F
from tfmask.data import sources
from tfmask.data.sources import conll
from tfmask.datasets import builder, cache, records, registry, splits
from tfmask.datasets.errors import CacheCorruptError, DatasetNotPreparedError, prepare_command

FILE_HOLDOUT = (("test", 10), ("validation", 10))  # percent of a single-file pool


def load(name, split="train", split_by="document", shard=None, **options):
    """A `tf.data.Dataset` of example dicts (see each dataset's features).

    Args:
        name: a registered name (see `list()`), "tfds:NAME" or "file:PATH".
        split: "train", "validation", "test", "all", joined with "+" and
            sliced like "train[:1000]" or "train[:10%]" (registry datasets;
            TFDS has its own syntax; files take one plain split).
        split_by: registry datasets: "document" (default) or a grouping a
            dataset offers (rotten_tomatoes: "movie_name").
        **options: for "tfds:": `text_key` and `tensorflow_datasets.load`
            arguments (`data_dir`, ...); for "file:": `text_field`,
            `label_field`, `extra_fields`, `format`, `token_column`,
            `tag_column`, `on_decode_error` (see the module doc). Registry
            datasets take none.
        shard: None, or (N, i): only the i-th of N workers' files (see
            `file_shard`). Returns None instead of a dataset when the source
            cannot be split by file: a registry or TFDS dataset, or a `file:`
            PATH matching fewer than N files.
    """
    if shard is not None and not name.startswith("file:"):
        return None  # one file (or TFDS split) per split: nothing to split by file
    if name.startswith(registry.PREFIXES):
        if split_by != "document":
            raise ValueError(f"split_by={split_by!r} applies to registry datasets, not {name!r}.")
        if name.startswith("tfds:"):
            return _load_tfds(name[len("tfds:") :], split, **options)
        return _load_file(name[len("file:") :], split, shard=shard, **options)
    spec = registry.REGISTRY.get(name)
    if options:
        raise TypeError(
            f"load({name!r}) takes only split= and split_by=, not {sorted(options)}; "
            "options are for tfds: and file: sources."
        )
    manifest = builder.read_manifest(spec)
    if manifest is None:
        raise DatasetNotPreparedError.for_dataset(name, cache.data_dir())
    if split_by not in manifest["splits"]:
        raise ValueError(
            f"Dataset {name!r} can be split by {sorted(manifest['splits'])}, not {split_by!r}."
        )
    pieces = splits.parse_split(split, manifest["splits"][split_by])
    folder = builder.dataset_folder(spec)
    relatives = [f"{split_by}/{piece}.tfrecord" for piece, _, _ in pieces]
    builder.verify(spec, manifest, files=set(relatives))
    dataset = None
    for relative, (_, start, stop) in zip(relatives, pieces):
        part = (
            tf.data.TFRecordDataset(os.path.join(folder, relative)).skip(start).take(stop - start)
        )
        dataset = part if dataset is None else dataset.concatenate(part)
    return records.parse_records(dataset, spec.features)


def _load_tfds(name, split, text_key=F.TEXT, **options):
    return sources.tfds_source(name, split, text_key=text_key, **options)


FILE_FORMATS = {".txt": "txt", ".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv",
                ".tsv": "tsv", ".tfrecord": "tfrecord", ".tfrecords": "tfrecord",
                ".conll": "conll"}
FILE_OPTIONS = ("text_field", "label_field", "extra_fields", "format", "token_column",
                "tag_column", "on_decode_error")


def file_shard(path, shard):
    """The files of worker i of N (`shard=(N, i)`) for a `file:` PATH (a path,
    glob, with `{split}` already filled in): every N-th of the sorted matches
    from the i-th, or None when PATH matches fewer than N files (some worker
    would have none). A plain path is one file.

    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> for n in range(5):
    ...     _ = open(os.path.join(folder, f"part-{n}.txt"), "w").write("a\\n")
    >>> [os.path.basename(f) for f in file_shard(os.path.join(folder, "part-*.txt"), (2, 1))]
    ['part-1.txt', 'part-3.txt']
    >>> file_shard(os.path.join(folder, "part-*.txt"), (6, 0)) is None
    True
    """
    count, index = shard
    if not 0 <= index < count:
        raise ValueError(f"shard={shard!r} must be (N, i) with 0 <= i < N.")
    files = sources.resolve_paths(path)
    if len(files) < count:
        return None
    return files[index::count]


def _load_file(path, split, shard=None, **options):
    unknown = sorted(set(options) - set(FILE_OPTIONS))
    if unknown:
        raise TypeError(f"file: sources take {', '.join(FILE_OPTIONS)}, not {', '.join(unknown)}.")
    one_file_per_split = "{split}" in path
    if one_file_per_split:
        if split not in splits.SPLITS:
            raise ValueError(
                f"file:{path} holds one file per split; pick split from {splits.SPLITS}."
            )
        path = path.replace("{split}", split)
    elif split not in ("all",) + splits.SPLITS:
        raise ValueError(
            f"Split {split!r} of file:{path} must be 'all', 'train', 'validation' or 'test'."
        )
    files = file_shard(path, shard) if shard else None
    if shard and files is None:
        return None
    dataset = _read_file(path, files=files, **options)
    if one_file_per_split or split == "all":
        return dataset
    bounds, low = {}, 0
    for name, percent in FILE_HOLDOUT:
        bounds[name] = (low, low + percent)
        low += percent
    bounds["train"] = (low, 100)
    low, high = bounds[split]

    def in_split(example):
        bucket = tf.strings.to_hash_bucket_fast(
            tf.strings.join([f"{splits.SEED}:", example[F.TEXT]]), 100
        )
        return (bucket >= low) & (bucket < high)

    return dataset.filter(in_split)


def _read_file(path, files=None, text_field=F.TEXT, label_field=None, extra_fields=None,
               format=None, token_column=0, tag_column=-1, on_decode_error="fail"):
    """One file (or glob) -> documents; list fields come out ragged, like the
    registry's `words`/`tags`, so that plain `batch` works on them. `files`,
    when given, are the files of `path` to read (one worker's share); the
    format still follows `path`. Every reader streams: files are opened one
    after the other and records read as the pipeline asks for them."""
    kind = format or FILE_FORMATS.get(_extension(path))
    if kind not in FILE_FORMATS.values():
        given = f"format={format!r}" if format else f"extension {_extension(path)!r}"
        raise ValueError(
            f"file:{path} has {given}; use .txt, .jsonl, .csv or .tsv (or .tfrecord, .conll), "
            f"or set data.dataset_options.format to one of {sorted(set(FILE_FORMATS.values()))}."
        )
    extra = _declared_fields(extra_fields, label_field, path)
    _refuse_options(path, kind, text_field, label_field, extra_fields, token_column, tag_column)
    paths = path if files is None else files
    if kind == "txt":
        dataset = sources.text_files(paths, on_decode_error=on_decode_error)
    elif kind == "conll":
        dataset = conll.conll_files(paths, token_column, tag_column, on_decode_error)
    elif kind == "jsonl":
        dataset = sources.jsonl_files(paths, text_field, extra, on_decode_error)
    elif kind == "tfrecord":
        dataset = sources.tfrecord_files(paths, sources.tfrecord_features(text_field, extra),
                                         text_field, on_decode_error)
    else:
        dataset = sources.csv_files(
            paths, text_field, extra, "\t" if kind == "tsv" else ",", on_decode_error
        )
    stats = dataset.stats
    if label_field and label_field != "label":
        dataset = dataset.map(
            lambda e: {("label" if k == label_field else k): v for k, v in e.items()}
        )
    dataset = _ragged_lists(dataset)
    dataset.stats = stats
    return dataset


def _extension(path):
    return os.path.splitext(path)[1].lower()


def _declared_fields(extra_fields, label_field, path):
    """`extra_fields` (a list of names or a dict name -> type, as
    `tfmask.data.sources.field_spec` reads it) plus `label_field` as int64."""
    if extra_fields is None:
        extra = {}
    elif isinstance(extra_fields, dict):
        extra = dict(extra_fields)
    elif isinstance(extra_fields, (list, tuple)) and all(isinstance(n, str) for n in extra_fields):
        extra = {name: None for name in extra_fields}
    else:
        raise ValueError(
            f"file:{path}: extra_fields={extra_fields!r} must map field names to types, "
            "e.g. {words: string[None], tags: string[None], stars: int64}."
        )
    if label_field:
        extra.setdefault(label_field, "int64")
    return extra  # None: JSONL takes the type from the first record, CSV reads a string


def _refuse_options(path, kind, text_field, label_field, extra_fields, token_column,
                    tag_column):
    """Options a format has no use for are refused, not ignored."""
    if kind in ("txt", "conll"):
        given = [n for n, v in (("text_field", text_field != F.TEXT), ("label_field", label_field),
                                ("extra_fields", extra_fields)) if v]
        if given:
            what = ("plain text and has no labels or fields" if kind == "txt" else
                    "CoNLL and has text, words and tags only")
            raise ValueError(f"file:{path} is {what}; drop {', '.join(given)} from "
                             "data.dataset_options.")
    if kind != "conll" and (token_column != 0 or tag_column != -1):
        raise ValueError(f"file:{path} is {kind}, not CoNLL; drop token_column/tag_column "
                         "from data.dataset_options (or set format: conll).")


def _ragged_lists(dataset):
    """1-D variable-length features -> ragged, the registry datasets' form."""
    specs = dataset.element_spec
    lists = [k for k, v in specs.items()
             if isinstance(v, tf.TensorSpec) and v.shape.rank == 1 and v.shape[0] is None]
    if not lists:
        return dataset
    return dataset.ragged_batch(256, row_splits_dtype=tf.int32).unbatch()


def describe(spec):
    """Multi-line description of one dataset (what `list()` prints)."""
    try:
        manifest = builder.read_manifest(spec)
    except CacheCorruptError:
        manifest = {}
    if manifest:
        status = "; ".join(
            f"split_by={scheme}: " + ", ".join(f"{s} {n:,}" for s, n in sizes.items())
            for scheme, sizes in manifest["splits"].items()
        )
    elif manifest is None:
        status = f"not prepared: {prepare_command(spec.name)}"
    else:
        status = f"damaged cache: {prepare_command(spec.name, force=True)}"
    lines = [
        f"{spec.name}  [{spec.task}, {spec.language}]  {spec.size}; license {spec.license}",
        f"    source: {spec.source}",
        f"    one example: {spec.description}",
        f"    splits: {status}",
    ]
    lines += [
        f"    {key}: {feature.signature} - {feature.description}"
        for key, feature in spec.features.items()
    ]
    return "\n".join(lines)


def list_datasets(file=None):
    """Prints every registered dataset: name, task, size, license, source,
    splits and features. Also accepted: "tfds:NAME" and "file:PATH"."""
    text = "\n\n".join(describe(spec) for spec in registry.REGISTRY.specs())
    text += (
        "\n\nAlso: tfds:NAME (tensorflow_datasets.load, needs internet unless prepared "
        "in data_dir) and file:PATH (.txt, .jsonl, .csv, .tsv, .tfrecord, .conll; "
        "extra_fields such as {words: string[None], tags: string[None]} keep annotations; "
        "see tfmask.datasets.reader)."
    )
    print(text, file=file)
