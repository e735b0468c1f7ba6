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


def test_conll2003_gives_words_string_tags_and_text():
    """tfds:conll2003 (where the internet reaches it) read for NER: its
    `tokens` become `words`, its class-label `ner` ids the tag names."""
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=4):
        _, info = tfds.load("conll2003", split="train", with_info=True)
        names = info.features["ner"].feature.names
        raw = next(iter(tfds.load("conll2003", split="train")))
        document = next(iter(tfds_source("conll2003", "train", words_feature="tokens",
                                         tags_feature="ner")))
    assert document["words"].numpy().tolist() == raw["tokens"].numpy().tolist()
    assert [t.decode() for t in document["tags"].numpy()] == [
        names[i] for i in raw["ner"].numpy()]
    assert document["text"].numpy() == b" ".join(raw["tokens"].numpy())
    assert "tokens" not in document and "ner" not in document


def test_a_missing_words_feature_is_named():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=2):
        with pytest.raises(SourceError, match="has no feature 'words_of' .* set words_feature"):
            tfds_source("conll2003", "train", words_feature="words_of")
