"""Time series bundled in the statsmodels wheel, as forecasting windows.

Source: statsmodels 0.15.0 (BSD-3-Clause), the CSV files under
`statsmodels/datasets/` that `statsmodels.datasets.sunspots` and `co2` read.
They ship inside the wheel; tfmask reads the files itself (the installed
package when its version is the pinned one, else only the wheel, fetched
with `pip download --no-deps`, 12.1 MB, and never imported). Both series
are public domain according to statsmodels (`COPYRIGHT` of each module:
"This data is public domain." / "This is public domain.").

`sunspots_windows`: `sunspots/sunspots.csv`, the yearly sunspot number of
1700-2008 (309 years; NOAA's National Geophysical Data Center, per the
module's `SOURCE`). One example per year from 1732 on: the 32 years before
it, and its own value to forecast (277 windows).

    series  float32[32, 1]  the sunspot numbers of years year-32 .. year-1
                            (T steps x 1 feature)
    target  float32         the sunspot number of `year`
    year    int64           the year forecast; the de-duplication key

`co2_weekly`: `co2/co2.csv`, weekly mean CO2 at Mauna Loa (ppmv), 2,284
consecutive Saturdays from 1958-03-29 to 2001-12-29, of which 59 have no
value: no six-hour steady period that week (Keeling & Whorf, Scripps,
via CDIAC, per the module's `SOURCE`). One example per week from the 53rd
on whose value was measured: the 52 weeks before it, with their real
missingness kept as a mask, and its value to forecast (2,232 weeks, 42
without a value: 2,190 windows; 429 of them have at least one missing
week in their input).

    series    float32[52, 1]  ppmv of the 52 weeks before `date`; 0.0 where the
                              week has no value (see `observed`)
    observed  int64[52]       1 = measured, 0 = missing in the source: a mask
                              given by the data, not drawn by tfmask
    target    float32         ppmv of the week of `date` (always measured)
    date      string          that week's Saturday, YYYY-MM-DD; the
                              de-duplication key

Values are rounded to the nearest float32 (the files have one decimal
place). Splits are chronological, by the forecast time, so that no
training window's input or target lies after any validation or test
target: the last round(10%) windows are test, the round(10%) before them
validation, the rest train (inputs of later windows do overlap earlier
targets, as in any forecast):

    sunspots_windows  277 windows    train 221 (1732-1952) / validation 28
                                     (1953-1980) / test 28 (1981-2008)
    co2_weekly        2,190 windows  train 1,752 (1959-03-28 to 1993-08-07) /
                                     validation 219 (1993-08-14 to 1997-10-18) /
                                     test 219 (1997-10-25 to 2001-12-29)

The manifest's `source_stats` hold the mean and standard deviation of the
train targets (`train_mean`, `train_std`), for normalising.

Example (after `python -m tfmask.datasets prepare co2_weekly`):

    from tfmask import datasets
    batch = next(iter(datasets.load("co2_weekly", split="train").batch(64)))
    batch["series"].shape, batch["observed"].shape   # (64, 52, 1), (64, 52)
"""

import csv
import datetime

import numpy as np

from tfmask.datasets import splits
from tfmask.datasets.cache import PyPIPackage, source_file
from tfmask.datasets.errors import SourceFormatError
from tfmask.datasets.records import Feature
from tfmask.datasets.registry import DatasetSpec, Parsed

PACKAGE = PyPIPackage("statsmodels", "0.15.0", "statsmodels")
DATA = "statsmodels/datasets"
SUNSPOTS_WINDOW = 32
CO2_WINDOW = 52
HOLDOUT = (("test", 0.1), ("validation", 0.1))
LICENSE = "public domain (statsmodels' COPYRIGHT note); statsmodels BSD-3-Clause"


def read_csv(path, header):
    """A two-column CSV with the given header -> its rows (lists of str)."""
    try:
        with open(path, encoding="ascii", newline="") as f:
            lines = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as error:
        raise SourceFormatError(f"{path} could not be read ({error}).") from None
    if not lines or lines[0] != list(header):
        raise SourceFormatError(f"{path} starts with {lines[:1]!r}, not the header {header!r}.")
    for number, line in enumerate(lines[1:], 2):
        if len(line) != len(header):
            raise SourceFormatError(f"{path} line {number} has {len(line)} fields: {line!r}.")
    return lines[1:]


def _number(text, path, number):
    try:
        return float(np.float32(float(text)))
    except ValueError:
        raise SourceFormatError(f"{path} line {number}: {text!r} is not a number.") from None


def chronological_splits(examples, holdout=HOLDOUT):
    """Sets `_split`: the last round(fraction * n) examples (in the given time
    order) for each held-out split, the first of `holdout` latest."""
    end = len(examples)
    for split, fraction in holdout:
        count = round(fraction * len(examples))
        for example in examples[end - count : end]:
            example[splits.PRESET] = split
        end -= count
    for example in examples[:end]:
        example[splits.PRESET] = "train"
    return examples


def _round(value):
    return float(f"{value:.6g}")


def _target_moments(examples):
    targets = np.array([e["target"] for e in examples if e[splits.PRESET] == "train"])
    return {"train_mean": _round(targets.mean()), "train_std": _round(targets.std())}


def parse_sunspots(folders):
    path = source_file(folders[PACKAGE.name], f"{DATA}/sunspots/sunspots.csv")
    years, values = [], []
    for number, (year, value) in enumerate(read_csv(path, ("YEAR", "SUNACTIVITY")), 2):
        years.append(int(_number(year, path, number)))
        values.append(_number(value, path, number))
        if len(years) > 1 and years[-1] != years[-2] + 1:
            raise SourceFormatError(
                f"{path} line {number}: {years[-1]} does not follow {years[-2]}."
            )
    examples = [
        {
            "series": [[v] for v in values[i - SUNSPOTS_WINDOW : i]],
            "target": values[i],
            "year": years[i],
        }
        for i in range(SUNSPOTS_WINDOW, len(values))
    ]
    chronological_splits(examples)
    stats = {"years": len(years), "first_year": years[0], "last_year": years[-1]}
    stats.update(_target_moments(examples))
    return Parsed(examples, stats)


def parse_co2(folders):
    path = source_file(folders[PACKAGE.name], f"{DATA}/co2/co2.csv")
    dates, values = [], []
    for number, (date, value) in enumerate(read_csv(path, ("date", "co2")), 2):
        try:
            day = datetime.datetime.strptime(date, "%Y%m%d").date()
        except ValueError:
            raise SourceFormatError(f"{path} line {number}: {date!r} is not YYYYMMDD.") from None
        if dates and day - dates[-1] != datetime.timedelta(weeks=1):
            raise SourceFormatError(f"{path} line {number}: {day} is not a week after {dates[-1]}.")
        dates.append(day)
        values.append(_number(value, path, number) if value.strip() else None)
    examples = []
    for i in range(CO2_WINDOW, len(values)):
        if values[i] is None:
            continue
        window = values[i - CO2_WINDOW : i]
        examples.append(
            {
                "series": [[0.0 if v is None else v] for v in window],
                "observed": [0 if v is None else 1 for v in window],
                "target": values[i],
                "date": dates[i].isoformat(),
            }
        )
    chronological_splits(examples)
    stats = {
        "weeks": len(values),
        "missing_weeks": values.count(None),
        "first_week": dates[0].isoformat(),
        "last_week": dates[-1].isoformat(),
        "windows_without_target": len(values) - CO2_WINDOW - len(examples),
        "windows_with_missing_input": sum(1 for e in examples if 0 in e["observed"]),
    }
    stats.update(_target_moments(examples))
    return Parsed(examples, stats)


SUNSPOTS_WINDOWS = DatasetSpec(
    name="sunspots_windows",
    task="forecasting",
    language="-",
    description="the yearly sunspot numbers of 32 years and the next year's number",
    size="277 windows",
    license=LICENSE,
    sources=(PACKAGE,),
    features={
        "series": Feature("float32", "sunspot numbers of the 32 years before `year`",
                          shape=(SUNSPOTS_WINDOW, 1)),
        "target": Feature("float32", "the sunspot number of `year`"),
        "year": Feature("int64", "the year forecast, 1732..2008; the key"),
    },
    parse=parse_sunspots,
    key=("year",),
)

CO2_WEEKLY = DatasetSpec(
    name="co2_weekly",
    task="forecasting",
    language="-",
    description=(
        "52 weeks of Mauna Loa CO2 (ppmv) with the weeks missing in the source masked, "
        "and the next week's value"
    ),
    size="2,190 windows",
    license=LICENSE,
    sources=(PACKAGE,),
    features={
        "series": Feature("float32", "weekly CO2 (ppmv) of the 52 weeks before `date`, "
                          "0.0 where missing", shape=(CO2_WINDOW, 1)),
        "observed": Feature("int64", "1 = measured, 0 = missing in the source (a real "
                            "missingness mask)", shape=(CO2_WINDOW,)),
        "target": Feature("float32", "CO2 (ppmv) of the week of `date`, always measured"),
        "date": Feature("string", "the week forecast (its Saturday, YYYY-MM-DD); the key"),
    },
    parse=parse_co2,
    key=("date",),
)
