"""Every command the documentation shows runs, so none can rot.

Collects each `python -m ...` command of README.md, configs/README.md,
docs/recipes.md and docs/scale.md (fenced blocks and inline code), in page
order, and runs it as a user would, in a scratch folder beside the
repository's `configs/`, with tiny overrides appended to training and
inspection (model size, steps, batch), also after a launcher's `--`.
Commands that a test cannot shrink are listed in SKIPPED with the reason; a
command that is neither run nor listed fails the test. Blocks fenced
```bash cluster need machines a test does not have (several hosts, a TPU,
Slurm, Kubernetes): their commands are collected and skipped with that
reason, and the configs they name must exist. docs/scale.md runs in its own
test (`-k scale_page`).
"""

import os
import re
import shlex
import subprocess
import sys
import time

import pytest
import yaml

from tests import tiny

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ("README.md", "configs/README.md", "docs/recipes.md", "docs/scale.md")
# Pages whose commands run in a test of their own (selectable alone).
OWN_TEST = ("docs/scale.md",)
CLUSTER = "cluster"  # the fence tag of blocks that need a cluster or a TPU
CLUSTER_REASON = ("needs machines a test does not have (several hosts, a TPU, Slurm, "
                  "Kubernetes): a ```bash cluster block")
# Commands not run here, each with its reason.
SKIPPED = {
    "pip install": "installation; CI runs it before the tests",
    "python -m pytest": "the test suite itself",
    "python -m benchmarks": "measurements of minutes; their results are checked in "
                            "(benchmarks/results) and benchmarks have no tiny mode",
}
ENTRY_POINTS = ("python -m tfmask.train", "python -m tfmask.predict", "python -m tfmask.inspect",
                "python -m tfmask.launch", "python -m tfmask.export")
FIXTURES = os.path.join(REPO, "tests", "fixtures")


def fenced_and_inline(text, tag=None):
    """(shell lines of ```bash / ```sh / bare ``` blocks, text outside blocks);
    with `tag`, the shell lines of the blocks fenced ```bash TAG instead."""
    shell, prose, info = [], [], None
    for line in text.splitlines():
        if line.startswith("```"):
            info = None if info is not None else line[3:].split()
            continue
        if info is None:
            prose.append(line)
        elif info[:1] in ([], ["bash"], ["sh"]) and info[1:2] == ([tag] if tag else []):
            shell.append(line)
    return "\n".join(shell).replace("\\\n", " ").splitlines(), "\n".join(prose)


def _commands(lines):
    """The `python -m` / `pip install` commands of shell lines (an `exec` or
    an `&&` chain included; one inside a quoted string or `$(...)` is not seen)."""
    found = []
    for line in lines:
        words, command = shlex.split(line, comments=True) + ["&&"], []
        for word in words:
            if word != "&&":
                command.append(word)
                continue
            command = command[1:] if command[:1] == ["exec"] else command
            if command[:2] == ["python", "-m"] or command[:2] == ["pip", "install"]:
                found.append(shlex.join(command))
            command = []
    return found


def documented_commands(pages=PAGES):
    """(page, command) for every `python -m` / `pip` command, in page order."""
    found = []
    for page in pages:
        text = open(os.path.join(REPO, page), encoding="utf-8").read()
        lines, prose = fenced_and_inline(text)
        lines += re.findall(r"`((?:python -m|pip install) [^`]+)`", prose)
        found += [(page, command) for command in _commands(lines)]
    return found


def cluster_commands(pages=PAGES):
    """(page, command) for every command of the ```bash cluster blocks."""
    found = []
    for page in pages:
        text = open(os.path.join(REPO, page), encoding="utf-8").read()
        found += [(page, c) for c in _commands(fenced_and_inline(text, CLUSTER)[0])]
    return found


def skip_reason(command):
    if "NAME" in command:
        return "a template (configs/NAME.yaml), not a command"
    if command in ENTRY_POINTS:
        return "names an entry point; its real uses are listed with arguments"
    return next((why for prefix, why in SKIPPED.items() if command.startswith(prefix)), None)


def tiny_overrides(argv):
    """--set flags that shrink a training / inspection command's config."""
    config_path = argv[argv.index("--config") + 1] if "--config" in argv else None
    config = yaml.safe_load(open(os.path.join(REPO, config_path))) if config_path else {}
    sets = {}
    for i, arg in enumerate(argv):
        if arg == "--set":
            key, value = argv[i + 1].split("=", 1)
            sets[key] = value
    model, data = config.get("model", {}), config.get("data", {})
    # The model and vocabulary sizes are the shared tiny ones (tests/tiny.py); a
    # documented command only has to run, so 2 steps of 4 examples (not the tiny 4 of 8).
    out = ["train.steps=2", "train.log_every=1", "train.eval_batches=1", "schedule.warmup_steps=1",
           "data.batch_size=4", "data.eval_batch_size=4"]
    dense = model.get("family") in ("dense_classifier", "masked_autoencoder")
    # A text model from a checkpoint keeps its size; a dense one starts from the
    # page's own (shrunk) autoencoder run, so it shrinks the same way.
    if dense or (not model.get("pretrained") and "model.pretrained" not in sets):
        out += [f"model.{k}={v}" for k, v in tiny.SIZES.items() if k in model]
    if dense:
        return [arg for value in out for arg in ("--set", value)]  # arrays: no text settings
    if data.get("vocabulary", "train") == "train":
        out.append(f"data.vocabulary_size={tiny.TINY['data']['vocabulary_size']}")
    if config.get("masking", {}).get("strategy") != "prompt":  # prompts need their length
        out.append(f"data.sequence_length={min(int(data.get('sequence_length', 128)), 48)}")
    if "target_length" in data:
        out.append("data.target_length=24")
    if "generate_examples" in config.get("train", {}):
        out.append("train.generate_examples=2")
    return [arg for value in out for arg in ("--set", value)]


def prepare_scratch(folder):
    """configs/ linked in; documented example data paths filled from fixtures."""
    os.symlink(os.path.join(REPO, "configs"), os.path.join(folder, "configs"))
    ner = os.path.join(folder, "ner")
    os.makedirs(ner)
    sample = open(os.path.join(FIXTURES, "conll2003_sample.txt"), encoding="utf-8").read()
    for split in ("train", "validation", "test"):
        with open(os.path.join(ner, f"{split}.conll"), "w", encoding="utf-8") as f:
            f.write(sample)


def as_run(command):
    """The argv to run: the command, tiny overrides added to train / inspect
    and to the training arguments of a launcher (after its `--`)."""
    argv = shlex.split(command)
    module = argv[2] if argv[:2] == ["python", "-m"] else None
    if module in ("tfmask.train", "tfmask.inspect") or (module == "tfmask.launch"
                                                       and "--" in argv):
        argv += tiny_overrides(argv)
    return [sys.executable] + argv[1:]


def run_documented(pages, folder):
    """Runs the pages' commands in page order in `folder`; returns
    ([(seconds, command) run], [commands skipped])."""
    prepare_scratch(folder)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO}
    times, skipped, seen = [], [], set()
    for page, command in documented_commands(pages):
        if command in seen:
            continue
        seen.add(command)
        why = skip_reason(command)
        if why:
            skipped.append(command)
            continue
        start = time.time()
        done = subprocess.run(as_run(command), cwd=folder, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (f"{page}: {command}\n" + done.stdout[-1500:]
                                      + done.stderr[-3000:])
        times.append((time.time() - start, command))
    for seconds, command in times:
        print(f"{seconds:6.1f} s  {command}")
    return times, skipped


@pytest.mark.journey
def test_every_documented_command_runs(tmp_path):
    pages = [page for page in PAGES if page not in OWN_TEST]
    assert len(documented_commands(pages)) >= 25  # the pages were found and parsed
    times, skipped = run_documented(pages, tmp_path)
    assert len(times) >= 20
    # Every skipped command matches a listed reason, and every reason is used.
    assert {prefix for prefix in SKIPPED if any(c.startswith(prefix) for c in skipped)} \
        == set(SKIPPED)


@pytest.mark.journey
def test_every_command_of_the_scale_page_runs(tmp_path):
    """docs/scale.md: mirrored on this machine's CPU, two local workers
    through the launcher, the TF_CONFIG lines of a cluster."""
    times, skipped = run_documented(["docs/scale.md"], tmp_path)
    ran = [command for _, command in times]
    assert any(c.startswith("python -m tfmask.launch --workers 2 -- ") for c in ran), ran
    assert any(c.startswith("python -m tfmask.launch --print_tf_config") for c in ran), ran
    assert any("runtime.strategy=mirrored" in c for c in ran), ran
    assert (tmp_path / "runs" / "mlm_2workers" / "checkpoints" / "ckpt-2.index").exists()


def test_documented_commands_are_found_and_configs_exist():
    """Fast check: the parser sees the pages' commands and every --config
    exists, also in the cluster-only blocks."""
    commands = documented_commands()
    cluster = cluster_commands()
    for page, command in commands + cluster:
        argv = shlex.split(command)
        if "--config" in argv:
            path = argv[argv.index("--config") + 1]
            if "NAME" not in path:
                assert os.path.exists(os.path.join(REPO, path)), (page, command)
    modules = {shlex.split(c)[2] for _, c in commands if c.startswith("python -m")}
    assert {"tfmask.train", "tfmask.predict", "tfmask.inspect", "tfmask.datasets",
            "tfmask.launch"} <= modules
    # The cluster-only commands are seen, and none of them is run.
    cluster_only = {c for _, c in cluster}
    assert any("runtime.strategy=tpu" in c for c in cluster_only), cluster_only
    assert any("runtime.strategy=multi_worker" in c for c in cluster_only), cluster_only
    assert not cluster_only & {c for _, c in commands}
