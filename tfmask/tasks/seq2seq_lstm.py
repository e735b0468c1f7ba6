"""The LSTM encoder-decoder family: a bidirectional LSTM encoder and
`MaskedLSTMDecoder` (Luong attention). Its data, loss, BLEU and generation
are the Transformer seq2seq family's (translation or span corruption); only
the model differs."""

from tfmask.errors import ConfigError
from tfmask.models import Seq2SeqLSTMModel
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

    def build_model(self, dtype):
        model, data = self.config.model, self.config.data
        return Seq2SeqLSTMModel(self.tokenizer.vocabulary_size, model.embedding_dim,
                                model.lstm_units, dropout=model.dropout,
                                max_length=max(data.sequence_length, self.target_length),
                                dtype=dtype)
