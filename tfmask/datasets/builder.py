"""`prepare`: sources -> parsed, de-duplicated, split TFRecords + manifest.json.

    fetch packages -> spec.parse -> deduplicate -> assign splits (per scheme)
        -> <data_dir>/datasets/<name>/v<version>/<scheme>/<split>.tfrecord
        -> manifest.json: counts, split sizes, report, sha256 of every file

Preparing is idempotent: a dataset whose manifest exists and whose files
match their checksums is not touched (a fraction of a second). The folder is
built aside and renamed into place, so an interrupted prepare leaves
nothing half-written that `load` could read.
"""

import json
import logging
import os
import shutil
import tempfile
import time

from tfmask.datasets import cache, records, registry, splits
from tfmask.datasets.dedupe import deduplicate
from tfmask.datasets.errors import CacheCorruptError, SourceFormatError, prepare_command
from tfmask.datasets.formats.rdata_reader import RDataError
from tfmask.datasets.formats.sword import SwordError

LOG = logging.getLogger("tfmask.datasets")
MANIFEST = "manifest.json"
_VERIFIED = {}  # (path, size, mtime) -> True: checksums are read once per process


def dataset_folder(spec):
    return os.path.join(cache.data_dir(), "datasets", spec.name, f"v{spec.version}")


def read_manifest(spec):
    """The manifest of a prepared dataset, or None when it is not prepared."""
    path = os.path.join(dataset_folder(spec), MANIFEST)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except ValueError:
        raise CacheCorruptError(
            f"{path} is not valid JSON; run: {prepare_command(spec.name, force=True)}"
        ) from None


def verify(spec, manifest, files=None):
    """Checks size and sha256 of the cache files (all, or `files`)."""
    folder = dataset_folder(spec)
    for relative, expected in manifest["files"].items():
        if files is not None and relative not in files:
            continue
        path = os.path.join(folder, relative)
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            raise CacheCorruptError(
                f"{path} is missing from the prepared cache; run: "
                f"{prepare_command(spec.name, force=True)}"
            ) from None
        token = (path, stat.st_size, stat.st_mtime_ns)
        if token in _VERIFIED:
            continue
        if stat.st_size != expected["bytes"] or records.sha256(path) != expected["sha256"]:
            raise CacheCorruptError(
                f"{path} does not match its checksum (damaged or edited); run: "
                f"{prepare_command(spec.name, force=True)}"
            )
        _VERIFIED[token] = True


def prepare(name, force=False):
    """Fetches, parses and caches dataset `name`; returns its manifest (a dict).

    Args:
        name: a registered dataset name.
        force: fetch the sources again and rebuild even if a valid cache exists.
    """
    spec = registry.REGISTRY.get(name)
    if not force:
        manifest = read_manifest(spec)
        if manifest is not None:
            try:
                verify(spec, manifest)
                return manifest
            except CacheCorruptError as error:
                LOG.warning("%s; rebuilding it", error)
    start = time.time()
    folders = {package.name: cache.fetch(package, force=force) for package in spec.sources}
    try:
        parsed = spec.parse(folders)
    except (
        SourceFormatError,
        RDataError,
        SwordError,
        UnicodeDecodeError,
        FileNotFoundError,
        KeyError,
    ) as error:
        reason = error.args[0] if isinstance(error, KeyError) and error.args else error
        raise SourceFormatError(
            f"{name}: {reason} To fetch the source again, run: {prepare_command(name, force=True)}"
        ) from error
    examples, report = deduplicate(parsed.examples, spec.key, spec.label)
    return _write(spec, examples, parsed.stats, report, start)


def _key_of(spec, example):
    values = [example[k] for k in spec.key]
    return values[0] if len(values) == 1 else "\x1f".join(map(str, values))


def _write(spec, examples, stats, report, start):
    folder = dataset_folder(spec)
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".prepare-", dir=os.path.dirname(folder))
    try:
        manifest = {
            "name": spec.name,
            "version": spec.version,
            "sources": [p.describe() for p in spec.sources],
            "features": {k: f.signature for k, f in spec.features.items()},
            "source_stats": stats,
            "deduplication": report,
            "examples": len(examples),
            "seed": splits.SEED,
            "splits": {},
            "files": {},
        }
        for scheme in spec.split_schemes:
            if scheme == "document":
                group_of = lambda e: _key_of(spec, e)  # noqa: E731
            else:
                group_of = lambda e, feature=scheme: e[feature]  # noqa: E731
            assigned = splits.assign_splits(examples, group_of, spec.holdout)
            os.makedirs(os.path.join(staging, scheme))
            manifest["splits"][scheme] = {}
            for split in splits.SPLITS:
                chosen = [i for i, s in enumerate(assigned) if s == split]
                chosen = splits.order_within_split(chosen, lambda i: _key_of(spec, examples[i]))
                relative = f"{scheme}/{split}.tfrecord"
                path = os.path.join(staging, relative)
                count = records.write_records(path, (examples[i] for i in chosen), spec.features)
                manifest["splits"][scheme][split] = count
                manifest["files"][relative] = {
                    "bytes": os.path.getsize(path),
                    "sha256": records.sha256(path),
                }
        manifest["seconds"] = round(time.time() - start, 2)
        with open(os.path.join(staging, MANIFEST), "w", encoding="utf-8") as f:
            json.dump(manifest, f, ensure_ascii=False, indent=1)
        if os.path.exists(folder):
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging, ignore_errors=True)
    return manifest
