"""A command line's first lines are tfmask's (issue 29): TensorFlow's C++
start-up lines hidden unless asked for, one block saying what `train`
resolved, plain progress lines (no escape codes) when the output is a file."""

import os
import re
import subprocess
import sys

import pytest

from tfmask.native_log import command_line_name, hidden, is_native_line

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NATIVE = ["I0000 00:00:1796552231.601309   15346 port.cc:153] oneDNN custom operations are on.",
          "E0000 00:00:1796552238.058413   15346 cuda_platform.cc:52] failed call to cuInit: "
          "INTERNAL: CUDA error",
          "W0000 00:00:1796552238.058413   15346 x.cc:1] a warning",
          "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
          "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild "
          "TensorFlow with the appropriate compiler flags."]


def run(args, env=None, timeout=300):
    environment = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    environment.update(env or {})
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO,
                          env=environment, timeout=timeout)


def test_levels_follow_tensorflows_meaning():
    fatal = "F0000 00:00:1.5 7 x.cc:3] the end"
    assert [is_native_line(line) for line in NATIVE] == ["I", "E", "W", "I", "I"]
    assert all(hidden(line, 3) for line in NATIVE) and not hidden(fatal, 3)
    assert [hidden(line, 2) for line in NATIVE[:3]] == [True, False, True]
    assert not any(hidden(line, 0) for line in NATIVE)
    assert not hidden("error: data.name is empty; set a dataset name", 3)
    assert command_line_name(["python", "-m", "tfmask.train", "--config", "x"]) == "tfmask.train"
    assert command_line_name(["python", "-c", "import tfmask"]) is None
    assert command_line_name(["python", "-m", "pytest"]) is None


@pytest.mark.journey
def test_train_starts_with_tfmasks_lines_and_logs_plainly_to_a_file(tmp_path):
    args = ["-m", "tfmask.train", "--config", "tests/configs/tiny_mlm.yaml",
            "--output_dir", str(tmp_path / "run"), "--set", "train.steps=4",
            "--set", "train.log_every=2", "--set", "runtime.export=false"]
    done = run(args)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr == ""  # no cuInit, oneDNN or CPU-feature lines
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"tfmask\.train: mlm, masking whole_word, on austen \(train [\d,]+ / "
                        r"validation [\d,]+ documents\)", lines[0]), lines[0]
    assert lines[1].startswith("model: ") and "parameters (from scratch: 1 layer x 32)" in lines[1]
    assert lines[2].startswith("precision: float32; strategy default: 1 replica on CPU")
    assert lines[3] == ("training: 4 steps of 8 x 32 tokens; evaluation at the end; "
                        "checkpoints every 10 steps")
    assert lines[4] == f"output: {tmp_path / 'run'}"
    progress = [line for line in lines if line.startswith("step ") and "/4:" in line]
    assert [line.split(":")[0] for line in progress] == ["step 2/4", "step 4/4"]
    assert all(re.match(r"step \d/4: loss [\d.]+, accuracy [\d.e-]+, tokens/s \d", line)
               for line in progress), progress
    assert "\x1b" not in done.stdout and "\r" not in done.stdout
    assert lines[-2].startswith("final: eval_loss") and lines[-1].startswith("outputs in ")

    verbose = run(args + ["--verbose"])  # the same run, finished: TensorFlow's lines shown
    assert verbose.returncode == 0
    assert any(is_native_line(line) for line in verbose.stderr.splitlines())
    shown = run(args, env={"TF_CPP_MIN_LOG_LEVEL": "0"})  # the user's level is obeyed
    assert any(is_native_line(line) == "I" for line in shown.stderr.splitlines())


@pytest.mark.journey
def test_a_failing_command_prints_only_its_error_line():
    done = run(["-m", "tfmask.predict", "--run", "/nonexistent", "--text", "x"])
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: /nonexistent has no export/model.keras; train it with python -m tfmask.train "
        "(runtime.export: true) first. (--debug shows where)"]


def test_the_filter_keeps_everything_but_native_lines():
    # (Importing tfmask.native_log imports TensorFlow, whose lines come first:
    # only a command line filters before that. Compare what follows "start".)
    code = ("import os, sys; from tfmask.native_log import filter_stderr; filter_stderr(3); "
            "os.write(2, b'start\\n' + ('\\n'.join(sys.argv[1:]) + '\\nerror: kept\\n')"
            ".encode()); print('python line', file=sys.stderr)")
    fatal = "F0000 00:00:1.5 7 x.cc:3] the end"
    done = run(["-c", code, *NATIVE, fatal])
    lines = done.stderr.splitlines()
    assert lines[lines.index("start") + 1:] == [fatal, "error: kept", "python line"]
