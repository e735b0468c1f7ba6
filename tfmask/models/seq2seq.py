"""Decoder-only and encoder-decoder language models with cached generation.

- `CausalLMModel`: decoder-only Transformer (prompt-loss fine-tuning,
  packed pre-training with document masks).
- `Seq2SeqTransformerModel`: encoder-decoder with padding, causal and cross
  masks (T5 span corruption, translation).
- `Seq2SeqLSTMModel`: bidirectional LSTM encoder + `MaskedLSTMDecoder`.

All three share one vocabulary between input and output and tie the output
projection to the (decoder) embedding; all generate with keras-hub's greedy
or beam samplers (`generate`), using per-layer key/value caches.
"""

import keras
from keras import ops

from tfmask.data import features as F
from tfmask.layers import MaskedEmbedding, MaskedLSTMDecoder, TiedProjection, TransformerDecoderBlock
from tfmask.models.decoding import make_sampler
from tfmask.models.encoder import EncoderStack, symbolic_inputs


class _GenerativeModel(keras.Model):
    """Hyper-parameters in, functional graph out; `from_config` rebuilds it."""

    def _store(self, **kwargs):
        self._hyper = dict(kwargs)
        for name, value in kwargs.items():
            setattr(self, name, value)

    def get_config(self):
        return {**self._hyper, "name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _decoder_blocks(num_layers, num_heads, intermediate_dim, dropout, layer_norm_epsilon,
                    normalize_first, dtype):
    initializer = keras.initializers.TruncatedNormal(stddev=0.02)
    return [
        TransformerDecoderBlock(num_heads, intermediate_dim, dropout=dropout,
                                layer_norm_epsilon=layer_norm_epsilon,
                                normalize_first=normalize_first, kernel_initializer=initializer,
                                dtype=dtype, name=f"decoder_block_{i}")
        for i in range(num_layers)
    ]


def _all_real(token_ids):
    """Generation steps are real tokens even when a token id equals the pad id."""
    return ops.ones_like(token_ids, dtype="bool")


# Inputs of both encoder-decoder models, as the pipeline names them.
SEQ2SEQ_INPUTS = (F.TOKEN_IDS, F.PADDING_MASK, F.DECODER_TOKEN_IDS, F.DECODER_PADDING_MASK)


def _float32_logits(logits):
    return keras.layers.Activation("linear", dtype="float32", name="logits")(logits)


@keras.saving.register_keras_serializable(package="tfmask")
class CausalLMModel(_GenerativeModel):
    """Decoder-only Transformer LM with a tied output projection.

    Inputs `token_ids` and `padding_mask` [B, S] (+ `segment_ids`,
    `position_ids` with `packed=True`); output next-token logits [B, S, V].

    Example:
    >>> import numpy as np
    >>> model = CausalLMModel(vocabulary_size=30, num_layers=1, num_heads=2,
    ...                       hidden_dim=8, intermediate_dim=16, max_length=16)
    >>> model({"token_ids": np.array([[2, 5, 6, 0]]),
    ...        "padding_mask": np.array([[1, 1, 1, 0]], bool)}).shape
    TensorShape([1, 4, 30])
    """

    def __init__(self, vocabulary_size, num_layers, num_heads, hidden_dim, intermediate_dim,
                 max_length, dropout=0.1, layer_norm_epsilon=1e-5, normalize_first=True,
                 position="learned", packed=False, **kwargs):
        dtype = kwargs.pop("dtype", None)
        embedding = MaskedEmbedding(vocabulary_size, hidden_dim, max_length, pad_id=None,
                                    position=position, dropout=dropout,
                                    layer_norm_epsilon=layer_norm_epsilon, dtype=dtype,
                                    name="embedding")
        blocks = _decoder_blocks(num_layers, num_heads, intermediate_dim, dropout,
                                 layer_norm_epsilon, normalize_first, dtype)
        final_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, dtype=dtype,
                                                     name="final_norm")
        projection = TiedProjection(embedding, dtype=dtype, name="lm_head")
        names = [F.TOKEN_IDS, F.PADDING_MASK] + F.row_keys(packed)
        inputs = symbolic_inputs(names)
        x = embedding(inputs[F.TOKEN_IDS], position_ids=inputs.get(F.POSITION_IDS))
        for block in blocks:
            x = block(x, decoder_padding_mask=inputs[F.PADDING_MASK],
                      segment_ids=inputs.get(F.SEGMENT_IDS))
        logits = _float32_logits(projection(final_norm(x)))
        super().__init__(inputs=inputs, outputs=logits, dtype=dtype, **kwargs)
        self.embedding, self.blocks = embedding, blocks
        self.final_norm, self.projection = final_norm, projection
        self._store(vocabulary_size=vocabulary_size, num_layers=num_layers, num_heads=num_heads,
                    hidden_dim=hidden_dim, intermediate_dim=intermediate_dim,
                    max_length=max_length, dropout=dropout,
                    layer_norm_epsilon=layer_norm_epsilon, normalize_first=normalize_first,
                    position=position, packed=packed)

    def _step(self, token_ids, caches, index):
        """token_ids [B, T] at positions index.. -> logits [B, T, V], caches."""
        length = ops.shape(token_ids)[1]
        positions = ops.expand_dims(ops.arange(length, dtype="int32") + index, 0)
        x = self.embedding(token_ids, position_ids=positions)
        new_caches = []
        for block, cache in zip(self.blocks, caches):
            x, cache = block(x, decoder_padding_mask=_all_real(token_ids),
                             self_attention_cache=cache,
                             self_attention_cache_update_index=index)
            new_caches.append(cache)
        logits = ops.cast(self.projection(self.final_norm(x)), "float32")
        return logits, tuple(new_caches)

    def generate(self, token_ids, prompt_lengths, max_length=None, sampler="greedy",
                 num_beams=4, stop_token_ids=None):
        """Continues each prompt (right-padded `token_ids` [B, L]) to `max_length`."""
        max_length = max_length or ops.shape(token_ids)[1]
        batch = ops.shape(token_ids)[0]
        prompt = ops.pad(ops.cast(token_ids, "int32"),
                         [[0, 0], [0, max_length - ops.shape(token_ids)[1]]])
        prompt_lengths = ops.cast(prompt_lengths, "int32")
        prompt_mask = ops.arange(max_length, dtype="int32")[None, :] < ops.reshape(
            prompt_lengths, (-1, 1))
        caches = tuple(block._self_attention.init_cache(batch, max_length)
                       for block in self.blocks)
        _, caches = self._step(prompt, caches, 0)  # prefill with the padded prompts

        def next_token(prompt, cache, index):
            logits, cache = self._step(prompt[:, index - 1 : index], cache, index - 1)
            return logits[:, 0], None, cache

        start = ops.min(prompt_lengths)
        return make_sampler(sampler, num_beams)(
            next_token, prompt, cache=caches, index=start, mask=prompt_mask,
            stop_token_ids=stop_token_ids)


@keras.saving.register_keras_serializable(package="tfmask")
class Seq2SeqTransformerModel(_GenerativeModel):
    """Encoder-decoder Transformer; one shared, tied embedding.

    Inputs: `token_ids` and `padding_mask` [B, S] (encoder),
    `decoder_token_ids` [B, T] (targets shifted right) and
    `decoder_padding_mask` [B, T] (True at position 0 too, whatever the start
    token's id). Output: logits [B, T, V]. The decoder attends
    causally to itself and, through cross-attention, to the unpadded source
    tokens only.

    Example:
    >>> import numpy as np
    >>> model = Seq2SeqTransformerModel(vocabulary_size=30, num_layers=1,
    ...     num_heads=2, hidden_dim=8, intermediate_dim=16, max_length=16)
    >>> model({"token_ids": np.array([[5, 6, 0]]),
    ...        "padding_mask": np.array([[1, 1, 0]], bool),
    ...        "decoder_token_ids": np.array([[0, 7]]),
    ...        "decoder_padding_mask": np.array([[1, 1]], bool)}).shape
    TensorShape([1, 2, 30])
    """

    def __init__(self, vocabulary_size, num_layers, num_heads, hidden_dim, intermediate_dim,
                 max_length, decoder_num_layers=None, dropout=0.1, layer_norm_epsilon=1e-6,
                 normalize_first=True, position="learned", **kwargs):
        dtype = kwargs.pop("dtype", None)
        decoder_num_layers = decoder_num_layers or num_layers
        encoder = EncoderStack(vocabulary_size, num_layers, num_heads, hidden_dim,
                               intermediate_dim, max_length, dropout, None, "gelu",
                               layer_norm_epsilon, normalize_first, position, 0, dtype=dtype)
        embedding = encoder.embedding  # shared by encoder, decoder and output
        blocks = _decoder_blocks(decoder_num_layers, num_heads, intermediate_dim, dropout,
                                 layer_norm_epsilon, normalize_first, dtype)
        final_norm = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon, dtype=dtype,
                                                     name="decoder_final_norm")
        projection = TiedProjection(embedding, dtype=dtype, name="lm_head")
        inputs = symbolic_inputs(SEQ2SEQ_INPUTS)
        source_mask = inputs[F.PADDING_MASK]
        encoded = encoder(inputs[F.TOKEN_IDS], source_mask)
        x = embedding(inputs[F.DECODER_TOKEN_IDS])
        target_mask = inputs[F.DECODER_PADDING_MASK]
        for block in blocks:
            x = block(x, encoded, decoder_padding_mask=target_mask,
                      encoder_padding_mask=source_mask)
        logits = _float32_logits(projection(final_norm(x)))
        super().__init__(inputs=inputs, outputs=logits, dtype=dtype, **kwargs)
        self.encoder, self.embedding, self.blocks = encoder, embedding, blocks
        self.final_norm, self.projection = final_norm, projection
        self._store(vocabulary_size=vocabulary_size, num_layers=num_layers, num_heads=num_heads,
                    hidden_dim=hidden_dim, intermediate_dim=intermediate_dim,
                    max_length=max_length, decoder_num_layers=decoder_num_layers,
                    dropout=dropout, layer_norm_epsilon=layer_norm_epsilon,
                    normalize_first=normalize_first, position=position)

    def _step(self, token_ids, cache, index, fill_cross_attention_cache=False):
        """token_ids [B, T] at positions index.. -> logits [B, T, V], cache.

        `cache` holds the encoder output ("encoder" [B, S, D]) and its
        padding mask ("encoder_mask" [B, S]), a self-attention cache per
        block ("self") and, optionally, a cross-attention cache per block
        ("cross", [B, 2, S, heads, head_dim] each). With "cross" the encoder
        keys/values are read from it (filled by this call from "encoder" if
        `fill_cross_attention_cache`); without it each block projects the
        encoder output again.
        """
        length = ops.shape(token_ids)[1]
        positions = ops.expand_dims(ops.arange(length, dtype="int32") + index, 0)
        x = self.embedding(token_ids, position_ids=positions)
        cross = cache.get("cross")
        new_self, new_cross = [], []
        for i, block in enumerate(self.blocks):
            kwargs = {}
            if cross is not None:
                kwargs = {"cross_attention_cache": cross[i],
                          "cross_attention_cache_update_index":
                              0 if fill_cross_attention_cache else None}
            x, *layer_caches = block(x, cache["encoder"],
                                     decoder_padding_mask=_all_real(token_ids),
                                     encoder_padding_mask=cache["encoder_mask"],
                                     self_attention_cache=cache["self"][i],
                                     self_attention_cache_update_index=index, **kwargs)
            new_self.append(layer_caches[0])
            if cross is not None:
                new_cross.append(layer_caches[1])
        logits = ops.cast(self.projection(self.final_norm(x)), "float32")
        cache = {**cache, "self": tuple(new_self)}
        if cross is not None:
            cache["cross"] = tuple(new_cross)
        return logits, cache

    def _build_cache(self, token_ids, padding_mask, max_length, start_id=0):
        """Encodes the sources once and fills every block's cross-attention
        cache with their keys/values (a decoding step on the start token at
        position 0, whose logits are dropped; the sampler's first step
        writes the same self-attention keys/values there again)."""
        batch = ops.shape(token_ids)[0]
        padding_mask = ops.cast(padding_mask, "bool")
        encoded = self.encoder(token_ids, padding_mask)
        source_length = ops.shape(token_ids)[1]
        cache = {
            "encoder": encoded,
            "encoder_mask": padding_mask,
            "self": tuple(block._self_attention.init_cache(batch, max_length)
                          for block in self.blocks),
            "cross": tuple(block._cross_attention.init_cache(batch, source_length)
                           for block in self.blocks),
        }
        start = ops.full((batch, 1), start_id, "int32")
        _, cache = self._step(start, cache, 0, fill_cross_attention_cache=True)
        return cache

    def generate(self, token_ids, padding_mask, max_length, start_id=0, sampler="greedy",
                 num_beams=4, stop_token_ids=None):
        """Decodes [B, max_length] token ids (position 0 is `start_id`) for
        sources `token_ids` with their `padding_mask` [B, S].

        The encoder runs, and its keys/values are projected, once per call;
        every decoding step reads them from the cross-attention caches."""
        batch = ops.shape(token_ids)[0]
        cache = self._build_cache(token_ids, padding_mask, max_length, start_id)
        prompt = ops.concatenate(
            [ops.full((batch, 1), start_id, "int32"),
             ops.zeros((batch, max_length - 1), "int32")], axis=1)
        mask = ops.arange(max_length)[None, :] < 1

        def next_token(prompt, cache, index):
            logits, cache = self._step(prompt[:, index - 1 : index], cache, index - 1)
            return logits[:, 0], None, cache

        return make_sampler(sampler, num_beams)(
            next_token, prompt, cache=cache, index=1, mask=ops.broadcast_to(mask, (batch, max_length)),
            stop_token_ids=stop_token_ids)


@keras.saving.register_keras_serializable(package="tfmask")
class Seq2SeqLSTMModel(_GenerativeModel):
    """Bidirectional LSTM encoder + `MaskedLSTMDecoder` (Luong attention).

    The encoder's final forward/backward states initialise the decoder
    (`units` = 2 x encoder units); padding of source and target is honoured
    by masks, never by assuming right padding.

    Example:
    >>> import numpy as np
    >>> model = Seq2SeqLSTMModel(vocabulary_size=30, embedding_dim=8, units=8)
    >>> model({"token_ids": np.array([[5, 6, 0]]),
    ...        "padding_mask": np.array([[1, 1, 0]], bool),
    ...        "decoder_token_ids": np.array([[0, 7]]),
    ...        "decoder_padding_mask": np.array([[1, 1]], bool)}).shape
    TensorShape([1, 2, 30])
    """

    def __init__(self, vocabulary_size, embedding_dim, units, dropout=0.1, max_length=512,
                 **kwargs):
        if units % 2:
            raise ValueError(f"units={units} must be even (two directions of units/2).")
        dtype = kwargs.pop("dtype", None)
        embedding = MaskedEmbedding(vocabulary_size, embedding_dim, max_length, pad_id=None,
                                    position="sinusoidal", dropout=dropout, dtype=dtype,
                                    name="embedding")
        encoder = keras.layers.Bidirectional(
            keras.layers.LSTM(units // 2, return_sequences=True, return_state=True,
                              dtype=dtype),
            dtype=dtype, name="encoder")
        decoder = MaskedLSTMDecoder(units, dropout=dropout, dtype=dtype, name="decoder")
        projection = keras.layers.Dense(vocabulary_size, dtype=dtype, name="lm_head")
        inputs = symbolic_inputs(SEQ2SEQ_INPUTS)
        source_mask = inputs[F.PADDING_MASK]
        source = embedding(inputs[F.TOKEN_IDS])
        encoded, forward_h, forward_c, backward_h, backward_c = encoder(source, mask=source_mask)
        state = [ops.concatenate([forward_h, backward_h], -1),
                 ops.concatenate([forward_c, backward_c], -1)]
        target = embedding(inputs[F.DECODER_TOKEN_IDS])
        target_mask = inputs[F.DECODER_PADDING_MASK]
        hidden = decoder(target, encoded, initial_state=state, target_padding_mask=target_mask,
                         encoder_padding_mask=source_mask)
        logits = _float32_logits(projection(hidden))
        super().__init__(inputs=inputs, outputs=logits, dtype=dtype, **kwargs)
        self.embedding, self.encoder, self.decoder = embedding, encoder, decoder
        self.projection = projection
        self._store(vocabulary_size=vocabulary_size, embedding_dim=embedding_dim, units=units,
                    dropout=dropout, max_length=max_length)

    def generate(self, token_ids, padding_mask, max_length, start_id=0, sampler="greedy",
                 num_beams=4, stop_token_ids=None):
        batch = ops.shape(token_ids)[0]
        padding_mask = ops.cast(padding_mask, "bool")
        encoded, fh, fc, bh, bc = self.encoder(self.embedding(token_ids), mask=padding_mask)
        cache = {
            "h": ops.concatenate([fh, bh], -1), "c": ops.concatenate([fc, bc], -1),
            "encoder": encoded, "memory": self.decoder.prepare_memory(encoded),
            "encoder_mask": padding_mask,
        }
        prompt = ops.concatenate(
            [ops.full((batch, 1), start_id, "int32"),
             ops.zeros((batch, max_length - 1), "int32")], axis=1)

        def next_token(prompt, cache, index):
            token = prompt[:, index - 1 : index]
            positions = ops.reshape(index - 1, (1, 1))
            x = self.embedding(token, position_ids=positions)[:, 0]
            out, (h, c) = self.decoder.step(x, [cache["h"], cache["c"]], cache["encoder"],
                                            cache["encoder_mask"], memory=cache["memory"])
            logits = ops.cast(self.projection(out), "float32")
            return logits, None, {**cache, "h": h, "c": c}

        mask = ops.broadcast_to(ops.arange(max_length)[None, :] < 1, (batch, max_length))
        return make_sampler(sampler, num_beams)(
            next_token, prompt, cache=cache, index=1, mask=mask, stop_token_ids=stop_token_ids)
