"""Every command the documentation shows runs, so none can rot.

Collects each `python -m ...` command of README.md, configs/README.md and
docs/recipes.md (fenced blocks and inline code), in page order, and runs it
as a user would, in a scratch folder beside the repository's `configs/`,
with tiny overrides appended to training and inspection (model size, steps,
batch). Commands that a test cannot shrink are listed in SKIPPED with the
reason; a command that is neither run nor listed fails the test.
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
PAGES = ("README.md", "configs/README.md", "docs/recipes.md")
# Commands not run here, each with its reason.
SKIPPED = {
    "pip install": "installation; CI runs it before the tests",
    "python -m pytest": "the test suite itself",
    "python -m benchmarks": "measurements of minutes; their results are checked in "
                            "(benchmarks/results) and benchmarks have no tiny mode",
}
ENTRY_POINTS = ("python -m tfmask.train", "python -m tfmask.predict", "python -m tfmask.inspect")
FIXTURES = os.path.join(REPO, "tests", "fixtures")


def fenced_and_inline(text):
    """(shell lines of ```bash / ```sh / bare ``` blocks, text outside blocks)."""
    shell, prose, language = [], [], None
    for line in text.splitlines():
        if line.startswith("```"):
            language = None if language is not None else line[3:].strip()
            continue
        if language is None:
            prose.append(line)
        elif language in ("", "bash", "sh"):
            shell.append(line)
    return "\n".join(shell).replace("\\\n", " ").splitlines(), "\n".join(prose)


def documented_commands():
    """(page, command) for every `python -m` / `pip` command, in page order."""
    found = []
    for page in PAGES:
        text = open(os.path.join(REPO, page), encoding="utf-8").read()
        lines, prose = fenced_and_inline(text)
        lines += re.findall(r"`((?:python -m|pip install) [^`]+)`", prose)
        for line in lines:
            words, command = shlex.split(line, comments=True) + ["&&"], []
            for word in words:
                if word != "&&":
                    command.append(word)
                    continue
                if command[:2] == ["python", "-m"] or command[:2] == ["pip", "install"]:
                    found.append((page, shlex.join(command)))
                command = []
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
    """The argv to run: the command, tiny overrides added to train / inspect."""
    argv = shlex.split(command)
    module = argv[2] if argv[:2] == ["python", "-m"] else None
    if module in ("tfmask.train", "tfmask.inspect"):
        argv += tiny_overrides(argv)
    return [sys.executable] + argv[1:]


@pytest.mark.journey
def test_every_documented_command_runs(tmp_path):
    commands = documented_commands()
    assert len(commands) >= 25, commands  # the pages were found and parsed
    prepare_scratch(tmp_path)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO}
    times, skipped, seen = [], [], set()
    for page, command in commands:
        if command in seen:
            continue
        seen.add(command)
        why = skip_reason(command)
        if why:
            skipped.append(command)
            continue
        start = time.time()
        done = subprocess.run(as_run(command), cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (f"{page}: {command}\n" + done.stdout[-1500:]
                                      + done.stderr[-3000:])
        times.append((time.time() - start, command))
    for seconds, command in times:
        print(f"{seconds:6.1f} s  {command}")
    assert len(times) >= 20
    # Every skipped command matches a listed reason, and every reason is used.
    assert {prefix for prefix in SKIPPED if any(c.startswith(prefix) for c in skipped)} \
        == set(SKIPPED)


def test_documented_commands_are_found_and_configs_exist():
    """Fast check: the parser sees the pages' commands and every --config exists."""
    commands = documented_commands()
    for page, command in commands:
        argv = shlex.split(command)
        if "--config" in argv:
            path = argv[argv.index("--config") + 1]
            if "NAME" not in path:
                assert os.path.exists(os.path.join(REPO, path)), (page, command)
    modules = {shlex.split(c)[2] for _, c in commands if c.startswith("python -m")}
    assert {"tfmask.train", "tfmask.predict", "tfmask.inspect", "tfmask.datasets"} <= modules
