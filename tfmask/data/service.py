"""Training input prepared by a tf.data service (`data.service: HOST:PORT`).

A host whose CPUs cannot keep its accelerator busy (a TPU VM, a GPU machine
with few cores) can hand its training pipeline (read, tokenize, mask, pack,
batch) to the workers of a tf.data service, TensorFlow's engine for input
at scale: the trainer sends the pipeline's graph to the service's
dispatcher, a worker runs it on its own CPUs and streams the finished
batches back. Evaluation stays on the trainer's host.

    python -m tfmask.data.service dispatcher --port 5050              # one machine
    python -m tfmask.data.service worker --dispatcher node0:5050 --port 5051
    python -m tfmask.train --config configs/mlm_austen_wordnet.yaml \\
        --set data.service=node0:5050 --output_dir runs/mlm

**The guarantee: the trainer gets the batches the local pipeline makes, in
its order**, so a run trains to the same losses with or without the
service (checked: `tests/training/test_data_service.py`), and resumes
exactly either way (the key is not part of what a run trains, so a run
may be resumed with it set or unset). Otherwise it stops with an error; it
never trains on other batches.

How: the pipeline is a pure function of `train.seed`, and exact resume
skips the `start` batches already trained (`Trainer._training_input`; the
skip runs in the service's job). Every trainer (every worker of a
multi_worker run, for its own share) gets a job of its own (`job_name`:
the run folder, the start step, the input pipeline and a nonce, so a
restart never joins an old job mid-stream) in `ShardingPolicy.OFF`: each
service worker runs the whole pipeline, in its order. Each batch is
numbered before it leaves the worker, and the trainer keeps batch k only
after batches 0..k-1 (`in_order`): a second worker's copy is dropped, and
a number further ahead (a batch lost in transit) stops the run with one
line (rerun to resume from the last checkpoint). A worker that is lost and
comes back (or a new one) prepares the job again from its start; the
trainer waits meanwhile and drops the batches it already has.

The cost, and why not the other modes: across several workers the
service hands out elements first-come first-served. `DYNAMIC` sharding
produces data non-deterministically (TensorFlow's documentation); static
sharding (`DATA`, `HINT`) needs a fixed worker list in the dispatcher's
config, and a worker would still prepare every batch before keeping its
share, since the pipeline is one sequential stream (a shuffle, packing
across documents, masks seeded per batch); coordinated reads
(`consumer_index`) take one element per worker in turn, in `OFF` the same
batch twice. So **one service worker prepares each job's stream**, with
all its cores (the pipeline's parallel stages are autotuned there): use a
machine with many CPUs. Every further worker prepares the same batches
again, a hot spare (the trainer takes each batch from whichever worker
sends it first), not more throughput; the service adds the CPUs of one
machine to the trainer's, not of the whole pool.

The service's workers run the pipeline's graph, not Python: a source read
by a Python generator (`file:` .jsonl, .csv, .tsv, .conll) or
`data.segmenter` is refused at the start (`python_ops`; use .tfrecord or
.txt files, or a prepared registry dataset). The files the pipeline reads
(`~/.cache/tfmask`, `file:` paths) must exist at the same path on every
service worker (a shared filesystem, or `gs://`).

Example (one line before any work when nothing answers):
>>> from tfmask.errors import ConfigError
>>> try:
...     check_reachable("grpc://127.0.0.1:1", timeout=1)
... except ConfigError as error:
...     print(error)
no tf.data service dispatcher answers at 127.0.0.1:1 (data.service): ...; start one
there (python -m tfmask.data.service dispatcher --port 1, then workers; docs/scale.md),
or unset data.service to prepare the input on this host.
"""

import argparse
import hashlib
import os
import re
import socket
import sys
import time
import uuid

import tensorflow as tf

from tfmask.errors import ConfigError
from tfmask.guards import guarded

SERVICE = tf.data.experimental.service
# Ops that call back into the Python process that built the graph.
PYTHON_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})


def _host_port(address):
    """'grpc://HOST:PORT' (as `tfmask.config.service_address` writes it) -> (HOST, PORT)."""
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    return host.strip("[]"), int(port)


def check_reachable(address, timeout=3.0):
    """Raises ConfigError, one line, unless something accepts a connection
    at the dispatcher's address within `timeout` seconds."""
    host, port = _host_port(address)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return
    except OSError as error:
        reason = error.strerror or type(error).__name__
    raise ConfigError(
        f"no tf.data service dispatcher answers at {host}:{port} (data.service): {reason}; "
        f"start one there (python -m tfmask.data.service dispatcher --port {port}, then "
        "workers; docs/scale.md), or unset data.service to prepare the input on this host.")


def job_name(output_dir, start, pipeline=0):
    """A job name of this run's folder, start step and input pipeline, with
    a nonce: a restart (from the same step too) never joins an old job.

    >>> job_name("runs/mlm", 200).startswith("tfmask-")
    True
    >>> job_name("runs/mlm", 200) != job_name("runs/mlm", 200)
    True
    """
    folder = hashlib.sha256(os.path.abspath(output_dir).encode("utf-8")).hexdigest()[:12]
    return f"tfmask-{folder}-step{start}-input{pipeline}-{uuid.uuid4().hex[:8]}"


def python_ops(dataset):
    """The ops of `dataset`'s graph that run Python (none may go to a worker)."""
    from tensorflow.core.framework import graph_pb2

    graph = graph_pb2.GraphDef()
    graph.ParseFromString(dataset._as_serialized_graph(  # what `distribute` sends
        external_state_policy=tf.data.experimental.ExternalStatePolicy.WARN).numpy())
    ops = {node.op for node in graph.node}
    for function in graph.library.function:
        ops.update(node.op for node in function.node_def)
    return ops & PYTHON_OPS


def in_order(numbered):
    """(k, batch) pairs from one or several copies of a stream, each copy in
    order -> the batches 0, 1, 2, ... once each: batch k is kept when it is
    the next one, a copy already seen is dropped, and a number further ahead
    (a gap in the stream) stops the iterator with an error.

    >>> copies = tf.data.Dataset.from_tensor_slices([0, 0, 1, 2, 1, 3, 2, 3])
    >>> [int(x) for x in in_order(copies.map(lambda k: (k, 10 * k)))]
    [0, 10, 20, 30]
    """

    def step(expected, element):
        index, batch = element
        check = tf.debugging.assert_less_equal(
            index, expected, message="data.service: a batch of the tf.data service job is "
            "missing (a worker was lost); rerun the same command to resume from the last "
            "checkpoint")
        fresh = tf.equal(guarded(index, check), expected)
        return expected + tf.cast(fresh, tf.int64), (fresh, batch)

    numbered = numbered.map(lambda index, batch: (tf.cast(index, tf.int64), batch))
    kept = numbered.scan(tf.constant(0, tf.int64), step).filter(lambda fresh, _: fresh)
    return kept.map(lambda _, batch: batch)


def service_address(value):
    """data.service as the `grpc://HOST:PORT` a tf.data service client
    dials; "" stays "" (no service). Anything else is one line naming the key.

    >>> service_address("127.0.0.1:5050"), service_address("grpc://node1:5050")
    ('grpc://127.0.0.1:5050', 'grpc://node1:5050')
    """
    if not value:
        return ""
    address = value.strip()
    address = address[len("grpc://"):] if address.startswith("grpc://") else address
    host, _, port = address.rpartition(":")
    if not (re.fullmatch(r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+", host) and port.isdigit()
            and 0 < int(port) < 65536):
        raise ConfigError(f"data.service={value!r} is not a tf.data service dispatcher address; "
                          "write HOST:PORT or grpc://HOST:PORT (e.g. 127.0.0.1:5050), or \"\" "
                          "to prepare the input on this host.")
    return f"grpc://{host}:{int(port)}"


def distribute(dataset, address, name):
    """`dataset` (a finite or infinite pipeline) run by the tf.data service
    at `address` as job `name`, read back in its own order (`in_order`).
    Raises ConfigError when the pipeline runs Python."""
    found = python_ops(dataset)
    if found:
        raise ConfigError(
            f"data.service: the training pipeline runs Python ({', '.join(sorted(found))}: a "
            "file: .jsonl/.csv/.tsv/.conll source or data.segmenter), which a tf.data service "
            "worker cannot run; use .tfrecord or .txt files or a prepared dataset, or unset "
            "data.service.")
    numbered = dataset.enumerate().apply(SERVICE.distribute(
        processing_mode=SERVICE.ShardingPolicy.OFF, service=service_address(address),
        job_name=name))
    return in_order(numbered)


# ------------------------------------------------------------ the servers
def serve(argv=None):
    """`python -m tfmask.data.service dispatcher|worker ...`: a dispatcher or
    a worker that runs until it is stopped (Ctrl-C, SIGTERM). A worker has
    tfmask's ops loaded (tensorflow_text's tokenizer), which a bare
    `tf.data.experimental.service.WorkerServer` lacks."""
    parser = argparse.ArgumentParser(prog="python -m tfmask.data.service")
    kinds = parser.add_subparsers(dest="kind", required=True)
    dispatcher = kinds.add_parser("dispatcher", help="the service's dispatcher")
    dispatcher.add_argument("--port", type=int, default=5050)
    worker = kinds.add_parser("worker", help="a worker that prepares batches")
    worker.add_argument("--dispatcher", required=True, help="HOST:PORT of the dispatcher")
    worker.add_argument("--port", type=int, default=5051)
    worker.add_argument("--host", default=socket.gethostname(),
                        help="the name trainers reach this worker by (default: this host's)")
    args = parser.parse_args(argv)
    if args.kind == "dispatcher":
        server = SERVICE.DispatchServer(SERVICE.DispatcherConfig(port=args.port))
        print(f"tf.data service dispatcher at port {args.port}; "
              f"train with --set data.service={socket.gethostname()}:{args.port}", flush=True)
    else:
        import tensorflow_text  # noqa: F401  (registers the tokenizer ops the pipelines run)

        server = SERVICE.WorkerServer(SERVICE.WorkerConfig(
            dispatcher_address=args.dispatcher.split("://", 1)[-1],
            worker_address=f"{args.host}:{args.port}", port=args.port))
        print(f"tf.data service worker {args.host}:{args.port} of {args.dispatcher}", flush=True)
    try:
        while True:  # the servers run in their own threads; Ctrl-C ends this one
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
        return 0


if __name__ == "__main__":
    sys.exit(serve())
