"""Configs: every bad value fails before work starts, in one line naming the key."""

import pytest
import yaml

from tfmask.config import apply_overrides
from tfmask.errors import ConfigError
from tfmask.tasks import TASKS, config_from_dict, load_config


def padding_free(config):
    return TASKS.get(config.model.family).padding_free(config)

BASE = {"model": {"family": "mlm"}, "data": {"name": "austen"}}


def with_(section, **values):
    config = {k: dict(v) for k, v in BASE.items()}
    config.setdefault(section, {}).update(values)
    return config


@pytest.mark.parametrize("values,message", [
    (with_("model", num_layer=4), r"Unknown key model.num_layer; did you mean model.num_layers\?"),
    (with_("modle_extra", x=1), r"Unknown key modle_extra"),
    (with_("model", num_layers="four"), r"model.num_layers must be int, got str 'four'"),
    (with_("model", num_layers=True), r"model.num_layers must be int, got bool"),
    (with_("masking", rate=1.5), r"masking.rate=1.5 must be between 0 and 1"),
    (with_("masking", mask_ratio=0.9, random_ratio=0.2), r"mask_ratio \+ masking.random_ratio"),
    (with_("model", num_heads=3), r"model.num_heads=3 does not divide model.hidden_dim=256"),
    (with_("data", name=""), r"data.name is empty"),
    (with_("data", name="file:/no/such/file.txt"), r"does not exist; fix the path"),
    (with_("data", name="file:/no/such/{split}.jsonl"), r"'/no/such/train.jsonl', which does not"),
    (with_("model", family="gpt"), r"model.family='gpt' is not one of"),
    (with_("runtime", precision="fp8"), r"runtime.precision='fp8' is not one of"),
    (with_("masking", strategy="span_corruption"), r"model.family=mlm does not support "
     r"masking.strategy=span_corruption \(span_corruption replaces spans by sentinels that an "
     r"encoder-decoder \(T5\) writes out; a masked LM hides spans with span\); supported: "
     r"random, whole_word, span, entity, term\."),
    (with_("masking", strategy="term"), r"masking.strategy=term needs masking.terms or "
     r"masking.patterns\."),
    (with_("data", batch_size=0), r"data.batch_size=0 must be > 0"),
    (with_("schedule", warmup_steps=5000), r"warmup_steps=5000 exceeds train.steps=1000"),
    (with_("data", vocabulary="pretrained"), r"data.vocabulary=pretrained needs model.pretrained"),
    (with_("data", name="austin"), r"data.name='austin' is not a known dataset; did you mean austen\?"),
    (with_("data", name="austen+wrdnet"), r"data.name='wrdnet' is not a known dataset"),
    (with_("model", pretrained="/no/such/folder"), r"model.pretrained='/no/such/folder' is "
                                                   r"neither minilm, a folder"),
    (with_("model", family="classifier", num_classes=1), r"model.num_classes=1 must be >= 2"),
    (with_("model", dropout=1.0), r"model.dropout=1.0 must be in \[0, 1\)"),
    ({**with_("model", padding_free=True), "runtime": {"strategy": "tpu"}},
     r"model.padding_free=true is not available on TPUs"),
])
def test_bad_configs_get_one_line_messages(values, message):
    with pytest.raises(ConfigError, match=message) as info:
        config_from_dict(values)
    assert "\n" not in str(info.value)


def test_defaults_overrides_and_yaml_round_trip(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(BASE))
    config = load_config(str(path), ["model.num_layers=2", "optimizer.learning_rate=3e-4",
                                     "train.extra_eval_splits=[test, train]"])
    assert config.model.num_layers == 2
    assert config.optimizer.learning_rate == pytest.approx(3e-4)
    assert config.train.extra_eval_splits == ["test", "train"]
    assert config.data.name == "austen" and config.masking.rate == 0.15


def test_override_and_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="section.key=value"):
        apply_overrides({}, ["model.num_layers"])
    with pytest.raises(ConfigError, match="must name section.key"):
        apply_overrides({}, ["num_layers=2"])
    with pytest.raises(ConfigError, match="does not exist; see configs/"):
        load_config(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(str(bad))


def test_every_shipped_config_validates():
    import glob
    import os

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    paths = sorted(glob.glob(os.path.join(root, "configs", "*.yaml")))
    assert len(paths) >= 7
    # Step 2 of a recipe starts from step 1's run folder, which exists only after
    # step 1 ran (tests/test_documented_commands.py runs the pair in order).
    needs_a_run = {"rotten_tomatoes_from_continued_mlm.yaml", "dense_classifier_from_mae.yaml"}
    for path in paths:
        load_config(path, check_data=os.path.basename(path) not in needs_a_run)


def test_padding_free_is_on_except_on_tpus():
    assert padding_free(config_from_dict(BASE))
    assert padding_free(config_from_dict({**BASE, "runtime": {"jit_compile": True}}))
    assert not padding_free(config_from_dict({**BASE, "runtime": {"strategy": "tpu"}}))
    assert not padding_free(config_from_dict(with_("model", padding_free=False)))


def test_a_file_per_split_validates_when_the_train_file_exists(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"text": "a"}\n')
    config = config_from_dict(with_("data", name=f"file:{tmp_path}/{{split}}.jsonl"))
    assert config.data.name.endswith("{split}.jsonl")
