"""How tfmask's command lines report failures: one line, a fixed exit code.

    error: <what is wrong and how to fix it>        exit 2  (a user mistake)
    error: <what happened and what to try>          exit 1  (the run failed: NaN, a lost worker)
    stopped by SIGTERM at step N; ...               exit 128 + signal (checkpoint saved)

`--debug` re-raises, showing the traceback. TensorFlow errors raised while
reading data (a bad JSONL line, invalid UTF-8, a label out of range) carry
tfmask's message inside a long op trace: only that message is printed.
"""

import re
import sys

USER_ERROR, RUN_FAILED = 2, 1

# Flags several command lines share; defined once per process, so that the
# commands' modules can be imported together (tests, notebooks).
SHARED_FLAGS = {
    "config": ("DEFINE_string", None, "YAML config file (see configs/)."),
    "set": ("DEFINE_multi_string", [], "Override a config key: --set section.key=value."),
    "output_dir": ("DEFINE_string", None, "Output folder (default: under runs/NAME)."),
    "debug": ("DEFINE_bool", False, "Show the full traceback of a failure."),
    "run": ("DEFINE_string", None, "Run folder written by tfmask.train."),
    "verbose": ("DEFINE_bool", False, "Show TensorFlow's C++ log lines, which tfmask's "
                                      "commands hide (tfmask.native_log)."),
}


def define_shared_flags(*names):
    from absl import flags

    for name in names:
        if name not in flags.FLAGS:
            kind, default, text = SHARED_FLAGS[name]
            getattr(flags, kind)(name, default, text)


def tensorflow_message(error):
    """tfmask's message inside a TensorFlow op error: a failed
    `tf.debugging.Assert`, or the Python error a data source raised."""
    text = getattr(error, "message", None) or str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if "assertion failed:" in line:
            return line.split("assertion failed:", 1)[1].replace("] [", " ").strip("[] ")
    for line in lines:
        match = re.search(r"\b\w*(?:Error|Exception): (.+)", line)
        if match:
            return match.group(1).strip()
    return next((line for line in lines if "Graph execution error" not in line), text)


def is_collective_failure(error):
    """A TensorFlow error from the machinery between workers (a collective
    aborted, a peer unreachable), not from the user's data or config: it is
    reported as a failed run (exit 1), never as a user mistake."""
    import tensorflow as tf

    between_workers = (tf.errors.UnavailableError, tf.errors.AbortedError,
                       tf.errors.CancelledError, tf.errors.DeadlineExceededError,
                       tf.errors.InternalError)
    text = getattr(error, "message", None) or str(error)
    return isinstance(error, between_workers) or (
        isinstance(error, tf.errors.OpError) and re.search(r"\bCollective\w*", text) is not None)


def parse_flags(argv):
    """absl's flag parser, but a bad flag is one `error:` line and exit 2."""
    from absl import flags

    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(USER_ERROR)


def extra_arguments_error(argv):
    """USER_ERROR after one line if a command got positional arguments
    (absl leaves them in argv), else None."""
    if len(argv) > 1:
        print(f"error: unexpected arguments {argv[1:]}; options take the form --name=value.",
              file=sys.stderr)
        return USER_ERROR
    return None


def run_main(main):
    """`absl.app.run(main)` with one-line flag errors (`parse_flags`)."""
    from absl import app

    app.run(main, flags_parser=parse_flags)


def report(function, debug=False):
    """Runs `function()`; returns its exit code, or the code of its failure
    after printing one line to stderr."""
    import tensorflow as tf

    from tfmask.errors import Interrupted, TrainingDiverged

    try:
        return function() or 0
    except Interrupted as stop:
        print(str(stop), file=sys.stderr)
        return 128 + stop.signal_number
    except Exception as error:  # noqa: BLE001 (the one place errors become lines)
        if debug:
            raise
        if isinstance(error, TrainingDiverged):
            code, text = RUN_FAILED, str(error)
        elif isinstance(error, (ValueError, FileNotFoundError)):
            code, text = USER_ERROR, str(error)
        elif is_collective_failure(error):
            cause = re.sub(r"\{\{[^}]*\}\}\s*", "", tensorflow_message(error))  # op names
            code, text = RUN_FAILED, (
                f"the workers failed together ({cause}): a worker was lost "
                "or the workers disagree; rerun every worker's command to resume from the last "
                "checkpoint")
        elif isinstance(error, tf.errors.OpError):
            code, text = USER_ERROR, tensorflow_message(error)
        elif isinstance(error, OSError):
            where = f" {error.filename}" if getattr(error, "filename", None) else ""
            code, text = USER_ERROR, f"cannot use{where}: {error.strerror or error}; check the " \
                                     "path, its permissions and the free disk space"
        elif isinstance(error, StopIteration):
            code, text = USER_ERROR, "the data ran out before a single batch; check data.name " \
                                     "and its splits"
        else:
            raise
        line = " ".join(text.split())
        print(f"error: {line} (--debug shows where)", file=sys.stderr)
        return code
