"""LSTM decoder with Luong attention over encoder outputs, mask-exact."""

import keras
from keras import ops

from tfmask.layers.dropout import Dropout
from tfmask.layers.keras_mask import keras_mask_of
from tfmask import masks as mask_ops

SCORES = ("general", "dot")


@keras.saving.register_keras_serializable(package="tfmask")
class MaskedLSTMDecoder(keras.layers.Layer):
    """LSTM decoder with Luong (multiplicative) global attention.

    For each target step t (Luong et al. 2015, "global attention" without
    input feeding):

        h_t        = LSTM(y_t, state_{t-1})
        score(t,s) = h_t . W_a e_s       ("general") or h_t . e_s ("dot")
        a_t        = softmax over the *unpadded* source positions s
        c_t        = sum_s a_t,s e_s
        out_t      = tanh(W_c [c_t; h_t])

    Luong rather than Bahdanau because its attention reads h_t, not
    h_{t-1}: the LSTM runs over the whole target first, and attention is
    then one batched matmul, fast for teacher forcing; `step` does the same
    one token at a time, with the same weights, so greedy decoding matches
    the teacher-forced pass exactly.

    Masks: target padding comes from the Keras mask of `inputs` (or
    `target_padding_mask`); the LSTM state is carried unchanged through
    padded steps wherever they are (left, right or in the middle) and the
    output there is zero. This uses Keras' generic masked RNN loop
    (`use_cudnn=False`), never the cuDNN kernel's right-padding-only path
    (tensorflow #33148). Source padding (`encoder_padding_mask` or the
    encoder output's Keras mask) removes padded source positions from the
    attention; a fully padded source gives a zero context, not NaN.

    Args:
        units: int. LSTM size and output size.
        score: "general" (default, bilinear W_a) or "dot" (needs encoder
            width == units).
        dropout: float. Dropout on the attentional output. Default 0.
        kernel_initializer: initializer of the dense kernels.
        **kwargs: base layer arguments.

    Call arguments:
        inputs: [B, T, E] embedded target tokens (teacher forcing).
        encoder_outputs: [B, S, D_e].
        initial_state: optional `[h, c]`, each [B, units] (e.g. the
            encoder's final state).
        target_padding_mask: [B, T]; defaults to the Keras mask of inputs.
        encoder_padding_mask: [B, S]; defaults to the Keras mask of
            encoder_outputs.
        return_state: bool. Also return the final `[h, c]`.
        training: bool.

    Returns: [B, T, units] attentional outputs (and `[h, c]` if asked).

    Example:
    >>> import numpy as np
    >>> decoder = MaskedLSTMDecoder(units=8)
    >>> y = np.random.rand(2, 4, 6).astype("float32")
    >>> enc = np.random.rand(2, 5, 8).astype("float32")
    >>> decoder(y, enc, encoder_padding_mask=np.array(
    ...     [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)).shape
    TensorShape([2, 4, 8])
    """

    def __init__(
        self,
        units,
        score="general",
        dropout=0.0,
        kernel_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if score not in SCORES:
            raise ValueError(
                f"MaskedLSTMDecoder: score={score!r} is not one of {SCORES}."
            )
        self.units = units
        self.score = score
        self.dropout = dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.supports_masking = True

    def _dense(self, units, name, use_bias=True, activation=None):
        return keras.layers.Dense(
            units,
            use_bias=use_bias,
            activation=activation,
            kernel_initializer=keras.initializers.get(
                keras.initializers.serialize(self.kernel_initializer)
            ),
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, inputs_shape, encoder_outputs_shape=None):
        if encoder_outputs_shape is None:
            raise ValueError("MaskedLSTMDecoder needs encoder_outputs.")
        encoder_dim = encoder_outputs_shape[-1]
        if self.score == "dot" and encoder_dim != self.units:
            raise ValueError(
                f"score='dot' needs encoder width ({encoder_dim}) == units "
                f"({self.units}); use score='general' instead."
            )
        self.lstm = keras.layers.LSTM(
            self.units,
            return_sequences=True,
            return_state=True,
            use_cudnn=False,
            dtype=self.dtype_policy,
            name="lstm",
        )
        self.lstm.build(inputs_shape)
        self._score_dense = None
        if self.score == "general":
            # W_a applied to the encoder side once per sequence, not per step.
            self._score_dense = self._dense(self.units, "attention_score", use_bias=False)
            self._score_dense.build((None, None, encoder_dim))
        self._combine = self._dense(self.units, "attention_combine", activation="tanh")
        self._combine.build((None, None, self.units + encoder_dim))
        self._dropout_layer = Dropout(self.dropout, dtype=self.dtype_policy)
        self.built = True

    def prepare_memory(self, encoder_outputs):
        """Projected encoder keys [B, S, units]; compute once per sequence."""
        if self._score_dense is None:
            return encoder_outputs
        return self._score_dense(encoder_outputs)

    def _attend(self, hidden, keys, encoder_outputs, encoder_padding_mask):
        """hidden [B, T, units] -> attentional output [B, T, units]."""
        scores = ops.einsum("btu,bsu->bts", hidden, keys)  # [B, T, S]
        mask = None
        if encoder_padding_mask is not None:
            mask = mask_ops.cross_attention_mask(None, encoder_padding_mask)
        weights = mask_ops.masked_softmax(scores, mask)
        context = ops.einsum("bts,bsd->btd", weights, encoder_outputs)
        return self._combine(ops.concatenate([context, hidden], axis=-1))

    def call(
        self,
        inputs,
        encoder_outputs,
        initial_state=None,
        target_padding_mask=None,
        encoder_padding_mask=None,
        return_state=False,
        training=None,
    ):
        if target_padding_mask is None:
            target_padding_mask = keras_mask_of(inputs)
        if encoder_padding_mask is None:
            encoder_padding_mask = keras_mask_of(encoder_outputs)
        hidden, state_h, state_c = self.lstm(
            inputs, mask=target_padding_mask, initial_state=initial_state
        )
        keys = self.prepare_memory(encoder_outputs)
        outputs = self._attend(hidden, keys, encoder_outputs, encoder_padding_mask)
        outputs = self._dropout_layer(outputs, training=training)
        if target_padding_mask is not None:
            keep = ops.cast(target_padding_mask, outputs.dtype)[:, :, None]
            outputs = outputs * keep  # exact zeros at padded targets
        if return_state:
            return outputs, [state_h, state_c]
        return outputs

    def get_initial_state(self, batch_size):
        """Zero `[h, c]` states for `step`."""
        zeros = ops.zeros((batch_size, self.units), dtype=self.compute_dtype)
        return [zeros, zeros]

    def step(self, inputs, states, encoder_outputs, encoder_padding_mask=None, memory=None):
        """One greedy-decoding step.

        Args:
            inputs: [B, E] embedded previous token.
            states: `[h, c]` from the previous step (or the encoder).
            encoder_outputs: [B, S, D_e].
            encoder_padding_mask: [B, S].
            memory: optional `prepare_memory(encoder_outputs)`, to avoid
                recomputing it every step.

        Returns: `(output [B, units], [h, c])`.
        """
        hidden, new_states = self.lstm.cell(inputs, states)
        keys = self.prepare_memory(encoder_outputs) if memory is None else memory
        output = self._attend(
            hidden[:, None, :], keys, encoder_outputs, encoder_padding_mask
        )
        return output[:, 0, :], list(new_states)

    def compute_output_shape(self, inputs_shape, encoder_outputs_shape=None, **kwargs):
        return tuple(inputs_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "score": self.score,
                "dropout": self.dropout,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config
