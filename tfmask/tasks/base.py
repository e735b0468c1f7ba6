"""The contract every model family's task keeps, and what the families share.

A `Task` owns one family from config to batch to model:

    strategies        the masking strategies it supports (the rest are refused)
    validate          family-specific config checks (one-line `ConfigError`)
    batches           its input pipeline: documents -> tokens -> masks -> batches
    train, evaluation infinite shuffled training batches; cached evaluation batches
    build_model       dtype policy -> keras.Model (called under the strategy scope)
    split_batch       batch -> (model inputs, labels, loss weights or None)
    loss_terms        the weighted loss (sum, weight), one function for train and eval
    metrics           its metrics; extra_evaluation (BLEU, ...) after evaluation
    serve             raw texts (a string tensor) -> output tensors, traceable: the
                      exported SavedModel's string signature and `predict` both run it
    predict           raw text -> lines of output, for `python -m tfmask.predict`

The trainer, `predict` and `inspect` only talk to this interface; which
family runs is looked up in `tfmask.tasks.TASKS`.
"""

import abc
import contextlib
import dataclasses
import functools

import keras
import tensorflow as tf

from tfmask import datasets
from tfmask.data import features as F
from tfmask.data.packing import pack
from tfmask.errors import ConfigError, RunError
from tfmask.losses import weighted_crossentropy_sum
from tfmask.metrics import MaskedAccuracy, MaskedPerplexity
from tfmask.models.pretrained import (
    pretrained_lowercase,
    pretrained_vocabulary,
    pretrained_vocabulary_size,
)
from tfmask.tasks.memory import (
    StepMemory,
    activation_bytes,
    block_values,
    transformer_parameters,
)
from tfmask.tasks.shared import pretrained_directory
from tfmask.text import WordPieceTokenizer, train_wordpiece_vocabulary
from tfmask.text.segmentation import check_segmenter_name, needs_segmenter

AUTOTUNE = tf.data.AUTOTUNE
VOCABULARY_TRAINING_DOCUMENTS = 200_000


def check_sparse_embedding_update(task, config):
    """One line when optimizer.sparse_embedding_update cannot take effect
    (what it needs: `tfmask.training.optimizer`'s row-sparse update)."""
    if not config.optimizer.sparse_embedding_update:
        return
    model = config.model
    if not task.untied_embedding:
        problem = (f"model.family={task.family} ties or has no word embedding lookup, so its "
                   "gradient is dense")
    elif model.lora_rank or model.freeze_encoder:
        problem = "model.lora_rank / model.freeze_encoder freeze the embedding"
    elif config.runtime.jit_compile:
        problem = "runtime.jit_compile cannot compile the row lookup (its size varies per batch)"
    else:
        return
    raise ConfigError(f"optimizer.sparse_embedding_update=true cannot take effect: "
                      f"{problem}; set it false.")


def dense_settings(config):
    """(key, value, default) of the settings only dense families read."""
    data, model, masking = config.data, config.model, config.masking
    return (("data.inputs_key", data.inputs_key, "features"),
            ("data.mask_key", data.mask_key, None),
            ("model.dense_encoder", model.dense_encoder, "mlp"),
            ("masking.dense_mode", masking.dense_mode, "element"),
            ("masking.patch_size", masking.patch_size, 4),
            ("masking.span_length", masking.span_length, 3.0),
            ("masking.fill", masking.fill, "mean"),
            ("masking.indicator", masking.indicator, False))


def token_classifier_settings(config):
    """(key, value, default) of the settings only token classification reads."""
    data = config.data
    return (("model.tags", config.model.tags, []),
            ("data.tag_scheme", data.tag_scheme, None),
            ("data.tag_unit", data.tag_unit, "word"),
            ("data.window_stride", data.window_stride, 0))


# What each masking strategy does: the first half of the line that refuses
# it for a family (the family's `refusal_hint` says what it does instead).
STRATEGY_PURPOSES = {
    "none": "none hides nothing",
    "random": "random hides random tokens (BERT 80/10/10) for a masked LM to predict or as "
              "a classifier's input noise",
    "whole_word": "whole_word hides whole words for a masked LM to predict or as a "
                  "classifier's input noise",
    "span": "span hides runs of words for a masked LM to predict or as a classifier's "
            "input noise",
    "entity": "entity hides whole entities, which needs word-level entity tags "
              "(data.words_key), for a masked LM to predict",
    "term": "term hides masking.terms / masking.patterns from a classifier, or makes a "
            "masked LM predict them first",
    "span_corruption": "span_corruption replaces spans by sentinels that an encoder-decoder "
                       "(T5) writes out",
    "prompt": "prompt grades a causal LM on the response after masking.response_marker only",
    "dense": "dense hides values of dense arrays (rows, series, images)",
}
# Strategies that read the tokenizer's words (a segmenter changes them).
WORD_STRATEGIES = ("whole_word", "span", "term")
WHOLE_SPLIT = 1 << 20  # shuffle buffer that holds a whole split (up to 2^20 documents)


class Task(abc.ABC):
    """One model family: its data, model, loss, metrics and predictions.

    Subclasses set the class attributes below and implement `batches`,
    `build_model`, `split_batch` and `predict`.

    Args:
        config: a resolved `tfmask.config.Config` (`tfmask.tasks.load_config`).
        tokenizer: optional `WordPieceTokenizer`; default: built from the
            config (trains a vocabulary on the training split if asked).
        vocabulary_path: the tokenizer's vocab.txt, when `tokenizer` is given.
    """

    family = None
    # Masking strategies this family supports (the rest are refused).
    strategies = ("none",)
    default_strategy = "none"
    # What this family does instead of a refused strategy, after what that
    # strategy is for (`STRATEGY_PURPOSES`); it must not name a refused one.
    refusal_hint = ""
    # Why this family refuses a strategy, where more specific than
    # `STRATEGY_PURPOSES` + `refusal_hint`: strategy -> the whole reason
    # (naming the strategy).
    refusal_reasons = {}
    # Special tokens a row frames its text with ([CLS] and [SEP]): a
    # data.sequence_length below this + 1 leaves no room for a token.
    framing_tokens = ("[CLS]", "[SEP]")
    token_level = True  # per-token labels: perplexity is reported
    _input_pipeline = 0  # whose masks a pipeline built now draws (`masks_of_pipeline`)
    supports_packing = False  # data.pack
    supports_pretrained = False  # model.pretrained
    supports_static_masking = False  # masking.dynamic: false
    generates = False  # train.generate_examples (BLEU)
    supports_words_key = False  # data.words_key (pre-segmented words)
    supports_padding_free = False  # model.padding_free (encoder families)
    supports_freezing = False  # model.freeze_encoder (encoder families)
    uses_decoder_layers = False  # model.decoder_num_layers
    causal = False  # the model attends causally (drawn by `inspect`)
    # Pre-LN (True) or post-LN (False) blocks when model.normalize_first is unset.
    default_normalize_first = False
    dense = False  # reads dense arrays (tfmask.tasks.dense), not text
    tags_tokens = False  # predicts a tag per token (tfmask.tasks.token_classifier)
    # The word embedding is read only by lookups (no tied output layer), so
    # its gradient holds just the rows a batch reads: optimizer.sparse_embedding_update.
    untied_embedding = False

    def __init__(self, config, tokenizer=None, vocabulary_path=None):
        self.config = config
        if tokenizer is None:
            # The data first: a missing feature is one line, not a KeyError
            # from vocabulary training.
            self.check_documents(config.data.train_split)  # the trainer checks the others
            tokenizer, vocabulary_path = build_tokenizer(config, self.vocabulary_keys(config))
        self.tokenizer = tokenizer
        self.vocabulary_path = vocabulary_path

    # ------------------------------------------------------------ validation
    @classmethod
    def check(cls, config):
        """Every family-level check; raises ConfigError before any work."""
        model, data, masking = config.model, config.data, config.masking
        if masking.strategy not in cls.strategies:
            raise ConfigError(
                f"model.family={cls.family} does not support masking.strategy="
                f"{masking.strategy} ({cls.refusal_reason(masking.strategy)}); supported: "
                f"{', '.join(cls.strategies)}.")
        for setting, supported, key in (
                (data.pack, cls.supports_packing, "data.pack=true"),
                (model.pretrained, cls.supports_pretrained, f"model.pretrained={model.pretrained}"),
                (not masking.dynamic, cls.supports_static_masking, "masking.dynamic=false"),
                (config.train.generate_examples, cls.generates,
                 f"train.generate_examples={config.train.generate_examples}"),
                (data.words_key, cls.supports_words_key, f"data.words_key={data.words_key}"),
                (model.padding_free, cls.supports_padding_free, "model.padding_free=true"),
                (model.freeze_encoder, cls.supports_freezing, "model.freeze_encoder=true"),
                (model.lora_rank, cls.supports_freezing, f"model.lora_rank={model.lora_rank}"),
                (model.decoder_num_layers is not None, cls.uses_decoder_layers,
                 f"model.decoder_num_layers={model.decoder_num_layers}")):
            if setting and not supported:
                raise ConfigError(f"model.family={cls.family} does not use {key}; remove it.")
        # Strategy settings only their strategy reads.
        for key, value, strategy in (("masking.terms", masking.terms, "term"),
                                     ("masking.patterns", masking.patterns, "term"),
                                     ("masking.response_marker", masking.response_marker,
                                      "prompt")):
            if value and masking.strategy != strategy:
                raise ConfigError(f"{key} is set but masking.strategy={masking.strategy} does "
                                  f"not read it (only {strategy} does); remove it.")
        if not cls.dense:
            dense_only = [key for key, value, default in dense_settings(config)
                          if value != default]
            if dense_only:
                raise ConfigError(f"model.family={cls.family} reads text: {dense_only[0]} "
                                  "applies to dense families; remove it.")
        if not cls.tags_tokens:
            tag_only = [key for key, value, default in token_classifier_settings(config)
                        if value != default]
            if tag_only:
                raise ConfigError(f"model.family={cls.family} does not tag tokens: {tag_only[0]}"
                                  " applies to model.family=token_classifier; remove it.")
        check_adapters(config)
        check_sparse_embedding_update(cls, config)
        if masking.rate == 0 and masking.strategy in ("random", "whole_word", "span", "entity"):
            raise ConfigError("masking.rate=0 masks nothing; set a rate in (0, 1] or "
                              "masking.strategy: none.")
        if masking.strategy == "term" and not (masking.terms or masking.patterns):
            raise ConfigError("masking.strategy=term needs masking.terms or masking.patterns.")
        if data.segmenter is not None:
            check_segmenter(data)
        if data.segmenter and masking.strategy not in WORD_STRATEGIES:
            raise ConfigError(
                f"data.segmenter={data.segmenter} is set but masking.strategy="
                f"{masking.strategy} does not read words (only {', '.join(WORD_STRATEGIES)} "
                "do); remove it.")
        if not (data.segmenter or data.words_key):
            for term in masking.terms:
                if isinstance(term, str) and needs_segmenter(term):
                    raise ConfigError(
                        f"masking.terms has {term!r}, which can never match: without a "
                        "segmenter every Chinese character is its own word; set "
                        "data.segmenter: rjieba.")
        cls.validate(config)
        cls.check_sequence_length(config)

    @classmethod
    def refusal_reason(cls, strategy):
        """Why this family refuses `strategy`: that strategy's own need or
        purpose, then what the family does instead."""
        if strategy in cls.refusal_reasons:
            return cls.refusal_reasons[strategy]
        purpose = STRATEGY_PURPOSES.get(strategy, strategy)
        return f"{purpose}; {cls.refusal_hint}" if cls.refusal_hint else purpose

    @classmethod
    def minimum_sequence_length(cls, config):
        """The shortest data.sequence_length with room for one token."""
        return len(cls.framing_tokens) + 1

    @classmethod
    def check_sequence_length(cls, config):
        """One line if data.sequence_length leaves no room for a token
        besides the framing tokens (the tokenizer would fail inside tf.data,
        in a traced function's traceback)."""
        length, minimum = config.data.sequence_length, cls.minimum_sequence_length(config)
        if length < minimum:
            framing = " and ".join(cls.framing_tokens) or "nothing"
            raise ConfigError(
                f"data.sequence_length={length} leaves no room for a token besides {framing}; "
                f"model.family={cls.family} needs at least {minimum}: raise it.")

    @classmethod
    def output_values(cls, config):
        """Logits per example: the next token at every position (a causal
        LM); families that predict fewer override it."""
        return config.data.sequence_length * config.data.vocabulary_size

    @classmethod
    def step_memory(cls, config):
        """What one training step holds at least (`tfmask.tasks.memory`): a
        Transformer encoder over data.sequence_length tokens, its attention
        scores, `output_values` logits and its blocks' graph. A pretrained
        encoder's sizes are the checkpoint's, unknown before it is read: one
        layer of width 1 (still a lower bound). Families with other models
        override it."""
        model, data = config.model, config.data
        layers, heads, hidden, inner = ((1, 1, 1, 1) if model.pretrained else (
            model.num_layers, model.num_heads, model.hidden_dim, model.intermediate_dim))
        batch, length, size = data.batch_size, data.sequence_length, activation_bytes(config)
        return StepMemory(
            parameters=transformer_parameters(data.vocabulary_size, length, hidden, inner,
                                              layers),
            activations=size * (block_values(batch, length, hidden, inner, layers)
                                + batch * cls.output_values(config)),
            attention=size * layers * batch * heads * length * length, blocks=layers)

    # ------------------------------------------------------------ resolution
    # Every family default is decided here. Those that shape the run are
    # written into the config (and so into the run folder's config.yaml):
    # `masking.strategy`, `data.lowercase`. Those that only decide how it runs
    # (`model.padding_free`, which follows runtime.strategy, a key a resume may
    # change) and those a checkpoint fixes (`model.normalize_first`) are read
    # through the methods below, never recomputed elsewhere.
    @classmethod
    def resolve(cls, config, check_data=True):
        """The config with the family's defaults made explicit: an unset
        `masking.strategy` becomes `default_strategy`; `data.lowercase`
        follows the data (see `resolve_lowercase`)."""
        return resolve_lowercase(cls.with_default_strategy(config), check_data)

    @classmethod
    def with_default_strategy(cls, config):
        """An unset `masking.strategy` made the family's `default_strategy`."""
        if config.masking.strategy is not None:
            return config
        return dataclasses.replace(config, masking=dataclasses.replace(
            config.masking, strategy=cls.default_strategy))

    @classmethod
    def normalize_first(cls, config):
        """model.normalize_first resolved: unset = the family's default."""
        value = config.model.normalize_first
        return cls.default_normalize_first if value is None else value

    @classmethod
    def padding_free(cls, config):
        """Whether the encoder's token-wise layers run on real tokens only:
        `model.padding_free`, unset = on for families that support it,
        except on TPUs (under XLA the trainer compiles one step per bucket of
        token counts, which a TPU step cannot switch between)."""
        if not cls.supports_padding_free:
            return False
        if config.model.padding_free is not None:
            return config.model.padding_free
        return config.runtime.strategy != "tpu"

    @classmethod
    def validate(cls, config):
        """Family-specific checks beyond `check`; subclasses extend it."""

    @staticmethod
    def text_feature(config):
        """The document feature holding the text: pre-segmented words, or text."""
        return config.data.words_key or config.data.text_key

    @classmethod
    def vocabulary_keys(cls, config):
        """Document keys whose text trains a vocabulary (data.vocabulary: train)."""
        return [cls.text_feature(config)]

    # ------------------------------------------------------------ data
    @abc.abstractmethod
    def batches(self, documents, batch_size, training):
        """Documents -> batches of this family (masks drawn anew each epoch
        when `training`, fixed otherwise)."""

    @functools.cached_property
    def train(self):
        """Infinite, shuffled, masked global batches with static shapes."""
        return host_features_dropped(self.training_batches(self.config.data.batch_size))

    def train_for(self, context):
        """One worker's own training input, for `distribute_datasets_from_function`:
        a `tf.distribute.InputContext` -> per-replica batches of this worker's
        share of the examples, tokenized and masked on its own CPUs. Masks are
        drawn from a seed of the worker's own (`masking_seed`), so workers do
        not repeat each other's draws. `documents` decides how the examples
        are shared out:

        - by file, when data.name is one `file:` glob matching at least as many
          files as there are workers: worker i reads files i, i + N, ... of
          the sorted list and shuffles those alone, so no worker reads the
          others' data. Each worker then has its own epoch length and order:
          every example is still seen once per worker-epoch, but the global
          batches are not the one-worker run's (and uneven files give uneven
          epochs);
        - by example index otherwise (one file, too few files, a mixture, a
          registry or TFDS dataset, data.train_examples): all workers shuffle
          the whole split with one seed and worker i keeps elements i, i + N,
          ... of that stream. Each worker reads everything, but each step's
          per-replica batches together hold exactly the one-worker global
          batch, and each example is seen once per epoch across the workers."""
        shard = (context.num_input_pipelines, context.input_pipeline_id)
        batch_size = context.get_per_replica_batch_size(self.config.data.batch_size)
        with self.masks_of_pipeline(context.input_pipeline_id):
            return host_features_dropped(self.training_batches(batch_size, shard))

    @contextlib.contextmanager
    def masks_of_pipeline(self, index):
        """While pipelines are built inside it, masks are drawn from input
        pipeline `index`'s seed (`masking_seed`); 0 is one worker's."""
        previous, self._input_pipeline = self._input_pipeline, index
        try:
            yield
        finally:
            self._input_pipeline = previous

    @property
    def masking_seed(self):
        """train.seed, moved for the pipeline of each worker after the first."""
        return self.config.train.seed + 7919 * self._input_pipeline

    def training_batches(self, batch_size, shard=None):
        """Training batches of `batch_size`; `shard=(N, i)`: one worker's share
        of the documents (`documents`, `train_for`)."""
        documents = self.documents(self.config.data.train_split, training=True, shard=shard)
        return self.batches(documents, batch_size, training=True)

    @functools.cached_property
    def evaluation(self):
        """The first `train.eval_batches` batches of the evaluation split."""
        return self.evaluation_for(self.config.data.eval_split)

    def evaluation_for(self, split, static_shapes=False):
        """The same for any split (train.extra_eval_splits), cached after a pass.

        take() before cache(): the cache then fills completely and is reused.
        Consumers must read it to the end (no further take()), or tf.data
        discards the partial cache and rebuilds the batches every evaluation.
        `static_shapes` fills a last partial batch to full size with
        weight-0 rows (`full_batches`), for TPUs and XLA.
        """
        batches = host_features_dropped(self.batches(
            self.documents(split, training=False), self.config.data.eval_batch_size,
            training=False)).take(self.config.train.eval_batches)
        if static_shapes:
            batches = full_batches(batches, self.config.data.eval_batch_size)
        return batches.cache()

    def documents(self, split, training, shard=None):
        """The documents of `split`; training: shuffled and repeated forever.

        `shard=(N, i)` (training only) keeps worker i's share of N, the one
        place that decides how (see `train_for`): by file when
        `load_documents` can split the source so, otherwise every N-th
        document of the shuffled stream. `data.train_examples` always shards
        by index: its subset is drawn from the whole split."""
        by_file = None
        if shard and training and not self.config.data.train_examples:
            by_file = load_documents(self.config, split, shard=shard)
        documents = by_file if by_file is not None else load_documents(self.config, split)
        if training:
            documents = self.train_subset(documents)
            # Shuffle, then repeat: every epoch is a fresh permutation, batches
            # cross epoch boundaries, and the order is a pure function of the
            # seed (exact resume skips into it). Buffer 0 = the whole split, an
            # exact shuffle that also interleaves the parts of a mixture.
            buffer = self.config.data.shuffle_buffer or WHOLE_SPLIT
            documents = documents.shuffle(buffer, seed=self.config.train.seed,
                                          reshuffle_each_iteration=True).repeat()
            if shard and by_file is None:
                documents = documents.shard(*shard)
            return documents
        if "+" in self.config.data.name:
            # A mixture is its parts concatenated; evaluating its first batches
            # would see only the first part. One fixed order mixes them.
            documents = documents.shuffle(WHOLE_SPLIT, seed=0, reshuffle_each_iteration=False)
        return documents

    def train_subset(self, documents):
        """The training documents, or `data.train_examples` of them."""
        data = self.config.data
        if not data.train_examples:
            return documents
        return subsample(documents, data.train_examples, data.label_key, self.config.train.seed)

    def required_features(self):
        """config key -> the document feature this family reads through it."""
        data = self.config.data
        if data.words_key:
            return {"data.words_key": data.words_key}
        return {"data.text_key": data.text_key}

    def check_documents(self, split):
        """One line, before training, if `split` is empty or lacks a feature."""
        data = self.config.data
        where = f"data.name={data.name} split {split!r}"
        documents = load_documents(self.config, split)
        available = sorted(documents.element_spec)
        for key, feature in self.required_features().items():
            if feature not in available:
                raise RunError(f"{where} has no feature {feature!r} ({key}); it has "
                               f"{', '.join(available)}: set {key} to one of them.")
        if not list(documents.take(1)):
            raise RunError(f"{where} has no examples (empty, or every record was dropped); "
                           "pick another split or fix the data.")

    @property
    def tokens_per_batch(self):
        """Tokens a training batch carries (for tokens/s)."""
        return self.config.data.batch_size * self.config.data.sequence_length

    # ------------------------------------------------------------ model
    @abc.abstractmethod
    def build_model(self, dtype):
        """A fresh (or pretrained) keras.Model under the dtype policy `dtype`."""

    @abc.abstractmethod
    def split_batch(self, batch):
        """batch -> (model inputs, labels, loss weights or None)."""

    def loss_terms(self, labels, logits, weights):
        """(weighted loss sum, weight sum) of a batch; None weights = all 1."""
        return weighted_crossentropy_sum(labels, logits, weights)

    def metrics(self, prefix):
        """name -> keras metric, reported as `{prefix}_{name}`."""
        metrics = {"loss": keras.metrics.Mean(name=f"{prefix}_loss"),
                   "accuracy": MaskedAccuracy(name=f"{prefix}_accuracy")}
        if self.token_level:
            metrics["perplexity"] = MaskedPerplexity(name=f"{prefix}_perplexity")
        return metrics

    # ------------------------------------------------------------ Keras fit
    def fit_data(self, split=None):
        """This family's batches for `keras.Model.fit` / `evaluate`, as
        (inputs, labels, loss weights) tuples (or (inputs, labels) where all
        weigh 1): split None = the training pipeline (infinite, shuffled,
        masked anew every epoch: pass `steps_per_epoch`), else the first
        train.eval_batches batches of `split`, masked once (the trainer's).

        Example (a tiny run):
            model = task.build_model("float32")
            task.compile(model, keras.optimizers.AdamW(1e-3))
            model.fit(task.fit_data(), steps_per_epoch=100, epochs=3,
                      validation_data=task.fit_data("validation"))
        """
        if split is None:
            batches = self.train
        else:  # counted once (its cache fills), so Keras knows where it ends
            batches = self.evaluation_for(split)
            count = int(batches.reduce(0, lambda count, _: count + 1))
            batches = batches.apply(tf.data.experimental.assert_cardinality(count))

        def as_tuple(batch):
            inputs, labels, weights = self.split_batch(batch)
            return (inputs, labels) if weights is None else (inputs, labels, weights)

        return batches.map(as_tuple)

    def keras_loss(self):
        """`loss_terms` as a Keras loss: cross-entropy from logits, the mean
        over the weighted positions (the masked tokens, the response, the
        tagged pieces), as the trainer computes it."""
        return keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight")

    def compile(self, model, optimizer, **kwargs):
        """`model.compile` with this family's loss and a weighted accuracy
        (positions of weight 0 do not count); `kwargs` go to compile."""
        model.compile(optimizer=optimizer, loss=self.keras_loss(),
                      weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(
                          name="accuracy")], **kwargs)
        return model

    def extra_evaluation(self, model, split, prefix):
        """More metrics of `split` after the trainer's (BLEU, entity F1),
        named `{prefix}_*`; {} by default."""
        return {}

    # ------------------------------------------------------------ prediction
    @abc.abstractmethod
    def serve(self, model, texts, top_k=5, sampler="greedy", num_beams=4):
        """Raw texts, a string tensor [B] -> dict of output tensors.

        Graph ops only (tokenizer, input masking, model, decoding), so it
        traces into the exported SavedModel (`tfmask.serving`); `predict`
        prints what it returns, so what is served is what `predict` shows."""

    def text_serving_refusal(self):
        """Why this run cannot answer raw text (None if it can): `predict`
        refuses with it, and the export then holds only `serve_token_ids`."""
        return None

    def serving_resources(self):
        """TF resources `serve` reads besides the model's variables: the
        tokenizer's vocabulary table (families add their masking's tables)."""
        return [self.tokenizer.module]

    @abc.abstractmethod
    def predict(self, model, text, top_k=5, sampler="greedy", num_beams=4):
        """Raw text -> list of printable lines (`python -m tfmask.predict`)."""

    # ------------------------------------------------------------ shared helpers
    def sequence_inputs(self, *keys):
        """Model input keys: `keys`, then the packed-row features if packed."""
        return list(keys) + F.row_keys(self.config.data.pack)

    def count_pieces(self, text, limit, what="text"):
        """Word pieces of `text`; one line if it is empty or reaches `limit`."""
        pieces = len(self.tokenizer.tokenize([text], segment=False)[F.TOKEN_IDS].to_list()[0])
        if not pieces:
            raise ValueError(f"the {what} is empty; give --text some text.")
        if pieces >= limit:
            raise ValueError(f"the {what} has {pieces} tokens, but this model reads at most "
                             f"{limit - 1} (data.sequence_length={self.config.data.sequence_length}"
                             "); shorten it.")
        return pieces

    def text_until_end(self, ids, start=0):
        """Generated ids [B, T] -> texts [B]: tokens from position `start`
        (an int or [B] tensor) up to the first [SEP] (end of sequence)."""
        ids = tf.cast(ids, tf.int32)
        positions = tf.range(tf.shape(ids)[1])[None, :]
        generated = positions >= tf.reshape(tf.cast(start, tf.int32), [-1, 1])
        ends = tf.cast((ids == self.tokenizer.sep_id) & generated, tf.int32)
        keep = generated & (tf.math.cumsum(ends, axis=1) == 0)
        return self.tokenizer.detokenize(tf.ragged.boolean_mask(ids, keep))

    def packed_batches(self, documents, rows, keys, batch_size, training):
        """Documents -> `rows(batch)` (dense rows with `padding_mask`) -> the
        real tokens of `keys` -> `pack` -> batches (partial ones kept unless
        training)."""
        def ragged(batch):
            dense = rows(batch)
            return {k: tf.ragged.boolean_mask(dense[k], dense[F.PADDING_MASK]) for k in keys}

        pieces = documents.batch(256).map(ragged, num_parallel_calls=AUTOTUNE).unbatch()
        packed = pack(pieces, self.config.data.sequence_length, keys=keys)
        return packed.batch(batch_size, drop_remainder=training)


def full_batches(batches, batch_size):
    """Batches of exactly `batch_size` rows with a static batch dimension:
    a short last batch is filled with copies of its first row, and
    `example_weight` (1 real, 0 copy) lets the trainer give the copies no
    weight, so every metric equals the partial-batch one. A TPU compiles
    one shape per function, and XLA would recompile for the short batch.
    Copies, not zeros: a row of padding only could make a model's softmax
    over no keys produce NaN, and 0 * NaN is NaN.

    Example:
    >>> batches = tf.data.Dataset.range(5).batch(2).map(lambda x: {"ids": x})
    >>> [b["ids"].tolist() for b in full_batches(batches, 2).as_numpy_iterator()]
    [[0, 1], [2, 3], [4, 4]]
    >>> [b[F.EXAMPLE_WEIGHT].tolist() for b in full_batches(batches, 2).as_numpy_iterator()]
    [[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]]
    """
    def fill(batch):
        count = tf.shape(next(iter(batch.values())))[0]
        rows = tf.concat([tf.range(count), tf.zeros([batch_size - count], tf.int32)], 0)
        full = {key: tf.ensure_shape(tf.gather(value, rows), [batch_size, *value.shape[1:]])
                for key, value in batch.items()}
        full[F.EXAMPLE_WEIGHT] = tf.cast(tf.range(batch_size) < count, tf.float32)
        return full

    return batches.map(fill)


def host_features_dropped(batches):
    """Batches without string features (raw texts, movie names, tags): the
    model never reads them, and a string tensor cannot go to a GPU or TPU, so
    copying it there costs a host round trip per step or fails."""
    spec = batches.element_spec
    if not isinstance(spec, dict):
        return batches
    strings = {key for key, value in spec.items() if value.dtype == tf.string}
    if not strings:
        return batches
    return batches.map(lambda batch: {k: v for k, v in batch.items() if k not in strings})


def config_tokenizer(config, vocabulary):
    """The `WordPieceTokenizer` a config describes, over `vocabulary` (a
    vocab.txt): the one place training, evaluation, `predict` and `inspect`
    get theirs, so all of them see the same words (`data.segmenter`)."""
    return WordPieceTokenizer(vocabulary, lowercase=config.data.lowercase,
                              segmenter=config.data.segmenter)


def build_tokenizer(config, vocabulary_keys):
    """(WordPieceTokenizer, vocab.txt path) for a config."""
    data, model = config.data, config.model
    if data.vocabulary == "pretrained":
        path = pretrained_vocabulary(pretrained_directory(model.pretrained))
    elif data.vocabulary == "train":
        path = train_wordpiece_vocabulary(_texts(config, vocabulary_keys), data.vocabulary_size,
                                          lowercase=data.lowercase)
    else:
        path = data.vocabulary
    tokenizer = config_tokenizer(config, path)
    if model.pretrained and data.vocabulary != "pretrained":
        expected = pretrained_vocabulary_size(pretrained_directory(model.pretrained))
        if expected != tokenizer.vocabulary_size:
            raise ConfigError(
                f"model.pretrained has a {expected}-token vocabulary but data.vocabulary gives "
                f"{tokenizer.vocabulary_size}; set data.vocabulary: pretrained.")
    return tokenizer, path


def _texts(config, keys):
    """The training split's texts under `keys`, document by document. Read
    in batches of the wanted features only: one document per iterator step
    cost ~0.5 ms each, seconds per run on a 10k-document split."""
    documents = load_documents(config, config.data.train_split)
    documents = documents.take(VOCABULARY_TRAINING_DOCUMENTS).map(
        lambda document: {key: document[key] for key in keys})
    for batch in documents.ragged_batch(1024).as_numpy_iterator():
        for row in range(len(batch[keys[0]])):
            for key in keys:
                value = batch[key][row]
                if isinstance(value, bytes):
                    yield value.decode("utf-8")
                else:  # pre-segmented words
                    yield " ".join(w.decode("utf-8") for w in value)


def load_documents(config, split, shard=None):
    """One dataset, or a mixture for names joined by "+" ("austen+wordnet").

    A mixture keeps the features all its parts share. Finite splits are
    concatenated (evaluation sees every part in full).

    `shard=(N, i)`: only worker i's files of N (`tfmask.datasets.load`), or
    None when the data cannot be split by file (a mixture, a registry or
    TFDS dataset, a `file:` path matching fewer than N files)."""
    data = config.data
    if shard is not None:
        if "+" in data.name:
            return None  # its parts would be split unevenly; index sharding mixes them
        try:
            return datasets.load(data.name, split=split, shard=shard, **data.dataset_options)
        except TypeError as error:
            raise ConfigError(f"data.dataset_options={data.dataset_options}: {error}") from None
    try:
        parts = [datasets.load(name, split=split, **data.dataset_options)
                 for name in data.name.split("+")]
    except TypeError as error:  # options a source does not take
        raise ConfigError(f"data.dataset_options={data.dataset_options}: {error}") from None
    if len(parts) == 1:
        return parts[0]
    shared = set.intersection(*(set(p.element_spec) for p in parts))
    parts = [p.map(lambda x: {k: x[k] for k in sorted(shared)}) for p in parts]
    mixture = parts[0]
    for part in parts[1:]:
        mixture = mixture.concatenate(part)
    return mixture


def check_adapters(config):
    """model.lora_rank / lora_layers / freeze_encoder: a consistent choice."""
    from tfmask.config import check_choice
    from tfmask.tasks.shared import LORA_LAYERS

    model = config.model
    check_choice("model.lora_layers", model.lora_layers, tuple(LORA_LAYERS))
    if model.lora_rank < 0:
        raise ConfigError(f"model.lora_rank={model.lora_rank} must be >= 0 (0 = no LoRA).")
    if not model.lora_rank and model.lora_layers != "query_value":
        raise ConfigError(f"model.lora_layers={model.lora_layers} is set but model.lora_rank=0 "
                          "adds no LoRA weights; set model.lora_rank or remove it.")
    if model.lora_rank and model.freeze_encoder:
        raise ConfigError("model.freeze_encoder=true and model.lora_rank both set: LoRA already "
                          "freezes the encoder (its LoRA weights train); remove one.")


def check_segmenter(data):
    """data.segmenter names a known segmenter and is not given with words."""
    problem = check_segmenter_name(data.segmenter)
    if problem:
        raise ConfigError(problem)
    if data.words_key:
        raise ConfigError(f"data.segmenter={data.segmenter} and data.words_key={data.words_key}"
                          " both give words (the data's own words are already segmented); "
                          "remove one.")


def resolve_lowercase(config, check_data):
    """`data.lowercase` made explicit. Unset, it follows model.pretrained (its
    tokenizer_config.json `do_lower_case`, or a tfmask run's data.lowercase),
    else true: the user expects the checkpoint's own tokenization, like
    Hugging Face's AutoTokenizer. Set against the checkpoint, it is refused
    rather than obeyed: the vocabulary and weights were trained with that
    casing, and a mismatch shows only as worse results ([UNK]s, lost
    capitals), never as an error. `check_data=False` reads no folder."""
    data, model = config.data, config.model
    expected = None
    if model.pretrained and check_data:
        expected = pretrained_lowercase(pretrained_directory(model.pretrained))
    if data.lowercase is not None and expected is not None and data.lowercase != expected:
        raise ConfigError(
            f"data.lowercase={str(data.lowercase).lower()} but model.pretrained="
            f"{model.pretrained} was trained with lowercase={str(expected).lower()}; "
            "remove data.lowercase (it follows the checkpoint).")
    if data.lowercase is None:
        lowercase = True if expected is None else expected
        config = dataclasses.replace(config, data=dataclasses.replace(data, lowercase=lowercase))
    return config


def subsample(documents, count, label_key, seed):
    """`count` documents of a split, drawn with `seed`; stratified by
    `label_key` when the documents have it (each class keeps its share,
    at least one example), uniform otherwise. Few-label experiments and
    learning curves: `data.train_examples`."""
    import numpy as np

    has_labels = label_key in documents.element_spec
    labels = np.array([int(d[label_key]) if has_labels else 0
                       for d in documents.as_numpy_iterator()])
    if count > len(labels):
        raise ConfigError(f"data.train_examples={count} but the training split has "
                          f"{len(labels)} examples; lower it.")
    rng = np.random.default_rng(seed)
    classes, sizes = np.unique(labels, return_counts=True)
    shares = np.maximum(1, np.round(count * sizes / len(labels))).astype(int)
    while shares.sum() > count:  # rounding up small classes overshoots
        shares[np.argmax(shares)] -= 1
    while shares.sum() < count:
        shares[np.argmax(sizes - shares)] += 1
    chosen = np.concatenate([rng.choice(np.flatnonzero(labels == c), n, replace=False)
                             for c, n in zip(classes, shares)])
    keep = tf.constant(np.isin(np.arange(len(labels)), chosen))

    def chosen_index(index, document):
        return keep[index]

    def document_only(index, document):
        return document

    return documents.enumerate().filter(chosen_index).map(document_only)
