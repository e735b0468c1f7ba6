"""The masked-LM family: BERT-style pre-training with a tied MLM head.

Masking is what this family trains on, so it always has a strategy:
`random` (BERT 80/10/10) unless the config names `whole_word`, `span`,
`entity` (ERNIE: whole entities from word-level tags first) or `term`
(key-term / salient-span masking: words matching `masking.terms` /
`masking.patterns` are the units masked first, the rest of the budget goes to
random whole words). Rows may be packed (`data.pack`), masks drawn anew every epoch
(RoBERTa) or once (`masking.dynamic: false`, BERT).
"""

import tensorflow as tf

from tfmask.data import features as F
from tfmask.data import masking as M
from tfmask.data.pipeline import mask_dataset, text_pipeline, tokenize_batch
from tfmask.errors import ConfigError, RunError
from tfmask.models import MaskedLMModel
from tfmask.models.pretrained import from_pretrained
from tfmask.tasks.base import AUTOTUNE, WHOLE_SPLIT, Task, load_documents
from tfmask.tasks.shared import (
    MLM_STRATEGIES,
    check_pretrained_architecture,
    encoder_kwargs,
    mlm_strategy,
    pretrained_directory,
    with_encoder_training,
)

ENTITY_TAGS = "tags"  # the word-level feature `tokenize_batch` turns into entity_ids


def check_key_terms(config):
    """Key-term masking (mlm + term) predicts key terms BERT-style."""
    masking = config.masking
    if masking.strategy != "term":
        return
    if masking.term_replacement != "mask":
        raise ConfigError(
            f"masking.term_replacement={masking.term_replacement} applies to a classifier's "
            "term masking; a masked LM predicts key terms with 80/10/10 (masking.mask_ratio, "
            "masking.random_ratio): remove it.")


class MaskedLMTask(Task):
    family = "mlm"
    strategies = tuple(MLM_STRATEGIES)
    default_strategy = "random"
    refusal_hint = "a masked LM is graded on the tokens its strategy hides"
    refusal_reasons = {"span_corruption": "span_corruption replaces spans by sentinels that an "
                                          "encoder-decoder (T5) writes out; a masked LM hides "
                                          "spans with span"}
    supports_packing = True
    supports_pretrained = True
    supports_static_masking = True
    supports_words_key = True
    supports_padding_free = True
    supports_freezing = True

    @classmethod
    def validate(cls, config):
        check_pretrained_architecture(config)
        check_key_terms(config)
        if config.masking.strategy == "entity" and not config.data.words_key:
            raise ConfigError(
                "masking.strategy=entity needs word-level entity tags: set data.words_key "
                "(e.g. words) on a dataset with `words` and BIO `tags` (e.g. wnut16).")

    @classmethod
    def output_values(cls, config):
        """Logits per example: masking.max_predictions positions."""
        return config.masking.max_predictions * config.data.vocabulary_size

    def required_features(self):
        """Entity masking also reads word-level entity `tags` (BIO, IOB1, IOBES)."""
        features = super().required_features()
        if self.config.masking.strategy == "entity":
            features["masking.strategy=entity"] = ENTITY_TAGS
        return features

    def check_documents(self, split):
        """The base checks; for entity masking first one line naming what
        word-level features are missing and how to provide them."""
        if self.config.masking.strategy == "entity":
            data = self.config.data
            available = sorted(load_documents(self.config, split).element_spec)
            missing = [f for f in (data.words_key, ENTITY_TAGS) if f not in available]
            if missing:
                fix = ("declare them in data.dataset_options.extra_fields (e.g. {words: "
                       "'string[None]', tags: 'string[None]'}) or use a .conll file"
                       if data.name.startswith("file:") else
                       "use a dataset with them (e.g. wnut16) or another masking.strategy")
                names = " or ".join(map(repr, missing))
                raise RunError(
                    f"data.name={data.name} split {split!r} has no {names}"
                    f" feature, but masking.strategy=entity needs word-level words "
                    f"(data.words_key) and entity tags ('{ENTITY_TAGS}', BIO/IOB1/IOBES); it has "
                    f"{', '.join(available)}: {fix}.")
        super().check_documents(split)

    def __init__(self, config, tokenizer=None, vocabulary_path=None):
        super().__init__(config, tokenizer, vocabulary_path)
        self.strategy = mlm_strategy(config.masking, self.tokenizer)
        masking = config.masking
        # Key-term masking: matching words become the units masked first.
        self.key_terms = (M.KeyTermUnits(masking.terms, masking.patterns,
                                         lowercase=self.tokenizer.lowercase)
                          if masking.strategy == "term" else None)

    def batches(self, documents, batch_size, training):
        data = self.config.data
        if data.pack:
            return self._packed(documents, batch_size, training)
        return text_pipeline(documents, self.tokenizer, data.sequence_length, batch_size,
                             strategies=[s for s in (self.key_terms, self.strategy) if s],
                             seed=self.masking_seed,
                             dynamic=training, words_key=data.words_key, text_key=data.text_key,
                             drop_remainder=training)

    def _packed(self, documents, batch_size, dynamic):
        """Documents -> [CLS] doc [SEP] rows -> packed rows -> batches -> masks.
        `pack` renumbers word (and entity) ids so each names one word of one
        document, as whole-word and entity masking need."""
        data = self.config.data
        entity = self.config.masking.strategy in ("entity", "term")
        keys = (F.TOKEN_IDS, F.WORD_IDS) + ((F.ENTITY_IDS,) if entity else ())

        def tokenize(batch):
            rows = tokenize_batch(batch, self.tokenizer, data.sequence_length,
                                  text_key=data.text_key, words_key=data.words_key)
            # Key terms are matched on each document's words, before packing.
            return self.key_terms(rows, seed=[0, 0]) if self.key_terms else rows

        packed = self.packed_batches(documents, tokenize, keys, batch_size, training=dynamic)
        return mask_dataset(packed, self.strategy, seed=self.masking_seed, dynamic=dynamic)

    def training_batches(self, batch_size, shard=None):
        if self.config.masking.dynamic:
            return super().training_batches(batch_size, shard)
        return self._static_rows(batch_size, shard)

    def _static_rows(self, batch_size, shard=None):
        """BERT's static masking: the training split is masked once (rows
        packed once), cached, and every epoch reshuffles those same masked
        rows. The cache holds the whole masked split in memory; with several
        workers each masks the split once and trains on its share of the
        rows (`shard`), the same rows as one worker would."""
        data = self.config.data
        documents = self.train_subset(load_documents(self.config, data.train_split))
        # One worker's masks on every worker: they share the split's rows.
        with self.masks_of_pipeline(0):
            rows = self.batches(documents, data.batch_size, training=False).unbatch().cache()
        rows = rows.shuffle(data.shuffle_buffer or WHOLE_SPLIT, seed=self.config.train.seed,
                            reshuffle_each_iteration=True).repeat()
        if shard:
            rows = rows.shard(*shard)
        return rows.batch(batch_size, drop_remainder=True).prefetch(AUTOTUNE)

    def split_batch(self, batch):
        keys = self.sequence_inputs(F.TOKEN_IDS, F.PADDING_MASK, F.MASK_POSITIONS)
        return ({k: batch[k] for k in keys}, batch[F.MASK_IDS],
                batch[F.MASK_WEIGHTS])

    def build_model(self, dtype):
        config = self.config
        common = dict(packed=config.data.pack, max_predictions=config.masking.max_predictions,
                      padding_free=self.padding_free(config), dtype=dtype)
        if config.model.pretrained:
            model, _ = from_pretrained(MaskedLMModel, pretrained_directory(config.model.pretrained),
                                       dropout=config.model.dropout, **common)
            return with_encoder_training(model, config)
        model = MaskedLMModel(**encoder_kwargs(config, self.tokenizer), **common,
                              normalize_first=self.normalize_first(config))
        return with_encoder_training(model, config)

    # ------------------------------------------------------------ prediction
    def fill_mask_inputs(self, texts):
        """Texts [B] with "[MASK]" markers -> model inputs: the text between
        markers tokenized as in training, a [MASK] id per marker, framed
        [CLS] ... [SEP]; `mask_positions` holds the first
        masking.max_predictions [MASK] positions (0 in unused slots) and
        `mask_found` which slots hold one. Graph ops only (served)."""
        tokenizer, data = self.tokenizer, self.config.data
        width = self.config.masking.max_predictions
        parts = tf.strings.split(tf.convert_to_tensor(texts, tf.string), "[MASK]")  # [B, P]
        pieces = tokenizer.tokenize(parts.flat_values, segment=False)[F.TOKEN_IDS]  # [B*P, N]
        # Every part but a row's last is followed by one [MASK].
        part_index = tf.range(tf.shape(parts.flat_values)[0], dtype=tf.int64)
        row_ends = tf.gather(parts.row_splits[1:], parts.value_rowids()) - 1
        marker = tf.fill([tf.shape(part_index)[0], 1], tf.cast(tokenizer.mask_id, pieces.dtype))
        marker = tf.ragged.boolean_mask(marker, (part_index < row_ends)[:, None])
        ids = tf.concat([pieces, marker], axis=1)
        ids = tf.RaggedTensor.from_row_splits(ids, parts.row_splits).merge_dims(1, 2)
        rows = tokenizer.frame(ids, data.sequence_length)
        token_ids, real = rows[F.TOKEN_IDS], rows[F.PADDING_MASK]
        is_mask = token_ids == tokenizer.mask_id
        # Stable sort puts the [MASK] positions first, in order.
        order = tf.argsort(tf.cast(~is_mask, tf.int32), axis=1, stable=True)[:, :width]
        order = tf.pad(order, [[0, 0], [0, tf.maximum(width - tf.shape(order)[1], 0)]])
        found = tf.gather(is_mask, order, batch_dims=1)
        inputs = {F.TOKEN_IDS: token_ids, F.PADDING_MASK: real,
                  F.MASK_POSITIONS: tf.where(found, order, 0)}
        if data.pack:  # the model reads packed rows: one document per row
            inputs.update(F.one_document_rows(real))
        return inputs, found

    def serve(self, model, texts, top_k=5, sampler="greedy", num_beams=4):
        """Texts [B] with [MASK]s -> per [MASK] slot (masking.max_predictions
        of them): `positions` (token index, -1 for an unused slot), the
        `top_k` candidate `tokens` / `token_ids` and their `probabilities`."""
        inputs, found = self.fill_mask_inputs(texts)
        logits = tf.cast(model(inputs, training=False), tf.float32)  # [B, W, V]
        probabilities, token_ids = tf.math.top_k(tf.nn.softmax(logits, axis=-1), k=top_k)
        vocabulary = tf.constant(self.tokenizer.vocabulary)
        return {"positions": tf.where(found, tf.cast(inputs[F.MASK_POSITIONS], tf.int32), -1),
                "token_ids": token_ids, "tokens": tf.gather(vocabulary, token_ids),
                "probabilities": probabilities}

    def fill_mask(self, model, text, top_k=5):
        """[(token position, [(token, probability)] * top_k)] per [MASK] of `text`."""
        wanted = text.count("[MASK]")
        if not wanted:
            raise ValueError("fill-mask needs at least one [MASK] in the text.")
        length, width = self.config.data.sequence_length, self.config.masking.max_predictions
        if wanted > width:
            raise ValueError(f"the text has {wanted} [MASK]s; this model predicts at most "
                             f"masking.max_predictions={width} per text: split the text.")
        output = {k: v.numpy()[0] for k, v in self.serve(model, tf.constant([text]),
                                                         top_k=top_k).items()}
        positions = [int(p) for p in output["positions"] if p >= 0]
        if len(positions) < wanted:
            raise ValueError(f"{wanted - len(positions)} of the text's [MASK]s lie beyond "
                             f"data.sequence_length={length} tokens; shorten the text.")
        return [(position, [(token.decode("utf-8"), float(p)) for token, p in
                            zip(output["tokens"][slot], output["probabilities"][slot])])
                for slot, position in enumerate(positions)]

    def predict(self, model, text, top_k=5, sampler="greedy", num_beams=4):
        return [f"[MASK] at token {position}: " + ", ".join(f"{token} {p:.3f}"
                                                           for token, p in candidates)
                for position, candidates in self.fill_mask(model, text, top_k)]
