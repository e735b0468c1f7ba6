"""Dense data sets (issue 15): float features of fixed shape, read from the
scikit-learn and statsmodels wheels and compared with those packages' own loaders."""

import functools

import numpy as np
import pytest
import tensorflow as tf

from tfmask import datasets
from tfmask.datasets import cache, records, registry, sklearn_tabular, splits
from tfmask.datasets import statsmodels_series as series
from tfmask.datasets.records import Feature

# (train, validation, test), as documented in the modules and the package docstring.
SPLIT_SIZES = {
    "digits": (1_439, 179, 179),
    "breast_cancer": (455, 57, 57),
    "wine": (142, 18, 18),
    "sunspots_windows": (221, 28, 28),
    "co2_weekly": (1_752, 219, 219),
}
ALL = sorted(SPLIT_SIZES)
SPLITS = ("train", "validation", "test")
TF_DTYPES = {"string": tf.string, "int64": tf.int64, "float32": tf.float32}


@functools.lru_cache(maxsize=None)
def arrays(name, split="all"):
    """A split as numpy arrays, one per feature (strings decoded)."""
    columns = {}
    for batch in datasets.load(name, split=split).batch(4096):
        for key, value in batch.items():
            columns.setdefault(key, []).append(value.numpy())
    out = {key: np.concatenate(parts) for key, parts in columns.items()}
    return {k: np.char.decode(v.astype(bytes)) if v.dtype == object else v for k, v in out.items()}


def by_key(name, split="all"):
    """key value -> index into arrays(name, split)."""
    (key,) = registry.REGISTRY.get(name).key
    values = arrays(name, split)[key].tolist()  # Python ints / str
    return {value: i for i, value in enumerate(values)}


# ------------------------------------------------------------------ Feature
def test_dense_feature_signatures_and_round_trip(tmp_path):
    features = {
        "image": Feature("float32", "pixels", shape=(2, 2, 1)),
        "vector": Feature("float32", "a row", shape=[3]),
        "mask": Feature("int64", "observed", shape=(3,)),
        "target": Feature("float32", "a value"),
        "name": Feature("string", "an id"),
        "floats": Feature("float32", "a list", ragged=True),
    }
    assert {k: f.signature for k, f in features.items()} == {
        "image": "float32[2, 2, 1]",
        "vector": "float32[3]",
        "mask": "int64[3]",
        "target": "float32",
        "name": "string",
        "floats": "float32[None]",
    }
    assert features["vector"].shape == (3,)  # a list shape is kept as a tuple (hashable)
    value = float(np.float32(0.1))  # the float32 nearest 0.1
    example = {
        "image": [[[0.0], [0.0625]], [[1.0], [value]]],
        "vector": [1, -2.5, 4254.0],  # ints are fine for float features
        "mask": [1, 0, np.int64(1)],
        "target": value,
        "name": "a",
        "floats": [0.5, 1.5],
    }
    path = str(tmp_path / "dense.tfrecord")
    assert records.write_records(path, [example], features) == 1
    got = next(iter(records.read_records([path], features)))
    assert got["image"].dtype == tf.float32 and got["image"].shape == (2, 2, 1)
    assert got["image"].numpy().tolist() == example["image"]
    assert got["vector"].numpy().tolist() == [1.0, -2.5, 4254.0]
    assert got["mask"].dtype == tf.int64 and got["mask"].numpy().tolist() == [1, 0, 1]
    assert got["target"].numpy().item() == value
    assert got["floats"].numpy().tolist() == [0.5, 1.5]
    batch = next(iter(records.read_records([path, path], features).batch(2)))
    assert batch["image"].shape == (2, 2, 2, 1) and isinstance(batch["floats"], tf.RaggedTensor)


@pytest.mark.parametrize(
    "value, error, message",
    [
        ([0.5, 0.5], TypeError, r"nested lists of shape \[3\]"),
        ([[0.5], [0.5], [0.5]], TypeError, "must hold float"),
        ([0.1, 0.5, 0.5], ValueError, "does not represent exactly"),
        ([float("nan"), 0.5, 0.5], ValueError, "mask feature"),
        ([True, 0.5, 0.5], TypeError, "must hold float"),
        ("abc", TypeError, "nested lists"),
    ],
)
def test_dense_feature_refuses_bad_values(value, error, message):
    features = {"x": Feature("float32", "a row", shape=(3,))}
    with pytest.raises(error, match=message):
        records.serialize({"x": value}, features)


def test_int_mask_feature_refuses_floats_and_bad_shapes():
    with pytest.raises(TypeError, match="must hold int"):
        records.serialize({"m": [1, 0.0]}, {"m": Feature("int64", "mask", shape=(2,))})
    with pytest.raises(ValueError, match="ragged or has a fixed shape"):
        Feature("float32", "x", ragged=True, shape=(3,))
    with pytest.raises(ValueError, match="positive ints"):
        Feature("float32", "x", shape=(0, 3))
    with pytest.raises(ValueError, match="not one of"):
        Feature("float64", "x")


# ------------------------------------------------------------------ registry
def test_dense_datasets_are_registered_and_listed(capsys):
    assert set(ALL) <= set(datasets.names())
    datasets.list()
    out = capsys.readouterr().out
    assert "image: float32[8, 8, 1] - pixel counts" in out
    assert "features: float32[30] - mean, error and worst" in out
    assert "observed: int64[52] - 1 = measured" in out
    assert "series: float32[32, 1] - sunspot numbers" in out


@pytest.mark.parametrize("name", ALL)
def test_splits_documented_disjoint_and_complete(prepared, name):
    manifest = prepared(name)
    train, validation, test = SPLIT_SIZES[name]
    sizes = {"train": train, "validation": validation, "test": test}
    assert manifest["splits"]["document"] == sizes
    documented = int(registry.REGISTRY.get(name).size.split()[0].replace(",", ""))
    assert documented == manifest["examples"] == train + validation + test
    assert manifest["deduplication"]["duplicates_dropped"] == 0
    keys = {split: list(by_key(name, split)) for split in SPLITS}
    for split, size in zip(SPLITS, SPLIT_SIZES[name]):
        assert len(keys[split]) == size == len(set(keys[split]))
    assert not set(keys["train"]) & set(keys["validation"])
    assert not set(keys["train"]) & set(keys["test"])
    assert not set(keys["validation"]) & set(keys["test"])
    assert len(arrays(name)["label" if "label" in arrays(name) else "target"]) == documented


@pytest.mark.parametrize("name", ALL)
def test_features_match_the_spec(prepared, name):
    prepared(name)
    spec = registry.REGISTRY.get(name)
    assert prepared(name)["features"] == {k: f.signature for k, f in spec.features.items()}
    example = next(iter(datasets.load(name, split="validation")))
    assert set(example) == set(spec.features)
    for key, feature in spec.features.items():
        assert example[key].dtype == TF_DTYPES[feature.dtype], key
        assert tuple(example[key].shape) == feature.shape, key
    batch = next(iter(datasets.load(name, split="train").batch(8)))
    assert all(tuple(batch[k].shape) == (8, *f.shape) for k, f in spec.features.items())


# ------------------------------------------------------------------ scikit-learn
def test_digits_equal_load_digits(prepared):
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    manifest = prepared("digits")
    source = sklearn_datasets.load_digits()
    data = arrays("digits")
    assert sorted(data["id"].tolist()) == list(range(1_797))
    expected = (source.images[data["id"]] / 16).astype(np.float32)[..., None]
    np.testing.assert_array_equal(data["image"], expected)
    np.testing.assert_array_equal(data["label"], source.target[data["id"]])
    assert data["image"].min() == 0.0 and data["image"].max() == 1.0
    assert set(data["label"].tolist()) == set(range(10))
    assert manifest["source_stats"]["labels"] == np.bincount(source.target).tolist()
    # Stratified: every digit has round(10%) of its images in test and in validation.
    for split in ("test", "validation"):
        counts = np.bincount(arrays("digits", split)["label"], minlength=10)
        assert counts.tolist() == [round(0.1 * n) for n in np.bincount(source.target)]


@pytest.mark.parametrize(
    "name, loader, columns, counts",
    [
        ("breast_cancer", "load_breast_cancer", sklearn_tabular.BREAST_CANCER_COLUMNS, [212, 357]),
        ("wine", "load_wine", sklearn_tabular.WINE_COLUMNS, [59, 71, 48]),
    ],
)
def test_tables_equal_the_sklearn_loaders(prepared, name, loader, columns, counts):
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    manifest = prepared(name)
    source = getattr(sklearn_datasets, loader)()
    assert list(source.feature_names) == list(columns) == manifest["source_stats"]["columns"]
    data = arrays(name)
    assert sorted(data["id"].tolist()) == list(range(len(source.target)))
    # Raw values, not standardised: the float32 nearest each value of the file.
    np.testing.assert_array_equal(data["features"], source.data[data["id"]].astype(np.float32))
    np.testing.assert_array_equal(data["label"], source.target[data["id"]])
    assert np.bincount(data["label"]).tolist() == counts
    train = arrays(name, "train")["features"].astype(np.float64)
    stats = manifest["source_stats"]
    np.testing.assert_allclose(stats["train_mean"], train.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(stats["train_std"], train.std(axis=0), rtol=1e-5)
    for split in ("test", "validation"):
        held_out = np.bincount(arrays(name, split)["label"]).tolist()
        assert held_out == [round(0.1 * n) for n in counts]


def test_prepare_is_stable_across_runs(prepared, isolated_cache):
    """A fresh build in an empty data dir gives byte-identical files."""
    reference = prepared("wine")
    if cache._installed_pypi(sklearn_tabular.PACKAGE) is None:
        isolated_cache(sklearn_tabular.PACKAGE, "wine")
    rebuilt = datasets.prepare("wine")
    assert rebuilt["files"] == reference["files"]
    assert rebuilt["source_stats"] == reference["source_stats"]


# ------------------------------------------------------------------ statsmodels
def test_sunspots_windows_equal_the_statsmodels_series(prepared):
    sunspots = pytest.importorskip("statsmodels.datasets.sunspots")
    manifest = prepared("sunspots_windows")
    frame = sunspots.load_pandas().data
    years = frame["YEAR"].astype(int).tolist()
    values = frame["SUNACTIVITY"].to_numpy().astype(np.float32)
    assert (years[0], years[-1], len(years)) == (1700, 2008, 309)
    data = arrays("sunspots_windows")
    assert sorted(data["year"].tolist()) == list(range(1732, 2009))
    for year, window, target in zip(data["year"], data["series"], data["target"]):
        i = years.index(year)
        np.testing.assert_array_equal(window[:, 0], values[i - 32 : i])
        assert target == values[i]
    split_years = {s: arrays("sunspots_windows", s)["year"] for s in SPLITS}
    assert split_years["train"].max() == 1952 < split_years["validation"].min() == 1953
    assert split_years["validation"].max() == 1980 < split_years["test"].min() == 1981
    train = arrays("sunspots_windows", "train")["target"].astype(np.float64)
    assert manifest["source_stats"]["train_mean"] == pytest.approx(train.mean(), rel=1e-5)


def test_co2_weekly_keeps_the_real_missing_weeks_as_a_mask(prepared):
    co2 = pytest.importorskip("statsmodels.datasets.co2")
    manifest = prepared("co2_weekly")
    frame = co2.load_pandas().data  # indexed by week, NaN where the source has no value
    dates = [d.date().isoformat() for d in frame.index]
    values = frame["co2"].to_numpy()
    assert len(values) == 2_284 and int(np.isnan(values).sum()) == 59
    stats = manifest["source_stats"]
    counts = (stats["weeks"], stats["missing_weeks"], stats["windows_without_target"])
    assert counts == (2_284, 59, 42)
    data = arrays("co2_weekly")
    position = {d: i for i, d in enumerate(dates)}
    with_gaps = 0
    for date, window, observed, target in zip(
        data["date"], data["series"], data["observed"], data["target"]
    ):
        i = position[date]
        source = values[i - 52 : i]
        np.testing.assert_array_equal(observed, ~np.isnan(source))
        filled = np.nan_to_num(source, nan=0.0).astype(np.float32)
        np.testing.assert_array_equal(window[:, 0], filled)
        assert target == np.float32(values[i])
        with_gaps += int((observed == 0).any())
    assert with_gaps == stats["windows_with_missing_input"] == 429
    # Every week from the 53rd with a value is a target, once.
    expected = {dates[i] for i in range(52, len(dates)) if not np.isnan(values[i])}
    assert set(data["date"].tolist()) == expected
    # Chronological: train < validation < test, by the week forecast.
    split_dates = {s: sorted(arrays("co2_weekly", s)["date"].tolist()) for s in SPLITS}
    assert split_dates["train"][-1] < split_dates["validation"][0]
    assert split_dates["validation"][-1] < split_dates["test"][0] == "1997-10-25"


def test_chronological_splits_take_the_end():
    examples = [{"t": i} for i in range(25)]
    series.chronological_splits(examples, (("test", 0.2), ("validation", 0.1)))
    assigned = [e[splits.PRESET] for e in examples]
    assert assigned == ["train"] * 18 + ["validation"] * 2 + ["test"] * 5
