"""MultiHeadAttention (MaskedMultiHeadAttention) as a drop-in for Keras' layer:
weights files in both directions, the fused path against the einsum path,
and one causal rule, the same in eager and traced calls, on unequal lengths."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layers.reference import brute_force_attention
from tfmask.layers import MaskedMultiHeadAttention, MultiHeadAttention

B, D, H, K = 2, 8, 2, 4


def rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def attention_model(layer_cls, **kwargs):
    query, value = keras.Input((5, D)), keras.Input((7, D))
    return keras.Model([query, value], layer_cls(num_heads=H, key_dim=K, **kwargs)(query, value))


@pytest.mark.parametrize("source, target", [
    (keras.layers.MultiHeadAttention, MultiHeadAttention),
    (MultiHeadAttention, keras.layers.MultiHeadAttention),
])
def test_weights_files_load_in_both_directions(tmp_path, source, target):
    inputs = [rand(B, 5, D), rand(B, 7, D, seed=1)]
    saved, loaded = attention_model(source), attention_model(target)
    assert not np.allclose(saved(inputs), loaded(inputs))
    path = os.path.join(tmp_path, "attention.weights.h5")
    saved.save_weights(path)
    loaded.load_weights(path)
    np.testing.assert_allclose(saved(inputs), loaded(inputs), atol=1e-6)


@pytest.mark.tensorflow_only('tf.train.Checkpoint')
def test_tf_checkpoints_load_in_both_directions(tmp_path):
    inputs = [rand(B, 5, D), rand(B, 7, D, seed=1)]
    ours, theirs = MultiHeadAttention(H, K), keras.layers.MultiHeadAttention(H, K)
    ours(*inputs), theirs(*inputs)
    path = tf.train.Checkpoint(layer=theirs).write(os.path.join(tmp_path, "ckpt"))
    tf.train.Checkpoint(layer=ours).read(path).assert_existing_objects_matched()
    np.testing.assert_allclose(ours(*inputs), theirs(*inputs), atol=1e-6)


def test_one_class_two_names_and_its_config_round_trips():
    assert MaskedMultiHeadAttention is MultiHeadAttention
    assert isinstance(MultiHeadAttention(2, 4), keras.layers.MultiHeadAttention)
    layer = MultiHeadAttention(2, 4, causal_alignment="top_left", fused=False, sliding_window=3)
    config = keras.saving.serialize_keras_object(layer)
    assert config["registered_name"] == "tfmask>MaskedMultiHeadAttention"
    clone = keras.saving.deserialize_keras_object(config)
    assert (clone.causal_alignment, clone.fused, clone._sliding_window) == ("top_left", False, 3)


@pytest.mark.parametrize("bad, match", [
    ({"num_heads": 0}, "num_heads"),
    ({"key_dim": -1}, "key_dim"),
    ({"causal_alignment": "left"}, "causal_alignment"),
    ({"dropout": 1.0}, "dropout"),
    ({"sliding_window": 0}, "sliding_window"),
])
def test_bad_constructor_arguments_fail_at_construction(bad, match):
    kwargs = {"num_heads": 2, "key_dim": 4, **bad}
    with pytest.raises(ValueError, match=match):
        MultiHeadAttention(**kwargs)


def random_call(rng):
    """A random combination of lengths, masks and options."""
    t, s = int(rng.integers(1, 7)), int(rng.integers(1, 7))
    cross = bool(rng.integers(2)) or t != s
    call = {"use_causal_mask": bool(rng.integers(2))}
    if rng.random() < 0.5:
        call["query_mask"] = rng.random((B, t)) > 0.3
    if rng.random() < 0.5:
        call["value_mask"] = rng.random((B, s)) > 0.3
    if rng.random() < 0.4:
        call["attention_mask"] = rng.random((B, t, s)) > 0.3
    layer = {"causal_alignment": ["bottom_right", "top_left"][int(rng.integers(2))],
             "sliding_window": [None, 1, 2, 4][int(rng.integers(4))]}
    query = rand(B, t, D, seed=int(rng.integers(1000)))
    value = rand(B, s, D, seed=int(rng.integers(1000))) if cross else None
    return layer, query, value, call


def traced(fn, arrays):
    """`fn` compiled as the backend compiles it: tf.function with unknown
    lengths on TensorFlow, jax.jit on JAX (static shapes)."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(fn)
    return tf.function(fn, input_signature=[
        tf.TensorSpec([None] * np.ndim(a), tf.as_dtype(np.asarray(a).dtype)) for a in arrays])


@pytest.mark.parametrize("draw", range(24))
def test_eager_traced_and_reference_agree_on_unequal_lengths(draw):
    """Property test: every mask combination, T < S, T > S and T == S, both
    alignments; eager == traced (unknown lengths on TensorFlow) == numpy
    reference."""
    rng = np.random.default_rng(draw)
    layer_kwargs, query, value, call = random_call(rng)
    layer = MultiHeadAttention(H, K, **layer_kwargs)
    eager = np.asarray(layer(query, value, **call))

    mask_names = [n for n in sorted(call) if not isinstance(call[n], bool)]
    flags = {n: v for n, v in call.items() if isinstance(v, bool)}

    def attend(q, v, *masks):
        return layer(q, None if value is None else v, **dict(zip(mask_names, masks)), **flags)

    arrays = [query, query if value is None else value] + [call[n] for n in mask_names]
    np.testing.assert_allclose(eager, np.asarray(traced(attend, arrays)(*arrays)), atol=1e-5)

    t, s = query.shape[1], (query if value is None else value).shape[1]
    offset = s - t if layer_kwargs["causal_alignment"] == "bottom_right" else 0
    key_pad = call.get("value_mask")
    if value is None and key_pad is None:
        key_pad = call.get("query_mask")
    reference, _ = brute_force_attention(
        layer, query, query if value is None else value, call.get("query_mask"), key_pad,
        call.get("attention_mask"), call["use_causal_mask"], offset=offset,
        window=layer_kwargs["sliding_window"])
    np.testing.assert_allclose(eager, reference, atol=1e-5)


@pytest.mark.parametrize("draw", range(12))
def test_fused_path_equals_einsum_path(draw):
    rng = np.random.default_rng(100 + draw)
    layer_kwargs, query, value, call = random_call(rng)
    fused = MultiHeadAttention(H, K, fused=True, **layer_kwargs)
    einsum = MultiHeadAttention(H, K, fused=False, **layer_kwargs)
    fused(query, value)
    einsum(query, value)
    einsum.set_weights(fused.get_weights())
    np.testing.assert_allclose(fused(query, value, **call), einsum(query, value, **call),
                               atol=1e-5)


def test_fused_path_runs_only_when_it_can(monkeypatch):
    """dot_product_attention runs without scores or active dropout, and not
    when `fused=False`."""
    calls = []
    original = keras.ops.dot_product_attention
    monkeypatch.setattr(keras.ops, "dot_product_attention",
                        lambda *a, **k: calls.append(1) or original(*a, **k))
    x = rand(B, 5, D)
    MultiHeadAttention(H, K)(x, use_causal_mask=True)
    assert len(calls) == 1
    MultiHeadAttention(H, K)(x, return_attention_scores=True)
    MultiHeadAttention(H, K, dropout=0.5)(x, training=True)
    MultiHeadAttention(H, K, fused=False)(x)
    assert len(calls) == 1
    MultiHeadAttention(H, K, dropout=0.5)(x, training=False)
    assert len(calls) == 2


def test_causal_cache_read_without_index_fails_the_same_eager_and_traced():
    layer = MultiHeadAttention(H, K)
    x = rand(B, 2, D)
    layer(x)
    cache = layer.init_cache(B, 4)
    with pytest.raises(ValueError, match="cache_update_index"):
        layer(x, cache=cache, use_causal_mask=True)
    with pytest.raises(ValueError, match="cache_update_index"):
        traced(lambda q: layer(q, cache=cache, use_causal_mask=True), [x])(x)


def test_cross_attention_cache_is_projected_once_and_reused():
    layer = MultiHeadAttention(H, K)
    query, encoded = rand(B, 3, D), rand(B, 6, D, seed=1)
    padding = np.array([[1] * 6, [1] * 4 + [0] * 2], bool)
    full = layer(query, encoded, value_mask=padding)
    filled = layer(query[:, :1], encoded, value_mask=padding,
                   cache=layer.init_cache(B, 6), cache_update_index=0)[1]
    steps = [layer(query[:, i:i + 1], value_mask=padding, cache=filled)[0] for i in range(3)]
    np.testing.assert_allclose(np.concatenate(steps, 1), full, atol=1e-5)


@pytest.mark.parametrize("options", [
    {"use_gate": True},
    {"output_shape": (3, 2)},
    # dropout (off at inference) keeps Keras' own layer on its einsum path: on
    # JAX it calls the fused kernel with value_dim != key_dim and fails (Keras
    # 3.15 bug; tfmask's layer takes its einsum path there).
    {"value_dim": 6, "use_bias": False, "dropout": 0.1},
    {"sliding_window": 2},
])
@pytest.mark.parametrize("causal", [False, True])
def test_equals_keras_layer_with_its_options(options, causal):
    """Keras' options through tfmask's own path (T == S, every query sees a
    key, where the two rules agree): the same numbers as Keras' layer."""
    query = rand(B, 5, D)
    ours = MultiHeadAttention(H, K, **options)
    theirs = keras.layers.MultiHeadAttention(H, K, **options)
    ours(query, query)
    theirs(query, query)
    theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(ours(query, use_causal_mask=causal),
                               theirs(query, query, use_causal_mask=causal), atol=1e-5)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("t, s", [(5, 3), (3, 5), (1, 4), (4, 4)])
def test_causal_default_is_keras_top_left_on_unequal_lengths(t, s, fused):
    """Keras' test_masking_causal, on its own: with `use_causal_mask=True`
    the default layer gives the numbers of keras.layers.MultiHeadAttention
    with the same weights, T > S and T < S included (query i sees keys
    j <= i), scores and outputs."""
    query, value = rand(B, t, D), rand(B, s, D, seed=1)
    ours = MultiHeadAttention(H, K, fused=fused)
    theirs = keras.layers.MultiHeadAttention(H, K)
    ours(query, value)
    theirs(query, value)
    theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(ours(query, value, use_causal_mask=True),
                               theirs(query, value, use_causal_mask=True), atol=1e-5)
    _, our_scores = ours(query, value, use_causal_mask=True, return_attention_scores=True)
    _, their_scores = theirs(query, value, use_causal_mask=True,
                             return_attention_scores=True)
    np.testing.assert_allclose(our_scores, their_scores, atol=1e-5)
    top_left = np.tril(np.ones((t, s), bool))
    np.testing.assert_array_equal(np.asarray(our_scores)[0, 0] > 0, top_left)
    assert ours.causal_alignment == "top_left"


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("t, s", [(5, 3), (3, 5), (1, 4), (4, 4)])
def test_bottom_right_alignment_on_request_matches_brute_force(t, s, fused):
    """causal_alignment="bottom_right" (the queries are the last T of the S
    keys): query i sees keys j <= i + S - T, against the loop reference;
    queries before every key (T > S) get a zero context."""
    query, value = rand(B, t, D), rand(B, s, D, seed=1)
    layer = MultiHeadAttention(H, K, causal_alignment="bottom_right", fused=fused)
    output = layer(query, value, use_causal_mask=True)
    _, scores = layer(query, value, use_causal_mask=True, return_attention_scores=True)
    reference, reference_scores = brute_force_attention(
        layer, query, value, causal=True, offset=s - t)
    np.testing.assert_allclose(output, reference, atol=1e-5)
    np.testing.assert_allclose(scores, reference_scores, atol=1e-5)
    sees = np.arange(s)[None, :] <= np.arange(t)[:, None] + s - t
    np.testing.assert_array_equal(np.asarray(scores)[0, 0] > 0, sees)


def test_config_without_causal_alignment_loads_with_keras_default():
    """Configs written before `causal_alignment` existed (or by Keras' own
    layer) load with the default, Keras' top-left; configs that name an
    alignment, as every tfmask config since does, keep it."""
    config = MultiHeadAttention(2, 4).get_config()
    del config["causal_alignment"]
    assert MultiHeadAttention.from_config(config).causal_alignment == "top_left"
    keras_config = keras.layers.MultiHeadAttention(2, 4).get_config()
    assert MultiHeadAttention.from_config(keras_config).causal_alignment == "top_left"
    bottom_right = MultiHeadAttention(2, 4, causal_alignment="bottom_right").get_config()
    assert MultiHeadAttention.from_config(bottom_right).causal_alignment == "bottom_right"


def test_saved_model_keeps_its_causal_alignment(tmp_path):
    """A .keras file keeps the alignment it was saved with: one saved with
    bottom_right (the default of older tfmask versions, written into their
    configs) reloads as bottom_right, with the same outputs."""
    query, value = keras.Input((5, D)), keras.Input((3, D))
    layer = MultiHeadAttention(H, K, causal_alignment="bottom_right")
    model = keras.Model([query, value], layer(query, value, use_causal_mask=True))
    inputs = [rand(B, 5, D), rand(B, 3, D, seed=1)]
    path = os.path.join(tmp_path, "attention.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.layers[-1].causal_alignment == "bottom_right"
    np.testing.assert_allclose(loaded(inputs), model(inputs), atol=1e-6)


def test_high_rank_causal_call_refuses_bottom_right():
    """Inputs above rank 3 run Keras' computation, whose causal mask is
    top-left only: an explicit bottom-right request there is refused, not
    silently ignored."""
    query, value = rand(B, 2, 5, D), rand(B, 2, 3, D, seed=1)
    layer = MultiHeadAttention(H, K, attention_axes=2, causal_alignment="bottom_right")
    layer(query, value)
    with pytest.raises(ValueError, match="bottom_right"):
        layer(query, value, use_causal_mask=True)
