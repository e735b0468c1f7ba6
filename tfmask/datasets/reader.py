"""`load` and `list_datasets`: prepared corpora, TFDS and local files as `tf.data`.

    load("rotten_tomatoes", split="train")                  a prepared registry dataset
    load("rotten_tomatoes", split="test", split_by="movie_name")
    load("austen", split="train[:1000]+validation")          tfds-style split strings
    load("tfds:imdb_reviews", split="test")                  tensorflow_datasets.load
    load("file:reviews.jsonl", split="all", label_field="stars")
    load("file:data/{split}.csv", split="validation")        one file per split

Registry datasets must be prepared first (`python -m tfmask.datasets prepare
NAME`); otherwise `DatasetNotPreparedError` says exactly that. Their cache
files are checked against the checksums of the manifest once per process.
Examples come in a fixed pseudo-random order (see `splits`), so
`take(n)` is a sample, not the first rows of the source; shuffle for training.

Local files (`file:PATH`) go through `tfmask.data.sources`: `.txt` (one
document per line), `.jsonl` and `.csv`/`.tsv` (document in `text_field`,
default "text"; an integer `label_field`, if given, becomes `label`). A
PATH holding `{split}` names one file per split. Otherwise the file is one
pool: split "all" is all of it, and "train"/"validation"/"test" are a fixed
80/10/10 partition by a fingerprint of the text (identical texts share a split).
"""

import os

import tensorflow as tf

from tfmask.data import features as F
from tfmask.data import sources
from tfmask.datasets import builder, cache, records, registry, splits
from tfmask.datasets.errors import CacheCorruptError, DatasetNotPreparedError, prepare_command

FILE_HOLDOUT = (("test", 10), ("validation", 10))  # percent of a single-file pool


def load(name, split="train", split_by="document", **options):
    """A `tf.data.Dataset` of example dicts (see each dataset's features).

    Args:
        name: a registered name (see `list()`), "tfds:NAME" or "file:PATH".
        split: "train", "validation", "test", "all", joined with "+" and
            sliced like "train[:1000]" or "train[:10%]" (registry datasets;
            TFDS has its own syntax; files take one plain split).
        split_by: registry datasets: "document" (default) or a grouping a
            dataset offers (rotten_tomatoes: "movie_name").
        **options: for "tfds:": `text_key` and `tensorflow_datasets.load`
            arguments; for "file:": `text_field`, `label_field`,
            `on_decode_error`. Registry datasets take none.
    """
    if name.startswith(registry.PREFIXES):
        if split_by != "document":
            raise ValueError(f"split_by={split_by!r} applies to registry datasets, not {name!r}.")
        if name.startswith("tfds:"):
            return _load_tfds(name[len("tfds:") :], split, **options)
        return _load_file(name[len("file:") :], split, **options)
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


def _load_file(path, split, text_field=F.TEXT, label_field=None, on_decode_error="fail"):
    if "{split}" in path:
        if split not in splits.SPLITS:
            raise ValueError(
                f"file:{path} holds one file per split; pick split from {splits.SPLITS}."
            )
        return _read_file(path.replace("{split}", split), text_field, label_field, on_decode_error)
    if split not in ("all",) + splits.SPLITS:
        raise ValueError(
            f"Split {split!r} of file:{path} must be 'all', 'train', 'validation' or 'test'."
        )
    dataset = _read_file(path, text_field, label_field, on_decode_error)
    if split == "all":
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


def _read_file(path, text_field, label_field, on_decode_error):
    extension = os.path.splitext(path)[1].lower()
    if extension == ".txt":
        if label_field is not None:
            raise ValueError(f"file:{path} is plain text and has no labels; drop label_field=.")
        return sources.text_files(path, on_decode_error=on_decode_error)
    extra = {label_field: "int64"} if label_field else {}
    if extension in (".jsonl", ".json"):
        dataset = sources.jsonl_files(path, text_field, extra, on_decode_error)
    elif extension in (".csv", ".tsv"):
        dataset = sources.csv_files(
            path, text_field, extra, "\t" if extension == ".tsv" else ",", on_decode_error
        )
    else:
        raise ValueError(
            f"file:{path} has extension {extension!r}; use .txt, .jsonl, .csv or .tsv."
        )
    if label_field and label_field != "label":
        dataset = dataset.map(
            lambda e: {("label" if k == label_field else k): v for k, v in e.items()}
        )
    return dataset


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
        "\n\nAlso: tfds:NAME (tensorflow_datasets.load, needs internet) and "
        "file:PATH (.txt, .jsonl, .csv, .tsv)."
    )
    print(text, file=file)
