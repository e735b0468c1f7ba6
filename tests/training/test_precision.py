"""`runtime.precision: auto` picks the machine's fastest safe policy; the
config keeps `auto` and the run folder's runtime.jsonl records what it became."""

import json
import os

import pytest
import yaml

from tests.journeys import one_error_line, train_cli
from tests.training.test_trainer import TINY_MLM
from tfmask.errors import ConfigError
from tfmask.tasks import config_from_dict
from tfmask.training import precision
from tfmask.training.precision import choose_precision

BF16_CPU = {"avx512f", "avx512_bf16"}


@pytest.mark.parametrize("strategy, jit, gpus, flags, expected", [
    ("tpu", False, [], set(), "mixed_bfloat16"),
    ("default", False, [(9, 0)], set(), "mixed_bfloat16"),
    ("mirrored", False, [(8, 0), (9, 0)], set(), "mixed_bfloat16"),
    ("mirrored", False, [(7, 0), (9, 0)], set(), "mixed_float16"),  # the slowest GPU decides
    ("default", False, [(6, 1)], set(), "float32"),
    ("default", False, [], BF16_CPU, "mixed_bfloat16"),
    ("default", False, [], {"amx_bf16"}, "mixed_bfloat16"),
    ("default", True, [], BF16_CPU, "float32"),  # XLA:CPU runs bfloat16 no faster
    ("default", False, [], {"avx2", "fma"}, "float32"),
])
def test_auto_picks_by_hardware(strategy, jit, gpus, flags, expected):
    chosen, reason = choose_precision(strategy, jit, gpus, flags)
    assert chosen == expected and reason


def test_auto_stays_auto_in_the_config():
    """The config holds what the user set; the trainer resolves `auto`."""
    config = config_from_dict({"model": {"family": "mlm"}, "data": {"name": "austen"},
                               "runtime": {"precision": "auto"}}, check_data=False)
    assert config.runtime.precision == "auto"


def _runtime_records(run):
    with open(os.path.join(run, "runtime.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.mark.integration
def test_a_resume_with_jit_compile_changed_under_auto_is_not_refused(
        capsys, tmp_path, monkeypatch):
    """runtime.jit_compile may change on resume; under `precision: auto` on a
    CPU with bfloat16 units it also changes what `auto` resolves to
    (mixed_bfloat16, float32 under XLA). That is not the user's change: the
    resume goes on, and runtime.jsonl records what each start used."""
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(BF16_CPU))
    run = tmp_path / "run"
    # One XLA compilation per function (no token buckets) keeps the test short.
    sets = ("runtime.precision=auto", "runtime.export=false", "runtime.checkpoint_every=2",
            "model.padding_free=false")
    code, _, err = train_cli(capsys, TINY_MLM, run, *sets, "train.steps=2")
    assert code == 0, err
    code, out, err = train_cli(capsys, TINY_MLM, run, *sets, "train.steps=4",
                               "runtime.jit_compile=true")
    assert code == 0, err
    assert "Resumed from" in out and "step 4:" in out
    with open(run / "config.yaml", encoding="utf-8") as f:
        assert yaml.safe_load(f)["runtime"]["precision"] == "auto"
    first, second = _runtime_records(run)
    assert (first["step"], first["precision"], first["jit_compile"]) == (
        0, "mixed_bfloat16", False)
    assert (second["step"], second["precision"], second["jit_compile"]) == (2, "float32", True)
    assert "XLA:CPU" in second["reason"]


@pytest.mark.integration
def test_a_precision_set_by_hand_is_still_compared_on_resume(capsys, tmp_path):
    run = tmp_path / "run"
    sets = ("runtime.export=false", "runtime.checkpoint_every=2")
    assert train_cli(capsys, TINY_MLM, run, *sets, "train.steps=2")[0] == 0
    code, _, err = train_cli(capsys, TINY_MLM, run, *sets, "train.steps=4",
                             "runtime.precision=mixed_bfloat16")
    assert code == 2
    assert "runtime.precision 'float32' -> 'mixed_bfloat16'" in one_error_line(err)


def test_a_run_folder_that_recorded_what_auto_resolved_to_resumes_with_auto(tmp_path):
    """Folders written before `auto` stayed `auto` hold the resolved policy;
    resuming one with `auto` is not a change of setting (it is recorded)."""
    from tfmask.run_folder import RunFolder

    values = {"model": {"family": "mlm"}, "data": {"name": "austen"}}
    folder = RunFolder(str(tmp_path))
    folder.save_config(config_from_dict(
        {**values, "runtime": {"precision": "mixed_bfloat16"}}, check_data=False))
    auto = config_from_dict({**values, "runtime": {"precision": "auto"}}, check_data=False)
    assert folder.check_config(auto, resuming=True) == {
        "runtime.precision": ("mixed_bfloat16", "auto")}
    with open(tmp_path / "config_history.jsonl", encoding="utf-8") as f:
        assert json.loads(f.readline())["changes"] == {
            "runtime.precision": ["mixed_bfloat16", "auto"]}
    float16 = config_from_dict({**values, "runtime": {"precision": "mixed_float16"}},
                               check_data=False)
    with pytest.raises(ConfigError, match="runtime.precision 'mixed_bfloat16' -> "
                                          "'mixed_float16'"):
        folder.check_config(float16, resuming=True)
