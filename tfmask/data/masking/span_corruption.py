"""T5 span corruption: noise spans -> sentinels in the input, spans as targets."""

import tensorflow as tf

from tfmask.data import features as F
from tfmask.data.masking.base import MaskingStrategy, dense_int, require_keys, split_seed
from tfmask.data.targets import decoder_inputs
from tfmask.guards import guarded


def span_corruption_lengths(length, noise_density=0.15, mean_noise_span_length=3.0):
    """(input_length, target_length) after corrupting `length` tokens.

    The input keeps the non-noise tokens plus one sentinel per span (+1 for an
    EOS if used); the target holds one sentinel per span plus the noise tokens,
    a closing sentinel and an EOS if used. Use them as the static output
    lengths.

    Example:
    >>> span_corruption_lengths(100)
    (91, 22)
    """
    num_noise = max(1, min(length - 1, round(length * noise_density)))
    num_spans = max(1, round(num_noise / mean_noise_span_length))
    return length - num_noise + num_spans + 1, num_noise + num_spans + 2


def random_spans_noise_mask(length, noise_density, mean_noise_span_length, seed):
    """T5's noise mask for one sequence: bool [length], exactly
    round(length * density) noise tokens in round(noise / mean) spans, with
    span and gap lengths drawn as random segmentations (Raffel et al. 2020).
    """
    length_f = tf.cast(length, tf.float32)
    num_noise = tf.cast(tf.round(length_f * noise_density), tf.int32)
    num_noise = tf.clip_by_value(num_noise, 1, tf.maximum(length - 1, 1))
    num_spans = tf.maximum(
        tf.cast(tf.round(tf.cast(num_noise, tf.float32) / mean_noise_span_length), tf.int32), 1
    )
    num_nonnoise = length - num_noise
    noise_seed, nonnoise_seed = tf.unstack(split_seed(seed, 2))

    def segment_lengths(num_items, num_segments, segment_seed):
        # num_segments - 1 cut points among num_items - 1 slots, shuffled.
        cuts = tf.cast(tf.range(num_items - 1) < num_segments - 1, tf.int32)
        cuts = tf.random.experimental.stateless_shuffle(cuts, segment_seed)
        segment_id = tf.cumsum(tf.pad(cuts, [[1, 0]]))
        return tf.math.unsorted_segment_sum(tf.ones_like(segment_id), segment_id, num_segments)

    noise_lengths = segment_lengths(num_noise, num_spans, noise_seed)
    nonnoise_lengths = segment_lengths(num_nonnoise, num_spans, nonnoise_seed)
    interleaved = tf.reshape(tf.stack([nonnoise_lengths, noise_lengths], axis=1), [-1])
    span_starts = tf.cumsum(interleaved)[:-1]
    start_indicator = tf.scatter_nd(span_starts[:, None], tf.ones_like(span_starts), [length])
    span_number = tf.cumsum(start_indicator)
    return tf.equal(span_number % 2, 1)


class SpanCorruption(MaskingStrategy):
    """T5 span corruption, ready for an encoder-decoder model.

    For each row (its real length taken from `padding_mask`), `noise_density` of the tokens are chosen in spans
    of mean length `mean_noise_span_length`. The encoder input keeps the
    other tokens and replaces each span with a sentinel; the target is each
    sentinel followed by its span, closed by one more sentinel (T5's
    convention, so the final sentinel marks the end) and `eos_id` if given.

    Outputs (static shapes): `token_ids` [B, input_length] and
    `padding_mask`; `targets` [B, target_length]; `decoder_token_ids` =
    targets shifted right after `decoder_start_id`; `decoder_padding_mask`.
    `span_corruption_lengths` gives lengths that always fit.

    Args:
        sentinel_ids: ids of sentinel tokens, at least as many as the spans
            of the longest row (+1).
        input_length, target_length: static output lengths.
        noise_density: float. Default 0.15.
        mean_noise_span_length: float. Default 3.0.
        eos_id: optional id appended to inputs and targets.
        decoder_start_id: first decoder input. Default `pad_id` (as T5).
        pad_id: int. Default 0.
        seed: int.

    Example:
    >>> import tensorflow as tf
    >>> corrupt = SpanCorruption(sentinel_ids=list(range(90, 100)),
    ...                          input_length=12, target_length=6)
    >>> out = corrupt({"token_ids": tf.constant([list(range(10, 20))]),
    ...                "padding_mask": tf.ones([1, 10], tf.bool)}, seed=[3, 4])
    >>> out["token_ids"].shape, out["targets"].shape
    (TensorShape([1, 12]), TensorShape([1, 6]))
    """

    def __init__(
        self,
        sentinel_ids,
        input_length,
        target_length,
        noise_density=0.15,
        mean_noise_span_length=3.0,
        eos_id=None,
        decoder_start_id=None,
        pad_id=0,
        seed=None,
    ):
        super().__init__(seed)
        if not 0 < noise_density < 1:
            raise ValueError(f"noise_density={noise_density} must be in (0, 1).")
        if mean_noise_span_length < 1:
            raise ValueError(f"mean_noise_span_length={mean_noise_span_length} must be >= 1.")
        if len(sentinel_ids) < 2:
            raise ValueError("SpanCorruption needs at least 2 sentinel ids.")
        self.sentinel_ids = tf.constant(list(sentinel_ids), tf.int32)
        self.num_sentinels = len(sentinel_ids)
        self.input_length = input_length
        self.target_length = target_length
        self.noise_density = noise_density
        self.mean_noise_span_length = mean_noise_span_length
        self.eos_id = eos_id
        self.decoder_start_id = pad_id if decoder_start_id is None else decoder_start_id
        self.pad_id = pad_id

    def apply(self, batch, seed):
        require_keys(self, batch, F.TOKEN_IDS, F.PADDING_MASK)
        token_ids = dense_int(batch[F.TOKEN_IDS], F.TOKEN_IDS)
        real = tf.cast(batch[F.PADDING_MASK], tf.bool)
        lengths = tf.reduce_sum(tf.cast(real, tf.int32), axis=1)
        seeds = split_seed(seed, tf.shape(token_ids)[0])

        def corrupt(args):
            tokens, length, row_seed = args
            noise = random_spans_noise_mask(
                length, self.noise_density, self.mean_noise_span_length, row_seed
            )
            return self._encode(tokens[:length], noise)

        inputs, targets, input_lengths, target_lengths = tf.map_fn(
            corrupt,
            (token_ids, lengths, seeds),
            fn_output_signature=(
                tf.TensorSpec([self.input_length], tf.int32),
                tf.TensorSpec([self.target_length], tf.int32),
                tf.TensorSpec([], tf.int32),
                tf.TensorSpec([], tf.int32),
            ),
        )
        return {
            **{k: v for k, v in batch.items() if k not in (F.TOKEN_IDS, F.PADDING_MASK, F.WORD_IDS)},
            F.TOKEN_IDS: inputs,
            F.PADDING_MASK: tf.sequence_mask(input_lengths, self.input_length),
            F.TARGETS: targets,
            F.DECODER_TOKEN_IDS: decoder_inputs(targets, self.decoder_start_id),
            F.DECODER_PADDING_MASK: tf.sequence_mask(target_lengths, self.target_length),
        }

    def _encode(self, tokens, noise):
        """One row: (inputs [input_length], targets [target_length]), padded,
        and their real lengths."""
        first_noise = noise & ~tf.pad(noise[:-1], [[1, 0]])
        num_spans = tf.reduce_sum(tf.cast(first_noise, tf.int32))
        check = tf.debugging.assert_less(
            num_spans,
            self.num_sentinels,
            message="SpanCorruption: a row has more noise spans than sentinel_ids; "
            "pass more sentinel ids or use shorter rows",
        )
        # Without this the gather below could fail first with a raw out-of-range error.
        first_noise = guarded(first_noise, check)
        span_index = tf.cumsum(tf.cast(first_noise, tf.int32)) - 1
        sentinel = tf.gather(self.sentinel_ids, tf.maximum(span_index, 0))
        # Encoder: non-noise tokens, each span replaced by its sentinel.
        inputs = tf.boolean_mask(tf.where(first_noise, sentinel, tokens), ~noise | first_noise)
        # Decoder: sentinel_i followed by span i, then a closing sentinel.
        noise_tokens = tf.boolean_mask(tokens, noise)
        noise_span = tf.boolean_mask(span_index, noise)
        noise_first = tf.boolean_mask(first_noise, noise)
        # Interleave: before each span's first token put its sentinel.
        with_sentinels = tf.reshape(
            tf.stack([tf.gather(self.sentinel_ids, noise_span), noise_tokens], axis=1), [-1]
        )
        keep_sentinel = tf.reshape(
            tf.stack([noise_first, tf.ones_like(noise_first)], axis=1), [-1]
        )
        targets = tf.boolean_mask(with_sentinels, keep_sentinel)
        targets = tf.concat([targets, self.sentinel_ids[num_spans : num_spans + 1]], axis=0)
        if self.eos_id is not None:
            eos = tf.constant([self.eos_id], tf.int32)
            inputs = tf.concat([inputs, eos], 0)
            targets = tf.concat([targets, eos], 0)
        checks = [
            tf.debugging.assert_less_equal(
                tf.size(values),
                size,
                message=f"SpanCorruption: output longer than {name}; compute the "
                "lengths with span_corruption_lengths(sequence_length, ...)",
            )
            for name, values, size in (
                ("input_length", inputs, self.input_length),
                ("target_length", targets, self.target_length),
            )
        ]
        # Padding by a negative amount must not fail before the checks do.
        inputs, targets = guarded((inputs, targets), *checks)
        pad = lambda v, n: tf.pad(v, [[0, n - tf.size(v)]], constant_values=self.pad_id)  # noqa: E731
        return (pad(inputs, self.input_length), pad(targets, self.target_length),
                tf.size(inputs), tf.size(targets))
