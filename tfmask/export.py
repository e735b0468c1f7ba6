"""Export a trained run for use elsewhere: a Hugging Face BERT folder or a keras-hub preset.

    python -m tfmask.export --run runs/mlm --format huggingface --output exported/mlm
    python -m tfmask.export --run runs/ner --format keras_hub --output exported/ner_preset

`huggingface` writes what `transformers` loads with `from_pretrained`:
`config.json`, `model.safetensors` with Hugging Face's tensor names,
`vocab.txt` and `tokenizer_config.json` (`do_lower_case` as trained). The
head goes with the family: `BertForMaskedLM` (`cls.predictions.*`, the
decoder tied to the word embeddings) for `mlm`, `BertForSequenceClassification`
(pooler + `classifier`, `id2label`) for a [CLS]-pooled `classifier`,
`BertForTokenClassification` (`classifier`, `id2label` = the run's tags) for
`token_classifier`; `--encoder_only` writes a `BertModel` (its pooler is a
[CLS]-pooled classifier's, else zeros: tfmask's other models have none).
`keras_hub` writes a keras-hub preset of the encoder
(`BertBackbone`) and its tokenizer, read back by keras-hub's own Hugging
Face converter from the folder above: keras-hub has no converter for these
heads, so the preset holds the backbone and the tokenizer, and says so.

What BERT cannot express is refused in one line: families without a BERT
encoder (seq2seq, causal LM, dense), pre-LN blocks (`model.normalize_first`),
sinusoidal positions, a mean-pooled classifier head (`--encoder_only` writes
its encoder as a `BertModel`). The run's current export is what is written,
never one older than its checkpoints (`RunFolder.current_export`).

The mapping is the inverse of the importer's (`tfmask.models.pretrained`),
and a test imports every export back and compares the numbers.
"""

import json
import os
import shutil
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import flags  # noqa: E402

from tfmask.cli import define_shared_flags  # noqa: E402

FORMATS = ("huggingface", "keras_hub")
HEADS = {"mlm": "BertForMaskedLM", "classifier": "BertForSequenceClassification",
         "token_classifier": "BertForTokenClassification"}

flags.DEFINE_enum("format", "huggingface", list(FORMATS), "What to write.")
flags.DEFINE_string("output", None, "Folder to write (must not exist, or be empty).")
flags.DEFINE_bool("encoder_only", False, "Write the encoder alone (a BertModel), no head.")
define_shared_flags("run", "debug", "verbose")
FLAGS = flags.FLAGS


def hidden_act(activation):
    """A tfmask encoder's activation as Hugging Face's `hidden_act`, or None."""
    from tfmask.layers.activations import gelu_approximate

    if activation is gelu_approximate or getattr(activation, "__name__", "") == \
            "gelu_approximate":
        return "gelu_new"
    return activation if activation in ("gelu", "relu") else None


def refusal(family, model, encoder_only=False):
    """Why `model` (of `family`) cannot be written as a BERT folder, or None."""
    if family not in HEADS:
        return (f"model.family={family} has no BERT encoder to export (only "
                f"{', '.join(HEADS)} do); use its export/model.keras or SavedModel.")
    if model.normalize_first:
        return ("model.normalize_first=true (pre-LN blocks) is not BERT's post-LN layout, so "
                "Hugging Face's BertModel would compute something else.")
    if model.position != "learned":
        return f"model.position={model.position}: BERT has learned absolute positions only."
    if hidden_act(model.activation) is None:
        return f"activation {model.activation!r} has no Hugging Face hidden_act."
    if family == "classifier" and model.pooling != "cls" and not encoder_only:
        return ("model.pooling=mean has no Hugging Face BERT head (BertForSequenceClassification"
                " pools [CLS] through its pooler); pass --encoder_only to export the encoder.")
    return None


def _linear(layer):
    """A Keras Dense -> Hugging Face Linear's (weight [out, in], bias)."""
    kernel, bias = layer.get_weights()
    return kernel.T, bias


def _norm(layer):
    gamma, beta = layer.get_weights()
    return {"LayerNorm.weight": gamma, "LayerNorm.bias": beta}


def encoder_tensors(stack, prefix="bert."):
    """An `EncoderStack`'s weights under BertModel's names."""
    embedding = stack.embedding
    words = embedding.token_embedding.get_weights()[0]
    types = (embedding.token_type_embedding.get_weights()[0]
             if embedding.token_type_embedding is not None
             else np.zeros((2, words.shape[1]), words.dtype))
    tensors = {"embeddings.word_embeddings.weight": words,
               "embeddings.position_embeddings.weight":
                   embedding.position_embedding.get_weights()[0],
               "embeddings.token_type_embeddings.weight": types,
               **{f"embeddings.{k}": v for k, v in _norm(embedding.layer_norm).items()}}
    for index, block in enumerate(stack.blocks):
        p = f"encoder.layer.{index}."
        attention = block._self_attention
        for name, dense in (("query", attention._query_dense), ("key", attention._key_dense),
                            ("value", attention._value_dense)):
            kernel, bias = dense.get_weights()  # [in, heads, head_dim], [heads, head_dim]
            tensors[f"{p}attention.self.{name}.weight"] = kernel.reshape(kernel.shape[0], -1).T
            tensors[f"{p}attention.self.{name}.bias"] = bias.reshape(-1)
        kernel, bias = attention._output_dense.get_weights()  # [heads, head_dim, out]
        tensors[f"{p}attention.output.dense.weight"] = kernel.reshape(-1, kernel.shape[-1]).T
        tensors[f"{p}attention.output.dense.bias"] = bias
        tensors.update({f"{p}attention.output.{k}": v
                        for k, v in _norm(block._self_attention_norm).items()})
        for name, layer in (("intermediate.dense", block._ffn_inner),
                            ("output.dense", block._ffn_outer)):
            tensors[f"{p}{name}.weight"], tensors[f"{p}{name}.bias"] = _linear(layer)
        tensors.update({f"{p}output.{k}": v for k, v in _norm(block._ffn_norm).items()})
    return {prefix + name: value for name, value in tensors.items()}


def _layer(model, name):
    return next(layer for layer in model.layers if layer.name == name)


def head_tensors(family, model):
    """The family's head under Hugging Face's names (see the module doc)."""
    tensors = {}
    if family == "mlm":
        head = _layer(model, "mlm_head")
        weight, bias = _linear(head._transform)
        bias_out = head.output_bias.numpy()
        tensors = {"cls.predictions.transform.dense.weight": weight,
                   "cls.predictions.transform.dense.bias": bias,
                   **{f"cls.predictions.transform.{k}": v
                      for k, v in _norm(head._layer_norm).items()},
                   "cls.predictions.bias": bias_out, "cls.predictions.decoder.bias": bias_out,
                   "cls.predictions.decoder.weight":
                       model.stack.embedding.token_embedding.get_weights()[0]}
    elif family == "classifier":
        tensors["bert.pooler.dense.weight"], tensors["bert.pooler.dense.bias"] = _linear(
            _layer(model, "pooler"))
        tensors["classifier.weight"], tensors["classifier.bias"] = _linear(
            _layer(model, "classifier"))
    elif family == "token_classifier":
        tensors["classifier.weight"], tensors["classifier.bias"] = _linear(
            _layer(model, "tagger"))
    return tensors


def bert_config(model, architecture, labels=None):
    """config.json of the model (`labels`: id2label for a classifier head)."""
    embedding = model.stack.embedding
    config = {"architectures": [architecture], "model_type": "bert",
              "vocab_size": model.vocabulary_size, "hidden_size": model.hidden_dim,
              "num_hidden_layers": model.num_layers, "num_attention_heads": model.num_heads,
              "intermediate_size": model.intermediate_dim,
              "hidden_act": hidden_act(model.activation),
              "max_position_embeddings": model.max_length,
              "type_vocab_size": (embedding.token_type_embedding.input_dim
                                  if embedding.token_type_embedding is not None else 2),
              "layer_norm_eps": model.layer_norm_epsilon,
              "hidden_dropout_prob": model.dropout,
              "attention_probs_dropout_prob": (model.dropout if model.attention_dropout is None
                                               else model.attention_dropout),
              "initializer_range": 0.02, "pad_token_id": 0,
              "position_embedding_type": "absolute"}
    if labels:
        config["id2label"] = {str(i): label for i, label in enumerate(labels)}
        config["label2id"] = {label: i for i, label in enumerate(labels)}
        config["num_labels"] = len(labels)
    return config


def write_huggingface(family, model, vocabulary, lowercase, output, labels=None,
                      encoder_only=False):
    """Writes the Hugging Face BERT folder `output` (see the module doc)."""
    from safetensors.numpy import save_file

    problem = refusal(family, model, encoder_only)
    if problem:
        raise ValueError(f"cannot export to Hugging Face: {problem}")
    architecture = "BertModel" if encoder_only else HEADS[family]
    tensors = encoder_tensors(model.stack, prefix="" if encoder_only else "bert.")
    if not encoder_only:
        tensors.update(head_tensors(family, model))
    else:  # BertModel has a pooler (keras-hub requires one): the classifier's, else zeros
        hidden = model.hidden_dim
        pooler = next((layer for layer in model.layers if layer.name == "pooler"), None)
        weight, bias = _linear(pooler) if pooler is not None else (
            np.zeros((hidden, hidden), "float32"), np.zeros(hidden, "float32"))
        tensors.update({"pooler.dense.weight": weight, "pooler.dense.bias": bias})
    if family == "classifier" and not labels and not encoder_only:
        labels = [f"LABEL_{i}" for i in range(model.num_classes)]
    os.makedirs(output, exist_ok=True)
    # safetensors wants contiguous arrays (the transposes are views).
    save_file({name: np.ascontiguousarray(value, dtype="float32")
               for name, value in tensors.items()}, os.path.join(output, "model.safetensors"),
              metadata={"format": "pt"})
    with open(os.path.join(output, "config.json"), "w", encoding="utf-8") as f:
        json.dump(bert_config(model, architecture, None if encoder_only else labels), f,
                  indent=2)
    with open(os.path.join(output, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"do_lower_case": bool(lowercase), "tokenizer_class": "BertTokenizer",
                   "model_max_length": model.max_length}, f, indent=2)
    shutil.copyfile(vocabulary, os.path.join(output, "vocab.txt"))
    return output


def write_keras_hub(huggingface_folder, output):
    """A keras-hub preset (BertBackbone + BertTokenizer) read by keras-hub's
    own converter from a Hugging Face folder this module wrote."""
    import keras_hub

    backbone = keras_hub.models.BertBackbone.from_preset(huggingface_folder)
    tokenizer = keras_hub.models.BertTokenizer.from_preset(huggingface_folder)
    backbone.save_to_preset(output)
    tokenizer.save_to_preset(output)
    return output


def export_run(run_dir, format="huggingface", output=None, encoder_only=False, log=print):
    """Writes the run's current export as `format` into `output`."""
    import tempfile

    import keras

    import tfmask.layers  # noqa: F401  (registers the layers for loading)
    import tfmask.models  # noqa: F401
    from tfmask.run_folder import RunFolder
    from tfmask.tasks import load_config

    if format not in FORMATS:
        raise ValueError(f"--format={format} is not one of {', '.join(FORMATS)}.")
    if not output:
        raise ValueError("--output is required: the folder to write.")
    if os.path.exists(output) and os.listdir(output):
        raise ValueError(f"--output={output} is not empty; name a new folder.")
    folder = RunFolder(os.path.expanduser(run_dir))
    if not folder.is_run():
        raise FileNotFoundError(f"{run_dir} has no export/model.keras; train it with "
                                "python -m tfmask.train (runtime.export: true) first.")
    config = load_config(folder.config_file, check_data=False)
    family = config.model.family
    if family not in HEADS:  # before loading the model
        raise ValueError(f"cannot export to Hugging Face: {refusal(family, None)}")
    export = folder.current_export()
    model = keras.models.load_model(export.model)
    labels = list(config.model.tags) if family == "token_classifier" else None
    if format == "huggingface":
        write_huggingface(family, model, export.vocabulary, config.data.lowercase, output,
                          labels, encoder_only)
        log(f"wrote {output}: {'BertModel' if encoder_only else HEADS[family]} "
            "(config.json, model.safetensors, vocab.txt, tokenizer_config.json)")
        return output
    with tempfile.TemporaryDirectory() as staged:
        write_huggingface(family, model, export.vocabulary, config.data.lowercase, staged,
                          labels, encoder_only=True)
        write_keras_hub(staged, output)
    log(f"wrote {output}: a keras-hub preset of the BertBackbone and BertTokenizer (keras-hub "
        "converts no BERT heads; --format huggingface keeps the head)")
    return output


def main(argv):
    from tfmask.cli import USER_ERROR, extra_arguments_error, report

    if extra_arguments_error(argv):
        return USER_ERROR
    if not FLAGS.run:
        print("error: --run is required: the run folder to export.", file=sys.stderr)
        return USER_ERROR
    return report(lambda: export_run(FLAGS.run, FLAGS.format, FLAGS.output,
                                     FLAGS.encoder_only) and 0, FLAGS.debug)


if __name__ == "__main__":
    from tfmask.cli import run_main

    run_main(main)
