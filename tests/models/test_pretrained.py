"""Pretrained encoders: the Hugging Face MiniLM checkpoint against keras-hub's
own loader, starting a classifier from a tfmask masked-LM run, and a tiny
BertForPreTraining folder (MLM head included) against a numpy BERT."""

import json
import os

import keras
import numpy as np
import pytest

from tfmask.layers.activations import gelu_approximate
from tfmask.models import ClassifierModel, MaskedLMModel
from tfmask.models.pretrained import (
    BertCheckpoint,
    from_pretrained,
    pretrained_vocabulary,
    pretrained_vocabulary_size,
    read_bert_config,
)

TOKENS = np.array([[101, 7592, 1010, 2088, 999, 102, 0, 0],
                   [101, 1996, 3185, 2001, 2307, 1012, 2009, 102]], "int32")
PADDING = TOKENS != 0


@pytest.fixture(scope="module")
def minilm():
    from tfmask.datasets.assets import minilm_directory

    try:
        return minilm_directory()
    except Exception as error:  # not prepared: CI prepares it, so fail there
        if os.environ.get("CI"):
            raise
        pytest.skip(f"MiniLM not prepared ({error}); run python -m tfmask.datasets prepare minilm")


def _keras_hub_hidden_states(directory):
    import keras_hub

    backbone = keras_hub.models.BertBackbone.from_preset(directory)
    outputs = backbone({"token_ids": TOKENS, "segment_ids": np.zeros_like(TOKENS),
                        "padding_mask": PADDING})
    return np.asarray(outputs["sequence_output"])


def test_minilm_hidden_states_match_keras_hub_to_1e5(minilm):
    # keras-hub's BERT computes the tanh GELU whatever the checkpoint says, so
    # the like-for-like comparison imports with that activation.
    model, unused = from_pretrained(MaskedLMModel, minilm, max_predictions=2, dropout=0.0,
                                    activation=gelu_approximate)
    ours = np.asarray(model.stack(TOKENS, PADDING))
    reference = _keras_hub_hidden_states(minilm)
    np.testing.assert_allclose(ours[PADDING], reference[PADDING], atol=1e-5)
    assert all(name.startswith("pooler.") for name in unused), unused


def test_minilm_defaults_to_the_checkpoints_exact_gelu(minilm):
    config = read_bert_config(minilm)
    assert config["activation"] == "gelu" and config["vocabulary_size"] == 30522
    exact, _ = from_pretrained(MaskedLMModel, minilm, max_predictions=2, dropout=0.0)
    tanh, _ = from_pretrained(MaskedLMModel, minilm, max_predictions=2, dropout=0.0,
                              activation=gelu_approximate)
    difference = np.abs(np.asarray(exact.stack(TOKENS, PADDING)) - np.asarray(tanh.stack(TOKENS, PADDING)))
    assert 1e-5 < difference[PADDING].max() < 5e-2  # close, but not the same function


def test_a_classifier_starts_from_a_tfmask_masked_lm_run(tmp_path):
    source = MaskedLMModel(vocabulary_size=30, num_layers=2, num_heads=2, hidden_dim=8,
                           intermediate_dim=16, max_length=12, max_predictions=2, dropout=0.0)
    source({"token_ids": TOKENS[:, :6] % 30, "padding_mask": PADDING[:, :6],
            "mask_positions": np.zeros((2, 2), "int32")})
    export = tmp_path / "export"
    export.mkdir()
    source.save(str(export / "model.keras"))
    (export / "vocab.txt").write_text("\n".join(f"t{i}" for i in range(30)) + "\n")
    model, unused = from_pretrained(ClassifierModel, str(tmp_path), num_classes=3,
                                    pooling="mean", padding_free=True)
    assert unused == ["mlm_head"]
    assert model.num_layers == 2 and model.hidden_dim == 8 and model.padding_free
    for name in ("embedding", "encoder_block_0", "encoder_block_1"):
        for ours, theirs in zip(model.get_layer(name).get_weights(),
                                source.get_layer(name).get_weights()):
            np.testing.assert_array_equal(ours, theirs)
    assert pretrained_vocabulary(str(tmp_path)).endswith(os.path.join("export", "vocab.txt"))
    assert pretrained_vocabulary_size(str(tmp_path)) == 30


def test_bad_pretrained_folders_get_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        read_bert_config(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ValueError, match="describes a 'gpt2' model, not BERT"):
        read_bert_config(str(tmp_path))
    run = tmp_path / "run"
    (run / "export").mkdir(parents=True)
    inputs = keras.Input((3,))
    keras.Model(inputs, keras.layers.Dense(2)(inputs)).save(str(run / "export" / "model.keras"))
    with pytest.raises(ValueError, match="only MaskedLMModel and ClassifierModel runs"):
        from_pretrained(ClassifierModel, str(run), num_classes=2)


def test_a_masked_lm_run_continues_as_a_masked_lm_with_its_head(tmp_path):
    source = MaskedLMModel(vocabulary_size=30, num_layers=1, num_heads=2, hidden_dim=8,
                           intermediate_dim=16, max_length=12, max_predictions=2, dropout=0.0)
    inputs = {"token_ids": TOKENS[:, :6] % 30, "padding_mask": PADDING[:, :6],
              "mask_positions": np.array([[1, 2], [3, 4]])}
    expected = np.asarray(source(inputs))
    (tmp_path / "export").mkdir()
    source.save(str(tmp_path / "export" / "model.keras"))
    model, unused = from_pretrained(MaskedLMModel, str(tmp_path), max_predictions=2)
    assert unused == []
    np.testing.assert_allclose(np.asarray(model(inputs)), expected, atol=1e-6)


# ---------------------------------------------------------------- BertForMaskedLM
# A tiny Hugging Face BertForPreTraining folder (encoder + MLM head + NSP head),
# written with the exact HF tensor names, checked against a numpy BERT.
WORDS = ["the", "capital", "of", "france", "is", ".", "paris", "Paris", "it", "a", "truth",
         "universally", "acknowledged", "london", "rome"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
HIDDEN, INTERMEDIATE, LAYERS, HEADS, POSITIONS = 8, 16, 2, 2, 16


def _bert_tensors(rng, head=True, nsp=True, layer_norm=("weight", "bias")):
    """HF BertForPreTraining's state dict (decoder tied: stored, equal to the embeddings)."""
    def dense(name, out, inp):
        return {f"{name}.weight": rng.normal(0, 0.3, (out, inp)).astype("float32"),
                f"{name}.bias": rng.normal(0, 0.1, (out,)).astype("float32")}

    def norm(name):
        gamma, beta = 1 + rng.normal(0, 0.1, HIDDEN), rng.normal(0, 0.1, HIDDEN)
        return {f"{name}.LayerNorm.{layer_norm[0]}": gamma.astype("float32"),
                f"{name}.LayerNorm.{layer_norm[1]}": beta.astype("float32")}

    words = rng.normal(0, 0.5, (len(VOCAB), HIDDEN)).astype("float32")
    tensors = {"bert.embeddings.word_embeddings.weight": words,
               "bert.embeddings.position_embeddings.weight":
                   rng.normal(0, 0.5, (POSITIONS, HIDDEN)).astype("float32"),
               "bert.embeddings.token_type_embeddings.weight":
                   rng.normal(0, 0.5, (2, HIDDEN)).astype("float32"),
               "bert.embeddings.position_ids": np.arange(POSITIONS, dtype="int64")[None],
               **norm("bert.embeddings"), **dense("bert.pooler.dense", HIDDEN, HIDDEN)}
    for i in range(LAYERS):
        p = f"bert.encoder.layer.{i}."
        for name in ("query", "key", "value"):
            tensors.update(dense(f"{p}attention.self.{name}", HIDDEN, HIDDEN))
        tensors.update({**dense(f"{p}attention.output.dense", HIDDEN, HIDDEN),
                        **norm(f"{p}attention.output"),
                        **dense(f"{p}intermediate.dense", INTERMEDIATE, HIDDEN),
                        **dense(f"{p}output.dense", HIDDEN, INTERMEDIATE), **norm(f"{p}output")})
    if head:
        bias = rng.normal(0, 0.5, len(VOCAB)).astype("float32")
        tensors.update({**dense("cls.predictions.transform.dense", HIDDEN, HIDDEN),
                        **norm("cls.predictions.transform"), "cls.predictions.bias": bias,
                        "cls.predictions.decoder.bias": bias,
                        "cls.predictions.decoder.weight": words})
    if nsp:
        tensors.update(dense("cls.seq_relationship", 2, HIDDEN))
    return tensors


def _write_bert_folder(folder, tensors, hidden_act="gelu", do_lower_case=True):
    from safetensors.numpy import save_file

    os.makedirs(folder, exist_ok=True)
    config = {"model_type": "bert", "architectures": ["BertForPreTraining"],
              "vocab_size": len(VOCAB), "hidden_size": HIDDEN, "num_hidden_layers": LAYERS,
              "num_attention_heads": HEADS, "intermediate_size": INTERMEDIATE,
              "max_position_embeddings": POSITIONS, "type_vocab_size": 2,
              "hidden_act": hidden_act, "layer_norm_eps": 1e-12,
              "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f)
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": do_lower_case, "tokenizer_class": "BertTokenizer"}, f)
    with open(os.path.join(folder, "vocab.txt"), "w") as f:
        f.write("\n".join(VOCAB) + "\n")
    save_file(tensors, os.path.join(folder, "model.safetensors"))
    return str(folder)


def _numpy_bert(tensors, hidden_act="gelu"):
    """(canonical float64 tensors, activation, linear, norm) of a Hugging Face BERT."""
    import math

    t = {BertCheckpoint.canonical(name): value.astype("float64") for name, value in tensors.items()}
    erf = np.vectorize(math.erf)

    def act(x):
        if hidden_act == "gelu":
            return 0.5 * x * (1 + erf(x / math.sqrt(2)))
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))  # gelu_new

    def linear(x, name):
        return x @ t[f"{name}.weight"].T + t[f"{name}.bias"]

    def norm(x, name):
        mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        scaled = (x - mean) / np.sqrt(var + 1e-12)
        return scaled * t[f"{name}.LayerNorm.weight"] + t[f"{name}.LayerNorm.bias"]

    return t, act, linear, norm


def _numpy_bert_hidden(tensors, token_ids, padding, hidden_act="gelu", heads=None):
    """Hugging Face BertModel's sequence output in numpy (eval mode, token type 0)."""
    import math

    t, act, linear, norm = _numpy_bert(tensors, hidden_act)
    heads = heads or HEADS
    layers = len({name.split(".")[2] for name in t if name.startswith("encoder.layer.")})
    length = token_ids.shape[1]
    x = (t["embeddings.word_embeddings.weight"][token_ids]
         + t["embeddings.position_embeddings.weight"][:length]
         + t["embeddings.token_type_embeddings.weight"][0])
    x = norm(x, "embeddings")
    mask = np.where(padding, 0.0, np.finfo("float32").min)[:, None, None, :]  # [B,1,1,S]
    hidden = x.shape[-1]
    dim = hidden // heads
    for i in range(layers):
        p = f"encoder.layer.{i}."

        def split(y):
            return y.reshape(*y.shape[:2], heads, dim).transpose(0, 2, 1, 3)

        q, k, v = (split(linear(x, f"{p}attention.self.{n}")) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(dim) + mask
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        context = (weights @ v).transpose(0, 2, 1, 3).reshape(x.shape)
        x = norm(linear(context, f"{p}attention.output.dense") + x, f"{p}attention.output")
        inner = act(linear(x, f"{p}intermediate.dense"))
        x = norm(linear(inner, f"{p}output.dense") + x, f"{p}output")
    return x


def _numpy_bert_mlm_logits(tensors, token_ids, padding, positions, hidden_act="gelu",
                           heads=None):
    """Hugging Face BertForMaskedLM's forward pass in numpy (eval mode, token type 0)."""
    t, act, linear, norm = _numpy_bert(tensors, hidden_act)
    x = _numpy_bert_hidden(tensors, token_ids, padding, hidden_act, heads)
    x = np.take_along_axis(x, positions[:, :, None], axis=1)
    x = norm(act(linear(x, "cls.predictions.transform.dense")), "cls.predictions.transform")
    return x @ t["embeddings.word_embeddings.weight"].T + t["cls.predictions.bias"]


MLM_TOKENS = np.array([[2, 5, 6, 7, 8, 4, 10, 3, 0], [2, 13, 9, 4, 15, 16, 4, 10, 3]], "int32")
MLM_PADDING = MLM_TOKENS != 0
MLM_POSITIONS = np.array([[5, 1], [3, 6]], "int32")


@pytest.mark.parametrize("hidden_act, layer_norm", [("gelu", ("weight", "bias")),
                                                    ("gelu_new", ("gamma", "beta"))])
def test_a_bert_for_masked_lm_head_is_imported_to_a_numpy_reference(tmp_path, hidden_act,
                                                                     layer_norm):
    tensors = _bert_tensors(np.random.default_rng(0), layer_norm=layer_norm)
    folder = _write_bert_folder(tmp_path / "bert", tensors, hidden_act=hidden_act)
    lines = []
    model, unused = from_pretrained(MaskedLMModel, folder, max_predictions=2, dropout=0.0,
                                    report=lines.append)
    ours = np.asarray(model({"token_ids": MLM_TOKENS, "padding_mask": MLM_PADDING,
                             "mask_positions": MLM_POSITIONS}))
    reference = _numpy_bert_mlm_logits(tensors, MLM_TOKENS, MLM_PADDING, MLM_POSITIONS, hidden_act)
    difference = np.abs(ours - reference).max()
    assert difference < 2e-5, difference
    assert np.ptp(reference) > 1.0  # the logits are far from flat: a real comparison
    assert unused == ["bert.pooler.dense.bias", "bert.pooler.dense.weight",
                      "cls.seq_relationship.bias", "cls.seq_relationship.weight"]
    assert lines == [f"{folder}: not used by MaskedLMModel: " + ", ".join(unused)]


def test_the_tiny_encoder_matches_keras_hub_which_does_not_load_the_head(tmp_path):
    # keras-hub's converter (keras_hub/src/utils/transformers/convert_bert.py)
    # ports the encoder and the pooler but has no convert_head, so its
    # BertMaskedLM would start a random head: only the encoder is compared.
    folder = _write_bert_folder(tmp_path / "bert", _bert_tensors(np.random.default_rng(1)),
                                hidden_act="gelu_new")
    model, _ = from_pretrained(MaskedLMModel, folder, max_predictions=2, dropout=0.0, report=None)
    import keras_hub

    backbone = keras_hub.models.BertBackbone.from_preset(folder)
    theirs = np.asarray(backbone({"token_ids": MLM_TOKENS, "padding_mask": MLM_PADDING,
                                  "segment_ids": np.zeros_like(MLM_TOKENS)})["sequence_output"])
    ours = np.asarray(model.stack(MLM_TOKENS, MLM_PADDING))
    np.testing.assert_allclose(ours[MLM_PADDING], theirs[MLM_PADDING], atol=1e-5)


def test_a_classifier_reports_the_heads_it_does_not_use(tmp_path):
    folder = _write_bert_folder(tmp_path / "bert", _bert_tensors(np.random.default_rng(2)))
    lines = []
    model, unused = from_pretrained(ClassifierModel, folder, num_classes=2, report=lines.append)
    assert unused == ["cls.predictions.bias", "cls.predictions.decoder.bias",
                      "cls.predictions.decoder.weight", "cls.predictions.transform.LayerNorm.bias",
                      "cls.predictions.transform.LayerNorm.weight",
                      "cls.predictions.transform.dense.bias",
                      "cls.predictions.transform.dense.weight", "cls.seq_relationship.bias",
                      "cls.seq_relationship.weight"]
    assert len(lines) == 1 and "cls.seq_relationship.weight" in lines[0]
    tensors = _bert_tensors(np.random.default_rng(2))
    np.testing.assert_array_equal(model.get_layer("pooler").get_weights()[0],
                                  tensors["bert.pooler.dense.weight"].T)


def test_a_masked_lm_without_a_checkpoint_head_says_so_once(tmp_path):
    # A BertModel file (no "bert." prefix, no cls.*), like the MiniLM encoder.
    tensors = {name[len("bert."):]: value for name, value in
               _bert_tensors(np.random.default_rng(3), head=False, nsp=False).items()}
    folder = _write_bert_folder(tmp_path / "encoder", tensors)
    lines = []
    model, unused = from_pretrained(MaskedLMModel, folder, max_predictions=2, report=lines.append)
    assert lines == [f"{folder}: not used by MaskedLMModel: pooler.dense.bias, pooler.dense.weight",
                     f"{folder} has no masked-LM head (cls.predictions.*); MaskedLMModel's head "
                     "starts freshly initialised."]
    np.testing.assert_array_equal(model.get_layer("mlm_head").output_bias.numpy(), 0.0)
    lines.clear()
    from_pretrained(ClassifierModel, folder, num_classes=2, report=lines.append)
    assert lines == []  # the pooler is used, and a classifier has no MLM head


def test_an_untied_decoder_and_bad_files_are_refused_in_one_line(tmp_path):
    tensors = _bert_tensors(np.random.default_rng(4))
    tensors["cls.predictions.decoder.weight"] = tensors["cls.predictions.decoder.weight"] + 1
    folder = _write_bert_folder(tmp_path / "untied", tensors)
    with pytest.raises(ValueError, match="differs from the word embeddings.*untied decoder"):
        from_pretrained(MaskedLMModel, folder, max_predictions=2, report=None)
    (tmp_path / "untied" / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    with pytest.raises(ValueError, match="is not a valid safetensors file.*download it again"):
        from_pretrained(MaskedLMModel, folder, max_predictions=2, report=None)
    os.remove(tmp_path / "untied" / "model.safetensors")
    with pytest.raises(FileNotFoundError, match="needs model.safetensors"):
        from_pretrained(MaskedLMModel, folder, max_predictions=2, report=None)


def test_bfloat16_tensors_are_read_as_float32(tmp_path):
    import ml_dtypes
    from safetensors.numpy import save_file

    from tfmask.models.pretrained import _read_with_bfloat16, read_safetensors

    values = np.array([[1.5, -2.0, 3.25], [0.0, 1e-3, 65280.0]], "float32")
    path = str(tmp_path / "bf16.safetensors")
    save_file({"w": values.astype(ml_dtypes.bfloat16), "i": np.arange(3)}, path)
    expected = values.astype(ml_dtypes.bfloat16).astype("float32")
    for read in (read_safetensors, _read_with_bfloat16):
        tensors = read(path)
        assert tensors["w"].dtype == np.float32
        np.testing.assert_array_equal(tensors["w"], expected)
        np.testing.assert_array_equal(tensors["i"], np.arange(3))


def _mlm_config(folder, **data):
    from tfmask.tasks import config_from_dict

    return config_from_dict({"model": {"family": "mlm", "pretrained": folder},
                             "data": {"name": "austen", "vocabulary": "pretrained",
                                      "sequence_length": POSITIONS, **data},
                             "masking": {"max_predictions": 2}})


def test_do_lower_case_of_the_checkpoint_is_honoured(tmp_path):
    from tfmask.errors import ConfigError
    from tfmask.text import WordPieceTokenizer

    tensors = _bert_tensors(np.random.default_rng(5))
    cased = _write_bert_folder(tmp_path / "cased", tensors, do_lower_case=False)
    uncased = _write_bert_folder(tmp_path / "uncased", tensors, do_lower_case=True)
    assert _mlm_config(cased).data.lowercase is False
    assert _mlm_config(uncased).data.lowercase is True
    assert _mlm_config(cased, lowercase=False).data.lowercase is False
    with pytest.raises(ConfigError, match=r"data.lowercase=true but model.pretrained=.*cased "
                                          r"was trained with lowercase=false; remove"):
        _mlm_config(cased, lowercase=True)
    os.remove(os.path.join(uncased, "tokenizer_config.json"))  # silent folder: the default
    assert _mlm_config(uncased).data.lowercase is True
    assert _mlm_config(uncased, lowercase=False).data.lowercase is False
    # What the tokenizer then does with a capital.
    config = _mlm_config(cased)
    tokenizer = WordPieceTokenizer(pretrained_vocabulary(cased), lowercase=config.data.lowercase)
    ids = tokenizer.tokenize(["Paris"])["token_ids"].to_list()
    assert ids == [[VOCAB.index("Paris")]]


def test_fill_mask_with_an_imported_head_is_peaked(tmp_path, capsys):
    from tfmask.tasks import TASKS
    from tfmask.text import WordPieceTokenizer

    # The head answers "paris" whatever the encoder says: the transform maps
    # everything to 0, LayerNorm then gives its beta (0), and the logits are
    # the output bias. A head left random would not put "paris" first.
    tensors = _bert_tensors(np.random.default_rng(6))
    tensors["cls.predictions.transform.dense.weight"][:] = 0
    tensors["cls.predictions.transform.dense.bias"][:] = 0
    tensors["cls.predictions.transform.LayerNorm.bias"][:] = 0
    bias = np.zeros(len(VOCAB), "float32")
    bias[VOCAB.index("paris")], bias[VOCAB.index("rome")] = 8.0, 6.0
    tensors["cls.predictions.bias"] = tensors["cls.predictions.decoder.bias"] = bias
    folder = _write_bert_folder(tmp_path / "bert", tensors)
    config = _mlm_config(folder)
    tokenizer = WordPieceTokenizer(pretrained_vocabulary(folder), lowercase=config.data.lowercase)
    task = TASKS.get("mlm")(config, tokenizer, pretrained_vocabulary(folder))
    model = task.build_model(dtype="float32")
    assert "not used by MaskedLMModel: bert.pooler" in capsys.readouterr().out
    [(position, candidates)] = task.fill_mask(model, "the capital of france is [MASK] .", top_k=3)
    assert position == 6
    tokens, probabilities = zip(*candidates)
    assert tokens[:2] == ("paris", "rome")
    expected = np.exp(bias) / np.exp(bias).sum()
    np.testing.assert_allclose(probabilities[:2], expected[[VOCAB.index("paris"),
                                                            VOCAB.index("rome")]], atol=1e-5)
    assert probabilities[0] > 0.8
