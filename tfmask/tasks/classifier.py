"""The classifier family: an encoder fine-tuned to label whole texts.

Inputs are masked only when the config asks:
- `term`: nuisance terms and patterns (names, ages, a reviewer tag) are
  hidden in training, evaluation *and* prediction, so the model never sees
  them anywhere;
- `random`, `whole_word`, `span`: input noise (masked-token dropout) in
  training only; evaluation and prediction see the clean text.
"""

import tensorflow as tf

from tfmask.data import features as F
from tfmask.data import masking as M
from tfmask.data.pipeline import text_pipeline, tokenize_batch
from tfmask.errors import ConfigError
from tfmask.guards import guarded
from tfmask.models import ClassifierModel
from tfmask.models.pretrained import from_pretrained
from tfmask.tasks.base import Task
from tfmask.tasks.shared import (
    check_pretrained_architecture,
    encoder_kwargs,
    mlm_strategy,
    pretrained_directory,
    with_encoder_training,
)

NOISE = ("random", "whole_word", "span")


class ClassifierTask(Task):
    family = "classifier"
    strategies = ("none", "term") + NOISE
    refusal_hint = "a classifier is graded on its label"
    refusal_reasons = {"entity": "entity masking needs word-level tags, which classification "
                                 "corpora lack (mask names with term and masking.terms / "
                                 "patterns)"}
    token_level = False
    supports_pretrained = True
    supports_words_key = True
    supports_padding_free = True
    supports_freezing = True
    untied_embedding = True

    @classmethod
    def validate(cls, config):
        check_pretrained_architecture(config)
        if config.model.num_classes < 2:
            raise ConfigError(f"model.num_classes={config.model.num_classes} must be >= 2 "
                              "for a classifier.")
        masking = config.masking
        if (masking.strategy == "term" and config.data.segmenter
                and config.runtime.export and config.runtime.export_saved_model):
            raise ConfigError(
                f"masking.strategy=term on data.segmenter={config.data.segmenter} words cannot "
                "be served from a SavedModel (the segmenter is Python, not a graph op): set "
                "runtime.export_saved_model: false (predict still works).")

    @classmethod
    def output_values(cls, config):
        """Logits per example: one per class."""
        return config.model.num_classes

    def __init__(self, config, tokenizer=None, vocabulary_path=None):
        super().__init__(config, tokenizer, vocabulary_path)
        masking, tokenizer = config.masking, self.tokenizer
        self.always, self.training_only = [], []
        if masking.strategy == "term":
            self.always.append(M.TermMasking(
                terms=masking.terms, patterns=masking.patterns,
                replacement=masking.term_replacement, mask_token_id=tokenizer.mask_id,
                vocabulary_size=tokenizer.vocabulary_size,
                special_token_ids=tokenizer.special_token_ids(), pad_id=tokenizer.pad_id,
                lowercase=tokenizer.lowercase))
        elif masking.strategy in NOISE:
            self.training_only.append(mlm_strategy(masking, tokenizer))

    def batches(self, documents, batch_size, training):
        data = self.config.data
        key = self.text_feature(self.config)
        documents = documents.map(lambda x: {key: x[key], F.LABELS: self._label(x)})
        strategies = self.always + (self.training_only if training else [])
        # Evaluation keeps the last partial batch (drop_remainder=False).
        return text_pipeline(documents, self.tokenizer, data.sequence_length, batch_size,
                             strategies=strategies, seed=self.masking_seed,
                             dynamic=training, text_key=data.text_key,
                             words_key=data.words_key, drop_remainder=training)

    def _label(self, document):
        """The document's class, checked against model.num_classes."""
        key, classes = self.config.data.label_key, self.config.model.num_classes
        label = tf.cast(document[key], tf.int32)
        check = tf.debugging.Assert(
            (label >= 0) & (label < classes),
            [f"data.label_key={key!r} holds a label outside [0, {classes}) "
             f"(model.num_classes={classes}); set model.num_classes or fix the labels. Label:",
             label])
        return guarded(label, check)

    def required_features(self):
        return {**super().required_features(), "data.label_key": self.config.data.label_key}

    def split_batch(self, batch):
        return ({F.TOKEN_IDS: batch[F.TOKEN_IDS], F.PADDING_MASK: batch[F.PADDING_MASK]},
                batch[F.LABELS], None)

    def build_model(self, dtype):
        config = self.config
        common = dict(num_classes=config.model.num_classes, pooling=config.model.pooling,
                      padding_free=self.padding_free(config), dtype=dtype)
        if config.model.pretrained:
            model, _ = from_pretrained(ClassifierModel,
                                       pretrained_directory(config.model.pretrained),
                                       dropout=config.model.dropout, **common)
            return with_encoder_training(model, config)
        model = ClassifierModel(**encoder_kwargs(config, self.tokenizer), **common,
                                normalize_first=self.normalize_first(config))
        return with_encoder_training(model, config)

    # ------------------------------------------------------------ prediction
    def model_inputs(self, texts):
        """Raw texts [B] -> model inputs, tokenized and term-masked as in
        evaluation (no training noise), so what is predicted is what was
        trained. Graph ops only: the exported serving signature runs it."""
        data = self.config.data
        refusal = self.text_serving_refusal()
        if refusal:
            raise ValueError(refusal)
        texts = tf.convert_to_tensor(texts, tf.string)
        if not self.always:  # token ids only (no words, so no segmenter in the graph)
            batch = self.tokenizer.encode(texts, data.sequence_length)
        else:
            batch = tokenize_batch({data.text_key: texts}, self.tokenizer,
                                   data.sequence_length, text_key=data.text_key)
        for index, strategy in enumerate(self.always):
            batch = strategy(batch, seed=[self.config.train.seed, index])
        return {F.TOKEN_IDS: batch[F.TOKEN_IDS], F.PADDING_MASK: batch[F.PADDING_MASK]}

    def text_serving_refusal(self):
        words_key = self.config.data.words_key
        if words_key:
            return ("this run was trained on pre-segmented words (data.words_key="
                    f"{words_key!r}), not raw text; predict and serving take raw text.")
        return None

    def serving_resources(self):
        return super().serving_resources() + [r for s in self.always for r in s.resources()]

    def serve(self, model, texts, top_k=5, sampler="greedy", num_beams=4):
        """Texts [B] -> {"probabilities": [B, num_classes]}."""
        logits = model(self.model_inputs(texts), training=False)
        return {"probabilities": tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)}

    def classify(self, model, text):
        """Class probabilities of one text."""
        return self.serve(model, tf.constant([text]))["probabilities"].numpy()[0].tolist()

    def predict(self, model, text, top_k=5, sampler="greedy", num_beams=4):
        return [" ".join(f"class {i}: {p:.3f}" for i, p in enumerate(self.classify(model, text)))]
