"""One harness every tfmask layer passes through (as keras-hub's run_layer_test).

It checks, for a layer class, constructor kwargs and example inputs:
  1. `get_config()` keys are exactly the `__init__` parameters (a dropped key
     would survive a plain round trip unnoticed);
  2. output shape;
  3. `from_config(get_config())` + copied weights gives the same output;
  4. the layer inside a functional model saves to `.keras` and reloads with
     the same output;
  5. in `mixed_float16` and `mixed_bfloat16` (per-layer policy, the global
     policy is never touched) the output has the compute dtype, is finite, and
     is close to float32 with the same weights.
"""

import inspect

import keras
import numpy as np

BASE_CONFIG_KEYS = {"name", "trainable", "dtype"}
LOW_PRECISION_TOLERANCE = {"mixed_float16": 2e-2, "mixed_bfloat16": 1e-1}


def _first(outputs):
    return outputs[0] if isinstance(outputs, (tuple, list)) else outputs


def _call(layer, inputs, call_kwargs):
    return layer(**inputs, **call_kwargs)


def check_config_keys(layer_cls, config):
    params = inspect.signature(layer_cls.__init__).parameters
    expected = {
        name
        for name, p in params.items()
        if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }
    actual = set(config) - BASE_CONFIG_KEYS
    assert actual == expected, (
        f"{layer_cls.__name__}.get_config() keys differ from __init__ "
        f"parameters: missing {expected - actual}, extra {actual - expected}"
    )


def run_layer_test(
    layer_cls,
    init_kwargs,
    inputs,
    call_kwargs=None,
    expected_output_shape=None,
    tolerance=1e-5,
    check_saving=True,
    check_precision=True,
    tmp_path=None,
):
    """Runs the shared checks; `inputs` maps call argument names to arrays."""
    call_kwargs = dict(call_kwargs or {})
    layer = layer_cls(**init_kwargs)
    reference = _first(_call(layer, inputs, call_kwargs))
    if expected_output_shape is not None:
        assert tuple(reference.shape) == tuple(expected_output_shape)

    config = layer.get_config()
    check_config_keys(layer_cls, config)
    clone = layer_cls.from_config(config)
    _call(clone, inputs, call_kwargs)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(
        _first(_call(clone, inputs, call_kwargs)), reference, atol=tolerance
    )

    if check_saving:
        assert tmp_path is not None, "pass tmp_path to check .keras saving"
        symbolic = {
            name: keras.Input(
                shape=np.shape(value)[1:],
                dtype=str(np.asarray(value).dtype),
                name=name,
            )
            for name, value in inputs.items()
        }
        model = keras.Model(symbolic, _first(_call(layer, symbolic, call_kwargs)))
        path = str(tmp_path / f"{layer_cls.__name__}.keras")
        model.save(path)
        restored = keras.models.load_model(path)
        np.testing.assert_allclose(
            restored.predict(inputs, verbose=0), reference, atol=tolerance
        )

    if check_precision:
        weights = layer.get_weights()
        for policy, tol in LOW_PRECISION_TOLERANCE.items():
            low = layer_cls(**init_kwargs, dtype=policy)
            _call(low, inputs, call_kwargs)
            low.set_weights(weights)
            output = _first(_call(low, inputs, call_kwargs))
            compute_dtype = keras.DTypePolicy(policy).compute_dtype
            assert keras.backend.standardize_dtype(output.dtype) == compute_dtype
            output = np.asarray(keras.ops.cast(output, "float32"))
            assert np.all(np.isfinite(output)), f"non-finite output in {policy}"
            np.testing.assert_allclose(output, reference, atol=tol, rtol=tol)
    return layer, reference
