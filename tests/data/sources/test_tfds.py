"""TFDS splits (`tfmask.data.sources.tfds`), offline through TFDS's mock data."""

import pytest
import tensorflow as tf

from tfmask.data import features as F
from tfmask.data.sources import SourceError, tfds_source


def test_tfds_source_with_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=7):
        docs = tfds_source("imdb_reviews", "train")
        got = list(docs)
        assert len(got) + docs.stats.empty == 7
        assert set(got[0]) == {F.TEXT, "label"} and got[0][F.TEXT].dtype == tf.string
        with pytest.raises(SourceError, match=r"imdb_reviews\[train\] has no feature 'body'"):
            tfds_source("imdb_reviews", "train", text_key="body")
        with pytest.raises(ValueError, match="drop as_supervised="):
            tfds_source("imdb_reviews", "train", as_supervised=True)
