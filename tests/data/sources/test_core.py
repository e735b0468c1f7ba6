"""What every source shares (`tfmask.data.sources.core`): paths and globs,
errors when a source is built, counts, and plain unbatched output. Shown
through `text_files`, the simplest reader."""

import numpy as np
import pytest
import tensorflow as tf

from tfmask.data import features as F
from tfmask.data.sources import SourceError, resolve_paths, text_files
from tests.data.sources.helpers import write


def test_resolve_paths(tmp_path):
    a = write(tmp_path, "a.txt", "a")
    write(tmp_path, "b.txt", "b")
    assert resolve_paths(tmp_path / "a.txt") == [a]
    assert [p.rsplit("/", 1)[1] for p in resolve_paths([str(tmp_path / "*.txt"), a])] == [
        "a.txt", "b.txt", "a.txt"]


def test_missing_paths_fail_when_the_source_is_built(tmp_path):
    with pytest.raises(SourceError, match=r"File not found: '.*nope.txt'; check the path"):
        text_files(str(tmp_path / "nope.txt"))
    with pytest.raises(SourceError, match=r"No file matches '.*\*.jsonl'"):
        text_files(str(tmp_path / "*.jsonl"))
    with pytest.raises(SourceError, match="is a directory; pass a glob"):
        text_files(str(tmp_path))
    with pytest.raises(SourceError, match="No input paths"):
        text_files([])


def test_on_decode_error_must_be_a_mode():
    with pytest.raises(ValueError, match="on_decode_error='ignore' is not one of"):
        text_files("x", on_decode_error="ignore")


def test_stats_accumulate_over_epochs_and_reset(tmp_path):
    docs = text_files(write(tmp_path, "a.txt", "a\n\nb\n"))
    list(docs)
    list(docs)
    assert (docs.stats.documents, docs.stats.empty) == (4, 2)
    assert str(docs.stats) == "4 documents (dropped: 2 empty, 0 undecodable; 0 with replaced bytes)"
    docs.stats.reset()
    list(docs)
    assert docs.stats.documents == 2


def test_sources_feed_a_tokenizer_style_pipeline(tmp_path):
    """Sources end in plain unbatched dicts: batch, map, unbatch all work."""
    path = write(tmp_path, "a.txt", "\n".join(f"doc {i} " * (i + 1) for i in range(10)))
    words = text_files(path).batch(4).map(lambda d: tf.strings.split(d[F.TEXT])).unbatch()
    lengths = [int(tf.size(w)) for w in words]
    assert lengths == [2 * (i + 1) for i in range(10)]
    assert np.sum(lengths) == 110
