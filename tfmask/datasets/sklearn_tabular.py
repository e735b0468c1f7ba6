"""Dense data sets bundled in the scikit-learn wheel: digits images and two tables.

Source: scikit-learn 1.9.1 (BSD-3-Clause), the CSV files under
`sklearn/datasets/data/` that `sklearn.datasets.load_digits`,
`load_breast_cancer` and `load_wine` read. They ship inside the wheel (no
download at load time); tfmask reads the files itself, so the installed
package is used when its version is the pinned one, and otherwise only the
wheel is fetched (`pip download --no-deps`, 9.3 MB) and unpacked, never
imported. All three are copies of UCI Machine Learning Repository data
sets; the scikit-learn descriptions (`sklearn/datasets/descr/*.rst`) name
their creators but no license; the UCI repository publishes them under
CC BY 4.0 (attribution: the creators below).

`digits`: `digits.csv.gz`, 1,797 rows of 64 pixel counts (0..16) and the
digit: the test set of UCI's "Optical Recognition of Handwritten Digits"
(E. Alpaydin, C. Kaynak, 1998): 32x32 bitmaps of 13 writers, with the "on"
pixels counted in 4x4 blocks.

    image  float32[8, 8, 1]  the pixel counts / 16, in [0, 1] (exact in float32)
    label  int64             the digit, 0..9 (178, 182, 177, 183, 181, 182,
                             181, 179, 174, 180 rows)
    id     int64             the row in digits.csv.gz (= the index in load_digits())

`breast_cancer`: `breast_cancer.csv`, 569 rows: UCI's "Breast Cancer
Wisconsin (Diagnostic)" (W. H. Wolberg, W. N. Street, O. L. Mangasarian,
1995): 30 measurements of the cell nuclei in an image of a fine needle
aspirate of a breast mass: the mean, standard error and "worst" value of
radius, texture, perimeter, area, smoothness, compactness, concavity,
concave points, symmetry and fractal dimension (`BREAST_CANCER_COLUMNS`).

    features  float32[30]  the raw measurements, in `BREAST_CANCER_COLUMNS` order
    label     int64        0 = malignant (212 rows), 1 = benign (357)
    id        int64        the row (= the index in load_breast_cancer())

`wine`: `wine_data.csv`, 178 rows: UCI's "Wine" (M. Forina et al., PARVUS,
1988): 13 chemical measurements of wines grown in one region of Italy by
three cultivars (`WINE_COLUMNS`).

    features  float32[13]  the raw measurements, in `WINE_COLUMNS` order
    label     int64        the cultivar: 0 (59 rows), 1 (71), 2 (48)
    id        int64        the row (= the index in load_wine())

Values are stored as they are in the files, rounded to the nearest float32
(digits: divided by 16, which is exact): no standardisation, which is a
modelling choice; the tables' columns differ in scale by four orders of
magnitude (area ~10^3, fractal dimension ~10^-2), so normalise them in the
model or pipeline. The per-column mean and standard deviation of the
*train* split are in the manifest's `source_stats` (`train_mean`,
`train_std`; 6 significant digits) for that.

No row repeats another (checked: all rows of each file are distinct), and
rows that happen to be equal would still be separate measurements, so the
de-duplication key is the row `id`, not the values. Splits are stratified
by label: per class, round(10%) of its rows go to test and round(10%) to
validation, drawn by a hash of the id with the registry's seed
(`splits.SEED`); the rest is train:

    digits         1,797 images  train 1,439 / validation 179 / test 179
    breast_cancer  569 rows      train 455 / validation 57 / test 57
    wine           178 rows      train 142 / validation 18 / test 18

Example (after `python -m tfmask.datasets prepare digits`):

    from tfmask import datasets
    batch = next(iter(datasets.load("digits", split="train").batch(32)))
    batch["image"].shape, batch["label"].shape   # (32, 8, 8, 1), (32,)
"""

import csv
import gzip
import io

import numpy as np

from tfmask.datasets import splits
from tfmask.datasets.cache import PyPIPackage, source_file
from tfmask.datasets.errors import SourceFormatError
from tfmask.datasets.records import Feature
from tfmask.datasets.registry import DatasetSpec, Parsed

PACKAGE = PyPIPackage("scikit-learn", "1.9.1", "sklearn")
DATA = "sklearn/datasets/data"
HOLDOUT = (("test", 0.1), ("validation", 0.1))
LICENSE = (
    "BSD-3-Clause (scikit-learn's copy); data from the UCI Machine Learning Repository, "
    "CC BY 4.0 there"
)

_MEASURES = (
    "radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity",
    "concave points", "symmetry", "fractal dimension",
)
BREAST_CANCER_COLUMNS = (  # scikit-learn's feature_names
    *(f"mean {m}" for m in _MEASURES),
    *(f"{m} error" for m in _MEASURES),
    *(f"worst {m}" for m in _MEASURES),
)
WINE_COLUMNS = (
    "alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols",
    "flavanoids", "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue",
    "od280/od315_of_diluted_wines", "proline",
)


def read_rows(path, columns, header):
    """A numeric CSV -> (its header line or None, rows of `columns` floats).

    Args:
        header: True when the first line is a header (n_rows, n_features,
            class names...), as in scikit-learn's tables.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
        text = (gzip.decompress(raw) if path.endswith(".gz") else raw).decode("ascii")
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise SourceFormatError(f"{path} could not be read ({error}).") from None
    lines = list(csv.reader(io.StringIO(text)))
    first = lines.pop(0) if header and lines else None
    rows = []
    for number, line in enumerate(lines, 2 if header else 1):
        try:
            values = [float(v) for v in line]
        except ValueError:
            values = []
        if len(values) != columns:
            raise SourceFormatError(
                f"{path} line {number} is not {columns} numbers: {','.join(line)[:80]!r}."
            )
        rows.append(values)
    return first, rows


def _label(value, classes, path, row):
    if value != int(value) or not 0 <= value < classes:
        raise SourceFormatError(f"{path} row {row} has the label {value}, not 0..{classes - 1}.")
    return int(value)


def stratified_splits(examples, holdout=HOLDOUT, seed=splits.SEED):
    """Sets `_split` per example: per label, round(fraction * n) of its examples
    (the first by `splits.rank` of their id) for each held-out split."""
    by_label = {}
    for example in examples:
        by_label.setdefault(example["label"], []).append(example)
    for label in sorted(by_label):
        group = sorted(by_label[label], key=lambda e: (splits.rank(e["id"], seed), e["id"]))
        position = 0
        for split, fraction in holdout:
            for example in group[position : position + round(fraction * len(group))]:
                example[splits.PRESET] = split
            position += round(fraction * len(group))
        for example in group[position:]:
            example[splits.PRESET] = "train"
    return examples


def _round(value):
    return float(f"{value:.6g}")


def train_moments(examples, feature):
    """Per-column mean and standard deviation of `feature` over the train split."""
    values = np.array(
        [e[feature] for e in examples if e[splits.PRESET] == "train"], dtype=np.float64
    )
    values = values.reshape(len(values), -1)
    return {
        "train_mean": [_round(v) for v in values.mean(axis=0)],
        "train_std": [_round(v) for v in values.std(axis=0)],
    }


def parse_digits(folders):
    path = source_file(folders[PACKAGE.name], f"{DATA}/digits.csv.gz")
    examples = []
    for row, values in enumerate(read_rows(path, 65, header=False)[1]):
        pixels = values[:64]
        if not all(v == int(v) and 0 <= v <= 16 for v in pixels):
            raise SourceFormatError(f"{path} row {row} has pixels outside 0..16.")
        image = [[[v / 16] for v in pixels[r * 8 : r * 8 + 8]] for r in range(8)]
        examples.append({"image": image, "label": _label(values[64], 10, path, row), "id": row})
    stratified_splits(examples)
    labels = np.bincount([e["label"] for e in examples], minlength=10)
    return Parsed(examples, {"rows": len(examples), "labels": labels.tolist()})


def _table(path_name, columns, class_names):
    def parse(folders):
        path = source_file(folders[PACKAGE.name], f"{DATA}/{path_name}")
        header, rows = read_rows(path, len(columns) + 1, header=True)
        expected = [str(len(rows)), str(len(columns)), *class_names]
        if header != expected:
            raise SourceFormatError(
                f"{path} starts with {','.join(header or [])!r}, not {','.join(expected)!r} "
                f"(rows, columns, classes)."
            )
        examples = []
        for row, values in enumerate(rows):
            features = [float(np.float32(v)) for v in values[:-1]]
            label = _label(values[-1], len(class_names), path, row)
            examples.append({"features": features, "label": label, "id": row})
        stratified_splits(examples)
        labels = np.bincount([e["label"] for e in examples], minlength=len(class_names))
        stats = {"rows": len(examples), "labels": dict(zip(class_names, labels.tolist()))}
        stats.update(train_moments(examples, "features"))
        stats["columns"] = list(columns)
        return Parsed(examples, stats)

    return parse


_ID = "the row in the source file; the de-duplication and split key"

DIGITS = DatasetSpec(
    name="digits",
    task="image classification",
    language="-",
    description="an 8x8 image of a handwritten digit (UCI optdigits test set) and the digit",
    size="1,797 images",
    license=LICENSE,
    sources=(PACKAGE,),
    features={
        "image": Feature("float32", "pixel counts of 4x4 blocks / 16, in [0, 1]", shape=(8, 8, 1)),
        "label": Feature("int64", "the digit, 0..9"),
        "id": Feature("int64", _ID),
    },
    parse=parse_digits,
    key=("id",),
    label=("label",),
)

BREAST_CANCER = DatasetSpec(
    name="breast_cancer",
    task="tabular classification",
    language="-",
    description="30 raw measurements of cell nuclei of a breast mass (UCI WDBC) and the diagnosis",
    size="569 rows",
    license=LICENSE,
    sources=(PACKAGE,),
    features={
        "features": Feature(
            "float32",
            "mean, error and worst of radius, texture, perimeter, area, smoothness, "
            "compactness, concavity, concave points, symmetry, fractal dimension; raw, "
            "not standardised (train mean/std in the manifest)",
            shape=(30,),
        ),
        "label": Feature("int64", "0 = malignant, 1 = benign"),
        "id": Feature("int64", _ID),
    },
    parse=_table("breast_cancer.csv", BREAST_CANCER_COLUMNS, ("malignant", "benign")),
    key=("id",),
    label=("label",),
)

WINE = DatasetSpec(
    name="wine",
    task="tabular classification",
    language="-",
    description="13 raw chemical measurements of a wine (UCI Wine) and its cultivar",
    size="178 rows",
    license=LICENSE,
    sources=(PACKAGE,),
    features={
        "features": Feature(
            "float32",
            "alcohol, malic acid, ash, alcalinity of ash, magnesium, total phenols, "
            "flavanoids, nonflavanoid phenols, proanthocyanins, color intensity, hue, "
            "OD280/OD315, proline; raw, not standardised (train mean/std in the manifest)",
            shape=(13,),
        ),
        "label": Feature("int64", "the cultivar, 0..2"),
        "id": Feature("int64", _ID),
    },
    parse=_table("wine_data.csv", WINE_COLUMNS, ("class_0", "class_1", "class_2")),
    key=("id",),
    label=("label",),
)
