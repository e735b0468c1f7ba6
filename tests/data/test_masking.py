"""Masking strategies: statistics on >= 100k tokens, whole units, round trips,
seeds and static shapes."""

import numpy as np
import pytest
import tensorflow as tf

from tfmask.data import features as F
from tfmask.data.masking import (
    EntityMasking,
    FeatureMasking,
    PromptLossMasking,
    RandomTokenMasking,
    SpanCorruption,
    SpanMasking,
    TermMasking,
    WholeWordMasking,
    span_corruption_lengths,
)
from tfmask.data.pipeline import mask_dataset

PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
SPECIAL = [PAD, UNK, CLS, SEP, MASK]
VOCAB, LENGTH, ROWS, PREDICTIONS = 1000, 128, 1100, 24


def synthetic_batch(rows=ROWS, length=LENGTH, seed=0, entities=False):
    """[CLS] words of 1-3 pieces [SEP] + padding; ~100k real tokens."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((rows, length), np.int32)
    word_ids = np.full((rows, length), -1, np.int32)
    entity_ids = np.full((rows, length), -1, np.int32)
    for r in range(rows):
        budget = rng.integers(length // 2, length - 1)
        ids[r, 0], pos, word, entity = CLS, 1, 0, 0
        while True:
            pieces = rng.choice([1, 2, 3], p=[0.6, 0.3, 0.1])
            if pos + pieces > budget:
                break
            ids[r, pos : pos + pieces] = rng.integers(10, VOCAB, pieces)
            word_ids[r, pos : pos + pieces] = word
            if entities and rng.random() < 0.1:  # 1-2 word entities
                entity_ids[r, pos : pos + pieces] = entity
                if rng.random() < 0.5:
                    entity += 1
            elif entities:
                entity += 1 if (entity_ids[r, :pos] == entity).any() else 0
            pos, word = pos + pieces, word + 1
        ids[r, pos] = SEP
    batch = {F.TOKEN_IDS: tf.constant(ids), F.WORD_IDS: tf.constant(word_ids),
             F.PADDING_MASK: tf.constant(ids != PAD)}
    if entities:
        batch[F.ENTITY_IDS] = tf.constant(entity_ids)
    return batch


@pytest.fixture(scope="module")
def batch():
    data = synthetic_batch()
    assert int(tf.reduce_sum(tf.cast(data[F.TOKEN_IDS] >= 10, tf.int32))) >= 100_000
    return data


def with_padding(ids):
    """A bare id batch with the padding mask a pipeline would emit (0 = pad here)."""
    ids = tf.constant(ids)
    return {F.TOKEN_IDS: ids, F.PADDING_MASK: ids != PAD}


def mlm(cls, **kwargs):
    args = dict(vocabulary_size=VOCAB, mask_token_id=MASK, max_predictions=PREDICTIONS,
                special_token_ids=SPECIAL)
    args.update(kwargs)
    return cls(**args)


def check_mlm_outputs(batch, out):
    """Invariants every MLM strategy keeps, checked element by element."""
    ids = batch[F.TOKEN_IDS].numpy()
    masked = out[F.TOKEN_IDS].numpy()
    positions = out[F.MASK_POSITIONS].numpy()
    weights = out[F.MASK_WEIGHTS].numpy()
    assert positions.shape == weights.shape == (ids.shape[0], PREDICTIONS)
    selected = np.zeros_like(ids, bool)
    for r in range(ids.shape[0]):
        real = positions[r][weights[r] == 1]
        assert np.all(np.diff(real) > 0), "positions must be ascending"
        assert np.all(weights[r][: len(real)] == 1) and np.all(positions[r][len(real):] == 0)
        selected[r, real] = True
    np.testing.assert_array_equal(
        out[F.MASK_IDS].numpy(), np.where(weights == 1, np.take_along_axis(ids, positions, 1), 0)
    )
    assert not np.isin(ids[selected], SPECIAL).any(), "special tokens or padding selected"
    np.testing.assert_array_equal(masked[~selected], ids[~selected])
    replaced = selected & (masked != ids) & (masked != MASK)
    assert not np.isin(masked[replaced], SPECIAL).any(), "random replacement was special"
    np.testing.assert_array_equal(out[F.PADDING_MASK].numpy(), ids != PAD)
    return selected


def test_random_masking_statistics_and_80_10_10(batch):
    out = mlm(RandomTokenMasking)(batch, seed=[1, 2])
    selected = check_mlm_outputs(batch, out)
    ids, masked = batch[F.TOKEN_IDS].numpy(), out[F.TOKEN_IDS].numpy()
    candidates = ids >= 10
    expected = np.minimum(PREDICTIONS, np.maximum(1, np.floor(0.15 * candidates.sum(1) + 0.5)))
    np.testing.assert_array_equal(selected.sum(1), expected)
    assert abs(selected.sum() / candidates.sum() - 0.15) < 0.005
    chosen_before, chosen_after = ids[selected], masked[selected]
    n = selected.sum()
    mask_share = (chosen_after == MASK).sum() / n
    kept_share = (chosen_after == chosen_before).sum() / n
    random_share = 1 - mask_share - kept_share
    # ~15k selections: 4 standard deviations is < 0.013
    assert abs(mask_share - 0.8) < 0.013
    assert abs(random_share - 0.1) < 0.01  # transformers #32329 gave 2% here
    assert abs(kept_share - 0.1) < 0.01


def test_ratios_are_configurable(batch):
    out = mlm(RandomTokenMasking, mask_ratio=0.5, random_ratio=0.5)(batch, seed=[3, 4])
    selected = check_mlm_outputs(batch, out)
    after = out[F.TOKEN_IDS].numpy()[selected]
    assert abs((after == MASK).mean() - 0.5) < 0.015
    before = batch[F.TOKEN_IDS].numpy()[selected]
    assert (after == before).mean() < 0.01  # only random collisions stay


def whole_units_masked(unit_ids, selected):
    for r in range(unit_ids.shape[0]):
        for unit in np.unique(unit_ids[r][unit_ids[r] >= 0]):
            tokens = selected[r][unit_ids[r] == unit]
            assert tokens.all() or not tokens.any(), f"row {r}: unit {unit} partly masked"


def test_whole_word_masking_masks_only_whole_words(batch):
    out = mlm(WholeWordMasking)(batch, seed=[5, 6])
    selected = check_mlm_outputs(batch, out)
    whole_units_masked(batch[F.WORD_IDS].numpy(), selected)
    candidates = batch[F.TOKEN_IDS].numpy() >= 10
    budget = np.minimum(PREDICTIONS, np.floor(0.15 * candidates.sum(1) + 0.5))
    assert np.all(selected.sum(1) <= budget)
    # whole words rarely fill the budget to the token: within 0.5 token a row
    assert selected.sum() / budget.sum() > 0.96
    # and 80/10/10 is decided per word: a word is all [MASK] or none of it
    word_ids, masked = batch[F.WORD_IDS].numpy(), out[F.TOKEN_IDS].numpy()
    for r in range(50):
        for w in np.unique(word_ids[r][selected[r]]):
            is_mask = masked[r][word_ids[r] == w] == MASK
            assert is_mask.all() or not is_mask.any()


def test_span_lengths_follow_truncated_geometric_law():
    strategy = mlm(SpanMasking)
    lengths = strategy.span_lengths([200_000], tf.constant([7, 8], tf.int64)).numpy()
    q, l = 0.8, np.arange(1, 11)
    pmf = 0.2 * q ** (l - 1) / (1 - q**10)
    observed = np.bincount(lengths, minlength=11)[1:] / lengths.size
    np.testing.assert_allclose(observed, pmf, atol=0.004)
    assert abs(lengths.mean() - 3.8) < 0.03  # SpanBERT's mean span length


def test_span_masking_selects_contiguous_whole_word_spans(batch):
    out = mlm(SpanMasking)(batch, seed=[9, 10])
    selected = check_mlm_outputs(batch, out)
    word_ids = batch[F.WORD_IDS].numpy()
    whole_units_masked(word_ids, selected)
    candidates = batch[F.TOKEN_IDS].numpy() >= 10
    budget = np.minimum(PREDICTIONS, np.floor(0.15 * candidates.sum(1) + 0.5))
    assert np.all(selected.sum(1) <= budget)
    assert selected.sum() / budget.sum() > 0.85
    # Runs of masked words are longer than for whole-word masking.
    runs = []
    for r in range(word_ids.shape[0]):
        words = np.unique(word_ids[r][selected[r]])
        if words.size:
            runs += [len(g) for g in np.split(words, np.where(np.diff(words) != 1)[0] + 1)]
    assert np.mean(runs) > 2.0


def test_entity_masking_masks_entities_whole_and_first():
    data = synthetic_batch(rows=400, seed=3, entities=True)
    out = mlm(EntityMasking, rate=0.15)(data, seed=[11, 12])
    selected = check_mlm_outputs(data, out)
    entity_ids = data[F.ENTITY_IDS].numpy()
    whole_units_masked(entity_ids, selected)
    whole_units_masked(data[F.WORD_IDS].numpy(), selected)
    in_entity = entity_ids >= 0
    assert selected[in_entity].mean() > 3 * selected[~in_entity & (data[F.TOKEN_IDS].numpy() >= 10)].mean()
    # with entity_probability=0 entities are just words
    plain = mlm(EntityMasking, entity_probability=0.0)(data, seed=[11, 12])
    sel = check_mlm_outputs(data, plain)
    assert abs(sel[in_entity].mean() - sel[~in_entity & (data[F.TOKEN_IDS].numpy() >= 10)].mean()) < 0.05


def test_same_seed_same_masks_and_next_epoch_different(batch):
    data = tf.data.Dataset.from_tensor_slices(batch).batch(100, drop_remainder=True)
    strategy = mlm(RandomTokenMasking)

    def epoch(dataset):
        return np.concatenate([b[F.MASK_POSITIONS].numpy() for b in dataset])

    dynamic = mask_dataset(data, strategy, seed=42)
    first, second = epoch(dynamic), epoch(dynamic)
    assert not np.array_equal(first, second), "masks must be re-drawn each epoch"
    np.testing.assert_array_equal(epoch(mask_dataset(data, strategy, seed=42)), first)
    assert not np.array_equal(epoch(mask_dataset(data, strategy, seed=43)), first)
    static = mask_dataset(data, strategy, seed=42, dynamic=False)
    np.testing.assert_array_equal(epoch(static), epoch(static))


@pytest.mark.parametrize("strategy", [
    mlm(RandomTokenMasking), mlm(WholeWordMasking), mlm(SpanMasking), mlm(EntityMasking),
])
def test_static_shapes_under_tf_data(strategy):
    data = tf.data.Dataset.from_tensor_slices(synthetic_batch(rows=64, entities=True))
    masked = mask_dataset(data.batch(32, drop_remainder=True), strategy, seed=0)
    for key, spec in masked.element_spec.items():
        assert spec.shape.is_fully_defined(), f"{key} has dynamic shape {spec.shape}"
    assert masked.element_spec[F.MASK_POSITIONS].shape == (32, PREDICTIONS)


def test_span_corruption_round_trips_and_has_t5_statistics():
    rng = np.random.default_rng(0)
    rows, length = 400, 100
    lengths = rng.integers(20, length + 1, rows)
    ids = np.zeros((rows, length), np.int32)
    for r, n in enumerate(lengths):
        ids[r, :n] = rng.integers(10, 900, n)
    sentinels = list(range(999, 899, -1))  # T5 counts sentinels down
    input_length, target_length = span_corruption_lengths(length)
    corrupt = SpanCorruption(sentinels, input_length, target_length, eos_id=1)
    out = corrupt(with_padding(ids), seed=[1, 1])
    inputs, targets = out[F.TOKEN_IDS].numpy(), out[F.TARGETS].numpy()
    noise_total, spans_total = 0, 0
    for r in range(rows):
        enc = [t for t in inputs[r] if t != PAD]
        dec = [t for t in targets[r] if t != PAD]
        assert enc[-1] == 1 and dec[-1] == 1
        spans, current = {}, None
        for t in dec[:-1]:
            if t in sentinels:
                current = t
                spans[current] = []
            else:
                spans[current].append(t)
        rebuilt = []
        for t in enc[:-1]:
            rebuilt += spans[t] if t in sentinels else [t]
        assert rebuilt == list(ids[r, : lengths[r]]), f"row {r} does not round-trip"
        # sentinels appear in order 0, 1, 2, ... in both
        used = [t for t in enc if t in sentinels]
        assert used == sentinels[: len(used)]
        noise_total += sum(len(v) for v in spans.values())
        spans_total += len(used)
    assert abs(noise_total / lengths.sum() - 0.15) < 0.01
    assert abs(noise_total / spans_total - 3.0) < 0.3
    np.testing.assert_array_equal(out[F.DECODER_TOKEN_IDS].numpy()[:, 1:], targets[:, :-1])
    assert np.all(out[F.DECODER_TOKEN_IDS].numpy()[:, 0] == PAD)


def test_span_corruption_errors_when_lengths_do_not_fit():
    corrupt = SpanCorruption(list(range(900, 1000)), input_length=5, target_length=40)
    with pytest.raises(tf.errors.InvalidArgumentError, match="span_corruption_lengths"):
        corrupt(with_padding([list(range(10, 60))]), seed=[0, 0])


def test_span_corruption_errors_when_sentinels_run_out():
    # 50 tokens at 15% noise make several spans; two sentinel ids (one closes the targets) cannot name them all.
    corrupt = SpanCorruption([900, 901], input_length=80, target_length=80)
    with pytest.raises(tf.errors.InvalidArgumentError, match="more noise spans than sentinel_ids"):
        corrupt(with_padding([list(range(10, 60))]), seed=[0, 0])


def term_batch():
    words = tf.ragged.constant([["tom", "hanks", "is", "66", ",", "he", "is", "great"],
                                ["the", "film", "was", "dull"]])
    # token i of row r belongs to word word_ids[r, i]; "hanks" has 2 pieces
    word_ids = tf.constant([[-1, 0, 1, 1, 2, 3, 4, 5, 6, 7, -1],
                            [-1, 0, 1, 2, 3, -1, -1, -1, -1, -1, -1]])
    token_ids = tf.constant([[CLS, 10, 11, 12, 13, 14, 15, 16, 13, 17, SEP],
                             [CLS, 20, 21, 22, 23, SEP, 0, 0, 0, 0, 0]])
    return {F.TOKEN_IDS: token_ids, F.WORD_IDS: word_ids, F.WORDS: words,
            F.PADDING_MASK: token_ids != PAD}


def test_term_masking_masks_terms_patterns_and_multiword_names():
    masker = TermMasking(terms=["Tom Hanks", "he", "she"], patterns=[r"\d+"], mask_token_id=MASK)
    out = masker(term_batch())
    assert out[F.TOKEN_IDS].numpy().tolist()[0] == [CLS, MASK, MASK, MASK, 13, MASK, 15, MASK, 13, 17, SEP]
    assert out[F.TOKEN_IDS].numpy().tolist()[1] == term_batch()[F.TOKEN_IDS].numpy().tolist()[1]
    assert (~out[F.TERM_MASK].numpy()).sum() == 5  # True = kept
    assert not out[F.TERM_MASK].numpy()[0, 1:4].any() and out[F.TERM_MASK].numpy()[1].all()


def test_term_masking_drop_and_random():
    dropped = TermMasking(terms=["tom hanks"], replacement="drop")(term_batch())
    assert dropped[F.TOKEN_IDS].numpy().tolist()[0] == [CLS, 13, 14, 15, 16, 13, 17, SEP, 0, 0, 0]
    assert dropped[F.TOKEN_IDS].shape == (2, 11)
    assert dropped[F.PADDING_MASK].numpy()[0].sum() == 8
    randomized = TermMasking(patterns=["great"], replacement="random", vocabulary_size=VOCAB,
                             special_token_ids=SPECIAL)(term_batch(), seed=[0, 1])
    new = randomized[F.TOKEN_IDS].numpy()[0, 9]
    assert new != 17 and new not in SPECIAL
    with pytest.raises(ValueError, match="at least one term or pattern"):
        TermMasking()
    with pytest.raises(ValueError, match="not a valid regex"):
        TermMasking(patterns=["("], mask_token_id=MASK)


@pytest.mark.parametrize("mode", ["element", "timestep", "block"])
@pytest.mark.parametrize("shape", [(64, 50, 8), (16, 32, 32, 3)])
def test_feature_masking_rate_and_structure(mode, shape):
    x = tf.random.stateless_normal(shape, [0, 0]) + 5.0
    out = FeatureMasking(rate=0.3, mode=mode, block_size=4)({"inputs": x}, seed=[2, 3])
    keep = out[F.FEATURE_MASK].numpy()
    np.testing.assert_array_equal(out["inputs"].numpy(), np.where(keep, x.numpy(), 0.0))
    np.testing.assert_array_equal(out[F.TARGETS].numpy(), x.numpy())
    assert abs(1 - keep.mean() - 0.3) < 0.03
    if mode != "element":  # every feature / channel of a position shares M
        assert np.all(keep == keep[..., :1])
    if mode == "block" and len(shape) == 3:
        blocks = keep[:, :48, 0].reshape(shape[0], 12, 4)
        assert np.all(blocks == blocks[:, :, :1])


def test_prompt_loss_masking_weights_only_the_response():
    ids = tf.constant([[5, 6, 7, 8, 20, 21, 22, 0], [9, 7, 8, 30, 0, 0, 0, 0]])
    out = PromptLossMasking(response_marker=[7, 8])(with_padding(ids))
    np.testing.assert_array_equal(out[F.LABELS].numpy()[0], [6, 7, 8, 20, 21, 22, 0, 0])
    np.testing.assert_array_equal(out[F.LOSS_WEIGHTS].numpy(),
                                  [[0, 0, 0, 1, 1, 1, 0, 0], [0, 0, 1, 0, 0, 0, 0, 0]])
    by_length = PromptLossMasking(prompt_length_key="prompt_length")(
        {**with_padding(ids), "prompt_length": tf.constant([4, 3])})
    np.testing.assert_array_equal(by_length[F.LOSS_WEIGHTS].numpy(), out[F.LOSS_WEIGHTS].numpy())


def test_prompt_loss_masking_missing_marker_is_a_clear_error_not_empty_data():
    ids = tf.constant([[5, 6, 7, 8, 20], [5, 6, 6, 6, 20]])
    dataset = tf.data.Dataset.from_tensors(with_padding(ids)).map(
        PromptLossMasking(response_marker=[7, 8]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="response marker .* not found"):
        list(dataset)
    truncated = tf.constant([[5, 6, 7, 8]])
    with pytest.raises(tf.errors.InvalidArgumentError, match="no response token left"):
        PromptLossMasking(response_marker=[7, 8])(with_padding(truncated))
    kept = PromptLossMasking(response_marker=[7, 8], on_missing="zero_weights")(with_padding(ids))
    assert kept[F.LOSS_WEIGHTS].numpy()[1].sum() == 0


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(ValueError, match="rate=1.5 must be in"):
        mlm(RandomTokenMasking, rate=1.5)
    with pytest.raises(ValueError, match="mask_ratio \\+ random_ratio"):
        mlm(RandomTokenMasking, mask_ratio=0.8, random_ratio=0.3)
    with pytest.raises(ValueError, match="needs the batch keys \\['word_ids'\\]"):
        mlm(WholeWordMasking)(with_padding([[10, 11]]))
    with pytest.raises(ValueError, match="needs the batch keys \\['padding_mask'\\]"):
        mlm(RandomTokenMasking)({F.TOKEN_IDS: tf.constant([[10, 11]])})
    with pytest.raises(ValueError, match="ragged"):
        mlm(RandomTokenMasking)({F.TOKEN_IDS: tf.ragged.constant([[10, 11], [12]]),
                                 F.PADDING_MASK: tf.ones([2, 2], tf.bool)})
    with pytest.raises(ValueError, match="exactly one of"):
        PromptLossMasking()


def test_term_matcher_compares_terms_as_the_uncased_tokenizer_sees_words():
    from tfmask.data.masking import TermMatcher

    words = tf.ragged.constant([["jose", "muller", "is", "here"]])
    assert TermMatcher(["José Müller"])(words).numpy().tolist() == [[True, True, False, False]]
    cased = tf.ragged.constant([["Tom", "tom", "Hanks"]])
    assert TermMatcher(["Tom"], lowercase=False)(cased).numpy().tolist() == [[True, False, False]]


def test_unseeded_calls_follow_the_seed_generator_convention():
    """Keras' SeedGenerator convention: an instance's stream of masks depends
    on its seed only; draws elsewhere in the process do not shift it."""
    batch = synthetic_batch(rows=8)

    def stream(strategy, calls=3):
        return [strategy(batch)[F.TOKEN_IDS].numpy() for _ in range(calls)]

    first = stream(mlm(RandomTokenMasking, seed=7))
    tf.random.uniform([5])  # unrelated stateful draws in between
    mlm(RandomTokenMasking, seed=7)(batch)  # another instance drawing
    second = stream(mlm(RandomTokenMasking, seed=7))
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], first[1])  # the stream moves on
    assert not np.array_equal(first[0], stream(mlm(RandomTokenMasking, seed=8), 1)[0])

    strategy = mlm(RandomTokenMasking, seed=7)
    traced = tf.function(lambda b: strategy(b)[F.TOKEN_IDS])
    np.testing.assert_array_equal(traced(batch).numpy(), first[0])  # traced: same stream
    np.testing.assert_array_equal(traced(batch).numpy(), first[1])
