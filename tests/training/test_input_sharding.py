"""How several workers share the training examples (`Task.documents` with
`shard=(N, i)`, `Task.train_for`): by whole files when `data.name` is a
`file:` glob matching at least N files, every N-th shuffled example
otherwise. Unit tests call the task with an InputContext directly; one
journey test runs two real workers over a glob of shards."""

import json

import pytest
import tensorflow as tf

from tests.training.test_scale import labels_seen
from tests.training.test_trainer import TINY_MLM
from tfmask import datasets
from tfmask.tasks import build_task, load_config, load_documents

WORDS = ["good", "bad", "dull", "fine", "grand", "poor"]


def shards(folder, files=4, per_file=12, prefix="train"):
    """`files` JSONL shards `{prefix}-NN.jsonl` of `per_file` reviews each,
    labelled with their global id (file f holds ids f*per_file ...), and one
    validation file; returns {path: its labels}."""
    folder.mkdir(parents=True, exist_ok=True)
    labels = {}
    for f in range(files):
        path = folder / f"{prefix}-{f:02d}.jsonl"
        ids = list(range(f * per_file, (f + 1) * per_file))
        with open(path, "w") as out:
            for index in ids:
                text = f"review {index} was {WORDS[index % 6]} and {WORDS[index * 5 % 6]}"
                out.write(json.dumps({"text": text, "label": index}) + "\n")
        labels[str(path)] = ids
    with open(folder / "validation-00.jsonl", "w") as out:
        for index in range(8):
            out.write(json.dumps({"text": f"held out {index} was {WORDS[index % 6]}",
                                  "label": index}) + "\n")
    return labels


def classifier(name, count=48, *more):
    """The tiny config as a deterministic classifier (no masking) on `name`."""
    return load_config(TINY_MLM, [
        "model.family=classifier", "masking.strategy=none", f"model.num_classes={count}",
        f"data.name={name}", "data.dataset_options={label_field: label}",
        "data.vocabulary_size=200", *more])


def context(index, count=2):
    return tf.distribute.InputContext(num_input_pipelines=count, input_pipeline_id=index,
                                      num_replicas_in_sync=count)


def labels_of(documents, count):
    return [int(d["label"]) for d in documents.take(count).as_numpy_iterator()]


@pytest.fixture(scope="module")
def four_shards(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shards")
    labels = shards(folder)
    config = classifier(f"file:{folder}/{{split}}-*.jsonl")
    return config, build_task(config), sorted(labels.items())


def test_enough_files_each_worker_reads_every_nth_file(four_shards):
    config, task, files = four_shards
    seen = []
    for worker in range(2):
        own = sorted(x for _, ids in files[worker::2] for x in ids)  # files i, i + 2
        documents = task.documents("train", training=True, shard=(2, worker))
        epochs = labels_of(documents, 2 * len(own))
        for epoch in (epochs[:len(own)], epochs[len(own):]):
            assert sorted(epoch) == own  # only its files, each example once per epoch
        assert epochs[:len(own)] != epochs[len(own):]  # reshuffled each epoch
        seen.append(set(own))
    assert not seen[0] & seen[1] and seen[0] | seen[1] == set(range(48))
    # The loader says it split by file; the unsharded split is all of it.
    assert load_documents(config, "train", shard=(2, 1)) is not None
    assert sorted(labels_of(load_documents(config, "train"), 100)) == list(range(48))


def test_train_for_gives_each_worker_per_replica_batches_of_its_files(four_shards):
    _, task, files = four_shards
    for worker in range(2):
        own = sorted(x for _, ids in files[worker::2] for x in ids)
        batches = list(task.train_for(context(worker)).take(12).as_numpy_iterator())
        assert all(len(b["labels"]) == 4 for b in batches)  # 8 per step over 2 replicas
        for epoch in (batches[:6], batches[6:]):  # 24 examples a worker-epoch
            assert sorted(int(x) for b in epoch for x in b["labels"]) == own


def test_the_hash_split_of_a_glob_is_kept_per_record(tmp_path):
    """Without {split} the files are one pool split 80/10/10 by a hash of each
    record's text: the workers' train shares together are its train split."""
    shards(tmp_path, files=4, per_file=25, prefix="part")
    whole = classifier(f"file:{tmp_path}/part-*.jsonl", 100)
    train = sorted(labels_of(load_documents(whole, "train"), 1000))
    held = labels_of(load_documents(whole, "validation"), 1000) + labels_of(
        load_documents(whole, "test"), 1000)
    assert 60 < len(train) < 100 and sorted(train + held) == list(range(100))
    parts = [labels_of(load_documents(whole, "train", shard=(2, i)), 1000) for i in range(2)]
    assert not set(parts[0]) & set(parts[1]) and sorted(parts[0] + parts[1]) == train
    assert all(x // 25 in (0, 2) for x in parts[0]) and all(x // 25 in (1, 3) for x in parts[1])


def index_shared(task, worker, count=48, workers=2):
    """What index sharding gives worker `worker`: every N-th of the one-worker stream."""
    stream = labels_of(task.documents("train", training=True), count * workers)
    return stream[worker::workers]


def test_too_few_files_fall_back_to_every_nth_example(tmp_path):
    shards(tmp_path, files=3, per_file=16)
    config = classifier(f"file:{tmp_path}/{{split}}-*.jsonl")
    task = build_task(config)
    assert load_documents(config, "train", shard=(4, 0)) is None  # 3 files, 4 workers
    for worker in range(4):
        documents = task.documents("train", training=True, shard=(4, worker))
        assert labels_of(documents, 48) == index_shared(task, worker, 48, 4)


def test_one_file_falls_back_to_every_nth_example(tmp_path):
    shards(tmp_path, files=1, per_file=48)
    config = classifier(f"file:{tmp_path}/{{split}}-*.jsonl")
    task = build_task(config)
    assert load_documents(config, "train", shard=(2, 0)) is None
    halves = [labels_of(task.documents("train", True, shard=(2, i)), 24) for i in range(2)]
    assert halves == [index_shared(task, 0)[:24], index_shared(task, 1)[:24]]
    assert sorted(halves[0] + halves[1]) == list(range(48))  # one global epoch


def test_a_mixture_falls_back_to_every_nth_example(tmp_path):
    shards(tmp_path / "a", files=2, per_file=12)
    shards(tmp_path / "b", files=2, per_file=12)
    config = classifier(f"file:{tmp_path}/a/{{split}}-*.jsonl+file:{tmp_path}/b/{{split}}-*.jsonl",
                        24)
    task = build_task(config)
    assert load_documents(config, "train", shard=(2, 0)) is None
    documents = task.documents("train", training=True, shard=(2, 1))
    assert labels_of(documents, 24) == index_shared(task, 1, 24)


def test_train_examples_fall_back_to_every_nth_example(four_shards):
    """data.train_examples draws its subset from the whole split, so the
    workers must share that one subset by index."""
    config = classifier(four_shards[0].data.name, 48, "data.train_examples=20")
    task = build_task(config)
    for worker in range(2):
        documents = task.documents("train", training=True, shard=(2, worker))
        assert labels_of(documents, 20) == index_shared(task, worker, 20)


def test_a_glob_that_matches_nothing_is_refused_with_the_config(tmp_path):
    from tfmask.errors import ConfigError

    with pytest.raises(ConfigError, match="train-\\*.jsonl', which matches no file"):
        classifier(f"file:{tmp_path}/{{split}}-*.jsonl")


def test_registry_and_tfds_datasets_are_not_split_by_file():
    """One TFRecord per split: `load` says so without reading anything."""
    assert datasets.load("austen", split="train", shard=(2, 0)) is None
    assert datasets.load("tfds:imdb_reviews", split="train", shard=(2, 0)) is None


def test_a_glob_is_read_lazily_file_after_file(tmp_path):
    """Taking the first records opens only the first shard: a broken later
    shard is not parsed (no list of every record is built first)."""
    shards(tmp_path, files=2, per_file=2000, prefix="part")
    with open(tmp_path / "part-99.jsonl", "w") as out:
        out.write("not json\n")
    documents = datasets.load(f"file:{tmp_path}/part-*.jsonl", split="all",
                              label_field="label")
    assert labels_of(documents, 3000) == list(range(3000))
    with pytest.raises(Exception, match="part-99.jsonl line 1 is not valid JSON"):
        labels_of(documents, 5000)


# ------------------------------------------------------------ two real workers
@pytest.mark.journey
def test_two_workers_each_read_only_their_own_shards(tmp_path):
    """Two `multi_worker` processes over a glob of 4 shards: each step, worker
    i's batches hold only labels of files i and i + 2, and each worker-epoch
    (24 examples, 6 per-replica batches of 4) holds each of them once."""
    files = sorted(shards(tmp_path / "data").items())
    sets = ("model.family=classifier", "masking.strategy=none", "model.num_classes=48",
            f"data.name=file:{tmp_path}/data/{{split}}-*.jsonl",
            "data.dataset_options={label_field: label}", "data.vocabulary_size=200",
            "runtime.strategy=multi_worker")
    for worker, seen in enumerate(labels_seen(tmp_path / "run", *sets)):
        # 12 steps of this worker's batches
        own = sorted(x for _, ids in files[worker::2] for x in ids)
        assert all(len(step) == 4 for step in seen)
        for epoch in (seen[:6], seen[6:]):
            assert sorted(x for step in epoch for x in step) == own
