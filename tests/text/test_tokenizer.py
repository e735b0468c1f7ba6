"""WordPiece tokenizer: ids, word ids from the tokenizer's own split, Chinese,
gold segmentation, special tokens, vocabulary training and caching."""

import numpy as np
import pytest
import tensorflow as tf

from tfmask.text import SpecialTokens, WordPieceTokenizer, add_special_tokens, train_wordpiece_vocabulary

CORPUS = [
    "The movie was unbelievably good, and the acting was great.",
    "An unbelievable, unforgettable film about friendship.",
    "The plot was dull; the actors were wooden.",
    "我们喜欢这部电影。",
    "这部电影很好看，演员也很好。",
] * 20


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    path = train_wordpiece_vocabulary(
        CORPUS, 300, special_tokens=SpecialTokens(num_sentinels=4),
        cache_dir=str(tmp_path_factory.mktemp("vocab")),
    )
    return WordPieceTokenizer(path, special_tokens=SpecialTokens(num_sentinels=4))


def test_vocabulary_is_cached_and_special_tokens_come_first(tmp_path):
    tokens = SpecialTokens(num_sentinels=4)
    first = train_wordpiece_vocabulary(CORPUS, 300, special_tokens=tokens, cache_dir=str(tmp_path))
    second = train_wordpiece_vocabulary(CORPUS, 300, special_tokens=tokens, cache_dir=str(tmp_path))
    assert first == second
    vocab = open(first, encoding="utf-8").read().split("\n")
    assert vocab[:9] == tokens.reserved()
    other = train_wordpiece_vocabulary(CORPUS[:3], 300, special_tokens=tokens, cache_dir=str(tmp_path))
    assert other != first  # a different corpus is a different cache entry


def test_word_ids_follow_the_tokenizers_word_split(tokenizer):
    out = tokenizer.tokenize(["The movie was unbelievably good,"])
    words = [w.decode() for w in out["words"].to_list()[0]]
    assert words == ["the", "movie", "was", "unbelievably", "good", ","]
    ids, word_ids = out["token_ids"].to_list()[0], out["word_ids"].to_list()[0]
    assert len(ids) == len(word_ids) and word_ids == sorted(word_ids)
    # every word's pieces rebuild the word, whatever the ## convention
    for w, word in enumerate(words):
        pieces = [tokenizer.id_to_token(i) for i, wid in zip(ids, word_ids) if wid == w]
        assert "".join(p.removeprefix("##") for p in pieces) == word


def test_chinese_is_one_word_per_character_unless_segmented(tokenizer):
    raw = tokenizer.tokenize(["我们喜欢电影"])
    assert raw["word_ids"].to_list() == [[0, 1, 2, 3, 4, 5]]
    gold = tokenizer.tokenize_words(tf.ragged.constant([["我们", "喜欢", "电影"]]))
    assert gold["word_ids"].to_list() == [[0, 0, 1, 1, 2, 2]]
    assert gold["token_ids"].to_list() == raw["token_ids"].to_list()


def test_unknown_characters_become_unk_not_lost(tokenizer):
    out = tokenizer.tokenize(["the ☃ movie"])
    ids = out["token_ids"].to_list()[0]
    assert tokenizer.unk_id in ids and out["word_ids"].to_list()[0] == [0, 1, 2]


def test_add_special_tokens_truncates_pads_and_flags(tokenizer):
    out = tokenizer.tokenize(["the movie", "the movie was unbelievably good and great"])
    dense = add_special_tokens(out["token_ids"], out["word_ids"], 6,
                               tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id)
    ids = dense["token_ids"].numpy()
    assert ids.shape == (2, 6)
    assert ids[0, 0] == tokenizer.cls_id and ids[0, 3] == tokenizer.sep_id and ids[0, 4] == 0
    assert ids[1, -1] == tokenizer.sep_id
    np.testing.assert_array_equal(dense["truncated"].numpy(), [False, True])
    np.testing.assert_array_equal(dense["word_ids"].numpy()[0], [-1, 0, 1, -1, -1, -1])
    np.testing.assert_array_equal(dense["padding_mask"].numpy()[0], [1, 1, 1, 1, 0, 0])


def test_missing_vocabulary_and_special_tokens_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="train one with"):
        WordPieceTokenizer(str(tmp_path / "nope.txt"))
    with pytest.raises(ValueError, match=r"lacks the special tokens \['\[MASK\]'\]"):
        WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a"])
    with pytest.raises(ValueError, match="no room"):
        train_wordpiece_vocabulary(CORPUS, 50, cache_dir=str(tmp_path))


def test_detokenize_round_trips_known_words(tokenizer):
    text = tokenizer.detokenize(tokenizer.tokenize(["the movie was great"])["token_ids"])
    assert text.numpy()[0].decode() == "the movie was great"
