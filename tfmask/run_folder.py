"""A run folder: its one layout, owned by one process, resumed only with a
compatible config.

    runs/rt/
      config.yaml            the config as the user set it, family defaults made explicit
      config_history.jsonl   harmless changes made on resume
      runtime.jsonl          what each start resolved on its machine (precision `auto`, ...)
      checkpoints/           tf.train checkpoints (tmp_<worker>_<i>/ for non-chief workers)
      metrics.jsonl, logs/   training and evaluation records, TensorBoard
      export/                model.keras, vocab.txt, saved_model/
      .lock                  pid and host of the process using the folder

Every path inside a run folder is named here and nowhere else:

    folder = RunFolder("runs/rt")
    folder.acquire()                 # .lock with pid and host; stale locks taken over
    folder.check_config(config, resuming=True)   # refuse shape changes, log the rest
    folder.export.model                           # runs/rt/export/model.keras
    folder.release()

Files are written atomically (temporary name, fsync, rename): a run killed at
any moment leaves the previous `config.yaml` or `export/`, never half of one.
"""

import json
import os
import shutil
import socket
import time
from dataclasses import asdict

import yaml

from tfmask.errors import ConfigError, RunError

LOCK = ".lock"
CONFIG = "config.yaml"
HISTORY = "config_history.jsonl"
RUNTIME = "runtime.jsonl"
METRICS = "metrics.jsonl"
LOGS = "logs"
CHECKPOINTS = "checkpoints"
EXPORT = "export"
# Keys a resumed run may change: they decide how long and how visibly it
# trains, not what it trains. Every other key shapes the model, the data or
# the trajectory, and a change is refused.
HARMLESS = {
    "train.steps", "train.log_every", "train.eval_every", "train.eval_batches",
    "train.generate_examples", "train.extra_eval_splits", "train.max_seconds",
    "data.eval_split", "data.eval_batch_size", "runtime.checkpoint_every", "runtime.checkpoint_seconds",
    "runtime.keep_checkpoints", "runtime.output_dir", "runtime.export",
    "runtime.export_saved_model", "runtime.strategy", "runtime.num_devices", "runtime.tpu",
    "runtime.jit_compile", "runtime.steps_per_execution",
}


def atomic_write_text(path, text):
    """Writes `text` to `path` through a temporary file, fsync and rename."""
    folder = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(folder, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    with open(temporary, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


def replace_folder(temporary, path):
    """Moves a fully written folder over `path` (renames, no copy)."""
    old = None
    if os.path.exists(path):
        old = f"{path}.old-{os.getpid()}"
        os.replace(path, old)
    os.replace(temporary, path)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def _flatten(values, prefix=""):
    flat = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and prefix == "":
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _resolved_before(key, old, new):
    """A run folder written before `precision: auto` stayed `auto` in
    config.yaml holds what `auto` resolved to then; resuming it with `auto`
    is the same setting, resolved anew at this start."""
    return key == "runtime.precision" and new == "auto" and old in (
        "float32", "mixed_float16", "mixed_bfloat16")


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


class ExportFolder:
    """A run's `export/`, or the temporary folder written to replace it."""

    def __init__(self, path):
        self.path = path

    @property
    def model(self):
        return os.path.join(self.path, "model.keras")

    @property
    def vocabulary(self):
        return os.path.join(self.path, "vocab.txt")

    @property
    def saved_model(self):
        return os.path.join(self.path, "saved_model")


class RunFolder:
    """The output folder of one run; see the module docstring."""

    def __init__(self, path):
        self.path = path
        self.locked = False

    def _file(self, name):
        return os.path.join(self.path, name)

    # ------------------------------------------------------------ layout
    @property
    def config_file(self):
        return self._file(CONFIG)

    @property
    def metrics_file(self):
        return self._file(METRICS)

    @property
    def logs_dir(self):
        return self._file(LOGS)

    def checkpoints_dir(self, worker=None):
        """The chief's checkpoints; `worker=(task_type, index)` names a
        non-chief worker's temporary copy (saving is collective)."""
        if worker is None:
            return self._file(CHECKPOINTS)
        task_type, index = worker
        return self._file(f"tmp_{task_type}_{index}")

    @property
    def export(self):
        """`export/`: what `predict`, serving and `model.pretrained` read."""
        return ExportFolder(self._file(EXPORT))

    def is_run(self):
        """True for a folder written by `python -m tfmask.train` with an export."""
        return os.path.isfile(self.export.model)

    def saved_config_values(self):
        """config.yaml as plain nested dicts, or None when there is none."""
        if not os.path.isfile(self.config_file):
            return None
        with open(self.config_file, encoding="utf-8") as f:
            return yaml.safe_load(f) or {}

    def save_config(self, config):
        """Writes the config (every default made explicit) as YAML,
        atomically: a crash leaves the old file or the new one, never half."""
        atomic_write_text(self.config_file,
                          yaml.safe_dump(asdict(config), sort_keys=False))

    def record_runtime(self, record):
        """Appends what this start resolved on its machine to runtime.jsonl."""
        line = {"time": time.strftime("%Y-%m-%d %H:%M:%S"), **record}
        with open(self._file(RUNTIME), "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")

    def create(self):
        if os.path.exists(self.path) and not os.path.isdir(self.path):
            raise RunError(f"--output_dir {self.path} is a file, not a folder; pick a folder.")
        try:
            os.makedirs(self.path, exist_ok=True)
            probe = self._file(f".write-test-{os.getpid()}")
            with open(probe, "w") as f:
                f.write("ok")
            os.remove(probe)
        except OSError as error:
            raise RunError(f"cannot write to --output_dir {self.path} ({error.strerror}); "
                           "pick a writable folder with free space.") from None

    # ------------------------------------------------------------ lock
    def acquire(self):
        """Takes the folder's lock, or refuses in one line if a live process holds it."""
        self.create()
        host, path = socket.gethostname(), self._file(LOCK)
        for _ in range(2):
            try:
                descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                owner = self._owner()
                if owner and owner.get("host") == host and _alive(owner.get("pid", -1)) \
                        and owner.get("pid") != os.getpid():
                    raise RunError(
                        f"{self.path} is in use by process {owner['pid']} on {host} (since "
                        f"{owner.get('started', '?')}); wait for it, stop it, or pick another "
                        "--output_dir.") from None
                if owner and owner.get("host") not in (None, host):
                    raise RunError(
                        f"{self.path} is locked by process {owner.get('pid')} on host "
                        f"{owner['host']}; if that run is dead, delete {path}.") from None
                os.remove(path)  # stale: its process is gone
                continue
            with os.fdopen(descriptor, "w") as f:
                json.dump({"pid": os.getpid(), "host": host,
                           "started": time.strftime("%Y-%m-%d %H:%M:%S")}, f)
            self.locked = True
            return
        raise RunError(f"could not take the lock {path}; delete it if no run uses the folder.")

    def _owner(self):
        try:
            with open(self._file(LOCK)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def release(self):
        if self.locked:
            try:
                os.remove(self._file(LOCK))
            except OSError:
                pass
            self.locked = False

    # ------------------------------------------------------------ config
    def check_config(self, config, resuming):
        """Before anything is written: a resumed run must keep every key that
        shapes the model, data or trajectory; harmless changes are appended
        to config_history.jsonl. A new run writes config.yaml.

        What is compared is what the user set (with the family's defaults
        made explicit), never what this machine resolved: `precision: auto`
        stays `auto` here, so a harmless key such as runtime.jit_compile
        cannot turn into a refused precision change."""
        path = self.config_file
        if not (resuming and os.path.exists(path)):
            self.save_config(config)
            return {}
        saved = _flatten(self.saved_config_values())
        current = _flatten(asdict(config))
        changed = {key: (saved.get(key), value) for key, value in current.items()
                   if saved.get(key) != value}
        refused = {k: v for k, v in changed.items()
                   if k not in HARMLESS and not _resolved_before(k, *v)}
        if refused:
            shown = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in sorted(refused.items()))
            raise ConfigError(
                f"{self.path} holds a run trained with other settings ({shown}); resume with "
                "the saved values or pick another --output_dir.")
        if changed:
            record = {"time": time.strftime("%Y-%m-%d %H:%M:%S"),
                      "changes": {k: [old, new] for k, (old, new) in sorted(changed.items())}}
            with open(self._file(HISTORY), "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        return changed

    # ------------------------------------------------------------ leftovers
    def clean_temporary_checkpoints(self):
        """Removes half-written checkpoints (`*_temp*`) a killed save left."""
        folder = self.checkpoints_dir()
        if not os.path.isdir(folder):
            return []
        stale = [name for name in os.listdir(folder) if "_temp" in name]
        for name in stale:
            target = os.path.join(folder, name)
            if os.path.isdir(target):
                shutil.rmtree(target, ignore_errors=True)
            else:
                os.remove(target)
        return stale

    def truncate_metrics(self, step):
        """Drops metrics.jsonl records after `step` (they are about to be redone)."""
        path = self.metrics_file
        if not os.path.exists(path):
            return
        with open(path, encoding="utf-8") as f:
            lines = [line for line in f if line.strip()]
        kept = []
        for line in lines:
            try:
                if json.loads(line).get("step", 0) <= step:
                    kept.append(line)
            except ValueError:
                continue  # a line cut by a crash
        atomic_write_text(path, "".join(kept))
