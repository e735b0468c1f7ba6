"""What `python -m tfmask.train` resolved, said in a few lines before it trains.

    tfmask.train: token_classifier, masking none, on wnut16 (train 1,825 / validation 228 documents)
    model: 22.7M parameters (pretrained minilm: 6 layers x 384), 21 tags (bio)
    precision: auto -> mixed_bfloat16 (CPU with AVX512_BF16); strategy default: 1 replica on CPU
    training: 400 steps of 32 x 64 tokens; evaluation at the end; checkpoints every 200 steps
    output: runs/ner_wnut16_minilm

Sizes come from the prepared datasets' manifests (`python -m tfmask.datasets
prepare`); a `file:` source is counted after this block
(`tfmask.train.report_file_sources`), a TFDS one is named only.
"""


def split_sizes(config):
    """{split: documents} of data.name's training and evaluation splits from
    the prepared manifest, or {} (a file:, tfds: or mixed source)."""
    from tfmask.datasets.builder import read_manifest
    from tfmask.datasets.registry import REGISTRY

    name, data = config.data.name, config.data
    if ":" in name or "+" in name or name not in REGISTRY.names():
        return {}
    manifest = read_manifest(REGISTRY.get(name)) or {}
    splits = manifest.get("splits", {}).get("document", {})
    wanted = (data.train_split, data.eval_split, *config.train.extra_eval_splits)
    return {split: splits[split] for split in dict.fromkeys(wanted) if split in splits}


def model_line(config, model, task):
    """Parameters, where the encoder comes from, its shape, the task's labels."""
    parameters = model.count_params()
    parts = [f"{parameters / 1e6:.1f}M parameters" if parameters >= 1e5 else
             f"{parameters:,} parameters"]
    shape = ""
    if hasattr(model, "num_layers") and hasattr(model, "hidden_dim"):
        layers = model.num_layers
        shape = f"{layers} layer{'s' if layers != 1 else ''} x {model.hidden_dim}"
    origin = f"pretrained {config.model.pretrained}" if config.model.pretrained else "from scratch"
    parts[0] += f" ({origin}{': ' + shape if shape else ''})"
    if config.model.freeze_encoder:
        parts.append(f"encoder frozen: {_trainable(model):,} trainable")
    elif config.model.lora_rank:
        parts.append(f"LoRA rank {config.model.lora_rank} on {config.model.lora_layers}: "
                     f"{_trainable(model):,} trainable")
    else:
        parts.append(f"{_trainable(model):,} trainable")
    tags = getattr(task, "tags", None)
    if tags:
        parts.append(f"{len(tags)} tags ({config.data.tag_scheme})")
    return "model: " + ", ".join(parts)


def _trainable(model):
    return sum(int(w.numpy().size) for w in model.trainable_weights)


def start_lines(config, trainer, output_dir):
    """The lines printed before training (see the module doc)."""
    data, train, runtime = config.data, config.train, config.runtime
    sizes = split_sizes(config)
    where = data.name + (" (" + " / ".join(f"{split} {count:,}" for split, count in sizes.items())
                         + " documents)" if sizes else "")
    what = f"{config.model.family}, masking {config.masking.strategy}"
    replicas = trainer.strategy.num_replicas_in_sync
    devices = _device_summary()
    precision = (f"{runtime.precision} -> {trainer.precision} ({trainer.precision_reason})"
                 if runtime.precision == "auto" else trainer.precision)
    tokens = f" x {data.sequence_length} tokens" if not trainer.task.dense else ""
    evaluation = (f"evaluation every {train.eval_every} steps" if train.eval_every
                  else "evaluation at the end")
    checkpoints = (f"checkpoints every {runtime.checkpoint_every} steps"
                   if runtime.checkpoint_every else "a checkpoint at the end")
    return [f"tfmask.train: {what}, on {where}",
            model_line(config, trainer.model, trainer.task),
            f"precision: {precision}; strategy {runtime.strategy}: {replicas} "
            f"replica{'s' if replicas > 1 else ''} on {devices}",
            f"training: {train.steps} steps of {data.batch_size}{tokens}; {evaluation}; "
            f"{checkpoints}",
            f"output: {output_dir}"]


def _device_summary():
    """"CPU", "1 GPU", "8 TPU": this worker's accelerators, else its CPU."""
    import collections

    import tensorflow as tf

    kinds = collections.Counter(d.device_type for d in tf.config.list_logical_devices()
                                if d.device_type in ("GPU", "TPU"))
    return ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) or "CPU"
