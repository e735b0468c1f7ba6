"""Named-entity recognition (issue 25): the token_classifier family from the
command line to entities, its data contract and its refusals.

Journeys: a CoNLL file and `wnut16` each train from the CLI, `predict` prints
the entities of raw text with character offsets, and the exported SavedModel
serves the same entities in a process without tfmask. Contract: the tag set
and scheme come from the training split into config.yaml, every word is
scored once however long its document, characters carry the tags of
Chinese words. Refusals: one line each, before training."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import yaml

from tests.journeys import one_error_line, train_cli
from tests.tasks.test_user_data import CITY, DAY, FIRST, LAST, write_config, write_conll
from tests.test_serving import served
from tests.tiny import tiny_config
from tfmask.data import features as F
from tfmask.data.pipeline import tokenize_batch
from tfmask.errors import ConfigError, RunError
from tfmask.predict import Predictor
from tfmask.tasks import build_task, config_from_dict, load_config

ENTITY_LINE = "{}\t{}\t[{}, {})\t{:.3f}"


def served_lines(run, texts):
    """The SavedModel's entities (fresh process, no tfmask), printed as predict prints them."""
    output = served(run, texts)
    assert not output["tfmask_imported"]
    lines = []
    for row in range(len(texts)):
        count = output["entity_count"][row]
        lines.append([ENTITY_LINE.format(*(output[k][row][i] for k in (
            "entity_types", "entity_texts", "entity_starts", "entity_ends", "entity_scores")))
            for i in range(count)] or ["no entities"])
    return lines


def ner_files(folder, extra_validation=()):
    write_conll(folder / "train.conll", 300, seed=0)
    write_conll(folder / "validation.conll", 24, seed=1)
    write_conll(folder / "test.conll", 24, seed=2)
    if extra_validation:
        with open(folder / "validation.conll", "a") as f:
            f.write("\n".join(extra_validation) + "\n\n")
    return f"file:{folder}/{{split}}.conll"


def ner_config(name, **sections):
    values = tiny_config("token_classifier", **sections)
    values["data"] = {**values["data"], "name": name, "words_key": "words"}
    return values


@pytest.mark.journey
def test_a_conll_file_trains_predicts_entities_and_serves_the_same(tmp_path, capsys):
    name = ner_files(tmp_path)
    config = write_config(tmp_path / "ner.yaml", model={"family": "token_classifier"},
                          data={"name": name, "words_key": "words", "sequence_length": 16},
                          train={"steps": 60, "extra_eval_splits": ["test"]},
                          runtime={"export": True})
    code, out, err = train_cli(capsys, config, tmp_path / "run")
    assert code == 0, err[-3000:]
    saved = yaml.safe_load(open(tmp_path / "run" / "config.yaml"))
    assert saved["model"]["tags"] == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert saved["data"]["tag_scheme"] == "bio"
    final = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")][-1]
    for split in ("eval", "test"):  # learned: names and cities are where they always are
        assert final[f"{split}_entity_f1"] > 0.9, final
        assert {f"{split}_f1_PER", f"{split}_f1_LOC", f"{split}_accuracy"} <= set(final)

    text = f"{FIRST[0]} {LAST[1]} visited {CITY[2]} on {DAY[0]} ."
    start = len(f"{FIRST[0]} {LAST[1]} visited ")
    predictor = Predictor(str(tmp_path / "run"))
    found = predictor.task.entities(predictor.model, text)
    assert [(kind, words, s, e) for kind, words, s, e, _ in found] == [
        ("PER", f"{FIRST[0]} {LAST[1]}", 0, len(f"{FIRST[0]} {LAST[1]}")),
        ("LOC", CITY[2], start, start + len(CITY[2]))]
    # Offsets count characters, not bytes: "é" is 2 bytes before the city.
    texts = [text, text.replace("visited", "visité")]
    predicted = [predictor.predict(t) for t in texts]
    for written, lines in zip(texts, predicted):
        for line in lines:
            kind, words, span, _ = line.split("\t")
            begin, end = (int(x) for x in span.strip("[)").split(", "))
            assert written[begin:end] == words
    assert f"LOC\t{CITY[2]}\t[{start - 1}, " in "\n".join(predicted[1])
    assert served_lines(str(tmp_path / "run"), texts) == predicted


@pytest.mark.journey
def test_wnut16_trains_from_the_cli_and_predicts_entities(tmp_path, capsys):
    # (The CoNLL journey above compares the SavedModel with predict; here predict alone.)
    config = write_config(tmp_path / "ner.yaml", model={"family": "token_classifier"},
                          data={"name": "wnut16", "words_key": "words", "window_stride": 10},
                          train={"steps": 8},
                          runtime={"export": True, "export_saved_model": False})
    code, out, err = train_cli(capsys, config, tmp_path / "run")
    assert code == 0, err[-3000:]
    final = [json.loads(line) for line in open(tmp_path / "run" / "metrics.jsonl")][-1]
    assert 0 <= final["eval_entity_f1"] <= 1 and "eval_f1_geo-loc" in final
    texts = ["going to see Justin Bieber in London tonight @jb",
             " ".join(["so many words in this long tweet"] * 12)]  # longer than a row
    code = os.system(f"cd {tmp_path} && python -m tfmask.predict --run run "
                     + " ".join(f"--text='{t}'" for t in texts) + " > out.txt 2> err.txt")
    assert code == 0, open(tmp_path / "err.txt").read()[-2000:]
    assert open(tmp_path / "err.txt").read() == ""
    printed = open(tmp_path / "out.txt").read().splitlines()
    predictor = Predictor(str(tmp_path / "run"))
    assert printed == [line for t in texts for line in predictor.predict(t)]


def test_the_tag_set_and_scheme_come_from_the_training_split(tmp_path):
    config = config_from_dict(ner_config("wnut16"))
    assert config.data.tag_scheme == "bio" and config.model.tags[0] == "O"
    assert len(config.model.tags) == 21  # O + B-/I- of WNUT's 10 types
    (tmp_path / "train.conll").write_text("a B-PER\nb E-PER\n\nd S-LOC\n\n")
    with pytest.raises(RunError, match="has E-/S- tags, which data.tag_scheme=bio does not use"):
        config_from_dict(ner_config(f"file:{tmp_path}/{{split}}.conll",
                                    data={"tag_scheme": "bio"}))
    (tmp_path / "train.conll").write_text("a I-PER\nb I-PER\nc B-PER\n\nd O\n\n")
    assert config_from_dict(ner_config(f"file:{tmp_path}/{{split}}.conll")).data.tag_scheme \
        == "iob1"  # an I- opens an entity: IOB1, read the way conlleval reads it
    (tmp_path / "train.conll").write_text("a B-PER\nb L-PER\nc U-LOC\n\n")
    config = config_from_dict(ner_config(f"file:{tmp_path}/{{split}}.conll"))
    assert config.data.tag_scheme == "bilou"
    assert config.model.tags == ["O", "B-LOC", "I-LOC", "L-LOC", "U-LOC",
                                 "B-PER", "I-PER", "L-PER", "U-PER"]


def test_every_word_of_a_long_document_is_scored_once(tmp_path):
    """Windows, not truncation: a 60-word sentence in rows of 10 pieces."""
    words = [f"w{i}" for i in range(60)]
    tags = ["B-PER" if i % 7 == 0 else "I-PER" if i % 7 == 1 else "O" for i in range(60)]
    lines = [f"{w} NN O {t}" for w, t in zip(words, tags)]
    name = ner_files(tmp_path, extra_validation=lines)
    task = build_task(config_from_dict(ner_config(name, data={"sequence_length": 10})))
    model = task.build_model("float32")
    gold, predicted = task.tag_sequences(model, "validation")
    assert len(gold) == 25 and gold[-1] == tags  # every word, once, in order
    assert [len(row) for row in predicted] == [len(row) for row in gold]
    # Padding and batch-mates change nothing: a text alone = the same text in a batch.
    alone = task.serve(model, tf.constant([" ".join(words)]))
    together = task.serve(model, tf.constant(["a b", " ".join(words), "c"]))
    np.testing.assert_array_equal(alone["tags"][0], together["tags"][1])


@pytest.mark.journey  # trains a vocabulary on all of People's Daily (~20 s)
def test_chinese_characters_carry_their_words_tags():
    values = ner_config("peoples_daily", data={"tag_unit": "character", "sequence_length": 64,
                                               "vocabulary_size": 3000})
    task = build_task(config_from_dict(values))
    assert task.config.model.tags == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    from tfmask.tasks.token_classifier import tagged_documents

    words, tags = tagged_documents(task.config, "validation")[0]
    gold, _ = task.tag_sequences(task.build_model("float32"), "validation")
    expected = [tag if i == 0 or tag == "O" else "I-" + tag[2:]
                for word, tag in zip(words, tags) for i, _ in enumerate(word)]
    assert gold[0] == expected
    text = "".join(words)
    assert len(task.serve(task.build_model("float32"), tf.constant([text]))["tags"][0]) \
        == len(text)


def test_words_and_tags_of_different_lengths_fail_in_the_shared_tokenization():
    batch = {"words": tf.ragged.constant([["a", "b"]]), "tags": tf.ragged.constant([["O"]])}
    task = build_task(config_from_dict(ner_config("wnut16")))
    with pytest.raises(tf.errors.InvalidArgumentError, match="words and tags differ in length"):
        tf.function(lambda b: tokenize_batch(b, task.tokenizer, 16, words_key="words")[
            F.ENTITY_IDS])(batch)


@pytest.mark.parametrize("change,message", [
    ({"data": {"words_key": None}}, "model.family=token_classifier tags words: set "
                                    "data.words_key"),
    ({"data": {"window_stride": 40}}, "data.window_stride=40 must be in [1, 30]"),
    ({"model": {"tags": ["B-PER", "I-PER"]}}, "model.tags=['B-PER', 'I-PER'] must be distinct"),
    ({"masking": {"strategy": "term", "terms": ["x"]}},
     "a token classifier must see the names it tags"),
])
def test_bad_settings_are_refused_in_one_line(change, message):
    values = ner_config("wnut16")
    for section, updates in change.items():
        values[section] = {**values.get(section, {}), **updates}
    with pytest.raises(ConfigError) as error:
        config_from_dict(values)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("family", ["mlm", "classifier"])
def test_other_families_refuse_the_tagging_keys(family):
    values = tiny_config(family, data={"tag_unit": "character"})
    with pytest.raises(ConfigError, match="data.tag_unit applies to model.family="
                                          "token_classifier; remove it"):
        config_from_dict(values)


@pytest.mark.journey
@pytest.mark.parametrize("problem,line,message", [
    ("unknown tag", "oslo NNP B-NP B-ORG", "has the tag 'B-ORG', which the model does not predict"),
    ("lengths", None, "has 2 words but 1 tags"),
    ("stray I-", "oslo NNP B-NP I-LOC", "continues no entity, which data.tag_scheme=bio forbids"),
    ("no tags", None, "has no 'tags' feature"),
])
def test_bad_data_is_refused_before_training_in_one_line(tmp_path, capsys, problem, line,
                                                         message):
    name = ner_files(tmp_path, extra_validation=[line] if line else ())
    data = {"name": name, "words_key": "words"}
    if problem == "stray I-":
        data["tag_scheme"] = "bio"
    if problem == "lengths":
        (tmp_path / "train.jsonl").write_text(
            json.dumps({"text": "a b", "words": ["a", "b"], "tags": ["B-PER"]}) + "\n")
        data = {"name": f"file:{tmp_path}/train.jsonl", "words_key": "words",
                "train_split": "all", "eval_split": "all",
                "dataset_options": {"extra_fields": {"words": "string[None]",
                                                     "tags": "string[None]"}}}
    if problem == "no tags":
        data = {"name": "rotten_tomatoes", "words_key": "text"}
    config = write_config(tmp_path / "ner.yaml", model={"family": "token_classifier"}, data=data)
    code, out, err = train_cli(capsys, config, tmp_path / "run")
    assert code != 0
    assert message in one_error_line(err)
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_a_resolved_config_predicts_without_its_data(tmp_path):
    values = ner_config("wnut16")
    config = config_from_dict(values)
    values["model"]["tags"], values["data"]["tag_scheme"] = config.model.tags, "bio"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(values))
    assert load_config(str(path), check_data=False).model.tags == config.model.tags


def test_inspect_draws_each_words_tag_under_its_first_piece(tmp_path):
    from tfmask.inspect import inspect, piece_tags

    config = write_config(tmp_path / "ner.yaml", model={"family": "token_classifier"},
                          data={"name": "wnut16", "words_key": "words"})
    tokens_png, _ = inspect(str(config), output_dir=str(tmp_path), rows=2)
    assert os.path.getsize(tokens_png) > 10_000
    task = build_task(load_config(str(config)))
    labels = next(iter(task.train))[F.LABELS].numpy()
    tags = piece_tags(labels, task.tags)
    assert ((tags != "") == (labels >= 0)).all()
    assert set(tags[labels >= 0].tolist()) <= set(task.tags)
