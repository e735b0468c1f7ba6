"""`model.freeze_encoder`: the heads train, the encoder's weights stay as they
started (linear probing; a fresh MLM head's warm-up, experiment 8), for every
encoder family; the others refuse the key in one line."""

import numpy as np
import pytest

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


def test_families_without_an_encoder_refuse_it():
    with pytest.raises(ConfigError, match="model.family=causal_lm does not use "
                                          "model.freeze_encoder=true; remove it"):
        config_from_dict(tiny_config("causal_lm", model={"freeze_encoder": True}))
