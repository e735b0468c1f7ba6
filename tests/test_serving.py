"""Serving = training: the exported SavedModel takes raw strings and answers
what `python -m tfmask.predict` answers, in a process that never imports tfmask.

Each family trains a tiny run from the command line (export on); a fresh
Python process loads `export/saved_model` with TensorFlow and tensorflow-text
only and prints the serving signature's outputs; `python -m tfmask.predict`
runs on the same texts; the printed answers must agree.
"""

import json
import os
import subprocess
import sys

import pytest

from tests.tiny import tiny_sets
from tfmask.train import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Each family's tiny run (tests/tiny.py, on its default data) with these
# sections; export on, and no generated examples (the answers are compared).
FAMILIES = {
    "classifier": {"masking": {"strategy": "term", "terms": ["film", "movie"],
                               "patterns": [r"\d+"]}},
    "mlm": {"data": {"pack": True}, "masking": {"max_predictions": 6}},
    "causal_lm": {"masking": {"strategy": "none"}},
    "seq2seq_transformer": {"masking": {"strategy": "none"}},
    "seq2seq_lstm": {"masking": {"strategy": "none"}},
}
TEXTS = {
    "classifier": ["the film is 66 minutes of joy", "the movie is 12 minutes of joy",
                   "a dull , lifeless mess"],
    "mlm": ["it is a truth universally [MASK] .", "[MASK] and [MASK] went home"],
    "causal_lm": ["it is a truth", "she said"],
    "seq2seq_transformer": ["In the beginning God created", "and the earth"],
    "seq2seq_lstm": ["In the beginning God created", "and the earth"],
}
# Runs in a fresh interpreter: TensorFlow and tensorflow-text, no tfmask.
LOAD = """
import json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the tokenizer ops)
served = tf.saved_model.load(sys.argv[1])
outputs = served.signatures["serving_default"](text=tf.constant(json.loads(sys.argv[2])))
print(json.dumps({"tfmask_imported": "tfmask" in sys.modules, "signatures": sorted(served.signatures),
                  **{k: v.numpy().tolist() for k, v in outputs.items()}},
                 default=lambda b: b.decode("utf-8")))
"""


def train_run(family, folder):
    sets = tiny_sets(family, **{"train": {"generate_examples": 0}, "runtime": {"export": True},
                                **FAMILIES[family]})
    settings = [f"--set={s}" for s in sets]
    assert cli(["--config", os.path.join(REPO, "tests/configs/tiny_mlm.yaml"),
                "--output_dir", str(folder)] + settings) == 0
    return str(folder)


def run_python(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def served(run, texts):
    return json.loads(run_python("-c", LOAD, os.path.join(run, "export/saved_model"),
                                 json.dumps(texts)))


def predicted(run, texts):
    lines = run_python("-m", "tfmask.predict", f"--run={run}", *[f"--text={t}" for t in texts])
    return lines.strip().splitlines()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    cache = {}

    def get(family):
        if family not in cache:
            cache[family] = train_run(family, tmp_path_factory.mktemp(family))
        return cache[family]
    return get


@pytest.mark.journey
def test_classifier_serves_raw_text_with_the_runs_term_masking(runs):
    texts = TEXTS["classifier"]
    output = served(runs("classifier"), texts)
    assert not output["tfmask_imported"]
    assert {"serving_default", "serve", "serve_token_ids"} <= set(output["signatures"])
    probabilities = output["probabilities"]
    # "film"/"movie" and the numbers are masked inside the served graph: the
    # two reviews that differ only there get the same answer; the third not.
    assert probabilities[0] == pytest.approx(probabilities[1], abs=1e-6)
    assert probabilities[0] != pytest.approx(probabilities[2], abs=1e-6)
    expected = [" ".join(f"class {i}: {p:.3f}" for i, p in enumerate(row))
                for row in probabilities]
    assert predicted(runs("classifier"), texts) == expected


@pytest.mark.journey
def test_mlm_serves_fill_mask_like_predict(runs):
    texts = TEXTS["mlm"]
    output = served(runs("mlm"), texts)
    assert not output["tfmask_imported"]
    lines = []
    for positions, tokens, probabilities in zip(output["positions"], output["tokens"],
                                                output["probabilities"]):
        used = [p for p in positions if p >= 0]
        for slot, position in enumerate(used):
            assert probabilities[slot] == sorted(probabilities[slot], reverse=True)
            lines.append(f"[MASK] at token {position}: " + ", ".join(
                f"{t} {p:.3f}" for t, p in zip(tokens[slot], probabilities[slot])))
    assert [len([p for p in row if p >= 0]) for row in output["positions"]] == [1, 2]
    assert predicted(runs("mlm"), texts) == lines


@pytest.mark.journey
@pytest.mark.parametrize("family", ["causal_lm", "seq2seq_transformer", "seq2seq_lstm"])
def test_generative_families_serve_the_generated_text(runs, family):
    texts = TEXTS[family]
    output = served(runs(family), texts)
    assert not output["tfmask_imported"]
    assert all(isinstance(t, str) and t for t in output["text"])
    assert predicted(runs(family), texts) == output["text"]


def test_fill_mask_inputs_put_a_mask_id_per_marker():
    """The in-graph [MASK] splitting equals tokenizing the parts one by one."""
    import tensorflow as tf

    from tfmask.tasks import TASKS
    from tfmask.text import WordPieceTokenizer
    from tfmask.tasks import config_from_dict

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "##d"]
    tokenizer = WordPieceTokenizer(vocab)
    config = config_from_dict({"model": {"family": "mlm"},
                               "data": {"name": "austen", "sequence_length": 10},
                               "masking": {"max_predictions": 3}})
    task = TASKS.get("mlm")(config, tokenizer, "vocab.txt")
    inputs, found = task.fill_mask_inputs(tf.constant(["a [MASK] bd [MASK]", "[MASK]c", "c"]))
    assert inputs["token_ids"].numpy().tolist() == [
        [2, 5, 4, 6, 8, 4, 3, 0, 0, 0], [2, 4, 7, 3, 0, 0, 0, 0, 0, 0],
        [2, 7, 3, 0, 0, 0, 0, 0, 0, 0]]
    assert found.numpy().tolist() == [[True, True, False], [True, False, False],
                                      [False, False, False]]
    assert inputs["mask_positions"].numpy().tolist() == [[2, 5, 0], [1, 0, 0], [0, 0, 0]]


def test_a_cased_classifier_hides_its_terms_as_written():
    """Term masking follows the tokenizer's casing (a cased checkpoint keeps "Tom")."""
    import tensorflow as tf

    from tfmask.tasks import TASKS
    from tfmask.text import WordPieceTokenizer
    from tfmask.tasks import config_from_dict

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "Tom", "tom", "is", "here"]
    config = config_from_dict({
        "model": {"family": "classifier"},
        "data": {"name": "rotten_tomatoes", "sequence_length": 8, "lowercase": False},
        "masking": {"strategy": "term", "terms": ["Tom"]}})
    task = TASKS.get("classifier")(config, WordPieceTokenizer(vocab, lowercase=False), "v.txt")
    ids = task.model_inputs(tf.constant(["Tom is here", "tom is here"]))["token_ids"].numpy()
    assert ids.tolist() == [[2, 4, 7, 8, 3, 0, 0, 0], [2, 6, 7, 8, 3, 0, 0, 0]]


def test_a_run_that_answers_no_text_exports_the_token_id_signature_only(tmp_path, tiny_config):
    """T5 span corruption answers sentinels, not text: the export says so and
    holds the bare model on token ids (instead of failing after training)."""
    import tensorflow as tf

    from tfmask.serving import export_serving
    from tfmask.tasks import build_task
    from tfmask.tasks import config_from_dict

    config = config_from_dict(tiny_config("seq2seq_transformer", data={"name": "austen"},
                                          masking={"strategy": "span_corruption"}))
    task = build_task(config)
    said = []
    export_serving(task, task.build_model("float32"), str(tmp_path / "sm"), log=said.append)
    assert len(said) == 1 and "span_corruption" in said[0]
    served = tf.saved_model.load(str(tmp_path / "sm"))
    assert sorted(served.signatures) == ["serve_token_ids", "serving_default"]
    assert "token_ids" in served.signatures["serving_default"].structured_input_signature[1]
