"""Every family x masking strategy pair is supported or refused, never ignored.

A refused pair stops at config validation with one line naming the pair and
what is supported. A supported pair is proven to change what the model sees
or is graded on: its first training batch differs from the same documents
without that strategy (same seed).
"""

import json
import os
import re

import numpy as np
import pytest
import tensorflow as tf

from tests.tiny import tiny_config
from tfmask.data import features as F
from tfmask.data.pipeline import tokenize_batch
from tfmask.tasks import STRATEGIES, TASKS, build_task, strategy_table
from tfmask.errors import ConfigError
from tfmask.tasks import config_from_dict

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MARKER = "### response:"


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    """Prompt/response pairs in a JSONL file (a user's fine-tuning data)."""
    path = tmp_path_factory.mktemp("prompts") / "pairs.jsonl"
    rng = np.random.default_rng(0)
    with open(path, "w") as f:
        for i in range(400):
            a, b = (int(x) for x in rng.integers(0, 50, 2))
            f.write(json.dumps({"text": f"what is {a} plus {b} ? {MARKER} it is {a + b} ."})
                    + "\n")
    return str(path)


def grid_config(family, strategy, prompts, **sections):
    """A tiny config of `family` with `strategy` on data that strategy can use."""
    values = tiny_config(family, masking={"strategy": strategy, "max_predictions": 6})
    if TASKS.get(family).dense:  # arrays, not text: digits for both dense families
        values["data"].update(name="digits", inputs_key="image")
        values["masking"] = {"strategy": strategy, "rate": 0.3}
    elif family == "classifier":
        values["data"]["name"] = "rotten_tomatoes"
        values["masking"]["rate"] = 0.3
        if strategy == "term":
            values["masking"]["terms"] = ["the", "a", "film", "movie"]
    elif family.startswith("seq2seq"):
        values["data"]["name"] = "austen" if strategy == "span_corruption" else "kjv_rv1909"
    elif family == "causal_lm":
        values["data"]["name"] = f"file:{prompts}"
        if strategy == "prompt":
            values["masking"]["response_marker"] = MARKER
    elif family == "token_classifier":  # tagged words; noise in training only
        values["masking"]["rate"] = 0.3
    elif strategy == "entity":
        values["data"].update(name="wnut16", words_key="words")
        values["masking"]["rate"] = 0.5
    else:
        values["data"]["name"] = "austen"
        if strategy == "term":  # key-term masking: these words are predicted first
            values["masking"]["terms"] = ["the", "and", "of"]
    for section, updates in sections.items():
        values[section] = {**values.get(section, {}), **updates}
    return values


def first_batch(task):
    return {k: v.numpy() for k, v in next(iter(task.train)).items()}


def unmasked_tokens(task, framing="cls_sep", reserve=0):
    """The first training batch's documents, tokenized but not masked."""
    data = task.config.data
    documents = task.documents(data.train_split, training=True).batch(data.batch_size)
    batch = next(iter(documents))
    return tokenize_batch(batch, task.tokenizer, data.sequence_length, text_key=data.text_key,
                          words_key=data.words_key, framing=framing, reserve=reserve)


PAIRS = [(family, strategy) for family in TASKS.names() for strategy in STRATEGIES]


@pytest.mark.parametrize("family,strategy", PAIRS, ids=[f"{f}-{s}" for f, s in PAIRS])
def test_each_pair_is_refused_in_one_line_or_changes_the_batch(family, strategy, prompts):
    task_class = TASKS.get(family)
    values = grid_config(family, strategy, prompts)
    if strategy not in task_class.strategies:
        with pytest.raises(ConfigError) as error:
            config_from_dict(values)
        message = str(error.value)
        assert "\n" not in message
        assert f"model.family={family} does not support masking.strategy={strategy}" in message
        assert "supported: " + ", ".join(task_class.strategies) in message
        return
    task = build_task(config_from_dict(values))
    batch = first_batch(task)
    inputs, labels, weights = task.split_batch(batch)
    inputs = {k: np.asarray(v) for k, v in inputs.items()}
    labels = np.asarray(labels)
    weights = None if weights is None else np.asarray(weights)
    if task_class.dense:  # hidden values differ from the raw image, and only those
        raw = batch[F.TARGETS] if strategy == "dense" else inputs[F.INPUTS]
        hidden = ~batch[F.FEATURE_MASK] if strategy == "dense" else np.zeros_like(raw, bool)
        assert np.array_equal(inputs[F.INPUTS][~hidden], raw[~hidden])
        assert hidden.mean() == pytest.approx(0.3 if strategy == "dense" else 0, abs=0.1)
        return
    if strategy == "none":
        assert task.tokenizer.mask_id not in inputs[F.TOKEN_IDS]
        return
    if family in ("mlm", "classifier"):
        plain = unmasked_tokens(task)
        assert batch[F.TOKEN_IDS].shape == plain[F.TOKEN_IDS].shape
        changed = batch[F.TOKEN_IDS] != plain[F.TOKEN_IDS].numpy()
        assert changed.any(), "the strategy left the model's inputs as they were"
        assert np.array_equal(batch[F.PADDING_MASK], plain[F.PADDING_MASK])
        if family == "mlm":  # graded on the original tokens at the chosen positions
            rows = np.arange(labels.shape[0])[:, None]
            originals = plain[F.TOKEN_IDS].numpy()[rows, inputs[F.MASK_POSITIONS]]
            assert np.array_equal(np.where(weights > 0, labels, 0),
                                  np.where(weights > 0, originals, 0))
            assert weights.sum() > 0
        else:
            baseline = first_batch(build_task(config_from_dict(
                grid_config(family, "none", prompts))))
            assert np.array_equal(baseline[F.TOKEN_IDS], plain[F.TOKEN_IDS].numpy())
    elif family == "token_classifier":  # input noise: tags and rows stay as they were
        baseline = first_batch(build_task(config_from_dict(
            grid_config(family, "none", prompts))))
        changed = batch[F.TOKEN_IDS] != baseline[F.TOKEN_IDS]
        assert changed.any(), "the strategy left the model's inputs as they were"
        for key in (F.LABELS, F.PADDING_MASK, F.WORD_IDS):
            assert np.array_equal(batch[key], baseline[key])
        assert (changed <= batch[F.PADDING_MASK]).all()
        if strategy == "entity":  # entity words are hidden first, so far more often
            hidden = {"entity": 0, "other": 0}
            seen = {"entity": 0, "other": 0}
            # Fresh tasks: a second pass over one dataset is shuffled anew.
            noisy_batches, plain = (build_task(config_from_dict(grid_config(
                family, name, prompts))).train.take(6) for name in (strategy, "none"))
            for noisy, clean in zip(noisy_batches, plain):
                noisy, clean = {k: v.numpy() for k, v in noisy.items()}, clean
                changed = noisy[F.TOKEN_IDS] != clean[F.TOKEN_IDS].numpy()
                for row, word_ids in enumerate(noisy[F.WORD_IDS]):
                    tagged = word_ids[noisy[F.LABELS][row] > 0]
                    entity = np.isin(word_ids, tagged) & (word_ids >= 0)
                    other = noisy[F.PADDING_MASK][row] & ~entity
                    for kind, where in (("entity", entity), ("other", other)):
                        hidden[kind] += changed[row][where].sum()
                        seen[kind] += where.sum()
            assert hidden["entity"] / seen["entity"] > 2 * hidden["other"] / seen["other"]
    elif strategy == "span_corruption":
        plain = unmasked_tokens(task, framing="none", reserve=1)
        sentinels = set(task.tokenizer.sentinel_ids(32))
        assert sentinels & set(inputs[F.TOKEN_IDS].ravel().tolist())
        assert sentinels & set(labels.ravel().tolist())
        assert not np.array_equal(inputs[F.TOKEN_IDS], plain[F.TOKEN_IDS].numpy())
    elif strategy == "prompt":
        baseline = first_batch(build_task(config_from_dict(
            grid_config(family, "none", prompts))))
        assert np.array_equal(baseline[F.TOKEN_IDS], batch[F.TOKEN_IDS])
        graded, all_graded = weights > 0, baseline[F.LOSS_WEIGHTS] > 0
        assert (graded <= all_graded).all() and graded.sum() < 0.6 * all_graded.sum()
        assert graded.any(axis=1).all()  # every row keeps its response
    else:
        pytest.fail(f"no proof written for the supported pair {family} x {strategy}")


def test_packed_prompt_masking_keeps_each_documents_prompt_mask(prompts):
    """Packed rows hold several prompt/response documents: each document's
    prompt stays ungraded, each response is graded, none across documents."""
    values = grid_config("causal_lm", "prompt", prompts,
                         data={"pack": True, "sequence_length": 96})
    task = build_task(config_from_dict(values))
    batch = first_batch(task)
    marker = task.tokenizer.tokenize([MARKER])[F.TOKEN_IDS].to_list()[0]
    checked = 0
    for ids, segments, weights, labels in zip(batch[F.TOKEN_IDS], batch[F.SEGMENT_IDS],
                                              batch[F.LOSS_WEIGHTS], batch[F.LABELS]):
        for segment in set(segments[segments > 0].tolist()):
            where = np.flatnonzero(segments == segment)
            doc, doc_weights = ids[where], weights[where]
            start = next(i for i in range(len(doc)) if list(doc[i:i + len(marker)]) == marker)
            response = start + len(marker)  # first response token
            # Graded: positions whose *next* token is in the response, inside the document.
            expected = np.zeros(len(doc))
            expected[response - 1: len(doc) - 1] = 1
            np.testing.assert_array_equal(doc_weights, expected)
            np.testing.assert_array_equal(labels[where][:-1][expected[:-1] > 0],
                                          doc[1:][expected[:-1] > 0])
            checked += 1
    assert checked > len(batch[F.TOKEN_IDS])  # several documents per row


def test_packed_whole_word_rows_have_unique_word_ids_per_document():
    values = grid_config("mlm", "whole_word", None, data={"pack": True})
    batch = first_batch(build_task(config_from_dict(values)))
    for words, segments in zip(batch[F.WORD_IDS], batch[F.SEGMENT_IDS]):
        for word in set(words[words >= 0].tolist()):
            assert len(set(segments[words == word].tolist())) == 1


def test_no_masking_section_means_no_masking_except_for_the_masked_lm():
    values = grid_config("classifier", "none", None)
    del values["masking"]
    config = config_from_dict(values)
    assert config.masking.strategy == "none"
    batch = first_batch(build_task(config))
    assert build_task(config).tokenizer.mask_id not in batch[F.TOKEN_IDS]
    values = grid_config("mlm", "random", None)
    del values["masking"]
    assert config_from_dict(values).masking.strategy == "random"  # documented default


@pytest.mark.parametrize("family,key,value", [
    ("classifier", "data", {"pack": True}),
    ("seq2seq_transformer", "model", {"pretrained": "minilm"}),
    ("causal_lm", "masking", {"dynamic": False}),
    ("mlm", "train", {"generate_examples": 4}),
    ("causal_lm", "data", {"words_key": "words"}),
    ("seq2seq_lstm", "model", {"decoder_num_layers": 2}),
    ("causal_lm", "model", {"padding_free": True}),
])
def test_settings_a_family_does_not_use_are_refused(family, key, value, prompts):
    strategy = TASKS.get(family).default_strategy
    with pytest.raises(ConfigError, match=rf"^model.family={family} does not use .*; remove it"):
        config_from_dict(grid_config(family, strategy, prompts, **{key: value}))


@pytest.mark.parametrize("family,key,value,message", [
    ("classifier", "terms", ["film"], "masking.terms is set but masking.strategy=none does not "
                                      "read it (only term does)"),
    ("causal_lm", "response_marker", "A:", "masking.response_marker is set but "
                                           "masking.strategy=none"),
])
def test_strategy_settings_without_their_strategy_are_refused(family, key, value, message,
                                                              prompts):
    values = grid_config(family, "none", prompts)
    values["masking"][key] = value
    with pytest.raises(ConfigError, match=re.escape(message)):
        config_from_dict(values)


def test_normalize_first_reaches_every_transformer_family(prompts):
    for family in ("mlm", "causal_lm", "seq2seq_transformer", "classifier"):
        for value in (True, False):
            config = config_from_dict(grid_config(family, TASKS.get(family).default_strategy,
                                                  prompts, model={"normalize_first": value}))
            model = build_task(config).build_model("float32")
            blocks = [layer for layer in model.layers if "block" in layer.name]
            assert blocks and all(b.normalize_first == value for b in blocks), family
    with pytest.raises(ConfigError, match="comes from model.pretrained's checkpoint"):
        config_from_dict(grid_config("classifier", "none", prompts,
                                     model={"pretrained": "minilm", "normalize_first": True},
                                     data={"vocabulary": "pretrained"}))


def test_entity_masking_without_word_level_tags_is_refused():
    values = grid_config("mlm", "entity", None)
    del values["data"]["words_key"]
    with pytest.raises(ConfigError, match="needs word-level entity tags"):
        config_from_dict(values)


def test_configs_readme_shows_the_registry_strategy_table():
    with open(os.path.join(REPO, "configs", "README.md"), encoding="utf-8") as f:
        readme = f.read()
    assert strategy_table() in readme, "regenerate the table with tfmask.tasks.strategy_table()"


def test_no_padding_is_rederived_from_a_token_id():
    """Padding has one source: the tokenizer's framing (or `pack`) emits
    `padding_mask`; nothing downstream compares ids with the pad id."""
    allowed = {os.path.join("tfmask", "text", "tokenizer.py"),
               os.path.join("tfmask", "data", "packing.py"),
               # the mask primitive itself, and the embedding's opt-in Keras mask
               os.path.join("tfmask", "masks.py")}
    pattern = re.compile(r"(!=|==)\s*(self\.|tokenizer\.)?pad(_id)?\b|not_equal\([^)]*pad|"
                         r"ids\s*(!=|==)\s*0\b|targets\s*(!=|==)\s*0\b")
    offenders = []
    for root, _, files in os.walk(os.path.join(REPO, "tfmask")):
        for name in files:
            path = os.path.join(root, name)
            relative = os.path.relpath(path, REPO)
            if not name.endswith(".py") or relative in allowed:
                continue
            with open(path, encoding="utf-8") as f:
                for number, line in enumerate(f, 1):
                    if pattern.search(line):
                        offenders.append(f"{relative}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_training_modules_import_at_most_two_other_tfmask_packages():
    import ast

    folder = os.path.join(REPO, "tfmask", "training")
    for name in os.listdir(folder):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        modules = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
        modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        packages = {m.split(".")[1] for m in modules
                    if m.startswith("tfmask.") and m.split(".")[1] != "training"
                    and os.path.isdir(os.path.join(REPO, "tfmask", m.split(".")[1]))}
        assert len(packages) <= 2, (name, sorted(packages))


def test_padding_mask_is_the_models_input_not_the_pad_id():
    """A pad-id token inside the text is attended to when the pipeline says it is real."""
    values = grid_config("classifier", "none", None)
    task = build_task(config_from_dict(values))
    model = task.build_model("float32")
    inputs, _, _ = task.split_batch(next(iter(task.evaluation)))
    ids, mask = inputs[F.TOKEN_IDS].numpy(), inputs[F.PADDING_MASK].numpy()
    first = model(inputs).numpy()
    altered = ids.copy()
    altered[~mask] = 7  # whatever sits in padding does not matter...
    np.testing.assert_allclose(model({F.TOKEN_IDS: altered, F.PADDING_MASK: mask}).numpy(),
                               first, atol=1e-5)
    inside = ids.copy()
    inside[:, 1] = task.tokenizer.pad_id  # ...but a real position holding the pad id does
    assert not np.allclose(model({F.TOKEN_IDS: inside, F.PADDING_MASK: mask}).numpy(), first)
    tf.debugging.assert_equal(tf.reduce_all(mask[:, 1]), True)


def test_key_term_masking_predicts_the_key_terms_first():
    """mlm + term: matching words are the units masked first, whole, before
    any other word (salient-span / key-term masking)."""
    values = grid_config("mlm", "term", None, masking={"terms": ["the", "and"],
                                                         "patterns": [r"\d+"]})
    task = build_task(config_from_dict(values))
    words = task.tokenizer.token_to_id
    key_ids = {words("the"), words("and")}
    inputs, labels, weights = task.split_batch(first_batch(task))
    positions, labels, graded = (np.asarray(x) for x in (inputs[F.MASK_POSITIONS], labels,
                                                         np.asarray(weights) > 0))
    plain = unmasked_tokens(task)[F.TOKEN_IDS].numpy()
    checked = 0
    for row in range(len(plain)):
        key_positions = set(np.flatnonzero(np.isin(plain[row], list(key_ids))).tolist())
        masked = set(positions[row][graded[row]].tolist())
        if key_positions and len(key_positions) <= len(masked):
            assert key_positions <= masked  # every key term is predicted
            checked += 1
    assert checked >= len(plain) // 2
    # Far more of what is predicted is a key term than of the text is.
    on_terms = np.isin(labels, list(key_ids))[graded].mean()
    share = np.isin(plain, list(key_ids)).sum() / (plain != task.tokenizer.pad_id).sum()
    assert on_terms > 3 * share, (on_terms, share)


def test_key_term_masking_for_mlm_refuses_a_classifier_only_setting():
    with pytest.raises(ConfigError, match="term_replacement=drop applies to a classifier"):
        config_from_dict(grid_config("mlm", "term", None, masking={"term_replacement": "drop"}))
