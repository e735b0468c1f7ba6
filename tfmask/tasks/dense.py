"""The dense families: tabular rows, time series and images, no tokenizer.

- `dense_classifier`: class logits from `data.inputs_key` (e.g. `features`
  of breast_cancer, `image` of digits). `masking.strategy: dense` is input
  noise in training only (`FeatureMasking`: element, feature, timestep,
  span or patch at `masking.rate`), so the model learns to do without
  values that may be missing at test time.
- `masked_autoencoder`: reconstructs every value from a masked input and is
  graded on the hidden real values only (`FeatureMasking`'s `loss_weights`),
  in standardised units (a loss of 1 = predicting the training mean);
  evaluation hides a fixed set. A `dense_classifier` with
  `model.pretrained: <its run folder>` starts from its encoder.

Both apply the data's own missingness (`data.mask_key`, e.g. co2_weekly's
`observed`) in training and evaluation, and fill hidden values as
`masking.fill` says: the training split's mean (0 after the model's
standardisation), zero, or a learned token (`MaskToken`);
`masking.indicator` also tells the model which values are hidden.
"""

import os

import keras
import numpy as np
import tensorflow as tf

from tfmask.data import features as F
from tfmask.data.masking import FeatureMasking
from tfmask.data.pipeline import mask_dataset
from tfmask.errors import ConfigError, RunError
from tfmask.guards import guarded
from tfmask.losses import weighted_squared_error_sum
from tfmask.models import DenseClassifierModel, MaskedAutoencoderModel
from tfmask.run_folder import RunFolder
from tfmask.tasks.base import AUTOTUNE, Task, load_documents
from tfmask.tasks.memory import StepMemory, activation_bytes

# Settings of the text families a dense family never reads (key: default).
TEXT_SETTINGS = {"data.text_key": "text", "data.vocabulary": "train",
                 "data.vocabulary_size": 8192, "data.sequence_length": 128,
                 "data.lowercase": None, "model.pooling": "cls", "model.position": "learned",
                 "model.normalize_first": None, "model.embedding_dim": 256,
                 "model.lstm_units": 512}
STATISTICS_EXAMPLES = 100_000  # training examples read for the standardisation
FINITE_CHECK_BATCH = 4096  # examples per step of the NaN/Inf check


def _setting(config, key):
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


def _text_of(documents, row):
    """' (text: ...)' of the `row`-th (1-based) document, if it has a text
    (file sources do): where to find it in the file."""
    if F.TEXT not in documents.element_spec:
        return ""
    document = next(iter(documents.skip(row - 1).take(1)))
    return f" (text: {document[F.TEXT].numpy().decode('utf-8', 'replace')[:60]!r})"


class DenseTask(Task):
    """What the dense families share: inputs, statistics, masking, model inputs."""

    strategies = ("none", "dense")
    token_level = False
    dense = True

    @classmethod
    def validate(cls, config):
        for key, default in TEXT_SETTINGS.items():
            if _setting(config, key) != default:
                raise ConfigError(f"model.family={cls.family} reads dense arrays, not text: "
                                  f"{key} does nothing here; remove it.")
        masking = config.masking
        if masking.strategy != "dense":
            unused = [f"masking.{k}" for k, default in (("dense_mode", "element"),
                                                        ("span_length", 3.0))
                      if getattr(masking, k) != default]
            if not config.data.mask_key:  # nothing is ever hidden: no fill to choose
                unused += [f"masking.{k}" for k, default in (("fill", "mean"),
                                                             ("indicator", False))
                           if getattr(masking, k) != default]
            if unused:
                raise ConfigError(f"{', '.join(unused)} set but masking.strategy="
                                  f"{masking.strategy} hides nothing; set masking.strategy: "
                                  "dense or remove them.")

    @classmethod
    def check_sequence_length(cls, config):
        """Dense families read arrays: data.sequence_length is not theirs."""

    @classmethod
    def step_memory(cls, config):
        """The input's shape is known only once the data is read, so this
        counts what the sizes alone give: `num_layers` blocks of
        `hidden_dim` values per example, their weights and Adam state."""
        model, data = config.model, config.data
        layers, hidden = model.num_layers, model.hidden_dim
        return StepMemory(
            parameters=layers * (hidden * hidden + 2 * hidden * model.intermediate_dim),
            activations=activation_bytes(config) * data.batch_size * layers * (
                2 * hidden + model.intermediate_dim),
            attention=0, blocks=layers,
            keys={"parameters": ("model.num_layers", "model.hidden_dim",
                                 "model.intermediate_dim"),
                  "activations": ("data.batch_size", "model.num_layers", "model.hidden_dim")})

    @classmethod
    def resolve(cls, config, check_data=True):
        """The default strategy only: no tokenizer, so data.lowercase stays unset."""
        return cls.with_default_strategy(config)

    def __init__(self, config, tokenizer=None, vocabulary_path=None):
        self.config = config
        self.tokenizer, self.vocabulary_path = None, None
        self.check_documents(config.data.train_split)
        self.input_shape, self.mean, self.variance = self._statistics()
        masking = config.masking
        self.token = masking.fill == "token"
        self.noise = None
        if masking.strategy == "dense":
            self.noise = self._feature_masking(masking.rate, masking.dense_mode)
        # The data's own missing values, also where nothing random is hidden.
        self.data_mask = (self._feature_masking(0.0, "element")
                          if config.data.mask_key else None)

    def required_features(self):
        data = self.config.data
        features = {"data.inputs_key": data.inputs_key}
        if data.mask_key:
            features["data.mask_key"] = data.mask_key
        return features

    def check_documents(self, split):
        """The base checks, then every value of data.inputs_key is finite
        (one pass over the split): a NaN or Inf in the data would otherwise
        show as a diverging loss at step 1 (the statistics and every batch
        holding it become NaN)."""
        super().check_documents(split)
        data = self.config.data
        key = data.inputs_key

        def finite(document):
            return tf.reduce_all(tf.math.is_finite(tf.cast(document[key], tf.float32)))

        documents = load_documents(self.config, split)
        rows = documents.map(finite, num_parallel_calls=AUTOTUNE)
        for start, flags in enumerate(rows.batch(FINITE_CHECK_BATCH).as_numpy_iterator()):
            if not flags.all():
                row = start * FINITE_CHECK_BATCH + int(np.argmin(flags)) + 1
                raise RunError(
                    f"data.inputs_key={key!r} holds NaN or Inf in example {row}"
                    f"{_text_of(documents, row)} of data.name={data.name} split {split!r}; "
                    "dense families need finite values: fix or drop that example (write any "
                    "finite value where data.mask_key marks a value missing).")

    @property
    def tokens_per_batch(self):
        return self.config.data.batch_size  # examples per batch

    def _statistics(self):
        """(example shape, per-feature mean, variance) of the training split,
        over the values the data really has (data.mask_key)."""
        data = self.config.data
        values, observed = [], []
        for example in load_documents(self.config, data.train_split).take(
                STATISTICS_EXAMPLES).as_numpy_iterator():
            value = np.asarray(example[data.inputs_key], np.float64)
            values.append(value)
            observed.append(self._observed(example, value.shape))
        values, observed = np.stack(values), np.stack(observed)
        features = values.shape[-1]
        flat, keep = values.reshape(-1, features), observed.reshape(-1, features)
        count = np.maximum(keep.sum(0), 1)
        mean = (flat * keep).sum(0) / count
        variance = (np.square(flat - mean) * keep).sum(0) / count
        return values.shape[1:], mean.tolist(), variance.tolist()

    def _observed(self, example, shape):
        key = self.config.data.mask_key
        if not key:
            return np.ones(shape, bool)
        mask = np.asarray(example[key]).astype(bool)
        return np.broadcast_to(mask.reshape(mask.shape + (1,) * (len(shape) - mask.ndim)), shape)

    def _feature_masking(self, rate, mode):
        masking, data = self.config.masking, self.config.data
        return FeatureMasking(
            rate, mode=mode, patch_size=masking.patch_size, span_length=masking.span_length,
            key=F.INPUTS, fill=masking.fill,
            fill_values=self.mean if masking.fill == "mean" else None,
            mask_key="observed" if data.mask_key else None, indicator=masking.indicator)

    def _examples(self, document):
        """One document -> {inputs, observed (data mask), labels?}."""
        data = self.config.data
        example = {F.INPUTS: tf.cast(document[data.inputs_key], tf.float32)}
        if data.mask_key:
            mask = tf.cast(document[data.mask_key], tf.bool)
            while mask.shape.rank < example[F.INPUTS].shape.rank:
                mask = mask[..., None]  # a per-step mask covers the step's features
            example["observed"] = mask
        return example

    def masked_batches(self, documents, batch_size, training, strategy):
        rows = documents.map(self._examples, num_parallel_calls=AUTOTUNE)
        batches = rows.batch(batch_size, drop_remainder=training)
        if strategy is not None:
            batches = mask_dataset(batches, strategy, seed=self.masking_seed,
                                   dynamic=training)
        return batches.prefetch(AUTOTUNE)

    def model_inputs(self, batch):
        inputs = {F.INPUTS: batch[F.INPUTS]}
        if self.token:
            inputs[F.FEATURE_MASK] = batch.get(F.FEATURE_MASK,
                                               tf.ones_like(batch[F.INPUTS], tf.bool))
        if self.config.masking.indicator:
            inputs[F.MISSING_INDICATOR] = batch.get(F.MISSING_INDICATOR,
                                                  tf.zeros_like(batch[F.INPUTS]))
        return inputs

    def encoder_kwargs(self):
        model, masking = self.config.model, self.config.masking
        return dict(input_shape=self.input_shape, encoder=model.dense_encoder,
                    hidden_dim=model.hidden_dim, num_layers=model.num_layers,
                    num_heads=model.num_heads, intermediate_dim=model.intermediate_dim,
                    dropout=model.dropout, patch_size=masking.patch_size, mean=self.mean,
                    variance=self.variance, token=self.token, indicator=masking.indicator)

    def text_serving_refusal(self):
        return (f"model.family={self.family} reads arrays ({self.config.data.inputs_key}), "
                "not text: call export/model.keras or the serve_token_ids signature with "
                "the model's inputs.")

    def serve(self, model, texts, top_k=5, sampler="greedy", num_beams=4):
        raise ValueError(self.text_serving_refusal())

    def predict(self, model, text, top_k=5, sampler="greedy", num_beams=4):
        raise ValueError(self.text_serving_refusal())


class DenseClassifierTask(DenseTask):
    family = "dense_classifier"
    refusal_hint = "a dense classifier reads arrays, hidden with dense (FeatureMasking)"
    supports_pretrained = True  # a masked_autoencoder run's encoder

    @classmethod
    def validate(cls, config):
        super().validate(config)
        if config.model.num_classes < 2:
            raise ConfigError(f"model.num_classes={config.model.num_classes} must be >= 2.")

    def batches(self, documents, batch_size, training):
        label_key = self.config.data.label_key
        strategy = (self.noise if training else None) or self.data_mask
        documents = documents.map(lambda d: {**d, F.LABELS: self._label(d[label_key])})
        return self.masked_batches(documents, batch_size, training, strategy)

    def _examples(self, document):
        return {**super()._examples(document), F.LABELS: document[F.LABELS]}

    def _label(self, label):
        classes = self.config.model.num_classes
        label = tf.cast(label, tf.int32)
        check = tf.debugging.Assert((label >= 0) & (label < classes), [
            f"data.label_key={self.config.data.label_key!r} holds a label outside [0, "
            f"{classes}) (model.num_classes={classes}); set model.num_classes. Label:", label])
        return guarded(label, check)

    def required_features(self):
        return {**super().required_features(), "data.label_key": self.config.data.label_key}

    def split_batch(self, batch):
        return self.model_inputs(batch), batch[F.LABELS], None

    def build_model(self, dtype):
        config = self.config
        model = DenseClassifierModel(num_classes=config.model.num_classes, dtype=dtype,
                                     **self.encoder_kwargs())
        if config.model.pretrained:
            folder = RunFolder(config.model.pretrained)
            path = folder.export.model
            if not os.path.isfile(path):
                raise ConfigError(f"model.pretrained={config.model.pretrained!r}: a dense "
                                  "classifier starts from a masked_autoencoder run folder.")
            pretrained = keras.models.load_model(folder.current_export().model)
            theirs, ours = pretrained.encoder.get_config(), model.encoder.get_config()
            # The statistics are the new run's data; the architecture must match.
            own = ("name", "dtype", "trainable", "mean", "variance")
            different = [k for k in ours if k not in own and theirs.get(k) != ours[k]]
            if different:
                raise ConfigError(f"model.pretrained={config.model.pretrained}'s encoder "
                                  f"differs in {', '.join(different)}; use the same settings.")
            model.encoder.set_weights(pretrained.encoder.get_weights())
        return model


class SquaredErrorPerValue(keras.losses.Loss):
    """Squared error of each value, weighted value by value (keras'
    MeanSquaredError averages a row's features before weighting them)."""

    def call(self, y_true, y_pred):
        return keras.ops.square(keras.ops.cast(y_true, y_pred.dtype) - y_pred)


class MaskedAutoencoderTask(DenseTask):
    family = "masked_autoencoder"
    strategies = ("dense",)
    default_strategy = "dense"
    refusal_hint = ("a masked autoencoder reads arrays and learns by reconstructing what "
                    "dense hides")

    def metrics(self, prefix):
        return {"loss": keras.metrics.Mean(name=f"{prefix}_loss")}

    def batches(self, documents, batch_size, training):
        # Evaluation hides a fixed set (dynamic=False), so losses compare.
        return self.masked_batches(documents, batch_size, training, self.noise)

    def split_batch(self, batch):
        # Graded in standardised units: every feature counts alike, and a loss
        # of 1 is what predicting the training mean scores.
        scale = tf.sqrt(tf.constant(self.variance, tf.float32) + 1e-6)
        targets = (batch[F.TARGETS] - tf.constant(self.mean, tf.float32)) / scale
        return self.model_inputs(batch), targets, batch[F.LOSS_WEIGHTS]

    def loss_terms(self, labels, logits, weights):
        return weighted_squared_error_sum(labels, logits, weights)

    def keras_loss(self):
        """Squared error of the hidden values in standardised units, the mean
        over the hidden values (`loss_terms`)."""
        return SquaredErrorPerValue(reduction="mean_with_sample_weight")

    def compile(self, model, optimizer, **kwargs):
        model.compile(optimizer=optimizer, loss=self.keras_loss(), **kwargs)
        return model

    def build_model(self, dtype):
        return MaskedAutoencoderModel(dtype=dtype, **self.encoder_kwargs())
