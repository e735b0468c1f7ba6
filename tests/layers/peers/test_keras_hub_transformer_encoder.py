# Adapted from keras-hub v0.32, keras_hub/src/layers/modeling/transformer_encoder_test.py
# (text identical at keras-hub master 71453d08f, whose TransformerEncoder
# source equals the installed keras-hub 0.32.0).
# Copyright The KerasHub Authors. Licensed under the Apache License, Version
# 2.0 (https://www.apache.org/licenses/LICENSE-2.0).
#
# Changes:
# - tfmask's TransformerEncoderBlock replaces keras_hub's TransformerEncoder
#   (keyword arguments are the same, so the test bodies are unchanged).
# - keras-hub's test base class, keras_hub.src.tests.test_case.TestCase, is
#   not importable from the installed keras-hub (it imports `grain`, which is
#   not installed). `KerasHubTestCase` (tests/layer_harness.py) gives its
#   `self.run_layer_test(...)` API and defaults on tfmask's one layer harness,
#   which runs keras-hub's run_layer_test checks (serialization, build,
#   symbolic and eager calls, a compiled training step, precision) and
#   tfmask's own (config keys, weights through from_config, implicit ==
#   explicit masks, float32 closeness in low precision).
# - Expected seed-variable counts: keras-hub's block has three dropout layers
#   (attention probabilities and one per residual), so 3 seed variables;
#   tfmask's has the attention dropout and one residual dropout layer shared
#   by both residuals, so 2. The expected count is tfmask's, noted inline.
# - test_training_propagation reads the two layer norms under tfmask's names
#   (`_self_attention_norm`, `_ffn_norm`; keras-hub: `_self_attention_layer_norm`,
#   `_feedforward_layer_norm`); the computation checked is keras-hub's.
#
# Skipped tests: none.
import keras
from absl.testing import parameterized
from keras import ops
from keras import random
from keras.src.backend import get_keras_mask
from keras.src.backend import set_keras_mask

from tests.layer_harness import KerasHubTestCase
from tfmask.layers import TransformerEncoderBlock as TransformerEncoder


class TransformerEncoderTest(KerasHubTestCase):
    @parameterized.named_parameters(
        ("without_norm_first", False),
        ("with_norm_first", True),
    )
    def test_layer_behaviors(self, normalize_first):
        self.run_layer_test(
            cls=TransformerEncoder,
            init_kwargs={
                "intermediate_dim": 4,
                "num_heads": 2,
                "normalize_first": normalize_first,
                "activation": "relu",
                "layer_norm_epsilon": 1e-05,
                "kernel_initializer": "HeNormal",
                "bias_initializer": "Zeros",
                "dropout": 0.1,
            },
            input_data=random.uniform(shape=(2, 4, 6)),
            expected_output_shape=(2, 4, 6),
            expected_num_trainable_weights=16,
            # dropout rng seeds (keras-hub: 3; tfmask shares one residual
            # dropout layer between the two residuals)
            expected_num_non_trainable_variables=2,
        )

    @parameterized.named_parameters(
        ("without_norm_first", False),
        ("with_norm_first", True),
    )
    def test_valid_call(self, normalize_first):
        encoder = TransformerEncoder(
            intermediate_dim=4,
            num_heads=2,
            normalize_first=normalize_first,
        )
        model = keras.Sequential(
            [
                keras.Input(shape=(4, 6)),
                encoder,
            ]
        )
        input = random.uniform(shape=[2, 4, 6])
        model(input)

    def test_valid_call_with_mask(self):
        encoder = TransformerEncoder(
            intermediate_dim=4,
            num_heads=2,
        )
        encoder.build([2, 4, 6])
        input = random.uniform(shape=[2, 4, 6])
        mask = input[:, :, 0] < 0.5
        encoder(input, mask)

    def test_value_error_when_invalid_kernel_inititalizer(self):
        with self.assertRaises(ValueError):
            TransformerEncoder(
                intermediate_dim=4,
                num_heads=2,
                dropout=0.5,
                kernel_initializer="Invalid",
            )

    def test_training_propagation(self):
        encoder = TransformerEncoder(
            intermediate_dim=4,
            num_heads=2,
            dropout=0.99999,  # Zeros out the outputs after the dropout layer
        )
        inputs = random.uniform(shape=[1, 4, 6])
        outputs = encoder(inputs, training=True)

        # Custom computation with dropout rates set to about 1.0
        x = inputs
        x = encoder._self_attention_norm(x)  # keras-hub: _self_attention_layer_norm
        x = encoder._ffn_norm(x)  # keras-hub: _feedforward_layer_norm

        self.assertAllClose(outputs, x, atol=1e-5)

    def test_mask_propagation(self):
        encoder = TransformerEncoder(
            intermediate_dim=4,
            num_heads=2,
        )
        inputs = random.uniform(shape=[1, 4, 6])
        mask = ops.array([[True, True, False, False]])
        set_keras_mask(inputs, mask)
        outputs = encoder(inputs)
        self.assertAllEqual(get_keras_mask(outputs), mask)

    def test_attention_scores(self):
        encoder = TransformerEncoder(intermediate_dim=4, num_heads=2)
        inputs = random.uniform(shape=[1, 4, 6])
        outputs, attention_scores = encoder(
            inputs, return_attention_scores=True
        )
        self.assertAllEqual(outputs.shape, inputs.shape)

        # attention scores shape
        # (batch_size, num_of_attn_heads, seq_length, seq_length)
        self.assertAllEqual(attention_scores.shape, [1, 2, 4, 4])
