"""How the encoder trains: `model.freeze_encoder` (the heads train, the
encoder's weights stay as they started: linear probing; a fresh MLM head's
warm-up, experiment 8) and `model.lora_rank` (LoRA through Keras'
`enable_lora`: only the rank-r updates and the heads train; checkpoints
resume them; the export merges them), for every encoder family; the others
refuse the keys in one line."""

import keras
import numpy as np
import pytest

from tfmask.run_folder import RunFolder

from tests.tiny import tiny_config
from tfmask.errors import ConfigError
from tfmask.tasks import config_from_dict
from tfmask.training.trainer import Trainer

HEADS = {"mlm": ["mlm_head"], "classifier": ["pooler", "classifier"],
         "token_classifier": ["tagger"]}


def weights(model, names):
    return {layer.name: [np.array(w) for w in layer.get_weights()]
            for layer in model.layers if layer.name in names}


@pytest.mark.parametrize("family", sorted(HEADS))
def test_a_frozen_encoder_keeps_its_weights_and_the_heads_learn(tmp_path, family):
    trainer = Trainer(config_from_dict(tiny_config(
        family, model={"freeze_encoder": True}, train={"steps": 3})), str(tmp_path),
        verbose=False)
    model = trainer.model
    encoder = [layer.name for layer in model.stack.layers]
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert trainable == set(HEADS[family])  # the optimizer sees the heads only
    before = weights(model, encoder + HEADS[family])
    trainer.fit()
    after = weights(model, encoder + HEADS[family])
    for name in encoder:
        for old, new in zip(before[name], after[name]):
            np.testing.assert_array_equal(old, new, err_msg=name)
    for name in HEADS[family]:
        assert any(not np.array_equal(a, b) for a, b in zip(before[name], after[name])), name


@pytest.mark.parametrize("key,value", [("freeze_encoder", True), ("lora_rank", 4)])
def test_families_without_an_encoder_refuse_it(key, value):
    shown = str(value).lower()
    with pytest.raises(ConfigError, match=f"model.family=causal_lm does not use "
                                          f"model.{key}={shown}; remove it"):
        config_from_dict(tiny_config("causal_lm", model={key: value}))


@pytest.mark.parametrize("family,layers,count", [("classifier", "query_value", 2),
                                                 ("mlm", "attention", 4)])
def test_lora_reaches_the_projections_lora_layers_names(tmp_path, family, layers, count):
    model = Trainer(config_from_dict(tiny_config(family, model={
        "lora_rank": 2, "lora_layers": layers})), str(tmp_path), verbose=False).model
    lora = [w.path for w in model.trainable_weights if "lora_kernel" in w.path]
    assert len(lora) == 2 * count  # A and B per projection, one block
    heads = {w.path.split("/")[0] for w in model.trainable_weights if "lora_kernel" not in w.path}
    assert heads == set(HEADS[family])


def test_lora_trains_its_updates_and_the_heads_resumes_and_exports_merged(tmp_path):
    family, layers, count = "token_classifier", "all", 6
    values = tiny_config(family, model={"lora_rank": 2, "lora_layers": layers},
                         train={"steps": 2}, runtime={"export": True, "export_saved_model": False,
                                                      "checkpoint_every": 1})
    trainer = Trainer(config_from_dict(values), str(tmp_path), verbose=False)
    model = trainer.model
    lora = [w for w in model.trainable_weights if "lora_kernel" in w.path]
    assert len(lora) == 2 * count  # A and B per projection, one block
    heads = {w.path.split("/")[0] for w in model.trainable_weights if "lora_kernel" not in w.path}
    assert heads == set(HEADS[family])
    frozen = {w.path: np.array(w) for w in model.weights
              if not w.trainable and w.path.split("/")[0].startswith(("encoder_block", "embedding"))}
    trainer.fit()
    for weight in model.weights:  # the base weights are where they started
        if weight.path in frozen:
            np.testing.assert_array_equal(frozen[weight.path], np.array(weight), weight.path)
    assert any(np.abs(np.array(w)).max() > 0 for w in lora if w.path.endswith("lora_kernel_b"))
    # Resume: a second run of the same folder continues from step 2 with the LoRA weights.
    values["train"]["steps"] = 3
    resumed = Trainer(config_from_dict(values), str(tmp_path), verbose=False)
    resumed.fit()
    assert int(resumed.step.numpy()) == 3
    # The export merges the updates into plain kernels: same outputs, no LoRA weights.
    exported = keras.models.load_model(RunFolder(str(tmp_path)).current_export().model)
    assert not [w for w in exported.weights if "lora" in w.path]
    batch = next(iter(resumed.task.evaluation))
    inputs, _, _ = resumed.task.split_batch(batch)
    np.testing.assert_allclose(np.asarray(exported(inputs)), np.asarray(resumed.model(inputs)),
                               atol=1e-5)


@pytest.mark.parametrize("model,message", [
    ({"lora_rank": -1}, "model.lora_rank=-1 must be >= 0"),
    ({"lora_layers": "all"}, "model.lora_layers=all is set but model.lora_rank=0"),
    ({"lora_rank": 2, "freeze_encoder": True}, "LoRA already freezes the encoder"),
])
def test_inconsistent_encoder_training_is_refused(model, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(tiny_config("classifier", model=model))
