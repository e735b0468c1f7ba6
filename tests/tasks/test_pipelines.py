"""Task pipelines: static vs dynamic masking over epochs, evaluation splits."""

import numpy as np
import pytest

from tests.training.test_trainer import tiny_config
from tfmask.tasks import config_from_dict
from tfmask.tasks import build_task


def _epochs(dynamic, pack=False):
    values = tiny_config("mlm_whole_word", masking={"dynamic": dynamic},
                         data={"train_split": "train[:40]", "pack": pack})
    task = build_task(config_from_dict(values))
    batches = list(task.train.take(15).as_numpy_iterator())  # 40 rows = 5 batches of 8
    rows = [[(tuple(ids), tuple(pos)) for b in batches[i:i + 5]
             for ids, pos in zip(b["token_ids"], b["mask_positions"])] for i in (0, 5, 10)]
    return rows


def test_static_masking_repeats_each_rows_masks_in_a_new_order():
    first, second, third = _epochs(dynamic=False)
    assert sorted(first) == sorted(second) == sorted(third)
    assert first != second  # reshuffled


def test_dynamic_masking_draws_new_masks_every_epoch():
    first, second, _ = _epochs(dynamic=True)
    assert len(set(first) & set(second)) < len(first) // 2


def test_evaluation_for_another_split():
    task = build_task(config_from_dict(tiny_config("classifier")))
    validation = next(iter(task.evaluation))["token_ids"].numpy()
    test = next(iter(task.evaluation_for("test")))["token_ids"].numpy()
    assert validation.shape == test.shape and not np.array_equal(validation, test)


def test_static_masking_is_for_masked_lm_only():
    from tfmask.errors import ConfigError

    with pytest.raises(ConfigError, match="model.family=classifier does not use "
                                          "masking.dynamic=false; remove it"):
        config_from_dict(tiny_config("classifier", masking={"dynamic": False}))
