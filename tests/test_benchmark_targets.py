"""The benchmark's verdicts: a target is met, missed within the measured
noise, or missed beyond it (what `run_all --check` fails on); the main job's
run folders are read into curves and summaries."""

import json
import os
import sys

import pytest

from benchmarks import main_job, run_all

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ratio(median, low, high):
    return {"median": median, "min": low, "max": high}


def mlm_section(precision, jit, padding_free_ratio):
    contenders = {
        "keras_hub": {"tokens_per_second": ratio(100, 90, 110), "mfu": 0.5},
        "tfmask padded": {"tokens_per_second": ratio(110, 100, 120), "mfu": 0.55,
                          "ratio_vs_keras_hub": ratio(1.1, 1.0, 1.2)},
        "tfmask padding-free": {"tokens_per_second": ratio(150, 140, 165), "mfu": 0.55,
                                "ratio_vs_keras_hub": padding_free_ratio},
    }
    return {"precision": precision, "jit_compile": jit, "contenders": contenders}


def results(padding_free_ratio):
    return {
        "mlm": [mlm_section("float32", False, padding_free_ratio)],
        "packing": {"contenders": {
            "tfmask packed": {"ratio_vs_tfmask_padded": ratio(3.8, 3.7, 4.1),
                              "ratio_vs_keras_hub_padded": ratio(4.1, 3.9, 4.3)},
            "tfmask padded": {"ratio_vs_keras_hub_padded": ratio(1.07, 1.01, 1.1)}}},
        "headroom": {"padded rows, random": {"headroom": 150.0}},
    }


def verdicts(checks):
    return {c["check"]: ("met" if c["met"] else "beyond" if c["beyond_noise"] else "noise")
            for c in checks}


@pytest.mark.parametrize("padding_free_ratio, verdict", [
    (ratio(1.55, 1.4, 1.6), "met"),
    (ratio(1.45, 1.3, 1.52), "noise"),   # the best round reaches 1.5
    (ratio(1.30, 1.2, 1.35), "beyond"),  # no round does: --check fails
])
def test_a_missed_target_is_judged_against_its_noise(padding_free_ratio, verdict):
    checks = verdicts(run_all.targets(results(padding_free_ratio)))
    assert checks["MLM tokens/s vs keras-hub (float32, jit=False)"] == verdict
    assert checks["packing vs padding, useful tokens/s"] == "met"
    # MFU 55% with a +10% round: within noise of the 60% target.
    assert checks["MLM MFU, useful FLOPs (float32, jit=False)"] == "noise"


def write_run(folder, precision, accuracies, wall, train_seconds_per_step=0.5, peer=False):
    folder.mkdir(parents=True)
    lines = []
    for step, accuracy in zip((175, 350, 534), accuracies):
        lines.append({"step": step, "train_loss": 0.3,
                      "train_seconds": step * train_seconds_per_step})
        lines.append({"step": step, "eval_accuracy": accuracy})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (folder / "wall.json").write_text(json.dumps({"wall_seconds": wall, "peak_rss_mb": 2000}))
    if peer:  # the keras-hub program's record
        (folder / "peer.json").write_text(json.dumps(
            {"precision": precision, "jit_compile": False, "trainable_parameters": 22_713_986}))
    else:
        (folder / "config.yaml").write_text(f"runtime:\n  precision: {precision}\n")
        (folder / "stdout.log").write_text(
            "classifier: masking none on rotten_tomatoes\n"
            "model: 22.7M parameters (pretrained minilm: 6 layers x 384), 22,565,762 trainable\n")


def test_main_job_runs_become_curves_and_targets(tmp_path):
    for seed, (acc, wall) in enumerate([(0.84, 300), (0.83, 310), (0.85, 290)]):
        write_run(tmp_path / f"float32_s{seed}", "float32", [0.80, 0.83, acc], wall)
        write_run(tmp_path / f"default_s{seed}", "mixed_bfloat16", [0.81, 0.83, acc], wall / 2.5)
        write_run(tmp_path / f"keras_hub_s{seed}", "mixed_bfloat16", [0.80, 0.82, acc], wall,
                  train_seconds_per_step=1.0 + seed / 100, peer=True)
    variants = ("float32", "default", "keras_hub")
    runs = {variant: {seed: main_job.read_run(str(tmp_path / f"{variant}_s{seed}"))
                      for seed in range(3)} for variant in variants}
    assert runs["default"][0]["curve"] == [(87.5, 0.81), (175.0, 0.83), (267.0, 0.84)]
    assert runs["default"][0]["trainable_parameters"] == 22_565_762
    assert runs["keras_hub"][0]["trainable_parameters"] == 22_713_986
    assert runs["default"][0]["step_seconds"] == pytest.approx(0.5)
    summary = main_job.summarise(runs)
    assert summary["default"]["precision"] == "mixed_bfloat16"
    assert summary["default"]["wall_seconds_vs_float32"] == pytest.approx(0.4)
    assert summary["default"]["train_seconds_vs_keras_hub"] == pytest.approx(0.5 / 1.01)
    checks = verdicts(run_all.targets({**results(ratio(1.6, 1.5, 1.7)),
                                       "main_job": {"summary": summary}}))
    assert checks["main job wall time vs float32"] == "met"
    assert checks["main job accuracy drop vs float32 (points, <= 1 std)"] == "met"
    assert checks["main job train time vs keras_hub (speed-up)"] == "met"  # 2.02x
    assert checks["main job accuracy drop vs keras_hub (points, <= 1 std)"] == "met"


def test_the_published_tables_are_what_their_json_renders(tmp_path, monkeypatch):
    """`run_all --measured` re-renders sections 1-4 from a cpu.json (after a
    new main_job.json): from the published cpu.json and main_job.json it
    writes the published cpu.md, so the tables and their numbers agree."""
    results = os.path.join(REPO, "benchmarks", "results")
    monkeypatch.setattr(sys, "argv", [
        "run_all", "--measured", os.path.join(results, "cpu.json"),
        "--main_job", os.path.join(results, "main_job.json"), "--out", str(tmp_path)])
    run_all.main()
    with open(os.path.join(results, "cpu.md")) as published:
        assert (tmp_path / "cpu.md").read_text() == published.read()
