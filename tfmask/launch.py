"""Start several local workers of one training run: `python -m tfmask.launch`.

    python -m tfmask.launch --workers 2 -- --config configs/mlm_austen_wordnet.yaml \\
        --output_dir runs/mlm_2workers
    python -m tfmask.launch --print_tf_config --hosts node1:2222,node2:2222

The first form starts N processes of `python -m tfmask.train <arguments after
-->` on this machine (127.0.0.1, free ports unless `--port_base`), each with
the TF_CONFIG of its place in the cluster (worker 0 is the chief) and
`--set runtime.strategy=multi_worker` added where the arguments do not set it.
Each worker's lines are printed as they come, prefixed `[worker i] `.
SIGTERM / SIGINT reach every worker (each saves a checkpoint and exits
128 + the signal; rerun the same command to resume). When a worker fails
while others still run, the others get `--grace_seconds` to finish (they
usually fail too, the moment a collective misses its peer), then SIGTERM,
then SIGKILL: nothing waits forever. The exit code is the chief's, unless
another worker failed first: then that worker's (the chief's end only
followed it).
If the launcher itself is killed (kill -9), its workers are killed too.

The second form starts nothing: it prints the `export TF_CONFIG='...'` line
each host of a real cluster needs (one per host, in order; `--task_index I`
prints host I's alone, for a Slurm or Kubernetes job script), see
docs/scale.md.

User mistakes are one `error:` line and exit 2, before anything starts.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

from absl import flags

from tfmask.cli import USER_ERROR

flags.DEFINE_integer("workers", None, "How many local worker processes to start.")
flags.DEFINE_integer("port_base", None, "Workers listen on 127.0.0.1 ports P, P+1, ...; "
                                        "default: free ports the system picks.")
flags.DEFINE_float("grace_seconds", 60.0, "After a worker fails, how long the others may still "
                                          "run before they are stopped (SIGTERM, then SIGKILL).")
flags.DEFINE_float("timeout_seconds", None, "Stop every worker (SIGTERM: a checkpoint is saved) "
                                            "after this long; default: no limit.")
flags.DEFINE_bool("print_tf_config", False, "Print each host's TF_CONFIG export for --hosts; "
                                            "start nothing.")
flags.DEFINE_list("hosts", [], "With --print_tf_config: host:port of every worker, the chief "
                               "first.")
flags.DEFINE_integer("task_index", None, "With --print_tf_config: print this host's line only.")
FLAGS = flags.FLAGS

USAGE = ("python -m tfmask.launch --workers 2 -- --config configs/NAME.yaml --output_dir "
         "runs/NAME")
# After SIGTERM, how long a worker has to save and exit before SIGKILL (a
# worker blocked in a collective whose peer is gone never reaches a step
# boundary).
KILL_AFTER_SECONDS = 10.0
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.\-_]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]):"
                   r"(\d{1,5})$")
_PR_SET_PDEATHSIG = 1


class UsageError(ValueError):
    """A mistake in the launcher's own arguments (exit 2)."""


# ------------------------------------------------------------ TF_CONFIG
def tf_config(addresses, index):
    """The TF_CONFIG of worker `index` in a cluster of `addresses` (host:port,
    worker 0 the chief), as JSON text.

    >>> print(tf_config(["127.0.0.1:2222", "127.0.0.1:2223"], 1))
    {"cluster": {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]},
     "task": {"type": "worker", "index": 1}}
    """
    return json.dumps({"cluster": {"worker": list(addresses)},
                       "task": {"type": "worker", "index": index}})


def check_hosts(hosts):
    """`--hosts` values -> the list of host:port, or UsageError."""
    hosts = [host.strip() for host in hosts if host.strip()]
    if not hosts:
        raise UsageError("--print_tf_config needs --hosts host1:port,host2:port (every worker, "
                         "the chief first)")
    for host in hosts:
        match = _HOST.match(host)
        if not match:
            raise UsageError(f"--hosts {host!r} is not host:port; write e.g. node1:2222")
        if not 1 <= int(match.group(1)) <= 65535:
            raise UsageError(f"--hosts {host!r}: the port must be between 1 and 65535")
    repeated = sorted({host for host in hosts if hosts.count(host) > 1})
    if repeated:
        raise UsageError(f"--hosts names {', '.join(repeated)} more than once; every worker "
                         "needs its own host:port")
    return hosts


def export_lines(hosts, task_index=None):
    """`export TF_CONFIG='...'  # on HOST` for each host (or host `task_index`
    alone): what each machine of a cluster sets before `python -m tfmask.train`.

    >>> print(export_lines(["a:2222", "b:2222"], task_index=1)[0])
    export TF_CONFIG='{"cluster": {"worker": ["a:2222", "b:2222"]},
                       "task": {"type": "worker", "index": 1}}'  # on b:2222
    """
    hosts = check_hosts(hosts)
    indices = range(len(hosts))
    if task_index is not None:
        if not 0 <= task_index < len(hosts):
            raise UsageError(f"--task_index={task_index} is not one of the {len(hosts)} hosts "
                             f"(0 to {len(hosts) - 1})")
        indices = [task_index]
    return [f"export TF_CONFIG='{tf_config(hosts, i)}'  # on {hosts[i]}"
            + (" (the chief)" if i == 0 and task_index is None else "") for i in indices]


# ------------------------------------------------------------ arguments
def split_arguments(argv):
    """argv (without the program name) -> (the launcher's, tfmask.train's):
    the training arguments are everything after the first `--`."""
    argv = list(argv)
    if "--" in argv:
        at = argv.index("--")
        return argv[:at], argv[at + 1:]
    return argv, []


def _set_values(train_args):
    """The `--set key=value` values among tfmask.train's arguments."""
    values, args = [], list(train_args)
    for i, arg in enumerate(args):
        if arg in ("--set", "-set") and i + 1 < len(args):
            values.append(args[i + 1])
        elif arg.startswith(("--set=", "-set=")):
            values.append(arg.split("=", 1)[1])
    return values


def worker_arguments(train_args):
    """tfmask.train's arguments for every worker: `--set
    runtime.strategy=multi_worker` added when they do not name a strategy;
    another strategy is refused (UsageError).

    >>> worker_arguments(["--config", "c.yaml"])
    ['--config', 'c.yaml', '--set', 'runtime.strategy=multi_worker']
    """
    import yaml

    train_args = list(train_args)
    if not train_args:
        raise UsageError(f"give tfmask.train's arguments after --, e.g. {USAGE}")
    strategies = []
    for value in _set_values(train_args):
        key, _, text = value.partition("=")
        if key.strip() == "runtime.strategy":
            try:
                strategies.append(yaml.safe_load(text))
            except yaml.YAMLError:
                strategies.append(text)
    other = [s for s in strategies if s != "multi_worker"]
    if other:
        raise UsageError(
            f"the launcher runs runtime.strategy=multi_worker, not {other[-1]!r}: drop that --set "
            "(several GPUs of one machine need no launcher: python -m tfmask.train ... --set "
            "runtime.strategy=mirrored)")
    if not strategies:
        train_args += ["--set", "runtime.strategy=multi_worker"]
    return train_args


def local_addresses(workers, port_base=None):
    """host:port on 127.0.0.1 for each worker: ports the system reports free
    (bound to port 0 together, so they differ), or port_base, port_base + 1, ...
    checked free."""
    if port_base is None:
        sockets = [socket.socket() for _ in range(workers)]
        try:
            for s in sockets:
                s.bind(("127.0.0.1", 0))
            ports = [s.getsockname()[1] for s in sockets]
        finally:
            for s in sockets:
                s.close()
        return [f"127.0.0.1:{port}" for port in ports]
    if not 1024 <= port_base <= 65536 - workers:
        raise UsageError(f"--port_base={port_base} must leave {workers} ports between 1024 and "
                         "65535")
    for port in range(port_base, port_base + workers):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                raise UsageError(f"port {port} of 127.0.0.1 is in use; choose another "
                                 "--port_base or leave it out (free ports are picked)") from None
    return [f"127.0.0.1:{port}" for port in range(port_base, port_base + workers)]


def check_launch_flags(workers, grace_seconds, timeout_seconds):
    if workers is None:
        raise UsageError(f"--workers N is required, e.g. {USAGE}")
    if workers < 1:
        raise UsageError(f"--workers={workers} must be at least 1")
    if grace_seconds < 0:
        raise UsageError(f"--grace_seconds={grace_seconds:g} must be >= 0")
    if timeout_seconds is not None and timeout_seconds <= 0:
        raise UsageError(f"--timeout_seconds={timeout_seconds:g} must be > 0 (leave it out for "
                         "no limit)")


def exit_code(returncode):
    """A Popen returncode as a shell shows it (killed by signal N: 128 + N)."""
    return 128 - returncode if returncode < 0 else returncode


# ------------------------------------------------------------ running
def _parent_death_signal():
    """A function for a worker to run before exec: SIGKILL when the launcher
    dies (Linux prctl), so a launcher killed with -9 leaves no worker waiting
    in a collective; None where there is no prctl. Resolved here, in the
    launcher, so that the child only calls it."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _lines(chunks):
    """Byte chunks of a worker's output -> its lines as text. A carriage
    return ends a line too: a progress bar redraws itself with `\\b...\\r`,
    and each redraw becomes a line of its own, printed once it is complete;
    backspaces and blank lines are dropped.

    >>> list(_lines([b"\\r 4/12 loss 6.8\\b\\b\\b\\r 8/1", b"2 loss 6.7\\n\\nstep 12\\n"]))
    [' 4/12 loss 6.8', ' 8/12 loss 6.7', 'step 12']
    """
    pending = b""
    for chunk in chunks:
        pieces = re.split(rb"[\r\n]", pending + chunk)
        pending = pieces.pop()
        for piece in pieces:
            text = piece.replace(b"\b", b"").decode("utf-8", errors="replace").rstrip()
            if text:
                yield text
    text = pending.replace(b"\b", b"").decode("utf-8", errors="replace").rstrip()
    if text:
        yield text


def _pump(pipe, prefix, out, lock):
    """Copies a worker's pipe to `out` as it comes, each line prefixed."""
    fd = pipe.fileno()
    for line in _lines(iter(lambda: os.read(fd, 65536), b"")):
        with lock:
            out.write(f"{prefix}{line}\n")
            out.flush()
    pipe.close()


class Launch:
    """N local workers of `python -m tfmask.train`: started, streamed,
    signalled and stopped together. `run()` returns the exit code."""

    def __init__(self, train_args, addresses, grace_seconds=60.0, timeout_seconds=None,
                 kill_after_seconds=KILL_AFTER_SECONDS, out=None, err=None,
                 program=(sys.executable, "-m", "tfmask.train")):
        self.program = tuple(program)  # what each worker runs, before train_args
        self.train_args = list(train_args)
        self.addresses = list(addresses)
        self.grace_seconds = grace_seconds
        self.timeout_seconds = timeout_seconds
        self.kill_after_seconds = kill_after_seconds
        self.out, self.err = out or sys.stdout, err or sys.stderr
        self.lock = threading.Lock()
        self.processes, self.threads = [], []
        self.signalled = 0

    def say(self, text, error=False):
        with self.lock:
            stream = self.err if error else self.out
            stream.write(text + "\n")
            stream.flush()

    def environment(self, index):
        env = {**os.environ, "TF_CONFIG": tf_config(self.addresses, index),
               "PYTHONUNBUFFERED": "1"}  # lines as they come, not a pipe's blocks
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        return env

    def start(self):
        before_exec = _parent_death_signal()
        # Every process before any reading thread: nothing else runs while
        # the children fork.
        for index in range(len(self.addresses)):
            self.processes.append(subprocess.Popen(
                [*self.program, *self.train_args],
                env=self.environment(index), stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                # Own session: a terminal's Ctrl-C reaches the launcher alone,
                # which forwards it once (a second Ctrl-C stops without saving).
                start_new_session=True, preexec_fn=before_exec))
        for index, process in enumerate(self.processes):
            for pipe, stream in ((process.stdout, self.out), (process.stderr, self.err)):
                thread = threading.Thread(target=_pump, daemon=True,
                                          args=(pipe, f"[worker {index}] ", stream, self.lock))
                thread.start()
                self.threads.append(thread)

    def send(self, number):
        for process in self.processes:
            if process.returncode is None:
                try:
                    process.send_signal(number)
                except ProcessLookupError:
                    pass

    def _forward(self, number, frame):
        self.signalled = self.signalled or number
        self.send(number)

    def run(self):
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for number in (signal.SIGTERM, signal.SIGINT):
                previous[number] = signal.signal(number, self._forward)
        try:
            self.say(f"launch: {len(self.addresses)} workers on "
                     f"{', '.join(self.addresses)}; worker 0 is the chief")
            self.start()
            return self._supervise(time.monotonic())
        finally:
            for process in self.processes:  # never leave one behind
                if process.poll() is None:
                    process.kill()
                    process.wait()
            for number, handler in previous.items():
                signal.signal(number, handler)
            for thread in self.threads:
                thread.join(timeout=5)

    def _supervise(self, started):
        """Waits for every worker; stops the rest `grace_seconds` after one
        failed or the chief ended, or at the timeout. Returns the exit code."""
        first_failure = None  # (index, exit code) of the first worker seen failing
        ended_at = stopping_since = why_stopped = None
        while True:
            codes = [process.poll() for process in self.processes]
            now = time.monotonic()
            for index, code in enumerate(codes):
                # A worker ended by the launcher's own SIGTERM is no failure.
                if code not in (None, 0) and first_failure is None and stopping_since is None:
                    first_failure = (index, exit_code(code))
                    if None in codes and not self.signalled:
                        self.say(f"launch: worker {index} exited with {exit_code(code)}; the "
                                 f"others get {self.grace_seconds:g} s to end (--grace_seconds)",
                                 error=True)
            if None not in codes:
                break
            if ended_at is None and (first_failure or codes[0] is not None):
                ended_at = now
            if stopping_since is None:
                if ended_at is not None and now - ended_at >= self.grace_seconds:
                    why_stopped = "failure"
                    self.say("launch: stopping the workers still running (SIGTERM, then "
                             f"SIGKILL after {self.kill_after_seconds:g} s)", error=True)
                elif self.timeout_seconds and now - started >= self.timeout_seconds:
                    why_stopped = "timeout"
                    self.say(f"launch: --timeout_seconds={self.timeout_seconds:g} reached; "
                             "stopping every worker (SIGTERM: each saves a checkpoint)",
                             error=True)
                if why_stopped:
                    stopping_since = now
                    self.send(signal.SIGTERM)
            elif now - stopping_since >= self.kill_after_seconds:
                self.send(signal.SIGKILL)
            time.sleep(0.1)
        for thread in self.threads:
            thread.join(timeout=5)
        code = exit_code(self.processes[0].returncode)
        asked_to_stop = self.signalled or why_stopped == "timeout"
        if first_failure and first_failure[0] != 0 and not asked_to_stop:
            code = first_failure[1]  # the chief's end only followed that failure
        if code and not asked_to_stop:
            index = first_failure[0] if first_failure else 0
            self.say(f"error: worker {index} failed (exit {code}; see its [worker {index}] "
                     "lines) and every worker has stopped; fix the cause, then rerun the same "
                     "command to resume from the last checkpoint", error=True)
        return code


# ------------------------------------------------------------ command line
def cli(argv):
    """Runs the command line `argv` (without the program name) in this
    process; returns the exit code."""
    own, train_args = split_arguments(argv)
    FLAGS.unparse_flags()
    try:
        rest = FLAGS(["tfmask.launch"] + own)
    except flags.Error as error:
        print(f"error: {error}; tfmask.train's own arguments go after --: {USAGE}",
              file=sys.stderr)
        return USER_ERROR
    return main(rest, train_args)


def main(argv, train_args=()):
    try:
        if len(argv) > 1:
            raise UsageError(f"unexpected arguments {argv[1:]}; tfmask.train's arguments go "
                             f"after --: {USAGE}")
        if FLAGS.print_tf_config:
            if train_args or FLAGS.workers is not None:
                raise UsageError("--print_tf_config starts nothing: give it --hosts only, then "
                                 "run tfmask.train on each host with the line printed for it")
            for line in export_lines(FLAGS.hosts, FLAGS.task_index):
                print(line)
            return 0
        if FLAGS.hosts or FLAGS.task_index is not None:
            raise UsageError("--hosts and --task_index go with --print_tf_config; local "
                             "workers take --workers N")
        check_launch_flags(FLAGS.workers, FLAGS.grace_seconds, FLAGS.timeout_seconds)
        args = worker_arguments(train_args)
        addresses = local_addresses(FLAGS.workers, FLAGS.port_base)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return USER_ERROR
    return Launch(args, addresses, FLAGS.grace_seconds, FLAGS.timeout_seconds).run()


def entry_point():
    sys.exit(cli(sys.argv[1:]))


if __name__ == "__main__":
    entry_point()
