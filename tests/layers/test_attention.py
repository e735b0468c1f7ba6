"""MaskedMultiHeadAttention against a numpy reference, Keras MHA, and the
combinations behind keras #23038 and keras-hub #783."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layer_harness import run_layer_test
from tests.layers.reference import brute_force_attention
from tfmask.layers import MaskedMultiHeadAttention
from tfmask import masks as M

B, T, S, D, H, K = 2, 5, 7, 8, 2, 4


def rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def test_layer_harness(tmp_path):
    run_layer_test(
        MaskedMultiHeadAttention,
        {"num_heads": H, "key_dim": K, "dropout": 0.1},
        {"query": rand(B, T, D), "value": rand(B, S, 6, seed=1),
         "query_mask": np.arange(T) < [[T], [T - 2]],
         "value_mask": np.arange(S) < [[S - 3], [S]]},
        call_kwargs={"use_causal_mask": True},
        expected_output_shape=(B, T, D),
        tmp_path=tmp_path,
    )


def layer_and_weights(**kwargs):
    layer = MaskedMultiHeadAttention(num_heads=H, key_dim=K, **kwargs)
    layer(rand(B, T, D), rand(B, S, D, seed=1))
    return layer


CASES = {
    "none": {},
    "padding": {"q_pad": True, "k_pad": True},
    "causal": {"causal": True},
    "causal+custom": {"causal": True, "custom": True},
    "padding+custom": {"q_pad": True, "k_pad": True, "custom": True},
    "padding+causal+custom": {"q_pad": True, "k_pad": True, "custom": True, "causal": True},
    "segments": {"segments": True},
    "everything": {"q_pad": True, "k_pad": True, "custom": True, "causal": True, "segments": True},
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("cross", [False, True])
def test_matches_brute_force_reference(case, cross):
    opts = CASES[case]
    rng = np.random.default_rng(5)
    s = S if cross else T
    query, value = rand(B, T, D), (rand(B, S, D, seed=2) if cross else None)
    q_pad = rng.random((B, T)) > 0.25 if opts.get("q_pad") else None
    k_pad = (rng.random((B, s)) > 0.25 if cross else q_pad) if opts.get("k_pad") else None
    custom = rng.random((B, T, s)) > 0.2 if opts.get("custom") else None
    q_seg = rng.integers(0, 3, (B, T)) if opts.get("segments") else None
    k_seg = (rng.integers(0, 3, (B, s)) if cross else q_seg) if opts.get("segments") else None
    layer = layer_and_weights()
    out, scores = layer(
        query,
        value,
        query_mask=q_pad,
        value_mask=k_pad,
        attention_mask=custom,
        use_causal_mask=opts.get("causal", False),
        segment_ids=q_seg,
        key_segment_ids=k_seg if cross else None,
        return_attention_scores=True,
    )
    ref_out, ref_scores = brute_force_attention(
        layer, query, query if value is None else value,
        q_pad, k_pad, custom, opts.get("causal", False), q_seg, k_seg,
    )
    np.testing.assert_allclose(scores, ref_scores, atol=1e-5)
    np.testing.assert_allclose(out, ref_out, atol=1e-5)


def copy_into_keras_mha(layer):
    keras_mha = keras.layers.MultiHeadAttention(num_heads=H, key_dim=K)
    keras_mha(rand(B, T, D), rand(B, S, D))
    for ours, theirs in [
        (layer._query_dense, keras_mha._query_dense),
        (layer._key_dense, keras_mha._key_dense),
        (layer._value_dense, keras_mha._value_dense),
        (layer._output_dense, keras_mha._output_dense),
    ]:
        theirs.set_weights(ours.get_weights())
    return keras_mha


def test_agrees_with_keras_multi_head_attention_given_same_weights_and_masks():
    rng = np.random.default_rng(11)
    query, value = rand(B, T, D), rand(B, S, D, seed=3)
    q_pad = np.ones((B, T), bool)
    k_pad = rng.random((B, S)) > 0.3
    k_pad[:, 0] = True  # every query keeps at least one key, where Keras
    # would return a uniform average instead of tfmask's zeros.
    custom = rng.random((B, T, S)) > 0.3
    custom[:, :, 0] = True
    layer = layer_and_weights()
    keras_mha = copy_into_keras_mha(layer)
    ours, our_scores = layer(
        query, value, query_mask=q_pad, value_mask=k_pad, attention_mask=custom,
        return_attention_scores=True,
    )
    theirs, their_scores = keras_mha(
        query, value, query_mask=q_pad, value_mask=k_pad, attention_mask=custom,
        return_attention_scores=True,
    )
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    np.testing.assert_allclose(our_scores, their_scores, atol=1e-6)
    # Self-attention with Keras' causal mask (T == S, where both agree).
    ours = layer(query, use_causal_mask=True)
    theirs = keras_mha(query, query, use_causal_mask=True)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


@pytest.mark.tensorflow_only('gradients by perturbation use tf.GradientTape')
@pytest.mark.parametrize("return_scores", [False, True])
def test_causal_mask_survives_dropout_and_returned_scores(return_scores):
    """keras #23038: with dropout on (training) or scores returned, the output
    at t must still have zero gradient w.r.t. every input after t."""
    layer = layer_and_weights(dropout=0.5)
    x = tf.Variable(rand(1, T, D))
    with tf.GradientTape(persistent=True) as tape:
        result = layer(x, use_causal_mask=True, training=True,
                       return_attention_scores=return_scores)
        out = result[0] if return_scores else result
        per_position = [tf.reduce_sum(out[:, t]) for t in range(T)]
    for t in range(T):
        grad = np.asarray(tape.gradient(per_position[t], x))
        assert np.all(grad[:, t + 1:] == 0), f"position {t} sees the future"
        assert np.any(grad[:, : t + 1] != 0)
    if return_scores:
        assert np.all(np.triu(np.asarray(result[1])[0, 0], k=1) == 0)


def test_padding_and_attention_mask_together_keras_hub_783():
    """Implicit Keras padding mask + an explicit [B, T, T] mask: no shape
    error, and the result equals passing both explicitly."""
    ids = np.array([[4, 5, 6, 0, 0], [7, 8, 9, 3, 0]])
    custom = np.tril(np.ones((T, T), bool))[None].repeat(B, 0)
    embed = keras.layers.Embedding(10, D, mask_zero=True)
    x = embed(ids)
    layer = layer_and_weights()
    implicit = layer(x, attention_mask=custom)
    explicit = layer(x, query_mask=ids != 0, value_mask=ids != 0, attention_mask=custom)
    np.testing.assert_allclose(implicit, explicit, atol=1e-6)
    # and the padding was really used: padded queries give exact zeros
    assert np.all(np.asarray(layer(x, attention_mask=custom))[ids == 0] == np.asarray(layer._output_dense.bias))


def test_implicit_keras_mask_in_functional_model_equals_explicit():
    ids = np.array([[4, 5, 6, 0, 0], [7, 8, 9, 3, 0]])
    token_input = keras.Input((None,), dtype="int32")
    embed = keras.layers.Embedding(10, D, mask_zero=True)
    layer = MaskedMultiHeadAttention(num_heads=H, key_dim=K)
    model = keras.Model(token_input, layer(embed(token_input)))
    implicit = model(ids)
    explicit = layer(embed(ids), query_mask=ids != 0, value_mask=ids != 0)
    np.testing.assert_allclose(implicit, explicit, atol=1e-6)
    unmasked = layer(keras.ops.convert_to_tensor(np.asarray(embed.embeddings)[ids]))
    assert not np.allclose(implicit, unmasked)


@pytest.mark.tensorflow_only('gradients use tf.GradientTape')
@pytest.mark.parametrize("dtype", ["mixed_float16", "mixed_bfloat16", "float32"])
def test_fully_masked_rows_are_zero_and_finite(dtype):
    layer = MaskedMultiHeadAttention(num_heads=H, key_dim=K, use_bias=False, dtype=dtype)
    x = tf.Variable(rand(B, T, D) * 100.0)
    padding = np.array([[1, 1, 0, 0, 0], [0, 0, 0, 0, 0]], bool)  # row 2 empty
    with tf.GradientTape() as tape:
        out, scores = layer(x, query_mask=padding, value_mask=padding,
                            use_causal_mask=True, return_attention_scores=True,
                            training=True)
        loss = tf.reduce_sum(tf.cast(out, "float32"))
    grads = tape.gradient(loss, [x] + layer.trainable_variables)
    out = np.asarray(tf.cast(out, "float32"))
    assert np.all(np.isfinite(out))
    assert np.all(out[~padding] == 0) and np.all(out[1] == 0)
    assert np.all(np.asarray(tf.cast(scores, "float32"))[1] == 0)
    for g in grads:
        assert np.all(np.isfinite(np.asarray(tf.cast(g, "float32"))))


def test_kv_cache_decoding_equals_full_pass():
    layer = layer_and_weights()
    x = rand(B, T, D, seed=4)
    full = np.asarray(layer(x, use_causal_mask=True))
    cache = layer.init_cache(B, T)
    steps = []
    for t in range(T):
        out, cache = layer(x[:, t : t + 1], use_causal_mask=True, cache=cache,
                           cache_update_index=t)
        steps.append(np.asarray(out))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)
    # a prompt of 3 tokens at once, then one token at a time
    cache = layer.init_cache(B, T)
    first, cache = layer(x[:, :3], use_causal_mask=True, cache=cache, cache_update_index=0)
    rest = [layer(x[:, t : t + 1], use_causal_mask=True, cache=cache, cache_update_index=t)
            for t in range(3, T)]
    np.testing.assert_allclose(first, full[:, :3], atol=1e-5)


@pytest.mark.tensorflow_only('decoding inside tf.function')
def test_kv_cache_works_inside_tf_function_with_tensor_index():
    layer = layer_and_weights()
    x = rand(B, T, D, seed=4)
    full = np.asarray(layer(x, use_causal_mask=True))

    @tf.function
    def decode(x):
        cache = layer.init_cache(B, T)
        outputs = tf.TensorArray(tf.float32, size=T)
        for t in tf.range(T):
            out, cache = layer(x[:, t : t + 1], use_causal_mask=True,
                               cache=cache, cache_update_index=t)
            outputs = outputs.write(t, out[:, 0])
        return tf.transpose(outputs.stack(), [1, 0, 2])

    np.testing.assert_allclose(decode(x), full, atol=1e-5)


def test_bad_inputs_give_one_line_errors():
    layer = layer_and_weights()
    x = rand(B, T, D)
    with pytest.raises(ValueError, match="attention_mask must have rank"):
        layer(x, attention_mask=np.ones((T,), bool))
    with pytest.raises(ValueError, match="key_segment_ids"):
        layer(x, rand(B, S, D), segment_ids=np.ones((B, T), "int32"))
    with pytest.raises(ValueError, match="cache_update_index"):
        layer(x, cache=layer.init_cache(B, T), use_causal_mask=True)
