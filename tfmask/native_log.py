"""TensorFlow's C++ start-up lines, kept off a tfmask command line's screen.

TensorFlow 2.21 logs through absl's C++ logging before anything initialises
it, so `TF_CPP_MIN_LOG_LEVEL` no longer hides its lines: every command
opened with oneDNN, cudart and CPU-feature notices (most of them twice) and,
on every CPU machine, `E0000 ... failed call to cuInit: ... CUDA error`,
before the user's own output. A tfmask command line (`python -m tfmask.X`)
therefore reads the process's stderr through a pipe and drops those lines
below the level `TF_CPP_MIN_LOG_LEVEL` names (TensorFlow's own meaning: 0
shows all, 1 hides INFO, 2 also WARNING, 3 also ERROR; unset, tfmask's
commands use 3); FATAL lines and everything else (Python's errors,
tfmask's lines) pass unchanged. `--verbose` shows every line.

Only the commands do this, from `tfmask/__init__.py` before TensorFlow loads:
a program that imports tfmask as a library keeps its stderr as it is.

Written here rather than taken from a library: absl's C++ log level cannot
be set from Python, and the lines are written to file descriptor 2 by C++
before Python could redirect `sys.stderr`.

Example:
>>> is_native_line("E0000 00:00:1796550457.499462    2289 cuda_platform.cc:52] failed")
'E'
>>> is_native_line("error: data.name is empty") is None
True
"""

import atexit
import os
import re
import sys
import threading

# "I0000 00:00:1796550453.594121    2289 port.cc:153] ..." (absl's C++ prefix)
NATIVE_LINE = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^\s\]]+:\d+\] ")
# Lines TensorFlow's loggers print without that prefix.
NATIVE_NOTES = ("WARNING: All log messages before absl::InitializeLog() is called are written "
                "to STDERR", "To enable the following instructions:")
SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
DEFAULT_LEVEL = 3  # TF_CPP_MIN_LOG_LEVEL unset: hide INFO, WARNING and ERROR lines
_state = {}


def is_native_line(line):
    """The severity letter of a TensorFlow C++ log line, "I" for its
    unprefixed notes, None for any other line."""
    match = NATIVE_LINE.match(line)
    if match:
        return match.group(1)
    return "I" if line.startswith(NATIVE_NOTES) else None


def hidden(line, level):
    """Whether `line` is a native line below `level` (never a FATAL one)."""
    severity = is_native_line(line)
    return severity is not None and severity != "F" and SEVERITY[severity] < level


def command_line_name(argv=None):
    """The tfmask command this process runs ("tfmask.train"), or None."""
    argv = list(getattr(sys, "orig_argv", []) if argv is None else argv)
    if "-m" in argv[:-1]:
        module = argv[argv.index("-m") + 1]
        return module if module.split(".")[0] == "tfmask" else None
    return None


def wants_verbose(argv):
    return any(arg in ("--verbose", "--verbose=true", "--verbose=True") for arg in argv)


def quiet_command_line():
    """In a tfmask command line: filter fd 2 (see the module doc); elsewhere
    (a library user, a test) nothing."""
    argv = list(getattr(sys, "orig_argv", []))
    if _state or command_line_name(argv) is None or wants_verbose(argv):
        return
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL", str(DEFAULT_LEVEL))
    try:
        level = int(level)
    except ValueError:
        return  # TensorFlow rejects it itself
    if level <= 0:
        return
    filter_stderr(level)


def filter_stderr(level):
    """Routes file descriptor 2 through a thread that drops native lines
    below `level`; undone at exit, after the last line is forwarded."""
    original = os.dup(2)
    read, write = os.pipe()
    os.dup2(write, 2)
    os.close(write)

    def forward():
        with os.fdopen(read, "rb", buffering=0) as pipe:
            pending = b""
            while True:
                chunk = pipe.read(65536)
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                out = b"".join(line + b"\n" for line in lines
                               if not hidden(line.decode("utf-8", "replace"), level))
                if out:
                    os.write(original, out)
            if pending and not hidden(pending.decode("utf-8", "replace"), level):
                os.write(original, pending)

    thread = threading.Thread(target=forward, name="tfmask-native-log", daemon=True)
    thread.start()
    _state.update(original=original, thread=thread)
    atexit.register(restore_stderr)


def restore_stderr():
    """fd 2 back to the real stderr; the pipe drained and closed."""
    if not _state:
        return
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    original, thread = _state.pop("original"), _state.pop("thread")
    os.dup2(original, 2)  # closes the pipe's last write end: the thread reads to the end
    thread.join(timeout=5)
    os.close(original)
    _state.clear()
