"""Small files for the source tests, and what the sources read from them."""

import os

from tfmask.data import features as F

BAD = b"caf\xe9 au lait"  # Latin-1 "é": not UTF-8
REPLACED = "caf\ufffd au lait"
CONLL2003_SAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
                                "fixtures", "conll2003_sample.txt")


def write(tmp_path, name, data):
    """Writes `data` (bytes, or str as UTF-8) to tmp_path/name; returns the path."""
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return str(path)


def texts(dataset):
    return [d[F.TEXT].numpy().decode("utf-8") for d in dataset]
