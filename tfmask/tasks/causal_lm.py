"""The causal-LM family: a decoder-only Transformer predicting the next token.

- `none`: every next token of every document is graded (documents framed as
  text [SEP]); with `data.pack`, documents share rows and a position is
  never graded on the next document's first token.
- `prompt`: prompt-loss masking for fine-tuning: only the response after
  `masking.response_marker` is graded. With `data.pack` the weights are
  computed per document *before* packing, so every packed document keeps its
  own prompt mask.
"""

import tensorflow as tf

from tfmask.data import features as F
from tfmask.data import masking as M
from tfmask.data.targets import next_token_targets
from tfmask.errors import ConfigError
from tfmask.guards import guarded
from tfmask.models import CausalLMModel
from tfmask.tasks.base import AUTOTUNE, Task
from tfmask.tasks.shared import encoder_kwargs


class CausalLMTask(Task):
    family = "causal_lm"
    strategies = ("none", "prompt")
    refusal_hint = "a causal LM is graded on next tokens (grade responses only with prompt)"
    framing_tokens = ("[SEP]",)  # text [SEP]
    supports_packing = True
    causal = True
    default_normalize_first = True

    @classmethod
    def validate(cls, config):
        if config.masking.strategy == "prompt" and not config.masking.response_marker:
            raise ConfigError("masking.strategy=prompt needs masking.response_marker, the text "
                              "that ends each prompt.")

    def __init__(self, config, tokenizer=None, vocabulary_path=None):
        super().__init__(config, tokenizer, vocabulary_path)
        self.prompt = None
        if config.masking.strategy == "prompt":
            marker = self.tokenizer.tokenize([config.masking.response_marker])[F.TOKEN_IDS]
            self.prompt = M.PromptLossMasking(response_marker=marker.to_list()[0])

    def _documents(self, batch):
        """A batch of texts -> framed rows (text [SEP]), prompt-masked if asked."""
        data = self.config.data
        rows = self.tokenizer.encode(batch[data.text_key], data.sequence_length, framing="eos")
        rows = {F.TOKEN_IDS: rows[F.TOKEN_IDS], F.PADDING_MASK: rows[F.PADDING_MASK]}
        return self.prompt(rows) if self.prompt is not None else rows

    @staticmethod
    def _graded(batch):
        """Next-token labels; prompt weights (if any) narrow what is graded."""
        labels, weights = next_token_targets(batch[F.TOKEN_IDS], batch[F.PADDING_MASK],
                                             batch.get(F.SEGMENT_IDS))
        if F.LOSS_WEIGHTS in batch:
            weights = weights * batch[F.LOSS_WEIGHTS]
        return {**batch, F.LABELS: labels, F.LOSS_WEIGHTS: weights}

    def batches(self, documents, batch_size, training):
        if not self.config.data.pack:
            rows = documents.batch(batch_size, drop_remainder=training)
            return rows.map(lambda b: self._graded(self._documents(b)),
                            num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)
        keys = (F.TOKEN_IDS,) + ((F.LOSS_WEIGHTS,) if self.prompt is not None else ())
        rows = self.packed_batches(documents, self._documents, keys, batch_size, training)
        return rows.map(self._graded).prefetch(AUTOTUNE)

    def split_batch(self, batch):
        keys = self.sequence_inputs(F.TOKEN_IDS, F.PADDING_MASK)
        return {k: batch[k] for k in keys}, batch[F.LABELS], batch[F.LOSS_WEIGHTS]

    def build_model(self, dtype):
        return CausalLMModel(**encoder_kwargs(self.config, self.tokenizer),
                             normalize_first=self.normalize_first(self.config),
                             packed=self.config.data.pack, dtype=dtype)

    def serve(self, model, texts, top_k=5, sampler="greedy", num_beams=4):
        """Prompts [B] -> {"text": their continuations [B]} (up to [SEP] or
        data.sequence_length tokens in all; a prompt that fills the row gets
        an empty continuation)."""
        length = self.config.data.sequence_length
        rows = self.tokenizer.encode(texts, length, framing="none")
        prompt_lengths = tf.reduce_sum(tf.cast(rows[F.PADDING_MASK], tf.int32), axis=1)
        # Decoding starts after the shortest prompt; an empty one has no last token.
        check = tf.debugging.assert_positive(
            prompt_lengths, message="a prompt is empty: give every text some words.")
        prompt_lengths = guarded(prompt_lengths, check)
        output = model.generate(rows[F.TOKEN_IDS], prompt_lengths, max_length=length,
                                sampler=sampler, num_beams=num_beams,
                                stop_token_ids=[self.tokenizer.sep_id])
        return {"text": self.text_until_end(output, start=prompt_lengths)}

    def continue_text(self, model, text, sampler="greedy", num_beams=4):
        """The text generated after `text` (up to [SEP] or the length limit)."""
        self.count_pieces(text, self.config.data.sequence_length, what="prompt")
        output = self.serve(model, tf.constant([text]), sampler=sampler, num_beams=num_beams)
        return output["text"].numpy()[0].decode("utf-8")

    def predict(self, model, text, top_k=5, sampler="greedy", num_beams=4):
        return [self.continue_text(model, text, sampler, num_beams)]
