"""The LSTM encoder-decoder family: a bidirectional LSTM encoder and
`MaskedLSTMDecoder` (Luong attention). Its data, loss, BLEU and generation
are the Transformer seq2seq family's (translation or span corruption); only
the model differs."""

from tfmask.errors import ConfigError
from tfmask.models import Seq2SeqLSTMModel
from tfmask.tasks.memory import StepMemory, activation_bytes
from tfmask.tasks.seq2seq_transformer import Seq2SeqTransformerTask


class Seq2SeqLSTMTask(Seq2SeqTransformerTask):
    family = "seq2seq_lstm"
    uses_decoder_layers = False

    @classmethod
    def validate(cls, config):
        super().validate(config)
        if config.model.normalize_first is not None:
            raise ConfigError("model.normalize_first applies to Transformer blocks; "
                              "seq2seq_lstm has none: remove it.")
        if config.model.lstm_units % 2:
            raise ConfigError(f"model.lstm_units={config.model.lstm_units} must be even "
                              "(bidirectional).")

    @classmethod
    def step_memory(cls, config):
        """Embeddings, a bidirectional LSTM encoder, an LSTM decoder and the
        output layer; the four gates of every step kept for the backward
        pass, Luong attention scores and the logits."""
        model, data = config.model, config.data
        vocabulary, embedding, units = data.vocabulary_size, model.embedding_dim, model.lstm_units
        batch, source, target = data.batch_size, data.sequence_length, cls.target_tokens(config)
        lstm = 4 * (embedding + units) * units  # both directions of units / 2, or units
        size = activation_bytes(config)
        return StepMemory(
            parameters=vocabulary * embedding + 2 * lstm + units * vocabulary,
            activations=size * batch * ((source + target) * 4 * units + target * vocabulary),
            attention=size * batch * target * source, blocks=0,
            keys={"parameters": ("model.lstm_units", "model.embedding_dim",
                                 "data.vocabulary_size"),
                  "activations": ("data.batch_size", "data.sequence_length",
                                  "data.target_length", "model.lstm_units"),
                  "attention": ("data.sequence_length", "data.target_length",
                                "data.batch_size")})

    def build_model(self, dtype):
        model, data = self.config.model, self.config.data
        return Seq2SeqLSTMModel(self.tokenizer.vocabulary_size, model.embedding_dim,
                                model.lstm_units, dropout=model.dropout,
                                max_length=max(data.sequence_length, self.target_length),
                                dtype=dtype)
