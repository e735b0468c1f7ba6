"""The one harness every tfmask layer and model passes through.

`run_layer_test(cls, init_kwargs, input_data, expected_output_shape, ...)`
is keras-hub's `run_layer_test` (keras_hub/src/tests/test_case.py: its
serialization, build, symbolic, eager, training-step and precision checks)
with tfmask's own checks added:
  1. serialization: `get_config()` keys are exactly the `__init__` parameters
     (a dropped key would survive a plain round trip unnoticed), and
     `from_config(get_config())` and `serialize_keras_object` round trips give
     the same config (keras-hub);
  2. build (when weight counts are given), symbolic and eager calls: output
     shape and dtype (keras-hub);
  3. `from_config(get_config())` + copied weights gives the same output
     (through the `.keras` file of 5. when there is one);
  4. the implicit Keras mask equals the explicit mask: where `input_data`
     holds an explicit padding mask (`padding_mask`, `encoder_padding_mask`,
     `query_mask`, ... see KERAS_MASKED), the call without it, the mask
     attached to its tensor instead, gives the same output;
  5. the layer inside a functional model saves to `.keras` and reloads with
     the same output (with `tmp_path`);
  6. optionally a compiled training step (keras-hub; off by default: seconds
     of XLA compilation per layer);
  7. in `mixed_float16`, `mixed_bfloat16` and `bfloat16` (per-layer policy,
     the global policy is never touched) outputs, output specs (where the
     layer computes its own), weights and sublayers have the policy's dtypes
     (keras-hub), the output is finite, and in the mixed policies close to
     float32 with the same weights.

`run_model_test(model, input_data, tmp_path)` is the same for a whole model
(keras-hub's `run_model_saving_test`): predict (an eager call), save to
`.keras`, load the same class with the same config (the `get_config()` /
`from_config` round trip) and weights, predict again == before.

`KerasHubTestCase` gives the peer suites adapted from keras-hub
(tests/layers/peers) keras-hub's `self.run_layer_test(...)` API on this
harness, with keras-hub's defaults (training step on, weight counts 0).
"""

import inspect
import json

import keras
import numpy as np
from keras import ops, tree
from keras.src.backend import set_keras_mask
from keras.src.testing import TestCase

BASE_CONFIG_KEYS = {"name", "trainable", "dtype"}
# Low-precision policies and how close to float32 the output must be with the
# same (float32) weights; bfloat16 variables are checked for dtypes only.
PRECISION_TOLERANCE = {"mixed_float16": 2e-2, "mixed_bfloat16": 1e-1, "bfloat16": None}
# (explicit mask argument, the call argument whose Keras mask it replaces)
KERAS_MASKED = (
    ("padding_mask", "inputs"),
    ("target_padding_mask", "inputs"),
    ("decoder_padding_mask", "decoder_sequence"),
    ("encoder_padding_mask", "encoder_sequence"),
    ("encoder_padding_mask", "encoder_outputs"),
    ("query_mask", "query"),
    ("value_mask", "value"),
    ("key_mask", "key"),
)


def _first(outputs):
    return outputs[0] if isinstance(outputs, (tuple, list)) else outputs


def _call(layer, input_data, call_kwargs):
    if isinstance(input_data, dict):
        return layer(**input_data, **call_kwargs)
    return layer(input_data, **call_kwargs)


def _is_float(dtype):
    return "float" in keras.backend.standardize_dtype(dtype)


def _dtype(x):
    return keras.backend.standardize_dtype(x.dtype)


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


def check_serialization(instance):
    """keras-hub's run_serialization_test: config and serialized round trips
    are idempotent and give an object with the same attributes."""
    cls = instance.__class__
    cfg_json = json.dumps(instance.get_config(), sort_keys=True, indent=4)
    ref_dir = set(dir(instance)) - {"__annotations__"}
    revived = cls.from_config(instance.get_config())
    assert json.dumps(revived.get_config(), sort_keys=True, indent=4) == cfg_json
    assert set(dir(revived)) - {"__annotations__"} == ref_dir
    serialized = json.dumps(keras.saving.serialize_keras_object(instance), sort_keys=True)
    revived = keras.saving.deserialize_keras_object(json.loads(serialized))
    assert json.dumps(revived.get_config(), sort_keys=True, indent=4) == cfg_json
    assert set(dir(revived)) - {"__annotations__"} == ref_dir


def keras_masked_inputs(input_data):
    """`input_data` with its explicit padding masks attached to their tensors
    as Keras masks instead, or None when it holds none."""
    if not isinstance(input_data, dict):
        return None
    pairs = [(m, t) for m, t in KERAS_MASKED if m in input_data and t in input_data]
    if not pairs:
        return None
    explicit = {m for m, _ in pairs}
    implicit = {k: v for k, v in input_data.items() if k not in explicit}
    for mask_name, name in pairs:
        tensor = ops.convert_to_tensor(implicit[name])
        set_keras_mask(tensor, ops.convert_to_tensor(input_data[mask_name]))
        implicit[name] = tensor
    return implicit


def run_training_step(layer, input_data, output_data):
    """keras-hub's compiled training step: one `fit` of the layer on mse."""

    class TestModel(keras.Model):
        def __init__(self, layer):
            super().__init__()
            self.layer = layer

        def call(self, x):
            return self.layer(**x) if isinstance(x, dict) else self.layer(x)

    input_data = tree.map_structure(ops.convert_to_numpy, input_data)
    output_data = tree.map_structure(ops.convert_to_numpy, output_data)
    model = TestModel(layer)
    model.compile(optimizer="sgd", loss="mse", jit_compile=keras.config.backend() != "torch")
    model.fit(input_data, output_data, verbose=0)


def _precision_checks(cls, init_kwargs, input_data, call_kwargs, weights, reference,
                      policies):
    # The output spec can disagree with the output only where the layer writes
    # its own; otherwise Keras traces `call` (a second of tracing per policy
    # for a transformer) and the spec is the output's by construction.
    own_spec = (cls.compute_output_spec is not keras.Layer.compute_output_spec
                or cls.compute_output_shape is not keras.Layer.compute_output_shape)
    given_layers = [v for v in init_kwargs.values() if isinstance(v, keras.Layer)]
    given = {id(s) for v in given_layers for s in v._flatten_layers()}
    for name in policies:
        tol = PRECISION_TOLERANCE[name]
        policy = keras.DTypePolicy(name)
        layer = cls(**init_kwargs, dtype=policy)
        output = _call(layer, input_data, call_kwargs)
        if tol is not None:  # the float32 weights, for the float32 comparison
            layer.set_weights(weights)
            output = _call(layer, input_data, call_kwargs)
        spec = []
        if own_spec:
            tensors = tree.map_structure(ops.convert_to_tensor, input_data)
            spec = (layer.compute_output_spec(**tensors, **call_kwargs)
                    if isinstance(tensors, dict)
                    else layer.compute_output_spec(tensors, **call_kwargs))
        for tensor in tree.flatten(output) + tree.flatten(spec):
            if _is_float(tensor.dtype):
                assert _dtype(tensor) == policy.compute_dtype, (name, tensor.dtype)
        for weight in layer.weights:
            if _is_float(weight.dtype) and not any(weight is w for g in given_layers
                                                   for w in g.weights):
                assert _dtype(weight) == policy.variable_dtype, (name, weight.path)
        for sublayer in layer._flatten_layers():
            # Layers passed in (a tied embedding) keep the dtype they were made with.
            if id(sublayer) in given or isinstance(
                    sublayer, (keras.layers.Softmax, keras.layers.InputLayer)):
                continue
            assert sublayer.compute_dtype == policy.compute_dtype, (name, sublayer.name)
            assert sublayer.variable_dtype == policy.variable_dtype, (name, sublayer.name)
        output = np.asarray(ops.cast(_first(output), "float32"))
        assert np.all(np.isfinite(output)), f"non-finite output in {name}"
        if tol is not None:
            np.testing.assert_allclose(output, reference, atol=tol, rtol=tol, err_msg=name)


def run_layer_test(
    cls,
    init_kwargs,
    input_data,
    expected_output_shape=None,
    *,
    call_kwargs=None,
    expected_output_data=None,
    expected_num_trainable_weights=None,
    expected_num_non_trainable_weights=None,
    expected_num_non_trainable_variables=None,
    tolerance=1e-5,
    run_training_check=False,
    run_precision_checks=True,
    precision_policies=tuple(PRECISION_TOLERANCE),
    run_mask_check=True,
    tmp_path=None,
):
    """Runs the shared checks (module docstring); `input_data` is an array
    or maps call argument names to arrays; `.keras` saving runs with
    `tmp_path`. Returns (layer, its first output as numpy)."""
    call_kwargs = dict(call_kwargs or {})

    # 1. Serialization.
    check_serialization(cls(**init_kwargs))
    check_config_keys(cls, cls(**init_kwargs).get_config())

    counts = (expected_num_trainable_weights, expected_num_non_trainable_weights,
              expected_num_non_trainable_variables)

    def check_built(layer):
        assert layer.built
        for expected, found, what in zip(
                counts,
                (layer.trainable_weights, layer.non_trainable_weights,
                 layer.non_trainable_variables),
                ("trainable_weights", "non_trainable_weights", "non_trainable_variables")):
            if expected is not None:
                assert len(found) == expected, f"Unexpected number of {what}: {len(found)}"

    def check_output(layer, output):
        shape = tree.map_structure(lambda x: None if x is None else tuple(x.shape), output)
        if expected_output_shape is not None:
            assert tuple(shape) == tuple(expected_output_shape), f"output shape {shape}"
        assert _dtype(tree.flatten(output)[0]) == keras.backend.standardize_dtype(layer.dtype)

    # 2. Build (keras-hub's, where it checks weight counts), symbolic and eager calls.
    if any(c is not None for c in counts):
        layer = cls(**init_kwargs)
        if isinstance(input_data, dict):
            layer.build(**{k + "_shape": v.shape for k, v in input_data.items()})
        else:
            layer.build(input_data.shape)
        check_built(layer)
    layer = cls(**init_kwargs)
    symbolic = tree.map_structure(lambda x: keras.KerasTensor(x.shape, x.dtype), input_data)
    check_output(layer, _call(layer, symbolic, call_kwargs))
    check_built(layer)
    layer = cls(**init_kwargs)
    output = _call(layer, input_data, call_kwargs)
    check_output(layer, output)
    if expected_output_data is not None:
        np.testing.assert_allclose(ops.convert_to_numpy(output), expected_output_data,
                                   atol=1e-6, rtol=1e-6)
    reference = np.asarray(_first(output))

    # 3. from_config + the same weights: the same output (loading a `.keras`
    # file, step 5, does exactly this when there is one).
    if tmp_path is None:
        clone = cls.from_config(layer.get_config())
        _call(clone, input_data, call_kwargs)
        clone.set_weights(layer.get_weights())
        np.testing.assert_allclose(_first(_call(clone, input_data, call_kwargs)), reference,
                                   atol=tolerance)

    # 4. The implicit Keras mask equals the explicit one.
    implicit = keras_masked_inputs(input_data) if run_mask_check else None
    if implicit is not None:
        np.testing.assert_allclose(_first(_call(layer, implicit, call_kwargs)), reference,
                                   atol=tolerance, err_msg="implicit Keras mask")

    # 5. Saved in a functional model, reloaded.
    if tmp_path is not None:
        named = input_data if isinstance(input_data, dict) else {"inputs": input_data}
        inputs = {name: keras.Input(shape=np.shape(value)[1:], name=name,
                                    dtype=keras.backend.standardize_dtype(
                                        ops.convert_to_tensor(value).dtype))
                  for name, value in named.items()}
        symbolic = inputs if isinstance(input_data, dict) else inputs["inputs"]
        model = keras.Model(inputs, _first(_call(layer, symbolic, call_kwargs)))
        path = str(tmp_path / f"{cls.__name__}.keras")
        model.save(path)
        restored = keras.models.load_model(path)
        # An eager call, as keras-hub's saving test (`predict` traces again).
        np.testing.assert_allclose(restored(named), reference, atol=tolerance)

    # 6. A compiled training step (on a copy of the weights: it changes them).
    weights = layer.get_weights()
    if run_training_check:
        run_training_step(layer, input_data, output)
        layer.set_weights(weights)

    # 7. Mixed and low precision.
    if run_precision_checks:
        _precision_checks(cls, init_kwargs, input_data, call_kwargs, weights, reference,
                          precision_policies)
    return layer, reference


def run_model_test(model, input_data, tmp_path, *, expected_output_shape=None,
                   tolerance=1e-5):
    """A model (or a function building one): predict, `get_config()` round
    trip, `.keras` save and load of the same class with the same weights,
    predict again == before. Returns the restored model."""
    if not isinstance(model, keras.Model):
        model = model()
    # Eager calls, as keras-hub's run_model_saving_test: `predict` would trace
    # each model twice for the graph path that the trainer tests run.
    expected = tree.map_structure(ops.convert_to_numpy, model(input_data))
    if expected_output_shape is not None:
        shapes = tree.map_structure(lambda x: tuple(x.shape), expected)
        assert shapes == expected_output_shape, shapes
    for leaf in tree.flatten(expected):
        assert not _is_float(leaf.dtype) or np.all(np.isfinite(leaf))

    # Loading rebuilds the model with from_config(get_config()): the restored
    # config is the round trip.
    cfg_json = json.dumps(model.get_config(), sort_keys=True)
    path = str(tmp_path / f"{type(model).__name__}.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert type(restored) is type(model)
    assert json.dumps(restored.get_config(), sort_keys=True) == cfg_json
    assert len(restored.weights) == len(model.weights)
    for ours, theirs in zip(model.weights, restored.weights):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=ours.path)
    tree.map_structure(
        lambda a, b: np.testing.assert_allclose(a, b, atol=tolerance),
        tree.map_structure(ops.convert_to_numpy, restored(input_data)), expected)
    return restored


class KerasHubTestCase(TestCase):
    """keras-hub's `TestCase.run_layer_test` API (and defaults) for the peer
    suites adapted from keras-hub, on this one harness."""

    def run_layer_test(self, cls, init_kwargs, input_data, expected_output_shape,
                       expected_output_data=None, expected_num_trainable_weights=0,
                       expected_num_non_trainable_weights=0,
                       expected_num_non_trainable_variables=0, run_training_check=True,
                       run_precision_checks=True):
        return run_layer_test(
            cls, init_kwargs, input_data, expected_output_shape,
            expected_output_data=expected_output_data,
            expected_num_trainable_weights=expected_num_trainable_weights,
            expected_num_non_trainable_weights=expected_num_non_trainable_weights,
            expected_num_non_trainable_variables=expected_num_non_trainable_variables,
            run_training_check=run_training_check, run_precision_checks=run_precision_checks)
