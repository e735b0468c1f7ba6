"""Models that leave tfmask (issue 29): a run written as a Hugging Face BERT
folder and a keras-hub preset, then read back by keras-hub, by a numpy
Hugging Face BERT and by tfmask's own importer, numbers compared."""

import json
import os

import numpy as np
import pytest
import yaml

from tests.journeys import one_error_line, train_cli
from tests.models.test_pretrained import (
    HEADS,
    HIDDEN,
    INTERMEDIATE,
    LAYERS,
    MLM_PADDING,
    MLM_POSITIONS,
    MLM_TOKENS,
    POSITIONS,
    VOCAB,
    _numpy_bert_hidden,
    _numpy_bert_mlm_logits,
)
from tests.tiny import tiny_config
from tfmask.export import export_run, write_huggingface, write_keras_hub
from tfmask.layers.activations import gelu_approximate
from tfmask.models import MaskedLMModel, TokenClassifierModel
from tfmask.models.pretrained import from_pretrained


def randomized(model, seed=0):
    """Every weight random (biases and norms too), so no part compares as zeros."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.3, w.shape).astype("float32") + (w == 1)
                       for w in model.get_weights()])
    return model


def tensors_of(folder):
    from safetensors.numpy import load_file

    return load_file(os.path.join(folder, "model.safetensors"))


def keras_hub_hidden(preset):
    import keras_hub

    backbone = keras_hub.models.BertBackbone.from_preset(preset)
    return np.asarray(backbone({"token_ids": MLM_TOKENS, "padding_mask": MLM_PADDING,
                                "segment_ids": np.zeros_like(MLM_TOKENS)})["sequence_output"])


@pytest.fixture
def vocabulary(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(VOCAB) + "\n")
    return str(path)


@pytest.mark.parametrize("activation", ["gelu", gelu_approximate])
def test_a_masked_lm_exports_to_the_numbers_of_hugging_face_and_back(tmp_path, vocabulary,
                                                                     activation):
    model = randomized(MaskedLMModel(len(VOCAB), LAYERS, HEADS, HIDDEN, INTERMEDIATE, POSITIONS,
                                     dropout=0.0, activation=activation, max_predictions=2))
    folder = write_huggingface("mlm", model, vocabulary, True, str(tmp_path / "hf"))
    config = json.load(open(os.path.join(folder, "config.json")))
    assert config["architectures"] == ["BertForMaskedLM"]
    act = config["hidden_act"]
    assert act == ("gelu" if activation == "gelu" else "gelu_new")
    assert json.load(open(os.path.join(folder, "tokenizer_config.json")))["do_lower_case"]
    inputs = {"token_ids": MLM_TOKENS, "padding_mask": MLM_PADDING,
              "mask_positions": MLM_POSITIONS}
    ours = np.asarray(model(inputs))
    reference = _numpy_bert_mlm_logits(tensors_of(folder), MLM_TOKENS, MLM_PADDING,
                                       MLM_POSITIONS, act)
    assert np.abs(ours - reference).max() < 2e-5 and np.ptp(reference) > 1.0
    # tfmask's importer reads the export back exactly, head included, nothing left over.
    back, unused = from_pretrained(MaskedLMModel, folder, max_predictions=2, dropout=0.0,
                                   report=None)
    assert unused == []
    for a, b in zip(model.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(a, b)
    if activation is gelu_approximate:  # keras-hub's BERT always uses the tanh GELU
        hidden = np.asarray(model.stack(MLM_TOKENS, MLM_PADDING))
        # keras-hub reads BertModel folders (it needs the pooler BertForMaskedLM lacks).
        encoder = write_huggingface("mlm", model, vocabulary, True, str(tmp_path / "encoder"),
                                    encoder_only=True)
        np.testing.assert_allclose(keras_hub_hidden(encoder)[MLM_PADDING],
                                   hidden[MLM_PADDING], atol=1e-5)
        preset = write_keras_hub(encoder, str(tmp_path / "preset"))
        np.testing.assert_allclose(keras_hub_hidden(preset)[MLM_PADDING],
                                   hidden[MLM_PADDING], atol=1e-5)


def test_a_token_classifier_exports_its_tags_and_head(tmp_path, vocabulary):
    tags = ["O", "B-PER", "I-PER"]
    model = randomized(TokenClassifierModel(3, len(VOCAB), LAYERS, HEADS, HIDDEN, INTERMEDIATE,
                                            POSITIONS, dropout=0.0), seed=1)
    folder = write_huggingface("token_classifier", model, vocabulary, True,
                               str(tmp_path / "hf"), labels=tags)
    config = json.load(open(os.path.join(folder, "config.json")))
    assert config["architectures"] == ["BertForTokenClassification"]
    assert config["id2label"] == {"0": "O", "1": "B-PER", "2": "I-PER"}
    tensors = tensors_of(folder)
    hidden = _numpy_bert_hidden(tensors, MLM_TOKENS, MLM_PADDING, "gelu", heads=HEADS)
    logits = hidden @ tensors["classifier.weight"].T + tensors["classifier.bias"]
    ours = np.asarray(model({"token_ids": MLM_TOKENS, "padding_mask": MLM_PADDING}))
    assert np.abs(ours - logits)[MLM_PADDING].max() < 2e-5
    back, _ = from_pretrained(TokenClassifierModel, folder, num_tags=3, dropout=0.0,
                              report=None)
    for a, b in zip(model.stack.embedding.get_weights(), back.stack.embedding.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_what_bert_cannot_hold_is_refused_in_one_line():
    from tfmask.export import refusal
    from tfmask.models import ClassifierModel

    assert refusal("seq2seq_lstm", None).startswith(
        "model.family=seq2seq_lstm has no BERT encoder to export")
    pre_ln = ClassifierModel(2, len(VOCAB), 1, HEADS, HIDDEN, INTERMEDIATE, POSITIONS,
                             normalize_first=True)
    assert "pre-LN" in refusal("classifier", pre_ln)


@pytest.mark.journey
def test_trained_runs_export_from_the_cli_and_refuse_what_bert_cannot_hold(tmp_path, capsys):
    runs = {}
    for family, extra in (("classifier", {}), ("mlm", {"data": {"pack": True}})):
        values = tiny_config(family, runtime={"export": True, "export_saved_model": False},
                             **extra)
        config = tmp_path / f"{family}.yaml"
        config.write_text(yaml.safe_dump(values))
        code, out, err = train_cli(capsys, config, tmp_path / family)
        assert code == 0, err[-2000:]
        runs[family] = str(tmp_path / family)
    for family, run in runs.items():
        out = export_run(run, "huggingface", str(tmp_path / f"{family}_hf"),
                         log=lambda line: None)
        back = from_pretrained(MaskedLMModel, out, max_predictions=2, report=None)[0]
        import keras

        original = keras.models.load_model(os.path.join(run, "export", "model.keras"))
        for a, b in zip(original.stack.embedding.get_weights(),
                        back.stack.embedding.get_weights()):
            np.testing.assert_array_equal(a, b)
        preset = export_run(run, "keras_hub", str(tmp_path / f"{family}_preset"),
                            log=lambda line: None)
        assert os.path.exists(os.path.join(preset, "config.json"))
        assert keras_hub_hidden(preset).shape[-1] == original.hidden_dim
    # Refused in one line: a mean-pooled classifier head, a family without a BERT encoder.
    values = tiny_config("classifier", model={"pooling": "mean"},
                         runtime={"export": True, "export_saved_model": False})
    config = tmp_path / "mean.yaml"
    config.write_text(yaml.safe_dump(values))
    assert train_cli(capsys, config, tmp_path / "mean")[0] == 0
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "tfmask.export", f"--run={tmp_path / 'mean'}",
                           f"--output={tmp_path / 'mean_hf'}"], capture_output=True, text=True)
    assert done.returncode == 2
    assert "model.pooling=mean has no Hugging Face BERT head" in one_error_line(done.stderr)
    done = subprocess.run([sys.executable, "-m", "tfmask.export", f"--run={tmp_path / 'mean'}",
                           f"--output={tmp_path / 'mean_hf'}", "--encoder_only"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.load(open(tmp_path / "mean_hf" / "config.json"))["architectures"] == [
        "BertModel"]
