"""Command line: `python -m tfmask.datasets list | prepare NAME... | prepare all`.

    python -m tfmask.datasets list                 datasets, sizes, licenses, features
    python -m tfmask.datasets prepare wnut16 austen
    python -m tfmask.datasets prepare all          every dataset and the MiniLM encoder
    python -m tfmask.datasets prepare austen --force   fetch and parse again

`prepare` prints, per dataset, the source counts, the duplicates and
conflicting texts it dropped, the split sizes and where the cache is.
Exit status 1 (with the one-line reason) when a source cannot be prepared.
"""

import argparse
import json
import logging
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tfmask.datasets as datasets  # noqa: E402
from tfmask.datasets import assets, cache  # noqa: E402


def _report(name, manifest, seconds):
    dedup = manifest["deduplication"]
    lines = [
        f"{name}: {manifest['examples']:,} examples from {', '.join(manifest['sources'])} "
        f"({seconds:.1f}s)"
    ]
    for key, value in manifest["source_stats"].items():
        shown = json.dumps(value, ensure_ascii=False)
        lines.append(f"    source {key}: {shown if len(shown) <= 120 else shown[:117] + '...'}")
    lines.append(
        f"    dropped: {dedup['duplicates_dropped']:,} duplicate copies, "
        f"{len(dedup['conflicts']):,} texts with conflicting labels "
        f"({dedup['conflict_examples_dropped']:,} copies)"
    )
    for text in dedup["conflicts"][:3]:
        lines.append(f"      conflicting: {text[:80]!r}")
    for scheme, sizes in manifest["splits"].items():
        lines.append(f"    split_by={scheme}: " + ", ".join(f"{s} {n:,}" for s, n in sizes.items()))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tfmask.datasets", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="print the datasets")
    prepare = commands.add_parser("prepare", help="fetch, parse and cache datasets")
    prepare.add_argument("names", nargs="+", help="dataset names, 'minilm', or 'all'")
    prepare.add_argument("--force", action="store_true", help="fetch and parse again")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="    %(message)s")

    if args.command == "list":
        datasets.list()
        return 0
    names = list(args.names)
    if "all" in names:
        names = datasets.names() + list(assets.ASSETS)
    unknown = [n for n in names if n not in datasets.names() and n not in assets.ASSETS]
    if unknown:
        parser.error(
            f"unknown name(s) {unknown}; known: {', '.join(datasets.names())}, "
            f"{', '.join(assets.ASSETS)} or all"
        )
    start = time.time()
    for name in names:
        began = time.time()
        try:
            if name in assets.ASSETS:
                print(
                    f"{name}: {assets.fetch_asset(name, force=args.force)} "
                    f"({time.time() - began:.1f}s)",
                    flush=True,
                )
                continue
            manifest = datasets.prepare(name, force=args.force)
        except (datasets.FetchError, datasets.SourceFormatError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(_report(name, manifest, time.time() - began), flush=True)
    print(f"prepared {len(names)} in {time.time() - start:.1f}s under {cache.data_dir()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
