"""data.service: the training pipeline prepared by a tf.data service's
workers trains to the losses of the local pipeline (two workers, from step 0
and resumed into a run that started without it); a malformed address and a
dispatcher that does not answer are one line each, before any work."""

import contextlib
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import tfmask.tasks  # noqa: F401  (the tokenizer's ops, for the graphs this process's workers run)
from tests import tiny
from tests.journeys import one_error_line, train_cli
from tests.training.test_trainer import REPO, TINY_MLM, _free_port, read_metrics
from tfmask.data.service import service_address
from tfmask.errors import ConfigError
from tfmask.data import service
from tfmask.tasks import config_from_dict

SERVICE = tf.data.experimental.service


def test_the_address_is_normalized_and_a_malformed_one_refused_in_one_line():
    assert service_address("127.0.0.1:5050") == "grpc://127.0.0.1:5050"
    assert service_address(" grpc://node-1.cluster:5050 ") == "grpc://node-1.cluster:5050"
    assert service_address("[::1]:5050") == "grpc://[::1]:5050"
    assert service_address("") == ""
    for bad in ("localhost", "node1:", ":5050", "http://node1:5050", "node1:99999",
                "node 1:5050", "::1:5050", "grpc://node1:50a0"):
        with pytest.raises(ConfigError) as refused:
            service_address(bad)
        message = str(refused.value)
        assert message.startswith(f"data.service={bad!r} is not a tf.data service") and \
            "HOST:PORT" in message and "\n" not in message, message
    # Through the config check (no data read, no dispatcher dialled).
    with pytest.raises(ConfigError, match=r"^data.service='node1' is not"):
        config_from_dict(tiny.tiny_config("mlm", data={"service": "node1"}), check_data=False)
    assert config_from_dict(tiny.tiny_config("mlm", data={"service": "node1:5050"}),
                            check_data=False).data.service == "node1:5050"


def test_a_dispatcher_that_does_not_answer_is_refused_before_any_work(tmp_path, capsys):
    port = _free_port()  # nothing listens there
    code, _, err = train_cli(capsys, TINY_MLM, tmp_path / "run", f"data.service=127.0.0.1:{port}")
    line = one_error_line(err)
    assert code == 2
    assert line.startswith(f"error: no tf.data service dispatcher answers at 127.0.0.1:{port} "
                           "(data.service)"), line
    assert f"python -m tfmask.data.service dispatcher --port {port}" in line
    assert not (tmp_path / "run").exists()  # no work started


def test_batches_are_kept_in_order_once_and_a_gap_stops_the_run():
    """Two workers' copies of a stream, each in order, interleaved as they
    arrive: the trainer gets each batch once, in order; a batch number ahead
    of the next expected one (a lost batch) is an error, never a skip."""
    arrived = [0, 1, 0, 2, 1, 3, 2, 4, 3, 4]
    numbered = tf.data.Dataset.from_tensor_slices(arrived).map(lambda k: (k, {"x": 10 * k}))
    assert [int(b["x"]) for b in service.in_order(numbered)] == [0, 10, 20, 30, 40]
    gap = tf.data.Dataset.from_tensor_slices([0, 1, 3]).map(lambda k: (k, k))
    with pytest.raises(tf.errors.InvalidArgumentError, match="a batch of the tf.data service"):
        list(service.in_order(gap))


def test_a_pipeline_that_runs_python_is_refused_in_one_line():
    """A worker runs the graph, not the trainer's Python: a generator source
    (file: .jsonl, .csv, .conll) is refused before anything is sent."""
    generated = tf.data.Dataset.from_generator(lambda: iter([1, 2]), output_signature=tf.TensorSpec(
        [], tf.int64))
    assert service.python_ops(generated) and not service.python_ops(tf.data.Dataset.range(3))
    with pytest.raises(ConfigError, match=r"^data.service: the training pipeline runs Python"):
        service.distribute(generated, "127.0.0.1:1", "never-sent")


# ------------------------------------------------------------ journey
@contextlib.contextmanager
def data_service(workers=2):
    """A dispatcher and `workers` workers in this process on 127.0.0.1 free
    ports (TensorFlow's servers listen on every interface, its choice);
    yields (the dispatcher's HOST:PORT, the workers), and stops them all."""
    dispatcher = SERVICE.DispatchServer(SERVICE.DispatcherConfig(port=_free_port()))
    address = f"127.0.0.1:{dispatcher.target.rsplit(':', 1)[1]}"
    servers = [dispatcher]
    try:
        for _ in range(workers):
            port = _free_port()
            servers.append(SERVICE.WorkerServer(SERVICE.WorkerConfig(
                dispatcher_address=address, worker_address=f"127.0.0.1:{port}", port=port)))
        yield address, servers[1:]
    finally:
        for server in reversed(servers):
            server.stop()


def tfrecord_reviews(tmp_path, count=48):
    """`count` labelled training reviews whose label is their id, and 16 for
    validation, as TFRecord files: a worker runs the graph of a TFRecord
    source (a JSON-lines source is a Python generator, which it cannot)."""
    words = ["good", "bad", "dull", "fine", "grand", "poor"]
    for split, size in (("train", count), ("validation", 16)):
        with tf.io.TFRecordWriter(str(tmp_path / f"reviews_{split}.tfrecord")) as writer:
            for index in range(size):
                text = f"{split} review {index} was {words[index % 6]} and {words[index * 5 % 6]}"
                feature = {
                    "text": tf.train.Feature(bytes_list=tf.train.BytesList(value=[text.encode()])),
                    "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[index]))}
                writer.write(tf.train.Example(
                    features=tf.train.Features(feature=feature)).SerializeToString())
    return tmp_path / "reviews_{split}.tfrecord"


def train(output_dir, *sets):
    """`python -m tfmask.train` in a fresh process; its train losses."""
    args = [sys.executable, "-m", "tfmask.train", "--config", TINY_MLM, "--output_dir",
            str(output_dir)]
    for value in sets:
        args += ["--set", value]
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-3000:]
    return [row["train_loss"] for row in read_metrics(output_dir) if "train_loss" in row]


@pytest.mark.journey
def test_training_through_the_service_gives_the_losses_of_the_local_pipeline(tmp_path):
    """The tiny deterministic classifier (test_scale's, from TFRecord files):
    8 steps prepared by two service workers, and 4 local steps resumed for 4
    through the service (the skip runs in the service's job), train to the
    losses of the local run."""
    sets = ("model.family=classifier", "masking.strategy=none", "model.num_classes=48",
            f"data.name=file:{tfrecord_reviews(tmp_path)}",
            "data.dataset_options={label_field: label}", "data.vocabulary_size=200",
            "runtime.export=false", "train.log_every=2", "runtime.checkpoint_every=0",
            "schedule.decay=constant")  # a run of 4 steps resumed to 8 is a run of 8
    local = train(tmp_path / "local", *sets, "train.steps=8")
    assert len(local) == 4
    with data_service(workers=2) as (address, workers):
        served = train(tmp_path / "served", *sets, "train.steps=8", f"data.service={address}")
        assert sum(worker._num_tasks() for worker in workers) >= 1  # the service prepared it
        train(tmp_path / "resumed", *sets, "train.steps=4")
        resumed = train(tmp_path / "resumed", *sets, "train.steps=8",
                        f"data.service=grpc://{address}")
    np.testing.assert_allclose(served, local, rtol=1e-5)
    np.testing.assert_allclose(resumed, local, rtol=1e-5)
