"""Every family trains with Keras' own `model.fit` (issue 29): the task gives
the batches of its pipeline (masking on the fly) and compiles the model with
its loss, which equals the loss the tfmask trainer computes, batch by batch."""

import os
import re
import textwrap

import keras
import numpy as np
import pytest

from tests.tiny import FAMILIES, tiny_config
from tfmask.tasks import build_task, config_from_dict

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_fit_trains_on_the_tasks_batches_with_the_tasks_loss(family):
    task = build_task(config_from_dict(tiny_config(family)))
    keras.utils.set_random_seed(0)
    model = task.compile(task.build_model("float32"), keras.optimizers.AdamW(1e-3))
    # The trainer's loss of one evaluation batch = Keras' evaluate of it.
    batch = next(iter(task.evaluation_for(task.config.data.eval_split)))
    inputs, labels, weights = task.split_batch(batch)
    total, weight = task.loss_terms(labels, model(inputs, training=False), weights)
    keras_loss = model.evaluate(inputs, labels, sample_weight=weights, verbose=0,
                                batch_size=len(labels), return_dict=True)["loss"]
    assert keras_loss == pytest.approx(float(total / weight), rel=1e-5)
    # (Validation data reaches fit in the README example's journey test.)
    history = model.fit(task.fit_data(), steps_per_epoch=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    total, weight = task.loss_terms(labels, model(inputs, training=False), weights)
    assert float(total / weight) < keras_loss  # it learned: the same batch, a lower loss


@pytest.mark.journey  # the README's own code, as a user runs it
def test_the_readme_fit_example_runs(tmp_path, monkeypatch):
    """README's `model.fit` block, on a tiny classifier for a few steps."""
    readme = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
    code = textwrap.dedent(re.search(r"```python fit\n(.*?)```", readme, re.S).group(1))
    code = code.replace("steps_per_epoch=200, epochs=3", "steps_per_epoch=2, epochs=1")
    config = tmp_path / "tiny.yaml"
    import yaml

    config.write_text(yaml.safe_dump(tiny_config("classifier")))
    code = code.replace("configs/rotten_tomatoes_minilm.yaml", str(config))
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 (the README's own code)
    assert np.isfinite(namespace["history"].history["loss"]).all()
    assert os.listdir(tmp_path / "runs" / "fit")  # the TensorBoard callback wrote its logs
