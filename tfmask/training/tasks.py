"""From a config to data and a model: tokenizer, pipelines, batch splitting.

Each model family has one small builder here that wires the pieces of
`tfmask.data` together; the trainer only sees a `Task`:

    train            infinite, shuffled, masked, global batches with static shapes
    evaluation       the first train.eval_batches batches of the evaluation split
                     (masked with a fixed seed), cached after the first pass
    evaluation_for   split name -> the same for another split (train.extra_eval_splits)
    build_model      dtype policy -> keras.Model (called under the strategy scope)
    split_batch      batch -> (model inputs, labels, loss weights or None)
"""

import dataclasses
import os
from typing import Callable

import tensorflow as tf

from tfmask import datasets
from tfmask.data import features as F
from tfmask.data import masking as M
from tfmask.data.packing import pack
from tfmask.data.pipeline import mask_dataset, text_pipeline, tokenize_batch
from tfmask.models import (
    CausalLMModel,
    ClassifierModel,
    MaskedLMModel,
    Seq2SeqLSTMModel,
    Seq2SeqTransformerModel,
)
from tfmask.models.pretrained import (
    from_pretrained,
    pretrained_directory,
    pretrained_vocabulary,
    pretrained_vocabulary_size,
)
from tfmask.models.registry import Registry
from tfmask.text import WordPieceTokenizer, train_wordpiece_vocabulary
from tfmask.training.config import padding_free

AUTOTUNE = tf.data.AUTOTUNE
VOCABULARY_TRAINING_DOCUMENTS = 200_000


@dataclasses.dataclass
class Task:
    train: tf.data.Dataset
    evaluation: tf.data.Dataset
    build_model: Callable
    split_batch: Callable
    tokenizer: WordPieceTokenizer
    vocabulary_path: str
    token_level: bool
    tokens_per_batch: int
    evaluation_for: Callable = None  # split name -> batches of that split
    extra_evaluation: Callable = lambda model: {}


# --------------------------------------------------------------- tokenizer
def _vocabulary_texts(config):
    data = config.data
    documents = load_documents(config, data.train_split)
    if config.model.family.startswith("seq2seq") and config.masking.strategy != "span_corruption":
        keys = [data.source_key, data.target_key]
    elif data.words_key:
        keys = [data.words_key]
    else:
        keys = [data.text_key]
    for example in documents.take(VOCABULARY_TRAINING_DOCUMENTS).as_numpy_iterator():
        for key in keys:
            value = example[key]
            if isinstance(value, bytes):
                yield value.decode("utf-8")
            else:  # words
                yield " ".join(w.decode("utf-8") for w in value)


def build_tokenizer(config):
    vocabulary = config.data.vocabulary
    if vocabulary == "pretrained":
        path = pretrained_vocabulary(pretrained_directory(config.model.pretrained))
    elif vocabulary == "train":
        path = train_wordpiece_vocabulary(_vocabulary_texts(config), config.data.vocabulary_size,
                                          lowercase=config.data.lowercase)
    else:
        path = vocabulary
    return WordPieceTokenizer(path, lowercase=config.data.lowercase), path


# --------------------------------------------------------------- masking
def mlm_strategy(config, tokenizer):
    masking = config.masking
    classes = {"random": M.RandomTokenMasking, "whole_word": M.WholeWordMasking,
               "span": M.SpanMasking, "entity": M.EntityMasking}
    kwargs = dict(rate=masking.rate, mask_ratio=masking.mask_ratio,
                  random_ratio=masking.random_ratio, max_predictions=masking.max_predictions,
                  special_token_ids=tokenizer.special_token_ids(), pad_id=tokenizer.pad_id)
    if masking.strategy == "entity":
        kwargs["entity_probability"] = masking.entity_probability
    return classes[masking.strategy](tokenizer.vocabulary_size, tokenizer.mask_id, **kwargs)


def input_strategies(config, tokenizer):
    """Strategies applied to classifier inputs: nuisance terms or token noise."""
    masking = config.masking
    if masking.strategy == "term":
        return [M.TermMasking(terms=masking.terms, patterns=masking.patterns,
                              replacement=masking.term_replacement, mask_token_id=tokenizer.mask_id,
                              vocabulary_size=tokenizer.vocabulary_size,
                              special_token_ids=tokenizer.special_token_ids())]
    if masking.strategy in ("random", "whole_word", "span"):
        return [mlm_strategy(config, tokenizer)]
    return []


# --------------------------------------------------------------- pipelines
def load_documents(config, split):
    """One dataset, or a mixture for names joined by "+" ("austen+wordnet").

    A mixture keeps the features all its parts share. Finite splits are
    concatenated (evaluation sees every part in full)."""
    data = config.data
    parts = [datasets.load(name, split=split, **data.dataset_options)
             for name in data.name.split("+")]
    if len(parts) == 1:
        return parts[0]
    shared = set.intersection(*(set(p.element_spec) for p in parts))
    parts = [p.map(lambda x: {k: x[k] for k in sorted(shared)}) for p in parts]
    mixture = parts[0]
    for part in parts[1:]:
        mixture = mixture.concatenate(part)
    return mixture


def _documents(config, split, training):
    documents = load_documents(config, split)
    if training:
        # Shuffle, then repeat: every epoch is a fresh permutation, batches cross
        # epoch boundaries, and the order is a pure function of the seed (exact
        # resume skips into it). Buffer 0 = the whole split, an exact shuffle
        # that also interleaves the parts of a mixture (up to 2^20 documents;
        # tf.data reserves the buffer, so it is not unbounded).
        buffer = config.data.shuffle_buffer or 1 << 20
        documents = documents.shuffle(buffer, seed=config.train.seed,
                                      reshuffle_each_iteration=True).repeat()
    elif "+" in config.data.name:
        # A mixture is its parts concatenated; evaluating its first batches
        # would see only the first part. One fixed order mixes them.
        documents = documents.shuffle(1 << 20, seed=0, reshuffle_each_iteration=False)
    return documents


def _eval_batches(config, documents_to_batches, split=None):
    split = split or config.data.eval_split
    # take() before cache(): the cache then fills completely and is reused.
    # Consumers must read it to the end (no further take()), or tf.data
    # discards the partial cache and rebuilds the batches every evaluation.
    return documents_to_batches(_documents(config, split, training=False),
                                config.data.eval_batch_size, dynamic=False) \
        .take(config.train.eval_batches).cache()


def _evaluation(config, documents_to_batches):
    """The evaluation split's batches, and a factory for any other split."""
    return dict(evaluation=_eval_batches(config, documents_to_batches),
                evaluation_for=lambda split: _eval_batches(config, documents_to_batches, split))


def _packed_mlm_batches(config, tokenizer, documents, batch_size, strategy, dynamic):
    """Documents -> [CLS] doc [SEP] token rows -> packed rows -> batches -> masks."""
    data = config.data

    def tokenize(batch):
        dense = tokenize_batch(batch, tokenizer, data.sequence_length, text_key=data.text_key,
                               words_key=data.words_key)
        mask = dense[F.PADDING_MASK]
        return {F.TOKEN_IDS: tf.ragged.boolean_mask(dense[F.TOKEN_IDS], mask),
                F.WORD_IDS: tf.ragged.boolean_mask(dense[F.WORD_IDS], mask)}

    rows = documents.batch(256).map(tokenize, num_parallel_calls=AUTOTUNE).unbatch()
    packed = pack(rows, data.sequence_length, keys=(F.TOKEN_IDS, F.WORD_IDS),
                  pad_values={F.WORD_IDS: -1})
    packed = packed.map(_row_unique_words).batch(batch_size, drop_remainder=True)
    return mask_dataset(packed, strategy, seed=config.train.seed, dynamic=dynamic)


def _row_unique_words(row):
    """Packed rows repeat word ids (every document starts at 0): renumber so a
    word id names one word of one document, as whole-word masking needs."""
    word_ids, segments = row[F.WORD_IDS], row[F.SEGMENT_IDS]
    previous = tf.concat([[-2], word_ids[:-1]], 0)
    previous_segment = tf.concat([[-1], segments[:-1]], 0)
    starts = (word_ids >= 0) & ((word_ids != previous) | (segments != previous_segment))
    renumbered = tf.cumsum(tf.cast(starts, tf.int32)) - 1
    return {**row, F.WORD_IDS: tf.where(word_ids >= 0, renumbered, -1)}


def mlm_task(config, tokenizer):
    strategy = mlm_strategy(config, tokenizer)
    data = config.data

    def batches(documents, batch_size, dynamic=True):
        if data.pack:
            return _packed_mlm_batches(config, tokenizer, documents, batch_size, strategy, dynamic)
        return text_pipeline(documents, tokenizer, data.sequence_length, batch_size,
                             strategies=[strategy], seed=config.train.seed, dynamic=dynamic,
                             words_key=data.words_key)

    def split(batch):
        keys = [F.TOKEN_IDS, F.MASK_POSITIONS] + ([F.SEGMENT_IDS, F.POSITION_IDS] if data.pack else [])
        return {k: batch[k] for k in keys}, batch[F.MASK_IDS], batch[F.MASK_WEIGHTS]

    def build(dtype):
        kwargs = _encoder_kwargs(config, tokenizer)
        if config.model.pretrained:
            model, _ = from_pretrained(MaskedLMModel, pretrained_directory(config.model.pretrained),
                                       packed=data.pack, max_predictions=config.masking.max_predictions,
                                       dropout=config.model.dropout,
                                       padding_free=padding_free(config), dtype=dtype)
            return model
        return MaskedLMModel(**kwargs, packed=data.pack,
                             max_predictions=config.masking.max_predictions,
                             padding_free=padding_free(config), dtype=dtype)

    if config.masking.dynamic:
        train = batches(_documents(config, data.train_split, True), data.batch_size)
    else:
        train = _static_masked_rows(config, batches)
    return dict(train=train, **_evaluation(config, batches), build_model=build,
                split_batch=split, token_level=True)


def _static_masked_rows(config, documents_to_batches):
    """BERT's static masking: the training split is masked once (rows packed
    once), cached, and every epoch reshuffles those same masked rows. The
    cache holds the whole masked split in memory."""
    data = config.data
    rows = documents_to_batches(load_documents(config, data.train_split), data.batch_size,
                                dynamic=False).unbatch().cache()
    buffer = data.shuffle_buffer or 1 << 20
    rows = rows.shuffle(buffer, seed=config.train.seed, reshuffle_each_iteration=True).repeat()
    return rows.batch(data.batch_size, drop_remainder=True).prefetch(AUTOTUNE)


def classifier_task(config, tokenizer):
    data = config.data
    strategies = input_strategies(config, tokenizer)

    def batches(documents, batch_size, dynamic=True):
        documents = documents.map(lambda x: {data.text_key: x[data.text_key],
                                             F.LABELS: x[data.label_key]})
        return text_pipeline(documents, tokenizer, data.sequence_length, batch_size,
                             strategies=strategies if dynamic else [
                                 s for s in strategies if isinstance(s, M.TermMasking)],
                             seed=config.train.seed, dynamic=dynamic, text_key=data.text_key)

    def split(batch):
        return {F.TOKEN_IDS: batch[F.TOKEN_IDS]}, batch[F.LABELS], None

    def build(dtype):
        if config.model.pretrained:
            model, _ = from_pretrained(ClassifierModel, pretrained_directory(config.model.pretrained),
                                       num_classes=config.model.num_classes,
                                       pooling=config.model.pooling, dropout=config.model.dropout,
                                       padding_free=padding_free(config), dtype=dtype)
            return model
        return ClassifierModel(num_classes=config.model.num_classes, pooling=config.model.pooling,
                               **_encoder_kwargs(config, tokenizer),
                               padding_free=padding_free(config), dtype=dtype)

    return dict(train=batches(_documents(config, data.train_split, True), data.batch_size),
                **_evaluation(config, batches), build_model=build, split_batch=split,
                token_level=False)


def _encoder_kwargs(config, tokenizer):
    model = config.model
    return dict(vocabulary_size=tokenizer.vocabulary_size, num_layers=model.num_layers,
                num_heads=model.num_heads, hidden_dim=model.hidden_dim,
                intermediate_dim=model.intermediate_dim, max_length=config.data.sequence_length,
                dropout=model.dropout, normalize_first=model.normalize_first,
                position=model.position, pad_id=tokenizer.pad_id)


def _tokens_with_eos(tokenizer, texts, length):
    """Texts [B] -> dense ids [B, length]: pieces then [SEP] as end of sequence."""
    ids = tokenizer.tokenize(texts)[F.TOKEN_IDS][:, : length - 1]
    eos = tf.fill([ids.nrows(), 1], tokenizer.sep_id)
    return tf.concat([ids, eos], axis=1).to_tensor(tokenizer.pad_id, shape=[None, length])


def seq2seq_task(config, tokenizer):
    data, masking = config.data, config.masking
    pad = tokenizer.pad_id
    corrupt = None
    if masking.strategy == "span_corruption":
        input_length, target_length = M.span_corruption_lengths(
            data.sequence_length, masking.noise_density, masking.mean_noise_span_length)
        sentinels = tokenizer.sentinel_ids(min(100, data.sequence_length))
        corrupt = M.SpanCorruption(sentinels, data.sequence_length, target_length,
                                   noise_density=masking.noise_density,
                                   mean_noise_span_length=masking.mean_noise_span_length,
                                   eos_id=tokenizer.sep_id, pad_id=pad)

    def translation(batch):
        source = _tokens_with_eos(tokenizer, batch[data.source_key], data.sequence_length)
        targets = _tokens_with_eos(tokenizer, batch[data.target_key], data.target_length)
        start = tf.fill([tf.shape(targets)[0], 1], pad)
        return {F.TOKEN_IDS: source, F.TARGETS: targets,
                F.DECODER_TOKEN_IDS: tf.concat([start, targets[:, :-1]], axis=1)}

    def batches(documents, batch_size, dynamic=True):
        documents = documents.batch(batch_size, drop_remainder=True)
        if corrupt is None:
            return documents.map(translation, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)
        # Span corruption: the text itself, no [CLS]/[SEP], truncated.
        tokens = documents.map(
            lambda b: {F.TOKEN_IDS: tokenizer.tokenize(b[data.text_key])[F.TOKEN_IDS][
                :, : data.sequence_length - 1].to_tensor(pad, shape=[None, data.sequence_length])},
            num_parallel_calls=AUTOTUNE)
        return mask_dataset(tokens, corrupt, seed=config.train.seed, dynamic=dynamic).prefetch(AUTOTUNE)

    def split(batch):
        return ({F.TOKEN_IDS: batch[F.TOKEN_IDS], F.DECODER_TOKEN_IDS: batch[F.DECODER_TOKEN_IDS]},
                batch[F.TARGETS], tf.cast(batch[F.TARGETS] != pad, tf.float32))

    def build(dtype):
        model = config.model
        if config.model.family == "seq2seq_lstm":
            return Seq2SeqLSTMModel(tokenizer.vocabulary_size, model.embedding_dim, model.lstm_units,
                                    dropout=model.dropout, pad_id=pad,
                                    max_length=max(data.sequence_length, data.target_length),
                                    dtype=dtype)
        kwargs = _encoder_kwargs(config, tokenizer)
        kwargs["max_length"] = max(data.sequence_length, data.target_length)
        kwargs.pop("normalize_first")
        return Seq2SeqTransformerModel(decoder_num_layers=model.decoder_num_layers,
                                       normalize_first=True, **kwargs, dtype=dtype)

    def bleu(keras_model):
        count = config.train.generate_examples
        if not count or corrupt is not None:
            return {}
        return {"eval_bleu": corpus_bleu(keras_model, tokenizer, config, count)}

    return dict(train=batches(_documents(config, data.train_split, True), data.batch_size),
                **_evaluation(config, batches), build_model=build, split_batch=split,
                token_level=True, extra_evaluation=bleu)


def corpus_bleu(model, tokenizer, config, count, sampler="greedy"):
    """sacreBLEU of greedy translations of the first `count` evaluation pairs."""
    import sacrebleu

    data = config.data
    pairs = load_documents(config, data.eval_split).take(count)
    hypotheses, references = [], []
    for batch in pairs.batch(64):
        source = _tokens_with_eos(tokenizer, batch[data.source_key], data.sequence_length)
        output = model.generate(source, max_length=data.target_length + 1, sampler=sampler,
                                stop_token_ids=[tokenizer.sep_id])
        for row in tf.convert_to_tensor(output).numpy()[:, 1:]:
            ids = [int(t) for t in row]
            ids = ids[: ids.index(tokenizer.sep_id)] if tokenizer.sep_id in ids else ids
            hypotheses.append(tokenizer.detokenize([ids]).numpy()[0].decode("utf-8"))
        # References through the same normalisation as the hypotheses (lower
        # case, accents, punctuation split), so BLEU compares like with like.
        words = tokenizer.tokenize(batch[data.target_key])[F.WORDS].to_list()
        references += [" ".join(w.decode("utf-8") for w in row) for row in words]
    return float(sacrebleu.corpus_bleu(hypotheses, [references]).score)


def causal_lm_task(config, tokenizer):
    data, masking = config.data, config.masking
    pad = tokenizer.pad_id
    prompt = None
    if masking.strategy == "prompt":
        marker = tokenizer.tokenize([masking.response_marker])[F.TOKEN_IDS].to_list()[0]
        prompt = M.PromptLossMasking(response_marker=marker, pad_id=pad)

    def causal(batch):
        ids = batch[F.TOKEN_IDS]
        labels = tf.pad(ids[:, 1:], [[0, 0], [0, 1]], constant_values=pad)
        weights = tf.cast(labels != pad, tf.float32)
        if F.SEGMENT_IDS in batch:  # never predict across a document boundary
            segments = batch[F.SEGMENT_IDS]
            same = tf.pad(segments[:, 1:], [[0, 0], [0, 1]]) == segments
            weights = weights * tf.cast(same, tf.float32)
        return {**batch, F.LABELS: labels, F.LOSS_WEIGHTS: weights}

    def batches(documents, batch_size, dynamic=True):
        text = data.text_key
        if data.pack:
            rows = documents.batch(256).map(
                lambda b: {F.TOKEN_IDS: tf.RaggedTensor.from_tensor(
                    _tokens_with_eos(tokenizer, b[text], data.sequence_length), padding=pad)},
                num_parallel_calls=AUTOTUNE).unbatch()
            rows = pack(rows, data.sequence_length, keys=(F.TOKEN_IDS,))
            return rows.batch(batch_size, drop_remainder=True).map(causal).prefetch(AUTOTUNE)
        tokens = documents.batch(batch_size, drop_remainder=True).map(
            lambda b: {F.TOKEN_IDS: _tokens_with_eos(tokenizer, b[text], data.sequence_length)},
            num_parallel_calls=AUTOTUNE)
        tokens = tokens.map(prompt) if prompt is not None else tokens.map(causal)
        return tokens.prefetch(AUTOTUNE)

    def split(batch):
        keys = [F.TOKEN_IDS] + ([F.SEGMENT_IDS, F.POSITION_IDS] if data.pack else [])
        return {k: batch[k] for k in keys}, batch[F.LABELS], batch[F.LOSS_WEIGHTS]

    def build(dtype):
        kwargs = _encoder_kwargs(config, tokenizer)
        kwargs.pop("normalize_first")
        return CausalLMModel(**kwargs, packed=data.pack, dtype=dtype)

    return dict(train=batches(_documents(config, data.train_split, True), data.batch_size),
                **_evaluation(config, batches), build_model=build, split_batch=split,
                token_level=True)


# Model family -> the function that wires its data and model (one place).
BUILDERS = Registry("model family")
for _name, _builder in (("mlm", mlm_task), ("classifier", classifier_task),
                        ("seq2seq_transformer", seq2seq_task), ("seq2seq_lstm", seq2seq_task),
                        ("causal_lm", causal_lm_task)):
    BUILDERS.add(_name, _builder)
del _name, _builder


def build_task(config, output_dir=None):
    tokenizer, vocabulary_path = build_tokenizer(config)
    if config.model.pretrained and config.data.vocabulary != "pretrained":
        expected = pretrained_vocabulary_size(pretrained_directory(config.model.pretrained))
        if expected != tokenizer.vocabulary_size:
            raise ValueError(
                f"model.pretrained has a {expected}-token vocabulary but data.vocabulary gives "
                f"{tokenizer.vocabulary_size}; set data.vocabulary: pretrained.")
    parts = BUILDERS.get(config.model.family)(config, tokenizer)
    data = config.data
    tokens = data.batch_size * data.sequence_length
    if config.model.family.startswith("seq2seq"):
        tokens += data.batch_size * data.target_length
    return Task(tokenizer=tokenizer, vocabulary_path=vocabulary_path, tokens_per_batch=tokens,
                **parts)
