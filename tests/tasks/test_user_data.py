"""A user's own annotated data reaches the trainer (issue 14): a CoNLL file
trained as an entity-masking MLM from the command line, entity masking
without word-level tags refused in one line, and `tfds:` on a dataset
prepared locally."""

import json
import os
import random

import numpy as np
import pytest
import tensorflow_datasets as tfds
import yaml

from tests.journeys import one_error_line, train_cli
from tests.tasks.test_grid import first_batch, unmasked_tokens
from tests.tiny import tiny_config
from tfmask.data import features as F
from tfmask.tasks import build_task
from tfmask.errors import ConfigError
from tfmask.tasks import config_from_dict, load_config

FIRST = ["anna", "boris", "chen", "dara", "emil", "femi", "gita", "hugo"]
LAST = ["berg", "okafor", "lindqvist", "moreau", "tanaka", "silva", "novak", "haddad"]
CITY = ["paris", "lagos", "uppsala", "lima", "osaka", "quito", "tunis", "oslo"]
DAY = ["monday", "tuesday", "friday", "sunday"]




def write_config(path, **sections):
    """A tiny config (tests/tiny.py) with these sections, as a YAML file."""
    path.write_text(yaml.safe_dump(tiny_config(**sections)))
    return path


def write_conll(path, sentences, seed):
    """CoNLL-2003 layout (token POS chunk NER): "<first> <last> visited <city>
    on <day> ." with a two-word PER and a one-word LOC entity (BIO)."""
    rng = random.Random(seed)
    lines = ["-DOCSTART- -X- -X- O", ""]
    for _ in range(sentences):
        words = [rng.choice(FIRST), rng.choice(LAST), "visited", rng.choice(CITY), "on",
                 rng.choice(DAY), "."]
        tags = ["B-PER", "I-PER", "O", "B-LOC", "O", "O", "O"]
        pos = ["NNP", "NNP", "VBD", "NNP", "IN", "NNP", "."]
        chunk = ["B-NP", "I-NP", "B-VP", "B-NP", "B-PP", "B-NP", "O"]
        lines += [" ".join(columns) for columns in zip(words, pos, chunk, tags)] + [""]
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.journey
def test_a_conll_file_trains_an_entity_masking_mlm_that_masks_exactly_the_entities(
        tmp_path, capsys):
    write_conll(tmp_path / "train.conll", 400, seed=0)  # every name frequent enough for
    # the trained vocabulary to keep it whole
    write_conll(tmp_path / "validation.conll", 16, seed=1)
    # Budget: 7 candidates * 0.5 -> 4, capped at 3 = the 3 entity tokens (2 PER + 1 LOC).
    config = write_config(tmp_path / "ner.yaml", model={"family": "mlm"},
                          data={"name": f"file:{tmp_path}/{{split}}.conll", "words_key": "words"},
                          masking={"strategy": "entity", "rate": 0.5, "max_predictions": 3})
    code, out, err = train_cli(capsys, config, tmp_path / "run", "train.steps=2",
                           "train.log_every=1")
    assert code == 0, err[-3000:]
    metrics = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    assert [m["step"] for m in metrics if "train_loss" in m] == [1, 2]
    assert any(np.isfinite(m.get("eval_loss", np.nan)) for m in metrics)

    # The run's resolved config -> its first training batch.
    task = build_task(load_config(str(tmp_path / "run" / "config.yaml")))
    batch = first_batch(task)
    plain = {k: v.numpy() for k, v in unmasked_tokens(task).items() if k != F.WORDS}
    entity_tokens = plain[F.ENTITY_IDS] >= 0
    assert (entity_tokens.sum(1) == 3).all(), "every sentence has 3 entity word pieces"
    rows = np.arange(batch[F.TOKEN_IDS].shape[0])[:, None]
    chosen = np.zeros_like(entity_tokens)
    chosen[rows, batch[F.MASK_POSITIONS]] = batch[F.MASK_WEIGHTS] > 0
    assert np.array_equal(chosen, entity_tokens)  # exactly the entity words' tokens
    originals = plain[F.TOKEN_IDS][rows, batch[F.MASK_POSITIONS]]
    assert np.array_equal(batch[F.MASK_IDS], np.where(batch[F.MASK_WEIGHTS] > 0, originals, 0))
    names = [task.tokenizer.id_to_token(int(t)) for t in plain[F.TOKEN_IDS][0][entity_tokens[0]]]
    assert names[0] in FIRST and names[1] in LAST and names[2] in CITY


def test_the_conll2003_fixture_trains_as_a_pool_with_format_conll(tmp_path, capsys):
    """CoNLL-2003 ships `train.txt`: `format: conll` reads it; IOB1 tags work."""
    fixture = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures",
                           "conll2003_sample.txt")
    config = write_config(
        tmp_path / "conll.yaml", model={"family": "mlm"},
        data={"name": f"file:{fixture}", "words_key": "words", "train_split": "all",
              "eval_split": "all", "batch_size": 4, "eval_batch_size": 4,
              "dataset_options": {"format": "conll"}},
        masking={"strategy": "entity", "rate": 0.3, "max_predictions": 4})
    config_values = load_config(str(config))
    task = build_task(config_values)
    plain = unmasked_tokens(task)
    assert (plain[F.ENTITY_IDS].numpy() >= 0).any()


def test_wnut16_entity_masking_without_words_key_is_refused_in_one_line(tmp_path, capsys):
    config = write_config(tmp_path / "wnut.yaml", model={"family": "mlm"},
                          data={"name": "wnut16"}, masking={"strategy": "entity"})
    code, _, err = train_cli(capsys, config, tmp_path / "run")
    line = one_error_line(err)
    assert code == 2
    assert "masking.strategy=entity needs word-level entity tags: set data.words_key" in line
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_entity_masking_on_a_file_without_tags_is_one_line_naming_extra_fields(tmp_path, capsys):
    data = tmp_path / "ner.jsonl"
    data.write_text("".join(json.dumps({"text": f"a b {i}", "words": ["a", "b", str(i)]}) + "\n"
                            for i in range(20)))
    config = write_config(
        tmp_path / "ner.yaml", model={"family": "mlm"},
        data={"name": f"file:{data}", "words_key": "words", "train_split": "all",
              "eval_split": "all", "dataset_options": {"extra_fields": ["words"]}},
        masking={"strategy": "entity"})
    code, _, err = train_cli(capsys, config, tmp_path / "run")
    line = one_error_line(err)
    assert code == 2
    assert "has no 'tags' feature, but masking.strategy=entity needs" in line
    assert "declare them in data.dataset_options.extra_fields" in line
    # Without any dataset_options the missing words are named the same way.
    code, _, err = train_cli(capsys, config, tmp_path / "run", "data.dataset_options={}")
    assert "has no 'words' or 'tags' feature" in one_error_line(err)


def test_words_key_config_validation_still_refuses_entity_without_it(tiny_config):
    values = tiny_config("mlm", data={"name": "wnut16"}, masking={"strategy": "entity"})
    with pytest.raises(ConfigError, match="set data.words_key"):
        config_from_dict(values)


# ------------------------------------------------------------ tfds on a local dataset
class TinyUserReviews(tfds.core.GeneratorBasedBuilder):
    """Two-class "reviews" generated in code: a real TFDS builder, prepared
    into a temporary data_dir, so `tfds:` is tested without a download."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return self.dataset_info_from_configs(features=tfds.features.FeaturesDict({
            "text": tfds.features.Text(),
            "label": tfds.features.ClassLabel(num_classes=2)}))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(160, 0),
                "validation": self._generate_examples(32, 1)}

    def _generate_examples(self, count, seed):
        rng = random.Random(seed)
        good, bad = ["great", "lovely", "superb"], ["awful", "dull", "bad"]
        for i in range(count):
            label = i % 2
            word = rng.choice(good if label else bad)
            yield i, {"text": f"the film was {word} and the cast {word} too", "label": label}


def test_tfds_dataset_prepared_in_a_data_dir_trains_a_classifier(tmp_path, capsys):
    data_dir = tmp_path / "tfds"
    TinyUserReviews(data_dir=str(data_dir)).download_and_prepare()
    config = write_config(
        tmp_path / "reviews.yaml", model={"family": "classifier", "num_classes": 2},
        data={"name": "tfds:tiny_user_reviews",
              "dataset_options": {"data_dir": str(data_dir), "download": False}},
        masking={"strategy": "none"})
    code, _, err = train_cli(capsys, config, tmp_path / "run")
    assert code == 0, err[-3000:]
    metrics = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")]
    evaluated = [m for m in metrics if "eval_accuracy" in m]
    assert evaluated and 0 <= evaluated[-1]["eval_accuracy"] <= 1
    assert [m["step"] for m in metrics if "train_loss" in m] == [2, 4]
