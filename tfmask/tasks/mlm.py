"""The masked-LM family: BERT-style pre-training with a tied MLM head.

Masking is what this family trains on, so it always has a strategy:
`random` (BERT 80/10/10) unless the config names `whole_word`, `span` or
`entity`. Rows may be packed (`data.pack`), masks drawn anew every epoch
(RoBERTa) or once (`masking.dynamic: false`, BERT).
"""

import tensorflow as tf

from tfmask.data import features as F
from tfmask.data import masking as M
from tfmask.data.pipeline import mask_dataset, text_pipeline, tokenize_batch
from tfmask.errors import ConfigError
from tfmask.models import MaskedLMModel
from tfmask.models.pretrained import from_pretrained, pretrained_directory
from tfmask.tasks.base import AUTOTUNE, WHOLE_SPLIT, Task, load_documents, softmax
from tfmask.training.config import padding_free

MLM_STRATEGIES = {"random": M.RandomTokenMasking, "whole_word": M.WholeWordMasking,
                  "span": M.SpanMasking, "entity": M.EntityMasking}


def mlm_strategy(masking, tokenizer):
    """The MLM masking strategy a config's `masking` section names."""
    kwargs = dict(rate=masking.rate, mask_ratio=masking.mask_ratio,
                  random_ratio=masking.random_ratio, max_predictions=masking.max_predictions,
                  special_token_ids=tokenizer.special_token_ids(), pad_id=tokenizer.pad_id)
    if masking.strategy == "entity":
        kwargs["entity_probability"] = masking.entity_probability
    return MLM_STRATEGIES[masking.strategy](tokenizer.vocabulary_size, tokenizer.mask_id,
                                            **kwargs)


def check_pretrained_architecture(config):
    """A pretrained encoder brings its own architecture."""
    if config.model.pretrained and config.model.normalize_first is not None:
        raise ConfigError("model.normalize_first comes from model.pretrained's checkpoint; "
                          "remove it.")


def encoder_kwargs(config, tokenizer):
    """Encoder hyper-parameters of a config (model section + vocabulary)."""
    model = config.model
    return dict(vocabulary_size=tokenizer.vocabulary_size, num_layers=model.num_layers,
                num_heads=model.num_heads, hidden_dim=model.hidden_dim,
                intermediate_dim=model.intermediate_dim, max_length=config.data.sequence_length,
                dropout=model.dropout, position=model.position)


class MaskedLMTask(Task):
    family = "mlm"
    strategies = tuple(MLM_STRATEGIES)
    default_strategy = "random"
    refusal_hint = "a masked LM needs tokens to predict"
    supports_packing = True
    supports_pretrained = True
    supports_static_masking = True
    supports_words_key = True
    supports_padding_free = True

    @classmethod
    def validate(cls, config):
        check_pretrained_architecture(config)
        if config.masking.strategy == "entity" and not config.data.words_key:
            raise ConfigError(
                "masking.strategy=entity needs word-level entity tags: set data.words_key "
                "(e.g. words) on a dataset with `words` and BIO `tags` (e.g. wnut16).")

    def __init__(self, config, tokenizer=None, vocabulary_path=None):
        super().__init__(config, tokenizer, vocabulary_path)
        self.strategy = mlm_strategy(config.masking, self.tokenizer)

    def batches(self, documents, batch_size, training):
        data = self.config.data
        if data.pack:
            return self._packed(documents, batch_size, training)
        return text_pipeline(documents, self.tokenizer, data.sequence_length, batch_size,
                             strategies=[self.strategy], seed=self.config.train.seed,
                             dynamic=training, words_key=data.words_key, text_key=data.text_key,
                             drop_remainder=training)

    def _packed(self, documents, batch_size, dynamic):
        """Documents -> [CLS] doc [SEP] rows -> packed rows -> batches -> masks.
        `pack` renumbers word (and entity) ids so each names one word of one
        document, as whole-word and entity masking need."""
        data = self.config.data
        entity = self.config.masking.strategy == "entity"
        keys = (F.TOKEN_IDS, F.WORD_IDS) + ((F.ENTITY_IDS,) if entity else ())

        def tokenize(batch):
            return tokenize_batch(batch, self.tokenizer, data.sequence_length,
                                  text_key=data.text_key, words_key=data.words_key)

        packed = self.packed_batches(documents, tokenize, keys, batch_size, training=dynamic)
        return mask_dataset(packed, self.strategy, seed=self.config.train.seed, dynamic=dynamic)

    def training_batches(self):
        if self.config.masking.dynamic:
            return super().training_batches()
        return self._static_rows()

    def _static_rows(self):
        """BERT's static masking: the training split is masked once (rows
        packed once), cached, and every epoch reshuffles those same masked
        rows. The cache holds the whole masked split in memory."""
        data = self.config.data
        rows = self.batches(load_documents(self.config, data.train_split), data.batch_size,
                            training=False).unbatch().cache()
        rows = rows.shuffle(data.shuffle_buffer or WHOLE_SPLIT, seed=self.config.train.seed,
                            reshuffle_each_iteration=True).repeat()
        return rows.batch(data.batch_size, drop_remainder=True).prefetch(AUTOTUNE)

    def split_batch(self, batch):
        keys = self.sequence_inputs(F.TOKEN_IDS, F.PADDING_MASK, F.MASK_POSITIONS)
        return ({k: batch[k] for k in keys}, batch[F.MASK_IDS],
                batch[F.MASK_WEIGHTS])

    def build_model(self, dtype):
        config = self.config
        common = dict(packed=config.data.pack, max_predictions=config.masking.max_predictions,
                      padding_free=padding_free(config), dtype=dtype)
        if config.model.pretrained:
            model, _ = from_pretrained(MaskedLMModel, pretrained_directory(config.model.pretrained),
                                       dropout=config.model.dropout, **common)
            return model
        return MaskedLMModel(**encoder_kwargs(config, self.tokenizer), **common,
                             normalize_first=self.normalize_first(config))

    # ------------------------------------------------------------ prediction
    def fill_mask(self, model, text, top_k=5):
        """[(token position, [(token, probability)] * top_k)] per [MASK] of `text`."""
        import numpy as np

        tokenizer = self.tokenizer
        ids = []
        for i, part in enumerate(text.split("[MASK]")):
            if i:
                ids.append(tokenizer.mask_id)
            if part.strip():
                ids += tokenizer.tokenize([part])[F.TOKEN_IDS].to_list()[0]
        wanted = ids.count(tokenizer.mask_id)
        if not wanted:
            raise ValueError("fill-mask needs at least one [MASK] in the text.")
        length, width = self.config.data.sequence_length, self.config.masking.max_predictions
        if wanted > width:
            raise ValueError(f"the text has {wanted} [MASK]s; this model predicts at most "
                             f"masking.max_predictions={width} per text: split the text.")
        rows = tokenizer.frame(tf.ragged.constant([ids], tf.int32), length)
        ids = rows[F.TOKEN_IDS].numpy()[0]
        positions = [i for i, t in enumerate(ids) if t == tokenizer.mask_id]
        if len(positions) < wanted:
            raise ValueError(f"{wanted - len(positions)} of the text's [MASK]s lie beyond "
                             f"data.sequence_length={length} tokens; shorten the text.")
        inputs = {F.TOKEN_IDS: ids[None], F.PADDING_MASK: rows[F.PADDING_MASK].numpy(),
                  F.MASK_POSITIONS: np.array([(positions + [0] * width)[:width]], "int32")}
        if self.config.data.pack:  # one document: segment 1, positions from 0
            real = inputs[F.PADDING_MASK][0]
            inputs[F.SEGMENT_IDS] = real[None].astype("int32")
            inputs[F.POSITION_IDS] = np.where(real, np.arange(len(real)), 0)[None].astype("int32")
        logits = np.asarray(model(inputs))[0]
        results = []
        for slot, position in enumerate(positions[:width]):
            probabilities = softmax(logits[slot])
            best = np.argsort(-probabilities)[:top_k]
            results.append((position, [(tokenizer.id_to_token(int(t)), float(probabilities[t]))
                                       for t in best]))
        return results

    def predict(self, model, text, top_k=5, sampler="greedy", num_beams=4):
        return [f"[MASK] at token {position}: " + ", ".join(f"{token} {p:.3f}"
                                                           for token, p in candidates)
                for position, candidates in self.fill_mask(model, text, top_k)]
