"""The encoder-decoder Transformer family: translation or T5 span corruption.

- `none`: translation pairs (`data.source_key` -> `data.target_key`), both
  sides framed as text [SEP] (the end-of-sequence token); BLEU of greedy
  translations with `train.generate_examples`.
- `span_corruption`: T5 denoising pre-training on `data.text_key`.

Decoder inputs are the targets shifted right behind the start token
([CLS]); the targets' padding mask is the decoder's (`tfmask.data.targets`).
"""

import tensorflow as tf

from tfmask.data import features as F
from tfmask.data import masking as M
from tfmask.data.pipeline import text_pipeline
from tfmask.data.targets import decoder_inputs
from tfmask.errors import ConfigError
from tfmask.models import Seq2SeqTransformerModel
from tfmask.models.seq2seq import SEQ2SEQ_INPUTS
from tfmask.tasks.base import AUTOTUNE, Task, load_documents
from tfmask.tasks.memory import StepMemory, activation_bytes, block_values, transformer_parameters
from tfmask.tasks.shared import encoder_kwargs


class Seq2SeqTransformerTask(Task):
    family = "seq2seq_transformer"
    strategies = ("none", "span_corruption")
    refusal_hint = ("an encoder-decoder translates (none) or denoises the source with "
                    "span_corruption (T5)")
    # Sources are framed text [SEP]; span corruption keeps one slot for its EOS.
    framing_tokens = ("[SEP]",)
    generates = True
    uses_decoder_layers = True
    default_normalize_first = True

    @classmethod
    def validate(cls, config):
        data, masking = config.data, config.masking
        if masking.strategy == "span_corruption" and config.train.generate_examples:
            raise ConfigError("train.generate_examples scores translations with BLEU; a "
                              "span_corruption run has none: remove it.")
        if masking.strategy == "span_corruption" and data.sequence_length < 3:
            raise ConfigError(f"data.sequence_length={data.sequence_length} is too short for "
                              "span_corruption, which needs a hidden token, a kept one and the "
                              "end-of-sequence token: set at least 3.")
        if masking.strategy != "span_corruption" and data.target_length < 2:
            raise ConfigError(f"data.target_length={data.target_length} leaves no room for a "
                              "target token besides [SEP]: set at least 2.")

    @classmethod
    def target_tokens(cls, config):
        """The decoder's length: data.target_length, or what span
        corruption's targets take."""
        data, masking = config.data, config.masking
        if masking.strategy != "span_corruption":
            return data.target_length
        return M.span_corruption_lengths(data.sequence_length, masking.noise_density,
                                         masking.mean_noise_span_length)[1]

    @classmethod
    def step_memory(cls, config):
        """The encoder's (`Task.step_memory`) plus a decoder over the
        targets: its blocks, self- and cross-attention scores and logits."""
        model, data = config.model, config.data
        encoder = super().step_memory(config)
        layers = model.decoder_num_layers or model.num_layers
        batch, source, target = data.batch_size, data.sequence_length, cls.target_tokens(config)
        hidden, inner, size = model.hidden_dim, model.intermediate_dim, activation_bytes(config)
        return StepMemory(
            parameters=encoder.parameters + transformer_parameters(
                0, target, hidden, inner, layers, cross=True),
            activations=encoder.activations + size * block_values(
                batch, target, hidden, inner, layers),
            attention=encoder.attention + size * layers * batch * model.num_heads * target * (
                target + source),
            blocks=encoder.blocks + layers,
            keys={"graph": ("model.num_layers", "model.decoder_num_layers")})

    @classmethod
    def output_values(cls, config):
        """Logits per example: every target token."""
        return cls.target_tokens(config) * config.data.vocabulary_size

    @classmethod
    def vocabulary_keys(cls, config):
        if config.masking.strategy == "span_corruption":
            return [config.data.text_key]
        return [config.data.source_key, config.data.target_key]

    def __init__(self, config, tokenizer=None, vocabulary_path=None):
        super().__init__(config, tokenizer, vocabulary_path)
        data, masking, tokenizer = config.data, config.masking, self.tokenizer
        self.start_id = tokenizer.cls_id
        self.corrupt = None
        self.target_length = data.target_length
        if masking.strategy == "span_corruption":
            _, self.target_length = M.span_corruption_lengths(
                data.sequence_length, masking.noise_density, masking.mean_noise_span_length)
            self.corrupt = M.SpanCorruption(
                tokenizer.sentinel_ids(min(100, data.sequence_length)), data.sequence_length,
                self.target_length, noise_density=masking.noise_density,
                mean_noise_span_length=masking.mean_noise_span_length,
                eos_id=tokenizer.sep_id, decoder_start_id=self.start_id, pad_id=tokenizer.pad_id)

    def required_features(self):
        data = self.config.data
        if self.config.masking.strategy == "span_corruption":
            return {"data.text_key": data.text_key}
        return {"data.source_key": data.source_key, "data.target_key": data.target_key}

    @property
    def tokens_per_batch(self):
        data = self.config.data
        return data.batch_size * (data.sequence_length + self.target_length)

    def batches(self, documents, batch_size, training):
        data = self.config.data
        if self.corrupt is not None:
            # The text itself, no [CLS]/[SEP]; one slot kept for the EOS that
            # span corruption appends.
            return text_pipeline(documents.map(lambda x: {data.text_key: x[data.text_key]}),
                                 self.tokenizer, data.sequence_length, batch_size,
                                 strategies=[self.corrupt], seed=self.masking_seed,
                                 dynamic=training, text_key=data.text_key, framing="none",
                                 reserve=1, drop_remainder=training)
        pairs = documents.batch(batch_size, drop_remainder=training)
        return pairs.map(self.translation_pair, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)

    def encode_sources(self, texts):
        """Source texts [B] -> (token_ids, padding_mask), framed as text [SEP]."""
        rows = self.tokenizer.encode(texts, self.config.data.sequence_length, framing="eos")
        return rows[F.TOKEN_IDS], rows[F.PADDING_MASK]

    def translation_pair(self, batch):
        data = self.config.data
        source, source_mask = self.encode_sources(batch[data.source_key])
        target = self.tokenizer.encode(batch[data.target_key], data.target_length, framing="eos")
        return {F.TOKEN_IDS: source, F.PADDING_MASK: source_mask,
                F.TARGETS: target[F.TOKEN_IDS],
                F.DECODER_TOKEN_IDS: decoder_inputs(target[F.TOKEN_IDS], self.start_id),
                F.DECODER_PADDING_MASK: target[F.PADDING_MASK]}

    def split_batch(self, batch):
        return ({k: batch[k] for k in SEQ2SEQ_INPUTS}, batch[F.TARGETS],
                tf.cast(batch[F.DECODER_PADDING_MASK], tf.float32))

    def build_model(self, dtype):
        config = self.config
        kwargs = encoder_kwargs(config, self.tokenizer)
        kwargs["max_length"] = max(config.data.sequence_length, self.target_length)
        return Seq2SeqTransformerModel(decoder_num_layers=config.model.decoder_num_layers,
                                       normalize_first=self.normalize_first(config), **kwargs,
                                       dtype=dtype)

    # ------------------------------------------------------------ generation
    def translate(self, model, texts, sampler="greedy", num_beams=4):
        """Texts -> generated texts (up to the first [SEP])."""
        output = self.serve(model, tf.constant(texts), sampler=sampler, num_beams=num_beams)
        return [t.decode("utf-8") for t in output["text"].numpy()]

    def serve(self, model, texts, top_k=5, sampler="greedy", num_beams=4):
        """Source texts [B] -> {"text": generated texts [B]}."""
        refusal = self.text_serving_refusal()
        if refusal:
            raise ValueError(refusal)
        source, mask = self.encode_sources(texts)
        output = model.generate(source, mask, max_length=self.target_length + 1,
                                start_id=self.start_id, sampler=sampler, num_beams=num_beams,
                                stop_token_ids=[self.tokenizer.sep_id])
        return {"text": self.text_until_end(output, start=1)}

    def extra_evaluation(self, model, split, prefix):
        """BLEU of the evaluation split (data.eval_split) only."""
        count = self.config.train.generate_examples
        if not count or self.corrupt is not None or split != self.config.data.eval_split:
            return {}
        return {f"{prefix}_bleu": self.corpus_bleu(model, count)}

    def corpus_bleu(self, model, count, sampler="greedy"):
        """sacreBLEU of translations of the first `count` evaluation pairs."""
        import sacrebleu

        data = self.config.data
        pairs = load_documents(self.config, data.eval_split).take(count)
        hypotheses, references = [], []
        for batch in pairs.batch(64):
            hypotheses += self.translate(model, batch[data.source_key], sampler)
            # References through the same normalisation as the hypotheses (lower
            # case, accents, punctuation split), so BLEU compares like with like.
            words = self.tokenizer.tokenize(batch[data.target_key])[F.WORDS].to_list()
            references += [" ".join(w.decode("utf-8") for w in row) for row in words]
        return float(sacrebleu.corpus_bleu(hypotheses, [references]).score)

    def text_serving_refusal(self):
        if self.corrupt is not None:
            return ("this run was trained with span_corruption (T5 denoising), which fills "
                    "sentinels rather than answering text; fine-tune it on a task first.")
        return None

    def predict(self, model, text, top_k=5, sampler="greedy", num_beams=4):
        refusal = self.text_serving_refusal()
        if refusal:  # before counting the text's pieces
            raise ValueError(refusal)
        self.count_pieces(text, self.config.data.sequence_length)  # framed as text [SEP]
        return self.translate(model, [text], sampler, num_beams)
