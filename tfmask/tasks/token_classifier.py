"""The token-classifier family: an encoder fine-tuned to tag words (NER).

Data: word-level `words` (data.words_key) and `tags`, one tag per word, in
BIO, IOB1, IOBES or BILOU (`data.tag_scheme`, read from the training split
when unset): `wnut16`, `peoples_daily`, a CoNLL or JSONL file. The tag set
(`model.tags`) is read from the training split too: O, then every prefix of
the scheme for each entity type. Both are written into the run's config.yaml.

Words are tagged the way BERT's NER recipe does (`tfmask.data.tagging`): the
first word piece of a word carries its tag, the others are neither trained
nor scored; `data.tag_unit: character` tags characters instead (Chinese:
one unit per character, a word's B- on its first character and I- on the
rest). A document longer than a row is read through overlapping windows
(`data.window_stride`), never truncated.

Graded as the field grades NER: entity-level micro precision / recall / F1
and F1 per type (`tfmask.metrics.entity_scores`, conlleval's rules), plus
token accuracy. Prediction and the SavedModel return the entities of raw
text with their types and character offsets.

Inputs are masked only as training noise (`random`, `whole_word`, `span`,
`entity`: hidden tokens keep their tags, so the model learns to tag from
context); evaluation and prediction see the clean text.
"""

import collections

import tensorflow as tf

from tfmask.config import check_choice
from tfmask.data import features as F
from tfmask.data import tagging as T
from tfmask.data.pipeline import aligned_tags, mask_dataset
from tfmask.errors import ConfigError, RunError
from tfmask.guards import guarded
from tfmask.metrics import entity_scores
from tfmask.models import TokenClassifierModel
from tfmask.models.pretrained import from_pretrained
from tfmask.tasks.base import AUTOTUNE, Task, load_documents
from tfmask.tasks.shared import (
    check_pretrained_architecture,
    encoder_kwargs,
    mlm_strategy,
    pretrained_directory,
    with_encoder_training,
)

TAGS = "tags"  # the word-level tag feature (as entity masking reads it)
DOCUMENT = "document"  # index of a window's document in its split
NOISE = ("random", "whole_word", "span", "entity")
FIX_DATA = ("use data with word-level `words` and `tags` (wnut16, peoples_daily, a .conll "
            "file, or JSONL declared with data.dataset_options.extra_fields)")


def tagged_documents(config, split):
    """(words, tags) per document of `split`, each a list of strings. Read
    anew each time (a file may change between runs of one process)."""
    data = config.data
    documents = load_documents(config, split)
    available = sorted(documents.element_spec)
    for what, feature in (("data.words_key", data.words_key), ("word-level tags", TAGS)):
        if feature not in available:
            raise RunError(f"data.name={data.name} split {split!r} has no {feature!r} "
                           f"feature ({what}), which model.family=token_classifier reads; "
                           f"it has {', '.join(available)}: {FIX_DATA}.")
    pairs = documents.map(lambda d: {"words": d[data.words_key], "tags": d[TAGS]})
    rows = []
    for batch in pairs.ragged_batch(1024).as_numpy_iterator():
        for words, tags in zip(batch["words"], batch["tags"]):
            rows.append(([w.decode("utf-8") for w in words], [t.decode("utf-8") for t in tags]))
    return rows


def check_tagged(rows, where, scheme=None, tags=None):
    """One line for the first problem of tagged documents: words and tags of
    different lengths, a malformed tag, a tag outside `tags`, an I- that
    opens an entity where `scheme` is BIO. Returns (prefixes, types, whether
    an I- opens an entity)."""
    prefixes, types, stray = set(), set(), False
    known = set(tags) if tags else None
    for index, (words, row_tags) in enumerate(rows):
        if len(words) != len(row_tags):
            raise RunError(f"{where} document {index} has {len(words)} words but "
                           f"{len(row_tags)} tags; every word needs one tag: fix the data.")
        for tag in row_tags:
            parts = T.split_tag(tag)
            if parts is None:
                raise RunError(f"{where} document {index} has the tag {tag!r}, neither O nor "
                               "PREFIX-TYPE (B-PER, I-LOC, ...); token classification reads "
                               "BIO, IOB1, IOBES or BILOU tags: fix the data.")
            if known is not None and tag not in known:
                raise RunError(f"{where} document {index} has the tag {tag!r}, which the model "
                               f"does not predict (model.tags: {', '.join(tags)}); add it to "
                               "model.tags or fix the data.")
            prefixes.add(parts[0])
            if parts[1]:
                types.add(parts[1])
        position = T.stray_inside(row_tags)
        if position is not None:
            stray = True
            if scheme == "bio":
                raise RunError(
                    f"{where} document {index} word {position} is tagged {row_tags[position]!r}"
                    " but continues no entity, which data.tag_scheme=bio forbids (an entity "
                    "starts with B-); set data.tag_scheme: iob1 if the data is IOB1, or fix it.")
    prefixes.discard("O")
    if scheme and not prefixes <= set(T.SCHEMES[scheme]):
        extra = sorted(prefixes - set(T.SCHEMES[scheme]))
        raise RunError(f"{where} has {'/'.join(p + '-' for p in extra)} tags, which "
                       f"data.tag_scheme={scheme} does not use (it has "
                       f"{'/'.join(p + '-' for p in T.SCHEMES[scheme])}); set the data's scheme.")
    return prefixes, types, stray


class TokenClassifierTask(Task):
    family = "token_classifier"
    strategies = ("none",) + NOISE
    refusal_hint = "a token classifier tags every word of clean text"
    refusal_reasons = {"term": "term hides masking.terms / masking.patterns in training, "
                               "evaluation and prediction alike, but a token classifier must "
                               "see the names it tags (hide entities as training noise with "
                               "entity)"}
    token_level = False  # tags, not a language model: no perplexity
    supports_pretrained = True
    supports_words_key = True
    supports_padding_free = True
    supports_freezing = True
    untied_embedding = True
    tags_tokens = True

    # ------------------------------------------------------------ config
    @classmethod
    def validate(cls, config):
        check_pretrained_architecture(config)
        data, model = config.data, config.model
        if not data.words_key:
            raise ConfigError("model.family=token_classifier tags words: set data.words_key "
                              f"(e.g. words) and {FIX_DATA}.")
        check_choice("data.tag_unit", data.tag_unit, T.TAG_UNITS)
        if data.tag_scheme is not None:
            check_choice("data.tag_scheme", data.tag_scheme, tuple(T.SCHEMES))
        width = data.sequence_length - 2
        if not 0 <= data.window_stride <= width:
            raise ConfigError(f"data.window_stride={data.window_stride} must be in [1, {width}] "
                              f"(data.sequence_length={data.sequence_length} minus [CLS] and "
                              "[SEP]), or 0 for half a row.")
        if model.tags:
            malformed = [t for t in model.tags if not isinstance(t, str) or T.split_tag(t) is None]
            if malformed or "O" not in model.tags or len(set(model.tags)) != len(model.tags):
                raise ConfigError(
                    f"model.tags={model.tags} must be distinct PREFIX-TYPE tags and O "
                    f"{'(not ' + repr(malformed[0]) + ')' if malformed else ''}; remove it to "
                    "read them from the training split.")

    @classmethod
    def resolve(cls, config, check_data=True):
        """The family defaults, then `data.tag_scheme` and `model.tags` read
        from the training split when unset (written into config.yaml, so a
        trained run predicts without its data)."""
        import dataclasses

        config = super().resolve(config, check_data)
        data, model = config.data, config.model
        if data.tag_scheme and model.tags:
            return config
        if not check_data:  # a trained run's config.yaml has both; this reads no data
            return config
        if not data.words_key:
            cls.validate(config)  # the one line naming data.words_key
        where = f"data.name={data.name} split {data.train_split!r}"
        rows = tagged_documents(config, data.train_split)
        prefixes, types, stray = check_tagged(rows, where, data.tag_scheme)
        scheme = data.tag_scheme or T.scheme_of(prefixes, stray)
        if scheme is None:
            raise ConfigError(f"{where} mixes IOBES (E-/S-) and BILOU (L-/U-) tags; set "
                              "data.tag_scheme and fix the data.")
        if not types:
            raise RunError(f"{where} has no entity tags (every word is O); nothing to learn: "
                           f"{FIX_DATA}.")
        return dataclasses.replace(
            config, data=dataclasses.replace(data, tag_scheme=scheme),
            model=dataclasses.replace(model, tags=list(model.tags) or T.tag_set(types, scheme)))

    @classmethod
    def output_values(cls, config):
        """Logits per example: one per tag at every position."""
        return config.data.sequence_length * max(len(config.model.tags), 1)

    def check_documents(self, split):
        """The base checks, then every document of `split`: one tag per word,
        well-formed tags of data.tag_scheme, none outside model.tags."""
        super().check_documents(split)
        config = self.config
        check_tagged(tagged_documents(config, split), f"data.name={config.data.name} split "
                     f"{split!r}", config.data.tag_scheme, config.model.tags)

    def required_features(self):
        return {**super().required_features(), "word-level tags": TAGS}

    def __init__(self, config, tokenizer=None, vocabulary_path=None):
        super().__init__(config, tokenizer, vocabulary_path)
        strategy = config.masking.strategy
        self.noise = mlm_strategy(config.masking, self.tokenizer) if strategy in NOISE else None
        tags = list(config.model.tags)
        if not tags or not config.data.tag_scheme:
            raise ConfigError("model.tags and data.tag_scheme are unset: resolve the config "
                              "with its data (load_config) to read them from the training split.")
        self.tags = tags
        self.outside_id = tags.index("O")
        self._tag_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(tags), tf.range(len(tags))),
            default_value=-2)

    @property
    def window_stride(self):
        data = self.config.data
        return data.window_stride or max(1, (data.sequence_length - 2) // 2)

    # ------------------------------------------------------------ data
    def batches(self, documents, batch_size, training):
        """Documents -> windows of word pieces, each piece that carries a tag
        labelled (`labels`, -1 elsewhere) -> batches; noise in training only."""
        words_key = self.config.data.words_key

        def select(index, document):
            return {DOCUMENT: index, F.WORDS: document[words_key], TAGS: document[TAGS]}

        rows = (documents.enumerate().map(select).ragged_batch(64)
                .map(self._document_rows, num_parallel_calls=AUTOTUNE, deterministic=True)
                .unbatch().batch(batch_size, drop_remainder=training))
        if training and self.noise is not None:
            rows = mask_dataset(rows, self.noise, seed=self.masking_seed)
        keep = (F.TOKEN_IDS, F.PADDING_MASK, F.WORD_IDS, F.LABELS, DOCUMENT)
        return rows.map(lambda batch: {k: batch[k] for k in keep}).prefetch(AUTOTUNE)

    # Not converted by AutoGraph (nor `_rows`): no Python control flow on
    # tensors, and converting the ragged ops beneath cost ~4 s per pipeline.
    @tf.autograph.experimental.do_not_convert
    def _document_rows(self, batch):
        words = batch[F.WORDS]
        tags = aligned_tags(words, batch[TAGS])
        if self.config.data.tag_unit == "character":
            words, tags = T.character_units(words, tags)
        ids = tags.with_flat_values(self._tag_table.lookup(tags.flat_values))
        unknown = tf.debugging.Assert(
            tf.reduce_all(ids.flat_values >= 0),
            ["a document has a tag outside model.tags; add it there or fix the data. Tags:",
             tags.flat_values], summarize=50)
        ids = guarded(ids, unknown)
        entity = self.config.masking.strategy == "entity"
        return self._rows(words, ids, batch[DOCUMENT], tags if entity else None)

    @tf.autograph.experimental.do_not_convert
    def _rows(self, units, tag_ids, document, tags=None):
        """Units [B, U] (ragged strings) and their tag ids -> framed windows
        [K, S]: token_ids, padding_mask, word_ids (the unit of each piece),
        labels (the tag id at each unit's first piece in the window that
        owns it, -1 elsewhere), document; entity_ids when `tags` are given."""
        tokens = self.tokenizer.tokenize_words(units, empty_as_unk=True)
        word_ids = tokens[F.WORD_IDS]

        def per_piece(values):  # unit-level ragged [B, U] -> per piece [B, N]
            index = tf.gather(values.row_splits[:-1], word_ids.value_rowids())
            return word_ids.with_flat_values(
                tf.gather(values.flat_values, index + tf.cast(word_ids.flat_values, tf.int64)))

        labels = word_ids.with_flat_values(tf.where(  # flat: ragged where traces slowly
            T.first_pieces(word_ids).flat_values, per_piece(tag_ids).flat_values, T.IGNORED))
        features = {F.TOKEN_IDS: tokens[F.TOKEN_IDS], F.WORD_IDS: word_ids, F.LABELS: labels}
        if tags is not None:
            features[F.ENTITY_IDS] = per_piece(T.entity_ids_from_bio(tags))
        length = self.config.data.sequence_length
        pieces, row, owned = T.windows(features, length - 2, self.window_stride)
        rows = self.tokenizer.frame(pieces[F.TOKEN_IDS], length, word_ids=pieces[F.WORD_IDS])
        rows.pop(F.TRUNCATED)

        labels = owned.with_flat_values(
            tf.where(owned.flat_values, pieces[F.LABELS].flat_values, T.IGNORED))
        rows[F.LABELS] = T.framed(labels, length - 2)
        if tags is not None:
            rows[F.ENTITY_IDS] = T.framed(pieces[F.ENTITY_IDS], length - 2)
        rows[DOCUMENT] = tf.gather(document, row)
        return rows

    def split_batch(self, batch):
        labels = batch[F.LABELS]
        return ({F.TOKEN_IDS: batch[F.TOKEN_IDS], F.PADDING_MASK: batch[F.PADDING_MASK]},
                tf.maximum(labels, 0), tf.cast(labels >= 0, tf.float32))

    # ------------------------------------------------------------ model
    def build_model(self, dtype):
        config = self.config
        common = dict(num_tags=len(self.tags), padding_free=self.padding_free(config),
                      dtype=dtype)
        if config.model.pretrained:
            model, _ = from_pretrained(TokenClassifierModel,
                                       pretrained_directory(config.model.pretrained),
                                       dropout=config.model.dropout, **common)
            return with_encoder_training(model, config)
        model = TokenClassifierModel(**encoder_kwargs(config, self.tokenizer), **common,
                                     normalize_first=self.normalize_first(config))
        return with_encoder_training(model, config)

    # ------------------------------------------------------------ evaluation
    def extra_evaluation(self, model, split, prefix):
        """Entity precision / recall / F1 (micro) and F1 per type over the
        whole of `split`, every document read through its windows."""
        true, predicted = self.tag_sequences(model, split)
        scores = entity_scores(true, predicted, self.config.data.tag_scheme)
        return {f"{prefix}_{key}": value for key, value in scores.items()}

    def tag_sequences(self, model, split):
        """(gold, predicted) tag sequences, one per document of `split`."""
        @tf.function
        def best(inputs):
            return tf.argmax(model(inputs, training=False), axis=-1, output_type=tf.int32)

        gold, guess = collections.defaultdict(dict), collections.defaultdict(dict)
        batches = self.batches(self.documents(split, training=False),
                               self.config.data.eval_batch_size, training=False)
        for batch in batches:
            inputs, labels, _ = self.split_batch(batch)
            predicted, labels = best(inputs).numpy(), batch[F.LABELS].numpy()
            documents, units = batch[DOCUMENT].numpy(), batch[F.WORD_IDS].numpy()
            for row, position in zip(*(labels >= 0).nonzero()):
                document, unit = documents[row], units[row, position]
                gold[document][unit] = self.tags[labels[row, position]]
                guess[document][unit] = self.tags[predicted[row, position]]
        order = sorted(gold)
        return ([[gold[d][u] for u in sorted(gold[d])] for d in order],
                [[guess[d][u] for u in sorted(gold[d])] for d in order])

    # ------------------------------------------------------------ prediction
    def serve(self, model, texts, top_k=5, sampler="greedy", num_beams=4):
        """Raw texts [B] -> the tag of every unit (`tags` [B, U], "" past a
        text's end; units split as in training, see `data.tag_unit`) and the
        entities, [B, E] each, padded past `entity_count`: `entity_types`,
        `entity_texts`, character offsets `entity_starts` / `entity_ends`
        (end exclusive, -1 padding) and `entity_scores` (the mean
        probability of its units' tags)."""
        texts = tf.convert_to_tensor(texts, tf.string)
        units, byte_starts, byte_ends = T.text_units(texts, self.config.data.tag_unit)
        batch = tf.shape(texts, out_type=tf.int64)[0]
        rows = self._rows(units, tf.zeros_like(units, tf.int32), tf.range(batch))
        logits = model({F.TOKEN_IDS: rows[F.TOKEN_IDS], F.PADDING_MASK: rows[F.PADDING_MASK]},
                       training=False)
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        where = tf.where(rows[F.LABELS] >= 0)  # each unit's first piece, in its owner window
        index = tf.stack([tf.gather(rows[DOCUMENT], where[:, 0]),
                          tf.cast(tf.gather_nd(rows[F.WORD_IDS], where), tf.int64)], axis=1)
        chosen = tf.gather_nd(probabilities, where)  # [units, tags]
        shape = tf.stack([batch, units.bounding_shape(1)])
        tag_ids = tf.tensor_scatter_nd_update(tf.fill(shape, self.outside_id), index,
                                              tf.argmax(chosen, axis=-1, output_type=tf.int32))
        unit_scores = tf.tensor_scatter_nd_update(tf.zeros(shape), index,
                                                  tf.reduce_max(chosen, axis=-1))
        lengths = units.row_lengths()
        tags = tf.RaggedTensor.from_tensor(tf.gather(tf.constant(self.tags), tag_ids),
                                           lengths=lengths)
        spans = T.entity_spans(tags)
        row = tf.cast(spans["start"].value_rowids(), tf.int64)
        first = tf.gather(byte_starts.row_splits[:-1], row)
        start_byte = tf.gather(byte_starts.flat_values, first + spans["start"].flat_values)
        end_byte = tf.gather(byte_ends.flat_values, first + spans["end"].flat_values - 1)
        entity_texts = tf.strings.substr(tf.gather(texts, row), start_byte, end_byte - start_byte)
        starts = T.character_offsets(texts, spans["start"].with_flat_values(start_byte))
        ends = T.character_offsets(texts, spans["start"].with_flat_values(end_byte))
        cumulative = tf.pad(tf.cumsum(unit_scores, axis=1), [[0, 0], [1, 0]])
        total = (tf.gather_nd(cumulative, tf.stack([row, spans["end"].flat_values], 1))
                 - tf.gather_nd(cumulative, tf.stack([row, spans["start"].flat_values], 1)))
        entity_scores_ = total / tf.cast(spans["end"].flat_values - spans["start"].flat_values,
                                         tf.float32)

        def dense(values, default):
            return spans["start"].with_flat_values(values).to_tensor(default_value=default)

        return {"tags": tags.to_tensor(default_value=""),
                "entity_count": tf.cast(spans["start"].row_lengths(), tf.int32),
                "entity_types": spans["type"].to_tensor(default_value=""),
                "entity_texts": dense(entity_texts, ""),
                "entity_starts": tf.cast(starts.to_tensor(default_value=-1), tf.int32),
                "entity_ends": tf.cast(ends.to_tensor(default_value=-1), tf.int32),
                "entity_scores": dense(entity_scores_, 0.0)}

    def entities(self, model, text):
        """[(type, text, start, end, score)] of one raw text (character offsets)."""
        if not text.strip():
            raise ValueError("the text is empty; give --text some text.")
        output = {k: v.numpy()[0] for k, v in self.serve(model, tf.constant([text])).items()}
        return [(output["entity_types"][i].decode("utf-8"),
                 output["entity_texts"][i].decode("utf-8"), int(output["entity_starts"][i]),
                 int(output["entity_ends"][i]), float(output["entity_scores"][i]))
                for i in range(int(output["entity_count"]))]

    def predict(self, model, text, top_k=5, sampler="greedy", num_beams=4):
        found = self.entities(model, text)
        if not found:
            return ["no entities"]
        return [f"{kind}\t{words}\t[{start}, {end})\t{score:.3f}"
                for kind, words, start, end, score in found]
