"""`runtime.precision: auto` picks the machine's fastest safe policy and the
run records the policy it used."""

import pytest

from tfmask.training.config import config_from_dict
from tfmask.training.precision import choose_precision, cpu_flags

BF16_CPU = {"avx512f", "avx512_bf16"}


@pytest.mark.parametrize("strategy, jit, gpus, flags, expected", [
    ("tpu", False, [], set(), "mixed_bfloat16"),
    ("default", False, [(9, 0)], set(), "mixed_bfloat16"),
    ("mirrored", False, [(8, 0), (9, 0)], set(), "mixed_bfloat16"),
    ("mirrored", False, [(7, 0), (9, 0)], set(), "mixed_float16"),  # the slowest GPU decides
    ("default", False, [(6, 1)], set(), "float32"),
    ("default", False, [], BF16_CPU, "mixed_bfloat16"),
    ("default", False, [], {"amx_bf16"}, "mixed_bfloat16"),
    ("default", True, [], BF16_CPU, "float32"),  # XLA:CPU runs bfloat16 no faster
    ("default", False, [], {"avx2", "fma"}, "float32"),
])
def test_auto_picks_by_hardware(strategy, jit, gpus, flags, expected):
    chosen, reason = choose_precision(strategy, jit, gpus, flags)
    assert chosen == expected and reason


def test_auto_is_resolved_in_the_config_the_run_records():
    config = config_from_dict({"model": {"family": "mlm"}, "data": {"name": "austen"},
                               "runtime": {"precision": "auto"}}, check_data=False)
    has_units = any(flag in cpu_flags() for flag in ("avx512_bf16", "amx_bf16"))
    assert config.runtime.precision == ("mixed_bfloat16" if has_units else "float32")
