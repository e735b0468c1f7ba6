"""A run folder: its one layout, owned by one process, resumed only with a
compatible config.

    runs/rt/
      config.yaml            the config as the user set it, family defaults made explicit
      config_history.jsonl   harmless changes made on resume
      runtime.jsonl          what each start resolved on its machine (precision `auto`, ...)
      checkpoints/           tf.train checkpoints (tmp_<worker>_<i>/ for non-chief workers)
      metrics.jsonl, logs/   training and evaluation records, TensorBoard
      export/                model.keras, vocab.txt, saved_model/, export.json (its step)
      .lock                  the kernel lock (flock) of the process using the folder

Every path inside a run folder is named here and nowhere else:

    folder = RunFolder("runs/rt")
    folder.acquire()                 # flock on .lock; refused while another process holds it
    folder.check_config(config, resuming=True)   # refuse shape changes, log the rest
    folder.export.model                           # runs/rt/export/model.keras
    folder.release()

Files are written atomically (temporary name, fsync, rename): a run killed at
any moment leaves the previous `config.yaml` or `export/`, never half of one.
"""

import fcntl
import json
import os
import re
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
    "data.service",  # where the same batches are prepared (tfmask.data.service)
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


def config_text(config):
    """What config.yaml holds for `config` (checkpoints carry the same text)."""
    return yaml.safe_dump(asdict(config), sort_keys=False)


def parse_saved_config(text, where):
    """A saved run config (config.yaml, or the copy in a checkpoint) as a dict."""
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as error:
        problem = " ".join(str(error).split())
        raise ConfigError(f"{where} is not valid YAML ({problem}); fix it, or delete it: the "
                          "checkpoints carry the config it must match.") from None
    if values is None:
        return {}
    if not isinstance(values, dict) or not all(isinstance(v, dict) for v in values.values()):
        raise ConfigError(f"{where} is not a run config (a mapping of sections such as model: "
                          "and data:); fix it, or delete it: the checkpoints carry the config "
                          "it must match.")
    return values


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

    @property
    def record(self):
        """`export.json`: the training step the export was made from."""
        return os.path.join(self.path, "export.json")

    def write_record(self, step):
        atomic_write_text(self.record, json.dumps(
            {"step": int(step), "time": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n")

    def step(self):
        """The step this export was made from; None when there is no export,
        or it predates export.json (its step is unknown)."""
        try:
            with open(self.record, encoding="utf-8") as f:
                return int(json.load(f)["step"])
        except (OSError, ValueError, KeyError, TypeError):
            return None


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

    def current_export(self):
        """`export/`, refused in one line when it is behind the run's
        checkpoints (a run stopped between its last save and its export):
        what predict, serving and `model.pretrained` read must be the model
        the run trained, never an older one under its name."""
        exported, steps = self.export.step(), self.checkpoint_steps()
        if exported is not None and steps and steps[0] > exported:
            raise RunError(
                f"{self.export.path} holds step {exported}, behind the run's checkpoint of step "
                f"{steps[0]} (it stopped before exporting); rerun its train command to export "
                f"step {steps[0]}.")
        return self.export

    def is_run(self):
        """True for a folder written by `python -m tfmask.train` with an export."""
        return os.path.isfile(self.export.model)

    def saved_config_values(self):
        """config.yaml as plain nested dicts, or None when there is none; a
        file that is not a YAML mapping is one line naming it."""
        if not os.path.isfile(self.config_file):
            return None
        with open(self.config_file, encoding="utf-8") as f:
            text = f.read()
        return parse_saved_config(text, self.config_file)

    def save_config(self, config):
        """Writes the config (every default made explicit) as YAML,
        atomically: a crash leaves the old file or the new one, never half."""
        atomic_write_text(self.config_file, config_text(config))

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
        """Takes the folder's lock, or refuses in one line if another process holds it.

        The lock is the kernel's (`fcntl.flock` on `.lock`): it is atomic, and
        it is released when its process dies, however it dies, so no pid or
        host has to be guessed at. The pid and host written into the file only
        name the holder in the error line."""
        self.create()
        path = self._file(LOCK)
        for _ in range(100):  # retried only while another process swaps the file
            descriptor = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(descriptor)
                raise RunError(self._in_use_line(path)) from None
            # The holder before us may have removed the file after we opened
            # it: a lock on a removed file guards nothing; take the new one.
            try:
                current = os.stat(path).st_ino
            except FileNotFoundError:
                current = None
            if current != os.fstat(descriptor).st_ino:
                os.close(descriptor)
                continue
            os.ftruncate(descriptor, 0)
            os.write(descriptor, json.dumps({
                "pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
            self._descriptor, self.locked = descriptor, True
            return
        raise RunError(f"could not take the lock {path}; another process keeps replacing it.")

    def _in_use_line(self, path):
        owner = self._owner() or {}
        who = f"process {owner.get('pid', '?')} on {owner.get('host', '?')}"
        return (f"{self.path} is in use by {who} (since {owner.get('started', '?')}); wait for "
                "it, stop it, or pick another --output_dir. The kernel holds this lock for a "
                f"live process: if that pid is not a tfmask run, `fuser -v {path}` names the "
                "process holding it (deleting the file does not free it).")

    def _owner(self):
        try:
            with open(self._file(LOCK)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def release(self):
        """Removes `.lock` while still holding it, then lets go."""
        if self.locked:
            try:
                os.remove(self._file(LOCK))
            except OSError:
                pass
            os.close(self._descriptor)
            self.locked = False

    # ------------------------------------------------------------ config
    def check_config(self, config, resuming, checkpoint_config=None):
        """Before anything is written: a resumed run must keep every key that
        shapes the model, data or trajectory; harmless changes are appended
        to config_history.jsonl. A new run writes config.yaml.

        What is compared is what the user set (with the family's defaults
        made explicit), never what this machine resolved: `precision: auto`
        stays `auto` here, so a harmless key such as runtime.jit_compile
        cannot turn into a refused precision change. `checkpoint_config()`
        returns the config text the newest checkpoint carries (or None): it
        stands in for a deleted config.yaml, which is then written back."""
        if not resuming:
            self.save_config(config)
            return {}
        saved, recovered = self.saved_config_values(), None
        if saved is None:
            recovered = checkpoint_config() if checkpoint_config else None
            if recovered is None:
                raise ConfigError(
                    f"{self.path} holds checkpoints but no config.yaml to check this run "
                    "against; put the run's config.yaml back, or pick another --output_dir.")
            saved = parse_saved_config(recovered, f"the config in {self.checkpoints_dir()}")
        saved = _flatten(saved)
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
        if recovered is not None:
            atomic_write_text(self.config_file, recovered)
        if changed:
            record = {"time": time.strftime("%Y-%m-%d %H:%M:%S"),
                      "changes": {k: [old, new] for k, (old, new) in sorted(changed.items())}}
            with open(self._file(HISTORY), "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        return changed

    # ------------------------------------------------------------ checkpoints
    def checkpoint_steps(self):
        """The steps of the chief's checkpoints, newest first, found by their
        index files: the `checkpoint` state file can be damaged or behind."""
        folder = self.checkpoints_dir()
        names = os.listdir(folder) if os.path.isdir(folder) else []
        steps = [re.fullmatch(r"ckpt-(\d+)\.index", name) for name in names]
        return sorted((int(match.group(1)) for match in steps if match), reverse=True)

    def checkpoint_path(self, step):
        """The prefix of the chief's checkpoint of `step` (what tf.train reads)."""
        return os.path.join(self.checkpoints_dir(), f"ckpt-{step}")

    # ------------------------------------------------------------ leftovers
    def clean_leftovers(self):
        """Removes what a killed process left half-written: checkpoint saves
        (`checkpoints/*_temp*`), staged or replaced exports (`export.tmp-*`,
        `export.old-*`) and atomic-write temporaries. Called under the lock,
        so nothing else is writing them. Returns the removed names."""
        leftovers = []
        checkpoints = self.checkpoints_dir()
        if os.path.isdir(checkpoints):
            leftovers += [os.path.join(checkpoints, name) for name in os.listdir(checkpoints)
                          if "_temp" in name]
        export = os.path.basename(self.export.path)
        leftovers += [self._file(name) for name in os.listdir(self.path)
                      if name.startswith((f"{export}.tmp-", f"{export}.old-"))
                      or (name.startswith(".") and ".tmp-" in name)]
        for target in leftovers:
            if os.path.isdir(target):
                shutil.rmtree(target, ignore_errors=True)
            else:
                os.remove(target)
        return [os.path.relpath(target, self.path) for target in leftovers]

    def final_row_logged(self, step):
        """Whether metrics.jsonl holds the final evaluation of `step`."""
        return any(record.get("step") == step and "train_steps" in record
                   for record in self._metric_records())

    def _metric_records(self):
        if not os.path.exists(self.metrics_file):
            return []
        records = []
        with open(self.metrics_file, encoding="utf-8") as f:
            for line in f:
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue  # a line cut by a crash
        return records

    def truncate_metrics(self, step):
        """Drops metrics.jsonl records after `step` (they are about to be
        redone) and lines a crash cut."""
        if os.path.exists(self.metrics_file):
            kept = [record for record in self._metric_records() if record.get("step", 0) <= step]
            atomic_write_text(self.metrics_file, "".join(json.dumps(r) + "\n" for r in kept))
