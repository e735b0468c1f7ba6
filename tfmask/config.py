"""Typed run configuration: frozen dataclasses loaded from YAML.

One config file describes a run in seven sections:

    model      what to build (family, sizes, pretrained weights)
    data       which dataset, how to tokenize, sequence length, batch size, packing
    masking    the masking strategy and its rates
    optimizer  AdamW settings, gradient clipping
    schedule   learning-rate warm-up and decay
    train      steps, seed, evaluation and logging cadence
    runtime    precision, distribution strategy, XLA, checkpointing, output

Unknown keys, wrong types and impossible values (NaN or Inf included) fail
*before* any work starts, with one line that names the key and the fix
(`ConfigError`). Command-line overrides use dotted keys: `--set
model.num_layers=4`. YAML anchors and aliases are refused (a few nested
aliases expand to billions of values), and `~` in a path is the home folder.

This module owns the schema and the checks that hold for every family.
What a setting means for one family (the default `masking.strategy`, which
strategies it refuses, `data.lowercase` after a checkpoint, padding-free
layers) is decided by that family's task: `tfmask.tasks.load_config` and
`config_from_dict` parse here, then resolve there. Hardware-dependent
choices (`runtime.precision: auto`) stay as the user wrote them; the
trainer resolves them once per start and records them in the run folder.

Example:
>>> config = parse_config({"model": {"family": "mlm"}, "data": {"name": "austen"}})
>>> config.model.num_layers, config.masking.strategy, config.masking.rate
(4, None, 0.15)
>>> parse_config({"model": {"num_layer": 2}})
Traceback (most recent call last):
...
tfmask.errors.ConfigError: Unknown key model.num_layer; did you mean model.num_layers?
"""

import dataclasses
import difflib
import glob
import math
import os
import typing
from typing import Optional

import yaml

from tfmask.errors import ConfigError  # noqa: F401  (part of this module's interface)
from tfmask.run_folder import RunFolder

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16", "auto")
# Encoder + decoder blocks at most: a functional Keras model is walked
# recursively, one Python frame per layer, and TensorFlow sets Python's
# recursion limit to 3000 (num_layers=10000 crashed after minutes of
# building). The deepest Transformers trained (DeepNet) have 1000.
MAX_LAYERS = 1000
DISTRIBUTION = ("default", "mirrored", "multi_worker", "tpu")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    family: str = "mlm"
    pretrained: Optional[str] = None  # "minilm", a Hugging Face BERT folder or a tfmask run
    num_layers: int = 4
    num_heads: int = 4
    hidden_dim: int = 256
    intermediate_dim: int = 1024
    decoder_num_layers: Optional[int] = None
    embedding_dim: int = 256  # seq2seq_lstm
    lstm_units: int = 512  # seq2seq_lstm
    dropout: float = 0.1
    num_classes: int = 2
    pooling: str = "cls"
    dense_encoder: str = "mlp"  # dense families: mlp, or transformer over time steps / patches
    # Pre-LN blocks; null = the family's default (post-LN BERT encoders,
    # pre-LN decoders and encoder-decoders).
    normalize_first: Optional[bool] = None
    position: str = "learned"
    # Encoder token-wise layers on real tokens only (tfmask.layers.padding_free).
    # null = on, except on TPUs (under XLA: one compilation per bucket of token counts).
    padding_free: Optional[bool] = None
    # token_classifier: the tags it predicts; empty = read from the training
    # split (O, then every prefix of data.tag_scheme for each entity type).
    tags: list = dataclasses.field(default_factory=list)
    # Encoder families: train the head(s) only, the encoder's weights stay as
    # they start (linear probing; an MLM head's warm-up before unfreezing).
    freeze_encoder: bool = False
    # Encoder families: LoRA (Hu et al. 2021) through Keras' own enable_lora:
    # rank-r updates of the encoder's projections train, the rest of the
    # encoder is frozen, the heads train; the export merges them. 0 = off.
    lora_rank: int = 0
    lora_layers: str = "query_value"  # query_value (the paper's), attention, or all (+ FFN)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    name: str = ""  # a tfmask.datasets name, "tfds:NAME" or "file:PATH"
    train_split: str = "train"
    eval_split: str = "validation"
    text_key: str = "text"
    label_key: str = "label"
    target_key: str = "es"  # seq2seq targets (translation)
    source_key: str = "en"
    words_key: Optional[str] = None  # pre-segmented words (e.g. gold Chinese words)
    inputs_key: str = "features"  # dense families: the float feature ("image", "series", ...)
    mask_key: Optional[str] = None  # dense families: the data's 1 = observed feature
    # Chinese word segmenter for the words of raw text (whole-word masking,
    # masking.terms): "rjieba"; null = BERT's split, one word per CJK character.
    segmenter: Optional[str] = None
    dataset_options: dict = dataclasses.field(default_factory=dict)
    sequence_length: int = 128
    target_length: int = 64
    batch_size: int = 32
    eval_batch_size: int = 64
    vocabulary: str = "train"  # "train", "pretrained" or a vocab.txt path
    vocabulary_size: int = 8192
    lowercase: Optional[bool] = None  # null = model.pretrained's casing, else true
    pack: bool = False
    shuffle_buffer: int = 0  # 0 = the whole split (exact shuffle)
    # Train on this many examples of the split (stratified by data.label_key
    # when the data has it, drawn with train.seed); 0 = all of them.
    train_examples: int = 0
    # A tf.data service dispatcher, HOST:PORT or grpc://HOST:PORT, whose workers
    # run the training pipeline (tfmask.data.service); "" = on this host.
    service: str = ""
    # token_classifier: the scheme of the data's `tags` (bio, iob1, iobes,
    # bilou); null = read from the training split.
    tag_scheme: Optional[str] = None
    # token_classifier: what one tag labels: a `word` of the data (its first
    # word piece carries the tag), or a `character` (BERT's split: one unit
    # per CJK character; word-level tags are spread over its characters).
    tag_unit: str = "word"
    # token_classifier: documents longer than a row are read through windows
    # this many pieces apart; 0 = half a row.
    window_stride: int = 0


@dataclasses.dataclass(frozen=True)
class MaskingConfig:
    # null = the family's default: random for mlm, none (no masking) otherwise.
    strategy: Optional[str] = None
    rate: float = 0.15
    mask_ratio: float = 0.8
    random_ratio: float = 0.1
    max_predictions: int = 20
    entity_probability: float = 1.0
    noise_density: float = 0.15
    mean_noise_span_length: float = 3.0
    terms: list = dataclasses.field(default_factory=list)
    patterns: list = dataclasses.field(default_factory=list)
    term_replacement: str = "mask"
    response_marker: str = ""  # prompt: text that ends the prompt, e.g. "### Response:"
    dynamic: bool = True  # mlm: new masks every epoch (RoBERTa); false = masked once (BERT)
    # Dense families (masking.strategy: dense; tfmask.data.masking.FeatureMasking):
    dense_mode: str = "element"  # element, feature, timestep, span or patch
    patch_size: int = 4  # patch: patch_size x patch_size image patches, or steps
    span_length: float = 3.0  # span: mean length of the hidden time spans
    fill: str = "mean"  # what hidden values become: the train mean, zero, or a learned token
    indicator: bool = False  # the model also reads which values are hidden


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    beta_1: float = 0.9
    beta_2: float = 0.999
    epsilon: float = 1e-6
    clipnorm: Optional[float] = 1.0  # global gradient norm (BERT); null = no clipping
    # Update only the embedding rows a batch reads (moments and weight decay
    # caught up exactly; tfmask.training.optimizer): untied-embedding families
    # (classifier, token_classifier), one replica, without XLA.
    sparse_embedding_update: bool = False


@dataclasses.dataclass(frozen=True)
class ScheduleConfig:
    warmup_steps: int = 0
    decay: str = "linear"  # linear | cosine | constant
    final_fraction: float = 0.0


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000
    seed: int = 0
    log_every: int = 50
    eval_every: int = 0  # 0 = only at the end
    eval_batches: int = 50
    generate_examples: int = 0  # seq2seq: decode this many eval examples for BLEU
    extra_eval_splits: list = dataclasses.field(default_factory=list)  # also evaluated at the end
    max_seconds: float = 0.0  # stop once training (not evaluation) took this long; 0 = no limit


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    # auto: this machine's fastest safe policy, resolved by the trainer at each
    # start and recorded in the run folder's runtime.jsonl (tfmask.training.precision).
    precision: str = "float32"
    strategy: str = "default"
    num_devices: int = 0  # mirrored: 0 = all visible devices
    tpu: str = ""  # tpu: name or address for TPUClusterResolver
    jit_compile: bool = False  # XLA-compile the step function (the input iterator stays out)
    steps_per_execution: int = 1  # training steps per host call (the usual TPU setting)
    checkpoint_every: int = 0  # every N steps too; 0 = by time (checkpoint_seconds) and at the end
    # Save at least this often (seconds of wall time), so a preempted run loses
    # minutes; null = 600 on one host, off for multi_worker / tpu; 0 = off.
    checkpoint_seconds: Optional[float] = None
    keep_checkpoints: int = 3
    output_dir: str = ""
    export: bool = True  # export/model.keras + vocab.txt at the end
    export_saved_model: bool = True  # ... and export/saved_model/ for serving


@dataclasses.dataclass(frozen=True)
class Config:
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    masking: MaskingConfig = dataclasses.field(default_factory=MaskingConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = dataclasses.field(default_factory=ScheduleConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)


def _check_type(key, value, annotation):
    """Returns `value` converted to `annotation`, or raises ConfigError."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        inner = [a for a in typing.get_args(annotation) if a is not type(None)][0]
        return _check_type(key, value, inner)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str):
        try:  # YAML reads "1e-3" as a string
            return float(value)
        except ValueError:
            pass
    expected = origin or annotation
    if expected is int and isinstance(value, bool) or not isinstance(value, expected):
        raise ConfigError(
            f"{key} must be {getattr(expected, '__name__', expected)}, got "
            f"{type(value).__name__} {value!r}."
        )
    return value


def _section_from_dict(cls, values, prefix):
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix} must be a mapping of keys, got {type(values).__name__}.")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    dotted = (lambda key: f"{prefix}.{key}") if prefix else (lambda key: key)
    for key in values:
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"; did you mean {dotted(close[0])}?" if close else (
                f"; known keys: {', '.join(fields)}.")
            raise ConfigError(f"Unknown key {dotted(key)}{hint}")
    kwargs = {}
    for name, value in values.items():
        if dataclasses.is_dataclass(hints[name]):
            kwargs[name] = _section_from_dict(hints[name], value, dotted(name))
        else:
            kwargs[name] = _check_type(dotted(name), value, hints[name])
    return cls(**kwargs)


def check_choice(key, value, choices):
    """One line naming `key` when `value` is not one of `choices`."""
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not one of {', '.join(choices)}.")


def _finite_floats(config):
    """Every float setting of the schema is a finite number: YAML reads
    `.nan` and `.inf` as floats, and NaN passes every `<`/`>` check (a NaN
    clipnorm silently turns clipping off, a NaN learning rate ends the run
    as a divergence)."""
    for section in dataclasses.fields(config):
        values = getattr(config, section.name)
        hints = typing.get_type_hints(type(values))
        for field in dataclasses.fields(values):
            value = getattr(values, field.name)
            if hints[field.name] in (float, Optional[float]) and value is not None and \
                    not math.isfinite(value):
                raise ConfigError(f"{section.name}.{field.name}={value} is not a finite number; "
                                  "set a real value.")


def _positive(key, value, allow_zero=False):
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{key}={value} must be {'>= 0' if allow_zero else '> 0'}.")


def _fraction(key, value):
    if not 0 <= value <= 1:
        raise ConfigError(f"{key}={value} must be between 0 and 1.")


def _check_dataset_names(names):
    from tfmask.datasets.registry import PREFIXES, REGISTRY
    import tfmask.datasets  # noqa: F401  (registers the corpora)

    for name in names.split("+"):
        # "file:data/{split}.jsonl" names one file per split: the train file must
        # exist; a glob ("file:shards/part-*.jsonl") must match a file.
        path = name[5:].replace("{split}", "train")
        if name.startswith("file:") and any(c in path for c in "*?["):
            if not glob.glob(path):
                raise ConfigError(f"data.name is the glob {path!r}, which matches no file; "
                                  "fix the pattern.")
        elif name.startswith("file:") and not os.path.exists(path):
            raise ConfigError(f"data.name points to {path!r}, which does not exist; "
                              "fix the path.")
        if not name.startswith(PREFIXES) and name not in REGISTRY.names():
            close = difflib.get_close_matches(name, REGISTRY.names(), n=1)
            hint = f"did you mean {close[0]}?" if close else (
                "see `python -m tfmask.datasets list`, or use tfds:NAME or file:PATH.")
            raise ConfigError(f"data.name={name!r} is not a known dataset; {hint}")


def _check_dataset_options(data):
    """`data.dataset_options` keys a file: source takes (a registry dataset
    refuses any when loaded; tfds: passes them on to
    `tensorflow_datasets.load`, which names a wrong one itself)."""
    from tfmask.datasets.reader import FILE_OPTIONS

    if not any(name.startswith("file:") for name in data.name.split("+")):
        return
    for key in data.dataset_options:
        if key not in FILE_OPTIONS:
            close = difflib.get_close_matches(str(key), FILE_OPTIONS, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ConfigError(f"data.dataset_options.{key} is not an option of file: sources; "
                              f"{hint}They take {', '.join(FILE_OPTIONS)}.")


def _below_one(key, value):
    if not 0 <= value < 1:
        raise ConfigError(f"{key}={value} must be in [0, 1); Adam's moment decay is below 1.")


def _check_numbers(config):
    """Every numeric setting of the optimizer, schedule, training and runtime."""
    opt, schedule, train, runtime = (config.optimizer, config.schedule, config.train,
                                     config.runtime)
    _positive("optimizer.learning_rate", opt.learning_rate)
    _positive("optimizer.weight_decay", opt.weight_decay, allow_zero=True)
    _below_one("optimizer.beta_1", opt.beta_1)
    _below_one("optimizer.beta_2", opt.beta_2)
    _positive("optimizer.epsilon", opt.epsilon)
    if opt.clipnorm is not None and opt.clipnorm <= 0:
        raise ConfigError(f"optimizer.clipnorm={opt.clipnorm} must be > 0 (a negative norm "
                          "reverses the gradient); set null for no clipping.")
    _positive("schedule.warmup_steps", schedule.warmup_steps, allow_zero=True)
    _positive("data.train_examples", config.data.train_examples, allow_zero=True)
    _fraction("schedule.final_fraction", schedule.final_fraction)
    _positive("train.steps", train.steps)
    _positive("train.log_every", train.log_every)
    _positive("train.eval_every", train.eval_every, allow_zero=True)
    if train.eval_batches < 1:
        raise ConfigError(f"train.eval_batches={train.eval_batches} must be >= 1: a run always "
                          "reports a real evaluation.")
    _positive("train.generate_examples", train.generate_examples, allow_zero=True)
    _positive("train.max_seconds", train.max_seconds, allow_zero=True)
    _positive("data.shuffle_buffer", config.data.shuffle_buffer, allow_zero=True)
    _positive("masking.max_predictions", config.masking.max_predictions)
    _positive("masking.patch_size", config.masking.patch_size)
    if config.masking.span_length < 1:
        raise ConfigError(f"masking.span_length={config.masking.span_length} must be >= 1 "
                          "(time steps per hidden span).")
    if config.masking.mean_noise_span_length < 1:
        raise ConfigError(f"masking.mean_noise_span_length={config.masking.mean_noise_span_length}"
                          " must be >= 1 (tokens per span).")
    _positive("runtime.checkpoint_every", runtime.checkpoint_every, allow_zero=True)
    _positive("runtime.keep_checkpoints", runtime.keep_checkpoints)
    _positive("runtime.num_devices", runtime.num_devices, allow_zero=True)
    if runtime.checkpoint_seconds is not None:
        _positive("runtime.checkpoint_seconds", runtime.checkpoint_seconds, allow_zero=True)
        # multi_worker agrees on it at every step (the trainer's all-reduce);
        # TPU hosts time themselves.
        if runtime.checkpoint_seconds and runtime.strategy == "tpu":
            raise ConfigError("runtime.checkpoint_seconds would make TPU hosts save at "
                              "different steps; use runtime.checkpoint_every with tpu.")
    for split in train.extra_eval_splits:
        if not isinstance(split, str) or not split:
            raise ConfigError(f"train.extra_eval_splits holds {split!r}; list split names.")


def _check_model_sizes(model):
    """Every size is positive (before any division by one), the blocks are
    at most `MAX_LAYERS`, and the heads split the hidden size."""
    for key in ("num_layers", "num_heads", "hidden_dim", "intermediate_dim", "num_classes",
                "embedding_dim", "lstm_units"):
        _positive(f"model.{key}", getattr(model, key))
    if model.decoder_num_layers is not None:
        _positive("model.decoder_num_layers", model.decoder_num_layers)
    layers = model.num_layers + (model.decoder_num_layers or 0)
    if layers > MAX_LAYERS:
        name = ("num_layers" if model.num_layers >= (model.decoder_num_layers or 0)
                else "decoder_num_layers")
        both = f" ({layers} encoder and decoder blocks)" if model.decoder_num_layers else ""
        raise ConfigError(
            f"model.{name}={getattr(model, name)}{both} is more than the {MAX_LAYERS} blocks "
            "tfmask builds (Keras walks a model's graph recursively and overflows Python's "
            "stack at a few thousand layers); lower it.")
    if model.pretrained is None and model.hidden_dim % model.num_heads:
        raise ConfigError(
            f"model.num_heads={model.num_heads} does not divide model.hidden_dim="
            f"{model.hidden_dim}; pick heads that divide the hidden size.")


def check_settings(config, check_data=True):
    """Cross-field checks that hold for every family; raises ConfigError
    naming the key and the fix. `check_data=False` skips checking that the
    data source and a pretrained folder exist (a trained run predicts
    without its data). The family's own checks follow in its task."""
    model, data, masking = config.model, config.data, config.masking
    _finite_floats(config)
    check_choice("runtime.precision", config.runtime.precision, PRECISIONS)
    check_choice("runtime.strategy", config.runtime.strategy, DISTRIBUTION)
    check_choice("schedule.decay", config.schedule.decay, ("linear", "cosine", "constant"))
    check_choice("model.pooling", model.pooling, ("cls", "mean"))
    check_choice("model.position", model.position, ("learned", "sinusoidal"))
    check_choice("masking.term_replacement", masking.term_replacement, ("mask", "random", "drop"))
    check_choice("masking.dense_mode", masking.dense_mode,
                 ("element", "feature", "timestep", "span", "patch"))
    check_choice("masking.fill", masking.fill, ("mean", "zero", "token"))
    check_choice("model.dense_encoder", model.dense_encoder, ("mlp", "transformer"))
    if not data.name:
        raise ConfigError("data.name is empty; set a dataset name (see "
                          "`python -m tfmask.datasets list`), tfds:NAME or file:PATH.")
    if check_data:
        _check_dataset_names(data.name)
        _check_dataset_options(data)
    _check_model_sizes(model)
    _positive("runtime.steps_per_execution", config.runtime.steps_per_execution)
    for key in ("sequence_length", "batch_size", "eval_batch_size", "vocabulary_size",
                "target_length"):
        _positive(f"data.{key}", getattr(data, key))
    for key in ("rate", "mask_ratio", "random_ratio", "entity_probability", "noise_density"):
        _fraction(f"masking.{key}", getattr(masking, key))
    if masking.mask_ratio + masking.random_ratio > 1:
        raise ConfigError(
            f"masking.mask_ratio + masking.random_ratio = "
            f"{masking.mask_ratio + masking.random_ratio} > 1; they are shares of the "
            "selected tokens.")
    if not 0 <= model.dropout < 1:
        raise ConfigError(f"model.dropout={model.dropout} must be in [0, 1): 1 drops everything.")
    if check_data and model.pretrained and model.pretrained != "minilm" and not any(
            (os.path.isfile(os.path.join(model.pretrained, "config.json")),
             RunFolder(model.pretrained).is_run())):
        raise ConfigError(f"model.pretrained={model.pretrained!r} is neither minilm, a folder "
                          "with a Hugging Face BERT config.json, nor a tfmask run with "
                          "export/model.keras; fix the path.")
    _check_numbers(config)
    if data.service:
        from tfmask.data.service import check_reachable, service_address

        address = service_address(data.service)
        if check_data:  # a run to train here: its dispatcher must answer now
            check_reachable(address)
    if config.train.max_seconds and config.runtime.strategy == "tpu":
        raise ConfigError("train.max_seconds would stop TPU hosts at different steps; use "
                          "train.steps with runtime.strategy=tpu.")
    if model.padding_free and config.runtime.strategy == "tpu":
        raise ConfigError("model.padding_free=true is not available on TPUs (the trainer "
                          "buckets token counts per XLA call, which a TPU step cannot "
                          "switch between); set model.padding_free: false or leave it unset.")
    if data.vocabulary == "pretrained" and not model.pretrained:
        raise ConfigError("data.vocabulary=pretrained needs model.pretrained (its vocab.txt).")
    if config.schedule.warmup_steps > config.train.steps:
        raise ConfigError(f"schedule.warmup_steps={config.schedule.warmup_steps} exceeds "
                          f"train.steps={config.train.steps}; lower it.")


def _expand_user(path):
    """`~` and `~user` at the start of a path made the home folder, as a
    shell does; `gs://` and other URLs are left alone."""
    return path if "://" in path else os.path.expanduser(path)


def expand_user_paths(config):
    """The config with `~` expanded in every path it holds: file: sources in
    data.name, data.vocabulary (a vocab.txt), model.pretrained (a folder)
    and runtime.output_dir. No shell expands a YAML value or the part after
    `--set key=`, so `~/data.jsonl` would name a folder called `~`."""
    data, model, runtime = config.data, config.model, config.runtime
    name = "+".join(f"file:{_expand_user(part[5:])}" if part.startswith("file:") else part
                    for part in data.name.split("+"))
    vocabulary = (data.vocabulary if data.vocabulary in ("train", "pretrained")
                  else _expand_user(data.vocabulary))
    pretrained = (model.pretrained if model.pretrained in (None, "minilm")
                  else _expand_user(model.pretrained))
    return dataclasses.replace(
        config, data=dataclasses.replace(data, name=name, vocabulary=vocabulary),
        model=dataclasses.replace(model, pretrained=pretrained),
        runtime=dataclasses.replace(runtime, output_dir=_expand_user(runtime.output_dir)))


def parse_config(values):
    """A nested dict (parsed YAML) -> `Config`: unknown keys and wrong types
    refused in one line; nothing resolved yet."""
    return _section_from_dict(Config, values or {}, "")


class AliasRefused(yaml.YAMLError):
    """A YAML anchor (&name) or alias (*name) in a config or a `--set` value."""

    def __init__(self, mark):
        super().__init__(f"line {mark.line + 1}")
        self.line = mark.line + 1


class _NoAliasLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` without anchors and aliases: a few nested aliases
    expand to 10^9 entries (a "billion laughs"), which hang a run while it
    reads `data.dataset_options` or `masking.terms`. Configs are short;
    writing a value twice costs nothing."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise AliasRefused(event.start_mark)
        return super().compose_node(parent, index)


def load_yaml(stream):
    """YAML text or a stream -> Python values, as `yaml.safe_load` reads
    them but refusing anchors and aliases (`AliasRefused`)."""
    return yaml.load(stream, Loader=_NoAliasLoader)  # noqa: S506 (a SafeLoader subclass)


def apply_overrides(values, overrides):
    """Applies ["a.b=value", ...] (values parsed as YAML) to a nested dict."""
    values = dict(values or {})
    for override in overrides or ():
        if "=" not in override:
            raise ConfigError(f"--set {override!r} must look like section.key=value.")
        key, raw = override.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) != 2:
            raise ConfigError(f"--set {key!r} must name section.key, e.g. model.num_layers.")
        section = values.get(parts[0]) or {}
        if not isinstance(section, dict):
            raise ConfigError(f"--set {key}: section {parts[0]} is not a mapping in the config.")
        section = dict(section)
        try:
            section[parts[1]] = load_yaml(raw)
        except AliasRefused:
            raise ConfigError(f"--set {override!r} uses a YAML anchor or alias (&name, *name); "
                              "write the value out instead.") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"--set {override!r}: the value is not valid YAML "
                              f"({str(error).splitlines()[0]}); quote it or fix it.") from None
        values[parts[0]] = section
    return values


def read_config_values(path, overrides=()):
    """A YAML config file's values with `--set` overrides applied (a nested
    dict, not checked yet: see `tfmask.tasks.load_config`)."""
    path = os.path.expanduser(path)
    try:
        with open(path, encoding="utf-8") as f:
            values = load_yaml(f) or {}
    except FileNotFoundError:
        raise ConfigError(f"Config file {path} does not exist; see configs/ for examples.") from None
    except IsADirectoryError:
        raise ConfigError(f"Config {path} is a folder; pass a YAML file.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"Config {path} is not UTF-8 text; pass a YAML file.") from None
    except AliasRefused as alias:
        raise ConfigError(f"{path} line {alias.line} uses a YAML anchor or alias (&name, *name), "
                          "which can expand to billions of values; write the values out."
                          ) from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {str(error).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must be a mapping of sections (model:, data:, ...), "
                          f"not a {type(values).__name__}.")
    return apply_overrides(values, overrides)


def config_to_dict(config):
    """The config as plain nested dicts (what a run folder's config.yaml holds)."""
    return dataclasses.asdict(config)
