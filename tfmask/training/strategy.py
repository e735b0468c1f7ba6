"""Distribution strategies by name: default, mirrored, multi_worker, tpu.

The data's `batch_size` is the *global* batch; each replica gets
`batch_size / num_replicas` (datasets are batched with drop_remainder so
shapes stay static, which TPUs and XLA need).
"""

import json
import os

import tensorflow as tf

from tfmask.errors import ConfigError


def configure_cpu_devices(count):
    """Splits the CPU into `count` logical devices (must run before TF starts).

    Lets `mirrored` be exercised without GPUs (tests, CI).
    """
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:
        if len(tf.config.list_logical_devices("CPU")) != count:
            raise ConfigError(
                f"runtime.num_devices={count} CPU devices must be configured before "
                "TensorFlow runs anything; start a fresh process.") from None


def make_strategy(runtime):
    """A tf.distribute strategy for `runtime.strategy`."""
    name = runtime.strategy
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            devices = [f"/gpu:{i}" for i in range(len(gpus))]
        else:
            configure_cpu_devices(max(runtime.num_devices, 1))
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        if runtime.num_devices:
            devices = devices[: runtime.num_devices]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ConfigError(
                "runtime.strategy=multi_worker reads the cluster from the TF_CONFIG "
                "environment variable, which is not set; export it on every worker.")
        try:
            json.loads(os.environ["TF_CONFIG"])
        except ValueError:
            raise ConfigError("TF_CONFIG is not valid JSON; fix the environment variable.") from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=runtime.tpu or None)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ConfigError(f"runtime.strategy={name!r} is unknown.")


def worker_index():
    """(task type, index) from TF_CONFIG; ("chief", 0) when there is none."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = config.get("task") or {}
    return task.get("type", "chief"), task.get("index", 0), "chief" in config.get("cluster", {})


def num_workers():
    """How many worker processes train together (chief included), from
    TF_CONFIG; 1 without a cluster."""
    cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
    return max(1, sum(len(cluster.get(kind, [])) for kind in ("chief", "worker")))


def is_chief():
    """True on the one worker that keeps checkpoints, logs and exports.

    That is the "chief" task, or worker 0 in a cluster without a chief.
    """
    task_type, index, has_chief = worker_index()
    return task_type == "chief" or (task_type == "worker" and index == 0 and not has_chief)
