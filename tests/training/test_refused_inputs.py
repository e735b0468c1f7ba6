"""Inputs that used to crash, hang or mislead are refused before any work,
in one line naming the key, the problem and the fix (issue 30, "Inputs that
still crash, hang or mislead"; numbered as there). Every refusal here
happens before training: nothing trains."""

import dataclasses
import json
import math
import os
import re

import pytest

from tests.journeys import one_error_line, train_cli
from tests.tiny import tiny_config, tiny_sets
from tfmask.config import Config, ConfigError, read_config_values
from tfmask.tasks import STRATEGIES, TASKS, config_from_dict, load_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = os.path.join(REPO, "tests", "configs", "tiny_mlm.yaml")


def blank(tmp_path):
    """A config file with nothing in it: `--set` values say everything."""
    path = tmp_path / "blank.yaml"
    path.write_text("{}\n")
    return path


def refused(capsys, tmp_path, *sets, config=TINY):
    """The one `error:` line of a command line that must stop with exit 2,
    and that must not have trained (no checkpoint, no metrics)."""
    code, _, err = train_cli(capsys, config, tmp_path / "run", *sets)
    line = one_error_line(err)
    assert code == 2, err[-3000:]
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
    return line


# ------------------------------------------------------------ 1. sizes that cannot work
@pytest.mark.parametrize("sets,message", [
    (["model.num_heads=0"], "model.num_heads=0 must be > 0"),
    (["model.decoder_num_layers=0"], "model.decoder_num_layers=0 must be > 0"),
    (["masking.patch_size=0"], "masking.patch_size=0 must be > 0"),
    (["model.num_layers=10000"], "model.num_layers=10000 is more than the 1000 blocks tfmask "
                                 "builds"),
])
def test_1_sizes_that_cannot_be_built_are_refused(capsys, tmp_path, sets, message):
    assert message in refused(capsys, tmp_path, *sets)


@pytest.mark.parametrize("sets,lead,lower", [
    (["data.batch_size=1000000000"], "data.batch_size=1000000000, data.sequence_length=32",
     "lower data.batch_size, data.sequence_length or model.num_layers"),
    (["data.sequence_length=100000"], "data.sequence_length=100000, data.batch_size=8",
     "lower data.sequence_length, data.batch_size or model.num_heads"),
])
def test_1_a_step_larger_than_the_machine_is_refused(capsys, tmp_path, sets, lead, lower):
    line = refused(capsys, tmp_path, *sets)
    assert line.startswith(f"error: {lead} need at least ")
    assert "more than this machine's" in line and lower in line


def test_1_a_trained_run_predicts_on_a_smaller_machine():
    """The memory check is for training here: a run's config read to predict
    (check_data=False) is not measured against this machine."""
    values = tiny_config("mlm", data={"batch_size": 10**9})
    assert config_from_dict(values, check_data=False).data.batch_size == 10**9
    with pytest.raises(ConfigError, match="more than this machine's"):
        config_from_dict(values)


def test_1_the_memory_estimate_names_the_largest_part():
    from tfmask.tasks.memory import StepMemory, check_step_memory

    config = config_from_dict(tiny_config("mlm"))
    memory = StepMemory(parameters=10**9, activations=1, attention=1, blocks=1)
    with pytest.raises(ConfigError, match=r"^model.num_layers=1, model.hidden_dim=32 need at "
                                          r"least 14.9 GiB .* than this machine's 1.0 GiB"):
        check_step_memory(config, memory, available=2**30)
    check_step_memory(config, memory, available=2**40)  # fits: nothing to say
    deep = StepMemory(parameters=1, activations=1, attention=1, blocks=1000)
    with pytest.raises(ConfigError, match=r"^model.num_layers=1 needs at least 7.8 GiB .* "
                                          r"7.8 GiB layers and graph\), .*; lower "
                                          r"model.num_layers\.$"):
        check_step_memory(config, deep, available=2**30)


def test_1_every_shipped_config_fits_a_small_machine():
    """The estimate is a lower bound: no shipped config comes near 2 GiB, so
    none is refused on a laptop (they all train on 2 CPU cores)."""
    from tfmask.tasks.memory import check_step_memory

    for path in sorted(os.listdir(os.path.join(REPO, "configs"))):
        if path.endswith(".yaml"):
            config = load_config(os.path.join(REPO, "configs", path), check_data=False)
            check_step_memory(config, TASKS.get(config.model.family).step_memory(config),
                              available=2 * 2**30)


@pytest.mark.parametrize("family,sections,message", [
    ("mlm", {"data": {"sequence_length": 2}},
     "data.sequence_length=2 leaves no room for a token besides [CLS] and [SEP]; "
     "model.family=mlm needs at least 3"),
    ("classifier", {"data": {"sequence_length": 2}}, "model.family=classifier needs at least 3"),
    ("causal_lm", {"data": {"sequence_length": 1}},
     "data.sequence_length=1 leaves no room for a token besides [SEP]; "
     "model.family=causal_lm needs at least 2"),
    ("seq2seq_transformer", {"data": {"sequence_length": 1}},
     "model.family=seq2seq_transformer needs at least 2"),
    ("seq2seq_lstm", {"data": {"target_length": 1}},
     "data.target_length=1 leaves no room for a target token besides [SEP]"),
    ("seq2seq_transformer", {"data": {"name": "austen", "sequence_length": 2},
                             "masking": {"strategy": "span_corruption"}},
     "data.sequence_length=2 is too short for span_corruption"),
])
def test_1_a_sequence_too_short_for_the_family_is_refused(capsys, tmp_path, family, sections,
                                                          message):
    line = refused(capsys, tmp_path, *tiny_sets(family, **sections), config=blank(tmp_path))
    assert message in line


# ------------------------------------------------------------ 2. no YAML aliases
BILLION_LAUGHS = "\n".join(
    ["model: {family: mlm}", "data:", "  name: austen", "  dataset_options:",
     "    a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    + [f"    a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, "
       f"*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 9)]) + "\n"


def test_2_a_config_with_aliases_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "laughs.yaml"
    path.write_text(BILLION_LAUGHS)  # 10^9 leaves under data.dataset_options
    with pytest.raises(ConfigError) as error:
        read_config_values(str(path))
    assert str(error.value).startswith(f"{path} line 5 uses a YAML anchor or alias")


def test_2_aliases_are_refused_on_the_command_line(capsys, tmp_path):
    config = tmp_path / "terms.yaml"
    config.write_text(open(TINY).read().replace(
        "masking: {strategy: whole_word,",
        "masking: {strategy: term, terms: &t [the, a], patterns: *t,"))
    assert f"{config} line 4 uses a YAML anchor or alias" in refused(capsys, tmp_path,
                                                                     config=config)
    line = refused(capsys, tmp_path, "masking.strategy=term", "masking.terms=[&t the, *t]")
    assert "--set 'masking.terms=[&t the, *t]' uses a YAML anchor or alias" in line


# ------------------------------------------------------------ 3. file: source options
def test_3_a_misspelt_file_source_option_is_one_line(capsys, tmp_path):
    data = tmp_path / "words.jsonl"
    data.write_text("".join(json.dumps({"text": f"word {i}"}) + "\n" for i in range(20)))
    line = refused(capsys, tmp_path, f"data.name=file:{data}",
                   "data.dataset_options={text_feild: words}")
    assert ("data.dataset_options.text_feild is not an option of file: sources; did you mean "
            "text_field? They take text_field, label_field, extra_fields") in line


# ------------------------------------------------------------ 4. NaN in dense data
def write_dense_rows(path, bad_row):
    with open(path, "w", encoding="utf-8") as f:
        for i in range(120):
            features = [0.5, 1.5, float("nan") if i == bad_row else 2.5]
            f.write(json.dumps({"text": f"row {i}", "features": features, "label": i % 2})
                    + "\n")
    return path


def dense_file_sets(path):
    return tiny_sets("dense_classifier", model={"num_classes": 2}, data={
        "name": f"file:{path}", "inputs_key": "features",
        "dataset_options": {"extra_fields": {"features": "float32[None]"},
                            "label_field": "label"}})


@pytest.mark.integration  # builds the task: the values are checked as the data is read
def test_4_nan_in_a_dense_feature_names_the_feature_and_the_row(capsys, tmp_path):
    path = write_dense_rows(tmp_path / "rows.jsonl", bad_row=57)
    line = refused(capsys, tmp_path, *dense_file_sets(path), config=blank(tmp_path))
    assert re.search(r"data.inputs_key='features' holds NaN or Inf in example \d+ \(text: "
                     r"'row 57'\) of data.name=file:\S+ split 'train'", line), line


# ------------------------------------------------------------ 5. NaN / Inf settings
@pytest.mark.parametrize("setting", ["optimizer.clipnorm=.nan", "optimizer.learning_rate=.nan",
                                     "optimizer.learning_rate=.inf"])
def test_5_nan_and_inf_settings_are_refused(capsys, tmp_path, setting):
    key, value = setting.split("=")
    shown = {".nan": "nan", ".inf": "inf"}[value]
    assert f"{key}={shown} is not a finite number" in refused(capsys, tmp_path, setting)


def float_keys():
    """Every float setting of the schema, as section.key."""
    keys = []
    for section in dataclasses.fields(Config):
        for field in dataclasses.fields(section.type):
            if "float" in str(field.type):
                keys.append(f"{section.name}.{field.name}")
    return keys


@pytest.mark.parametrize("key", float_keys())
def test_5_every_float_setting_must_be_finite(key):
    section, name = key.split(".")
    values = tiny_config("mlm")
    values[section] = {**values.get(section, {}), name: math.nan}
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}=nan is not a finite number"):
        config_from_dict(values)


# ------------------------------------------------------------ 6. ~ is the home folder
@pytest.mark.integration  # builds the task (which refuses the data) after creating the folder
def test_6_output_dir_and_data_paths_expand_the_home_folder(capsys, tmp_path, monkeypatch):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    write_dense_rows(home / "rows.jsonl", bad_row=3)  # refused once the folder exists
    code, _, err = train_cli(capsys, blank(tmp_path), "~/runs/dense",
                             *dense_file_sets("~/rows.jsonl"))
    assert code == 2 and "holds NaN or Inf" in one_error_line(err)
    assert (home / "runs" / "dense").is_dir()
    assert not (work / "~").exists()


def test_6_config_paths_expand_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "data.jsonl").write_text('{"text": "a b c"}\n')
    (tmp_path / "tiny.yaml").write_text(open(TINY).read())
    config = load_config("~/tiny.yaml", ["data.name=file:~/data.jsonl",
                                         "runtime.output_dir=~/runs/mlm"])
    assert config.data.name == f"file:{tmp_path}/data.jsonl"
    assert config.runtime.output_dir == f"{tmp_path}/runs/mlm"


def test_6_predict_expands_the_run_folder(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    code, err = predict_cli(capsys, "--run", "~/runs/mlm", "--text", "a [MASK] .")
    assert code == 2 and f"{tmp_path}/runs/mlm has no export/model.keras" in one_error_line(err)


# ------------------------------------------------------------ 7. predict --top_k
def predict_cli(capsys, *argv):
    """`python -m tfmask.predict` in this process: (exit code, stderr)."""
    from tfmask import predict

    predict.FLAGS.unparse_flags()
    try:
        predict.FLAGS(["tfmask.predict", *argv])
        code = predict.main(["tfmask.predict"])
    finally:
        predict.FLAGS.unparse_flags()
    return code, capsys.readouterr().err


@pytest.mark.parametrize("flag,message", [
    ("--top_k=0", "--top_k=0 must be >= 1 (candidates printed per [MASK])"),
    ("--num_beams=0", "--num_beams=0 must be >= 1"),
])
def test_7_predict_refuses_an_empty_search(capsys, tmp_path, flag, message):
    code, err = predict_cli(capsys, "--run", str(tmp_path), "--text", "a [MASK] .", flag)
    assert code == 2 and message in one_error_line(err)


# ------------------------------------------------------------ 8. refusals say why
REFUSED = [(family, strategy) for family in TASKS.names() for strategy in STRATEGIES
           if strategy not in TASKS.get(family).strategies]


def names(strategy, text):
    """Whether `text` names `strategy` as a word (span is not span_corruption)."""
    return re.search(rf"(?<![\w.]){strategy}(?!\w)", text) is not None


@pytest.mark.parametrize("family,strategy", REFUSED, ids=[f"{f}-{s}" for f, s in REFUSED])
def test_8_each_refused_pair_gives_that_strategys_reason(family, strategy):
    with pytest.raises(ConfigError) as error:
        config_from_dict(tiny_config(family, masking={"strategy": strategy}))
    message = str(error.value)
    head = f"model.family={family} does not support masking.strategy={strategy} ("
    assert message.startswith(head) and "\n" not in message, message
    reason = message[len(head):message.rindex("); supported: ")]
    assert names(strategy, reason), reason
    others = [s for s in STRATEGIES if s != strategy and s not in TASKS.get(family).strategies]
    assert not [s for s in others if names(s, reason)], reason


def test_8_a_classifier_refuses_prompt_for_prompts_not_for_entity_tags():
    with pytest.raises(ConfigError) as error:
        config_from_dict(tiny_config("classifier", masking={"strategy": "prompt"}))
    assert "causal LM" in str(error.value) and "entity" not in str(error.value)
