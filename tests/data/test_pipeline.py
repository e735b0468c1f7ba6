"""The composed pipeline on real text: tokenize -> mask, static shapes,
term masking, gold Chinese words with entities, keras-hub compatibility."""

import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from tfmask.data import features as F
from tfmask.data.masking import EntityMasking, RandomTokenMasking, TermMasking, WholeWordMasking
from tfmask.data.pipeline import entity_ids_from_bio, text_pipeline, words_to_tokens
from tfmask.text import SpecialTokens, WordPieceTokenizer, train_wordpiece_vocabulary
from tests.text.test_tokenizer import CORPUS

LENGTH, BATCH = 24, 8


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    special = SpecialTokens(num_sentinels=4)
    path = train_wordpiece_vocabulary(CORPUS + ["he she tom hanks is 66"], 300,
                                      special_tokens=special,
                                      cache_dir=str(tmp_path_factory.mktemp("vocab")))
    return WordPieceTokenizer(path, special_tokens=special)


def mlm_strategy(cls, tokenizer, **kwargs):
    return cls(tokenizer.vocabulary_size, tokenizer.mask_id, max_predictions=6,
               special_token_ids=tokenizer.special_token_ids(), **kwargs)


def test_text_to_masked_batches_with_static_shapes(tokenizer):
    texts = tf.data.Dataset.from_tensor_slices({"text": CORPUS, "label": np.arange(len(CORPUS))})
    data = text_pipeline(texts, tokenizer, LENGTH, BATCH,
                         strategies=[mlm_strategy(WholeWordMasking, tokenizer)], seed=3)
    for key, spec in data.element_spec.items():
        assert spec.shape.is_fully_defined(), key
    batch = next(iter(data))
    assert set(batch) >= {F.TOKEN_IDS, F.WORD_IDS, F.PADDING_MASK, F.MASK_POSITIONS,
                          F.MASK_IDS, F.MASK_WEIGHTS, F.TRUNCATED, "label"}
    assert batch[F.TOKEN_IDS].shape == (BATCH, LENGTH)
    assert np.all(batch[F.TOKEN_IDS].numpy()[:, 0] == tokenizer.cls_id)
    assert (batch[F.TOKEN_IDS].numpy() == tokenizer.mask_id).any()


def test_term_masking_in_the_pipeline_hides_nuisance_words(tokenizer):
    texts = tf.data.Dataset.from_tensor_slices({"text": ["tom hanks is 66 , he is great"] * BATCH})
    masker = TermMasking(terms=["tom hanks", "he"], patterns=[r"\d+"], mask_token_id=tokenizer.mask_id)
    batch = next(iter(text_pipeline(texts, tokenizer, LENGTH, BATCH, strategies=[masker])))
    kept = [tokenizer.id_to_token(i) for i in batch[F.TOKEN_IDS].numpy()[0] if i]
    assert "tom" not in kept and "he" not in kept and "66" not in kept and "great" in kept
    assert kept.count("[MASK]") == (~batch[F.TERM_MASK].numpy()[0]).sum() >= 4  # True = kept


def test_gold_chinese_words_with_bio_tags_give_whole_entity_masks(tokenizer):
    words = [["我们", "喜欢", "这部", "电影"], ["演员", "也", "很", "好"]] * 4
    tags = [["B-PER", "O", "B-ORG", "I-ORG"], ["B-LOC", "O", "O", "O"]] * 4
    data = tf.data.Dataset.from_tensor_slices(
        {"words": tf.ragged.constant(words), "tags": tf.ragged.constant(tags)})
    strategy = mlm_strategy(EntityMasking, tokenizer, rate=0.5)
    batch = next(iter(text_pipeline(data, tokenizer, LENGTH, BATCH, strategies=[strategy],
                                    words_key="words")))
    entity_ids = batch[F.ENTITY_IDS].numpy()
    # 这部电影 is one entity of 4 characters: [CLS] 我 们 喜 欢 这 部 电 影 [SEP]
    np.testing.assert_array_equal(entity_ids[0, :10], [-1, 0, 0, -1, -1, 1, 1, 1, 1, -1])
    for row in range(BATCH):
        chosen = set(batch[F.MASK_POSITIONS].numpy()[row][batch[F.MASK_WEIGHTS].numpy()[row] > 0])
        for e in set(entity_ids[row][entity_ids[row] >= 0]):
            where = set(np.where(entity_ids[row] == e)[0])
            assert where <= chosen or not (where & chosen)


def test_entity_ids_from_bio_and_words_to_tokens():
    tags = tf.ragged.constant([["O", "I-PER", "I-PER", "B-PER", "I-LOC"]])
    np.testing.assert_array_equal(entity_ids_from_bio(tags).to_list(), [[-1, 0, 0, 1, 2]])
    spread = words_to_tokens(tf.ragged.constant([[7, 8]]), tf.constant([[-1, 0, 0, 1, -1]]))
    np.testing.assert_array_equal(spread.numpy(), [[-1, 7, 7, 8, -1]])


def test_batches_feed_a_keras_hub_bert_masked_lm(tokenizer):
    texts = tf.data.Dataset.from_tensor_slices({"text": CORPUS})
    batch = next(iter(text_pipeline(texts, tokenizer, LENGTH, BATCH,
                                    strategies=[mlm_strategy(RandomTokenMasking, tokenizer)])))
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=tokenizer.vocabulary_size, num_layers=1, num_heads=2, hidden_dim=8,
        intermediate_dim=16, max_sequence_length=LENGTH)
    model = keras_hub.models.BertMaskedLM(backbone, preprocessor=None)
    logits = model({
        "token_ids": batch[F.TOKEN_IDS], "padding_mask": batch[F.PADDING_MASK],
        "segment_ids": tf.zeros_like(batch[F.TOKEN_IDS]),
        "mask_positions": batch[F.MASK_POSITIONS],
    })
    assert logits.shape == (BATCH, 6, tokenizer.vocabulary_size)
