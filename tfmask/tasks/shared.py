"""What several families' tasks share, so no task imports a sibling task.

- `encoder_kwargs`: a config's encoder hyper-parameters (every Transformer family);
- `pretrained_directory`, `check_pretrained_architecture`: `model.pretrained`
  (`minilm`, a Hugging Face BERT folder or a tfmask run) as a folder, and the
  settings a checkpoint brings itself (encoder families);
- `MLM_STRATEGIES`, `mlm_strategy`: the token-masking strategies a config's
  `masking` section names (the masked LM trains on them; the classifier uses
  them as input noise).

Example:
>>> sorted(MLM_STRATEGIES)
['entity', 'random', 'span', 'term', 'whole_word']
"""

import os

from tfmask.data import masking as M
from tfmask.errors import ConfigError

MLM_STRATEGIES = {"random": M.RandomTokenMasking, "whole_word": M.WholeWordMasking,
                  "span": M.SpanMasking, "entity": M.EntityMasking,
                  # Key terms are the units entity masking masks first.
                  "term": M.EntityMasking}


def mlm_strategy(masking, tokenizer):
    """The MLM masking strategy a config's `masking` section names."""
    kwargs = dict(rate=masking.rate, mask_ratio=masking.mask_ratio,
                  random_ratio=masking.random_ratio, max_predictions=masking.max_predictions,
                  special_token_ids=tokenizer.special_token_ids(), pad_id=tokenizer.pad_id)
    if masking.strategy in ("entity", "term"):
        kwargs["entity_probability"] = masking.entity_probability
    return MLM_STRATEGIES[masking.strategy](tokenizer.vocabulary_size, tokenizer.mask_id,
                                            **kwargs)


def encoder_kwargs(config, tokenizer):
    """Encoder hyper-parameters of a config (model section + vocabulary)."""
    model = config.model
    return dict(vocabulary_size=tokenizer.vocabulary_size, num_layers=model.num_layers,
                num_heads=model.num_heads, hidden_dim=model.hidden_dim,
                intermediate_dim=model.intermediate_dim, max_length=config.data.sequence_length,
                dropout=model.dropout, position=model.position)


# model.lora_layers -> the projections of each encoder block that get LoRA.
LORA_LAYERS = {"query_value": ("query", "value"),
               "attention": ("query", "key", "value", "attention_output"),
               "all": ("query", "key", "value", "attention_output", "ffn_inner", "ffn_outer")}


def _projections(block):
    attention = block._self_attention
    return {"query": attention._query_dense, "key": attention._key_dense,
            "value": attention._value_dense, "attention_output": attention._output_dense,
            "ffn_inner": block._ffn_inner, "ffn_outer": block._ffn_outer}


def with_encoder_training(model, config):
    """`model` with its encoder trained as the config says: whole (default);
    frozen (`model.freeze_encoder`: the optimizer sees the heads only, their
    shared embedding included, so an MLM head's tied output matrix stays as it
    starts); or through LoRA (`model.lora_rank`: Keras' `enable_lora` on the
    `model.lora_layers` projections of every block, every other encoder
    weight frozen, the heads trained).

    Example:
    >>> import types
    >>> from tfmask.models import ClassifierModel
    >>> model = ClassifierModel(num_classes=2, vocabulary_size=20, num_layers=1, num_heads=1,
    ...                         hidden_dim=4, intermediate_dim=8, max_length=8)
    >>> frozen = types.SimpleNamespace(model=types.SimpleNamespace(freeze_encoder=True,
    ...                                                            lora_rank=0))
    >>> [w.path for w in with_encoder_training(model, frozen).trainable_weights]
    ['pooler/kernel', 'pooler/bias', 'classifier/kernel', 'classifier/bias']
    """
    settings = config.model
    if settings.freeze_encoder:
        for layer in model.stack.layers:
            layer.trainable = False
    elif settings.lora_rank:
        for block in model.stack.blocks:
            projections = _projections(block)
            for name in LORA_LAYERS[settings.lora_layers]:
                projections[name].enable_lora(settings.lora_rank)
        for layer in model.stack.layers:
            for weight in layer.weights:
                if "lora_kernel" not in weight.path:
                    weight.trainable = False
    return model


def check_pretrained_architecture(config):
    """A pretrained encoder brings its own architecture."""
    if config.model.pretrained and config.model.normalize_first is not None:
        raise ConfigError("model.normalize_first comes from model.pretrained's checkpoint; "
                          "remove it.")


def pretrained_directory(name_or_path):
    """`model.pretrained` as a folder: a path, or "minilm" (the prepared
    package, `python -m tfmask.datasets prepare minilm`)."""
    if name_or_path and os.path.isdir(name_or_path):
        return name_or_path
    if name_or_path == "minilm":
        from tfmask.datasets.assets import minilm_directory

        return minilm_directory()
    raise FileNotFoundError(
        f"Pretrained model {name_or_path!r} is neither a folder nor 'minilm'; "
        "run: python -m tfmask.datasets prepare minilm")
