"""Fixtures: datasets prepared once per session, and an isolated cache folder.

`prepared(name)` runs `tfmask.datasets.prepare` (idempotent: instant when
the cache is valid) in the default cache folder, so the first run fetches
and later runs reuse it. A Debian-only source may be skipped, with the
reason, only where it truly cannot be fetched: no apt-get/dpkg on this
system, or not root when the download failed (empty package lists need
`apt-get update`). As root, or under CI (`CI` set), it must prepare.
"""

import os
import shutil

import pytest

from tfmask import datasets
from tfmask.datasets import cache, registry

_RESULTS = {}
REAL_DATA_DIR = cache.data_dir()  # the session's cache, whatever a test sets later


def _why_debian_cannot_be_fetched():
    """A reason when this machine truly cannot fetch Debian packages, else None."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        return "no apt-get/dpkg on this system"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return "not root, so apt-get update cannot fill empty package lists"
    return None


def prepare_or_skip(name):
    if name not in _RESULTS:
        with pytest.MonkeyPatch.context() as patch:  # always the real cache
            patch.setenv(cache.DATA_DIR_ENV, REAL_DATA_DIR)
            try:
                _RESULTS[name] = datasets.prepare(name)
            except datasets.FetchError as error:
                _RESULTS[name] = error
    result = _RESULTS[name]
    if isinstance(result, Exception):
        spec = registry.REGISTRY.get(name)
        debian = any(isinstance(p, cache.DebianPackage) for p in spec.sources)
        reason = _why_debian_cannot_be_fetched()
        if debian and reason and not os.environ.get("CI"):
            pytest.skip(f"{name}: its Debian source cannot be prepared here ({reason}): {result}")
        raise result
    return result


@pytest.fixture(scope="session")
def prepared():
    """prepared(name) -> the dataset's manifest (prepared on first use)."""
    return prepare_or_skip


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """An empty TFMASK_DATA_DIR; `copy_package(package)` seeds it from the real cache."""
    monkeypatch.setenv(cache.DATA_DIR_ENV, str(tmp_path / "data"))

    def copy_package(package, dataset):
        prepare_or_skip(dataset)  # the real cache holds the package now
        source = os.path.join(
            REAL_DATA_DIR, "packages", package.registry.lower(), package.folder_name
        )
        if not os.path.isdir(source):
            pytest.skip(f"{package.describe()} is installed system-wide, not in the cache")
        target = cache.package_folder(package)
        shutil.copytree(source, target)
        return target

    return copy_package
