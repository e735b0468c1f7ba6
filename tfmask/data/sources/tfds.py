"""TensorFlow Datasets: one document per example of a TFDS split.

Read with `tensorflow_datasets.load` (imported only when a source is
built); the text feature is renamed to `text`, the others are kept.
"""

import tensorflow as tf

from tfmask.data import features as F
from tfmask.data.sources import core
from tfmask.data.sources.core import FILE_KEY, RECORD_KEY, SourceError, check_mode, finish


def tfds_source(name, split, text_key="text", on_decode_error="fail", words_feature=None,
                tags_feature=None, **tfds_kwargs):
    """A split of a TFDS dataset, its `text_key` feature renamed to `text`.

    Args:
        name: TFDS name, e.g. "imdb_reviews" or "wiki40b/en".
        split: TFDS split, slicing allowed ("train[:10%]").
        text_key: the string feature holding the document.
        on_decode_error: "fail", "replace" or "skip" (see `tfmask.data.sources`).
        words_feature: a sequence-of-strings feature of pre-split words (e.g.
            conll2003's `tokens`), renamed `words`; a dataset without
            `text_key` then gets `text`, the words joined by spaces.
        tags_feature: a sequence feature of one tag per word (e.g.
            conll2003's `ner`), renamed `tags`; class-label ids become their
            names ("B-PER"), as token classification reads them.
        **tfds_kwargs: passed to `tensorflow_datasets.load` (`data_dir`,
            `download`, `shuffle_files`, `read_config`, ...), but not
            `as_supervised` or `batch_size`: sources yield unbatched dicts.

    Other features are kept under their own names. Errors name the record
    as "example N" of `name[split]`.

    Example (offline, with TFDS's mock data):
    >>> import tensorflow_datasets as tfds
    >>> with tfds.testing.mock_data(num_examples=3):
    ...     docs = tfds_source("imdb_reviews", "train")
    ...     sorted(next(iter(docs)))
    ['label', 'text']
    """
    import tensorflow_datasets as tfds  # slow import; only this source needs it

    check_mode(on_decode_error)
    for forbidden in ("as_supervised", "batch_size"):
        if tfds_kwargs.get(forbidden):
            raise ValueError(
                f"tfds_source yields unbatched dicts; drop {forbidden}= and batch "
                "or select features afterwards."
            )
    where = f"{name}[{split}]"
    dataset, info = tfds.load(name, split=split, with_info=True, **tfds_kwargs)
    if words_feature or tags_feature:
        dataset = _words_and_tags(dataset, info, where, text_key, words_feature, tags_feature)
    spec = dataset.element_spec
    if not isinstance(spec, dict) or text_key not in spec:
        keys = sorted(spec) if isinstance(spec, dict) else type(spec).__name__
        raise SourceError(
            f"{where} has no feature {text_key!r} (it has {keys}); pass text_key=."
        )
    if spec[text_key].dtype != tf.string or spec[text_key].shape.rank != 0:
        raise SourceError(
            f"{where} feature {text_key!r} is {spec[text_key]}, not a string scalar; "
            "pass the text feature as text_key=."
        )
    if text_key != F.TEXT and F.TEXT in spec:
        raise SourceError(
            f"{where} has both {text_key!r} and {F.TEXT!r}; pass text_key={F.TEXT!r}."
        )
    try:
        count = info.splits[split].num_examples
    except (KeyError, ValueError, TypeError):
        count = None  # split metadata unknown (e.g. mock data); look instead
    if count == 0 or (count is None and not list(dataset.take(1))):
        raise SourceError(f"{where} has no examples; check the split.")

    def rename(example):
        return {(F.TEXT if k == text_key else k): v for k, v in example.items()}

    def number(index, batch):
        size = tf.shape(batch[text_key])[0]
        first = index * core.BATCH_SIZE + 1
        return {**rename(batch), RECORD_KEY: tf.range(first, first + tf.cast(size, tf.int64)),
                FILE_KEY: tf.fill([size], where)}

    # Plain batching is native; ragged_batch converts every example, so it
    # is only worth it when some feature varies in shape (images, lists).
    fixed = all(isinstance(s, tf.RaggedTensorSpec) or s.shape.is_fully_defined()
                for s in tf.nest.flatten(spec, expand_composites=False))
    batches = dataset.batch(core.BATCH_SIZE) if fixed else dataset.ragged_batch(core.BATCH_SIZE)
    batches = batches.enumerate().map(number)
    element_spec = rename(spec)
    return finish(batches, on_decode_error, "example", element_spec=element_spec)


def _words_and_tags(dataset, info, where, text_key, words_feature, tags_feature):
    """Examples with `words_feature` as `words`, `tags_feature` as string
    `tags` (class-label names) and, when missing, `text_key` from the words."""
    spec = dataset.element_spec
    for feature in (words_feature, tags_feature):
        if feature and feature not in spec:
            raise SourceError(f"{where} has no feature {feature!r} (it has {sorted(spec)}); "
                              "set words_feature / tags_feature to one of them.")
    names = None
    if tags_feature:
        label = getattr(info.features[tags_feature], "feature", info.features[tags_feature])
        names = getattr(label, "names", None)  # a ClassLabel: ids -> names
    drop = {words_feature, tags_feature} - {None}

    def convert(example):
        out = {k: v for k, v in example.items() if k not in drop}
        if words_feature:
            out["words"] = example[words_feature]
            if text_key not in example:
                out[text_key] = tf.strings.reduce_join(example[words_feature], separator=" ")
        if tags_feature:
            tags = example[tags_feature]
            out["tags"] = tf.gather(tf.constant(names), tags) if names else tags
        return out

    return dataset.map(convert, num_parallel_calls=tf.data.AUTOTUNE)
