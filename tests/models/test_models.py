"""Model builders: every family predicts, saves, loads and predicts the same
(the MLM keeping its tie), cached generation equals full passes, packed rows
equal separate documents, mixed precision gives float32 logits."""

import keras
import numpy as np
import pytest

from tests.layer_harness import run_model_test
from tfmask.models import (
    CausalLMModel,
    ClassifierModel,
    DenseClassifierModel,
    MaskedAutoencoderModel,
    MaskedLMModel,
    Seq2SeqLSTMModel,
    Seq2SeqTransformerModel,
    TokenClassifierModel,
)
from tfmask.tasks import TASKS

# Two layers for the cache and generation tests (every layer's cache is
# checked); one for the others.
SMALL = dict(vocabulary_size=40, num_layers=2, num_heads=2, hidden_dim=8, intermediate_dim=16,
             max_length=16, dropout=0.0)
TINY = {**SMALL, "vocabulary_size": 20, "num_layers": 1}
SOURCE = np.array([[5, 6, 7, 8, 3, 0], [9, 10, 11, 3, 0, 0]], "int32")
TARGET = np.array([[0, 12, 13], [0, 14, 0]], "int32")


def encoded(ids):
    """Encoder inputs as a pipeline emits them (0 is padding in these arrays)."""
    ids = np.asarray(ids, "int32")
    return {"token_ids": ids, "padding_mask": ids != 0}


def real(ids):
    """Decoder-only / generated inputs: every position is a real token."""
    ids = np.asarray(ids, "int32")
    return {"token_ids": ids, "padding_mask": np.ones(ids.shape, bool)}


def decoded(ids):
    """Decoder inputs: position 0 is the start token, real whatever its id."""
    ids = np.asarray(ids, "int32")
    mask = (ids != 0) | (np.arange(ids.shape[1]) == 0)
    return {"decoder_token_ids": ids, "decoder_padding_mask": mask}


def dense(shape, seed=0):
    return np.random.default_rng(seed).normal(size=(2, *shape)).astype("float32")


# Every model family (tfmask.tasks.TASKS): (model builder, inputs, output shape).
FAMILY_MODELS = {
    "mlm": (lambda: MaskedLMModel(**TINY, max_predictions=3),
            {**encoded(SOURCE), "mask_positions": np.array([[1, 2, 0], [0, 1, 2]], "int32")},
            (2, 3, 20)),
    "classifier": (lambda: ClassifierModel(num_classes=3, pooling="mean", **TINY),
                   encoded(SOURCE), (2, 3)),
    "causal_lm": (lambda: CausalLMModel(**TINY), encoded(SOURCE), (2, 6, 20)),
    "seq2seq_transformer": (lambda: Seq2SeqTransformerModel(**TINY),
                            {**encoded(SOURCE), **decoded(TARGET)}, (2, 3, 20)),
    "seq2seq_lstm": (lambda: Seq2SeqLSTMModel(vocabulary_size=20, embedding_dim=8, units=8,
                                              dropout=0.0),
                     {**encoded(SOURCE), **decoded(TARGET)}, (2, 3, 20)),
    "dense_classifier": (lambda: DenseClassifierModel(
        input_shape=(4, 4, 1), num_classes=3, encoder="transformer", patch_size=2,
        hidden_dim=8, num_layers=1, num_heads=2, intermediate_dim=16, dropout=0.0,
        mean=[0.5], variance=[2.0]), {"inputs": dense((4, 4, 1))}, (2, 3)),
    "token_classifier": (lambda: TokenClassifierModel(num_tags=5, **TINY), encoded(SOURCE),
                         (2, 6, 5)),
    "masked_autoencoder": (lambda: MaskedAutoencoderModel(
        input_shape=(6,), hidden_dim=8, num_layers=1, dropout=0.0, token=True, indicator=True),
        {"inputs": dense((6,)), "feature_mask": dense((6,), 1) > 0,
         "missing_indicator": (dense((6,), 2) > 1).astype("float32")}, (2, 6)),
}


def test_every_family_has_a_model_test():
    assert sorted(FAMILY_MODELS) == TASKS.names()


@pytest.mark.parametrize("family", sorted(FAMILY_MODELS))
def test_each_family_predicts_saves_loads_and_predicts_the_same(family, tmp_path):
    build, inputs, shape = FAMILY_MODELS[family]
    model = build()
    restored = run_model_test(model, inputs, tmp_path, expected_output_shape=shape)
    if family == "mlm":
        head, embedding = restored.get_layer("mlm_head"), restored.get_layer("embedding")
        assert head.token_embedding is embedding, "tie lost on load"
        assert len(restored.trainable_variables) == len(model.trainable_variables)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_classifier_padding_invariance(pooling):
    model = ClassifierModel(num_classes=3, pooling=pooling, **TINY)
    padded = model(encoded(SOURCE)).numpy()
    trimmed = model(encoded(SOURCE[1:, :4])).numpy()
    np.testing.assert_allclose(padded[1:], trimmed, atol=1e-5)


def test_causal_lm_packed_rows_equal_separate_documents():
    model = CausalLMModel(**TINY, packed=True)
    doc_a, doc_b = [5, 6, 7], [8, 9, 10, 11]
    packed = model({**encoded([doc_a + doc_b + [0]]),
                    "segment_ids": np.array([[1, 1, 1, 2, 2, 2, 2, 0]]),
                    "position_ids": np.array([[0, 1, 2, 0, 1, 2, 3, 0]])}).numpy()

    def alone(doc):
        return model({**real([doc]), "segment_ids": np.ones((1, len(doc)), "int32"),
                      "position_ids": np.arange(len(doc))[None]}).numpy()

    np.testing.assert_allclose(packed[:, :3], alone(doc_a), atol=1e-4)
    np.testing.assert_allclose(packed[:, 3:7], alone(doc_b), atol=1e-4)


def greedy_by_full_passes(logits_fn, length, start):
    """Reference decoder: recompute everything at every step, take argmax."""
    tokens = start
    while tokens.shape[1] < length:
        logits = np.asarray(logits_fn(tokens))
        tokens = np.concatenate([tokens, logits[:, -1:].argmax(-1).astype("int32")], axis=1)
    return tokens


def test_causal_lm_cached_greedy_generation_equals_full_passes():
    model = CausalLMModel(**SMALL)
    prompt = np.array([[5, 6, 7], [8, 9, 10]], "int32")
    generated = np.asarray(model.generate(prompt, np.array([3, 3]), max_length=9))
    expected = greedy_by_full_passes(lambda t: model(real(t)), 9, prompt)
    np.testing.assert_array_equal(generated, expected)


def test_causal_lm_generation_with_prompts_of_different_lengths():
    model = CausalLMModel(**SMALL)
    prompts = np.array([[5, 6, 7, 8], [9, 10, 0, 0]], "int32")
    generated = np.asarray(model.generate(prompts, np.array([4, 2]), max_length=8))
    for row, length in [(0, 4), (1, 2)]:
        alone = greedy_by_full_passes(lambda t: model(real(t)), 8,
                                      prompts[row : row + 1, :length])
        np.testing.assert_array_equal(generated[row], alone[0])


@pytest.mark.parametrize("cls,kwargs", [
    (Seq2SeqTransformerModel, SMALL),
    (Seq2SeqLSTMModel, dict(vocabulary_size=40, embedding_dim=8, units=8, dropout=0.0)),
])
def test_seq2seq_greedy_generation_equals_full_passes(cls, kwargs):
    model = cls(**kwargs)
    generated = np.asarray(model.generate(SOURCE, SOURCE != 0, max_length=6))
    expected = greedy_by_full_passes(
        lambda t: model({**encoded(SOURCE), "decoder_token_ids": t,
                         "decoder_padding_mask": np.ones(t.shape, bool)}), 6,
        np.zeros((2, 1), "int32"))
    np.testing.assert_array_equal(generated, expected)
    beams = np.asarray(model.generate(SOURCE, SOURCE != 0, max_length=6, sampler="beam",
                                      num_beams=3))
    assert beams.shape == (2, 6) and np.all(beams[:, 0] == 0)


@pytest.mark.parametrize("cls,kwargs", [
    (Seq2SeqTransformerModel, TINY),
    (Seq2SeqLSTMModel, dict(vocabulary_size=40, embedding_dim=8, units=8, dropout=0.0)),
])
def test_seq2seq_source_padding_invariance(cls, kwargs):
    model = cls(**kwargs)
    out = model({**encoded(SOURCE), **decoded(TARGET)}).numpy()
    wider = np.pad(SOURCE, [[0, 0], [0, 3]])
    np.testing.assert_allclose(model({**encoded(wider), **decoded(TARGET)}), out, atol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_models_in_mixed_precision_give_finite_float32_logits(policy):
    model = MaskedLMModel(**TINY, dtype=policy)
    logits = model({**encoded(SOURCE), "mask_positions": np.zeros((2, 2), "int32")})
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert np.all(np.isfinite(np.asarray(logits)))
    assert model.get_layer("encoder_block_0").compute_dtype == policy.split("_")[1]


@pytest.mark.parametrize("cross_cache", [True, False], ids=["cross_cache", "self_cache_only"])
def test_transformer_cached_steps_give_the_teacher_forced_logits(cross_cache):
    """Stronger than argmax equality: the logits themselves, every step, with
    the encoder keys/values read from cross-attention caches (as `generate`
    does) or recomputed from the encoder output at each step."""
    model = Seq2SeqTransformerModel(**SMALL)
    target = np.array([[0, 12, 13, 14], [0, 15, 16, 17]], "int32")
    full = model({**encoded(SOURCE), **decoded(target)}).numpy()
    if cross_cache:
        cache = model._build_cache(SOURCE, SOURCE != 0, 4)
        assert len(cache["cross"]) == len(model.blocks)
    else:
        cache = {"encoder": model.encoder(SOURCE, SOURCE != 0), "encoder_mask": SOURCE != 0,
                 "self": tuple(b._self_attention.init_cache(2, 4) for b in model.blocks)}
    for t in range(4):
        logits, cache = model._step(target[:, t : t + 1], cache, t)
        np.testing.assert_allclose(logits[:, 0], full[:, t], atol=1e-4)
    assert ("cross" in cache) == cross_cache


# Sources of three lengths in one batch, right-padded with 0.
PADDED_SOURCE = np.array([[5, 6, 7, 8, 9, 3, 0], [10, 11, 3, 0, 0, 0, 0],
                          [12, 13, 14, 15, 3, 0, 0]], "int32")


def _without_cross_cache(model, monkeypatch):
    """Makes `generate` recompute the encoder keys/values at every step."""
    build = model._build_cache

    def self_cache_only(*args, **kwargs):
        cache = dict(build(*args, **kwargs))
        del cache["cross"]
        return cache

    monkeypatch.setattr(model, "_build_cache", self_cache_only)


def test_seq2seq_cross_cached_generation_equals_full_passes(monkeypatch):
    keras.utils.set_random_seed(7)
    model = Seq2SeqTransformerModel(**{**SMALL, "num_layers": 1}, decoder_num_layers=3)
    mask = PADDED_SOURCE != 0
    greedy = np.asarray(model.generate(PADDED_SOURCE, mask, max_length=8, start_id=1))
    expected = greedy_by_full_passes(
        lambda t: model({**encoded(PADDED_SOURCE), "decoder_token_ids": t,
                         "decoder_padding_mask": np.ones(t.shape, bool)}), 8,
        np.ones((3, 1), "int32"))
    np.testing.assert_array_equal(greedy, expected)
    beams = np.asarray(model.generate(PADDED_SOURCE, mask, max_length=8, start_id=1,
                                      sampler="beam", num_beams=3))
    # The same tokens when every step projects the encoder output again.
    _without_cross_cache(model, monkeypatch)
    np.testing.assert_array_equal(
        model.generate(PADDED_SOURCE, mask, max_length=8, start_id=1), greedy)
    np.testing.assert_array_equal(
        model.generate(PADDED_SOURCE, mask, max_length=8, start_id=1, sampler="beam",
                       num_beams=3), beams)


def _count_calls(layer, monkeypatch):
    calls = []
    call = layer.call

    def counted(*args, **kwargs):
        calls.append(1)
        return call(*args, **kwargs)

    monkeypatch.setattr(layer, "call", counted)
    return calls


@pytest.mark.parametrize("sampler", ["greedy", "beam"])
def test_seq2seq_generation_projects_the_encoder_once(sampler, monkeypatch):
    """Eager decoding runs the sampler's loop body once per step; the encoder
    keys/values are projected at the first step only, the decoder's own at
    every step."""
    model = Seq2SeqTransformerModel(**SMALL)
    max_length = 6
    cross, own = [], []
    for block in model.blocks:
        cross += [_count_calls(block._cross_attention._key_dense, monkeypatch),
                  _count_calls(block._cross_attention._value_dense, monkeypatch)]
        own.append(_count_calls(block._self_attention._key_dense, monkeypatch))
    model.generate(PADDED_SOURCE, PADDED_SOURCE != 0, max_length=max_length, sampler=sampler,
                   num_beams=2)
    assert [len(calls) for calls in cross] == [1] * len(cross)
    # Filling the caches at position 0, then one call per generated token.
    assert [len(calls) for calls in own] == [max_length] * len(own)


@pytest.mark.parametrize("family", ["mlm", "classifier"])
def test_padding_free_models_equal_padded_models(family):
    inputs = encoded(SOURCE)
    if family == "mlm":
        build = lambda **kw: MaskedLMModel(**TINY, max_predictions=3, **kw)  # noqa: E731
        inputs["mask_positions"] = np.array([[1, 2, 0], [0, 1, 2]], "int32")
    else:
        build = lambda **kw: ClassifierModel(num_classes=2, pooling="mean", **TINY, **kw)  # noqa: E731
    padded, free = build(), build(padding_free=True)
    free.set_weights(padded.get_weights())
    np.testing.assert_allclose(free(inputs), padded(inputs), atol=1e-5)
    # The flag is in the config, which is what a `.keras` file is rebuilt from
    # (saving itself: test_each_family_predicts_saves_loads_and_predicts_the_same).
    rebuilt = type(free).from_config(free.get_config())
    assert rebuilt.get_layer("encoder_block_0").padding_free
    rebuilt.set_weights(free.get_weights())
    np.testing.assert_allclose(rebuilt(inputs), padded(inputs), atol=1e-5)
