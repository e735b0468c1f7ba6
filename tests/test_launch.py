"""`python -m tfmask.launch`: N local workers of one run, and the TF_CONFIG
lines of a real cluster.

Unit tests check TF_CONFIG, the argument handling and refusals, and the
supervision (prefixes, signals, a failed worker, the timeout) with stand-in
workers (`python -c`, no TensorFlow), so they take seconds. The journeys run
the command itself: two real workers train the tiny MLM; workers that fail
at once end the launcher in bounded time; a launcher killed with -9 leaves
no worker behind; docs/scale.md's Slurm script and Kubernetes Job, run with
stand-ins for srun, scontrol and the trainer, give every task its TF_CONFIG.
"""

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from tfmask import launch
from tfmask.launch import Launch, UsageError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_MLM = os.path.join("tests", "configs", "tiny_mlm.yaml")


# ------------------------------------------------------------ TF_CONFIG
def test_tf_config_names_every_worker_and_this_one():
    addresses = ["127.0.0.1:2222", "127.0.0.1:2223", "127.0.0.1:2224"]
    for index in range(3):
        config = json.loads(launch.tf_config(addresses, index))
        assert config == {"cluster": {"worker": addresses},
                          "task": {"type": "worker", "index": index}}


def test_print_tf_config_lines_are_exports_a_shell_can_eval():
    hosts = ["node1:2222", "node2.example.org:2222", "10.0.0.3:12345"]
    lines = launch.export_lines(hosts)
    assert len(lines) == 3 and lines[0].endswith("# on node1:2222 (the chief)")
    for index, line in enumerate(lines):
        shown = subprocess.run(["bash", "-c", f'eval "$1"; printf %s "$TF_CONFIG"', "_", line],
                               capture_output=True, text=True, check=True).stdout
        assert json.loads(shown) == json.loads(launch.tf_config(hosts, index))
    assert launch.export_lines(hosts, task_index=2) == [lines[2]]


@pytest.mark.parametrize("hosts,message", [
    ([], "--print_tf_config needs --hosts"),
    (["node1"], "--hosts 'node1' is not host:port"),
    (["node1:http"], "is not host:port"),
    (["node1:70000"], "the port must be between 1 and 65535"),
    (["a:1", "b:1", "a:1"], "--hosts names a:1 more than once"),
    (["it's:1"], "is not host:port"),  # a quote would break the printed export
])
def test_bad_hosts_are_refused(hosts, message):
    with pytest.raises(UsageError, match=message):
        launch.export_lines(hosts)


def test_a_task_index_outside_the_hosts_is_refused():
    with pytest.raises(UsageError, match="--task_index=2 is not one of the 2 hosts"):
        launch.export_lines(["a:1", "b:1"], task_index=2)


# ------------------------------------------------------------ arguments
def test_train_arguments_follow_the_double_dash():
    assert launch.split_arguments(["--workers", "2", "--", "--config", "c.yaml", "--", "x"]) == (
        ["--workers", "2"], ["--config", "c.yaml", "--", "x"])
    assert launch.split_arguments(["--workers", "2"]) == (["--workers", "2"], [])


def test_multi_worker_is_added_unless_set():
    assert launch.worker_arguments(["--config", "c.yaml"])[-2:] == [
        "--set", "runtime.strategy=multi_worker"]
    for given in (["--set", "runtime.strategy=multi_worker"],
                  ["--set=runtime.strategy=multi_worker"],
                  ["--set", "runtime.strategy='multi_worker'"]):
        args = ["--config", "c.yaml", *given]
        assert launch.worker_arguments(args) == args


@pytest.mark.parametrize("given", [["--set", "runtime.strategy=mirrored"],
                                   ["--set=runtime.strategy=tpu"],
                                   ["--set", "runtime.strategy=multi_worker",
                                    "--set", "runtime.strategy=default"]])
def test_another_strategy_is_refused(given):
    with pytest.raises(UsageError, match="the launcher runs runtime.strategy=multi_worker"):
        launch.worker_arguments(["--config", "c.yaml", *given])


def test_no_train_arguments_is_refused():
    with pytest.raises(UsageError, match="give tfmask.train's arguments after --"):
        launch.worker_arguments([])


def test_local_addresses_are_distinct_free_ports_of_127_0_0_1():
    addresses = launch.local_addresses(4)
    hosts = {address.rsplit(":", 1)[0] for address in addresses}
    ports = {int(address.rsplit(":", 1)[1]) for address in addresses}
    assert hosts == {"127.0.0.1"} and len(ports) == 4


def test_a_port_base_in_use_is_refused():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UsageError, match=f"port {port} of 127.0.0.1 is in use"):
            launch.local_addresses(1, port_base=port)
    with pytest.raises(UsageError, match="--port_base=80 must leave 2 ports"):
        launch.local_addresses(2, port_base=80)


@pytest.mark.parametrize("workers,grace,timeout,message", [
    (None, 60, None, "--workers N is required"),
    (0, 60, None, "--workers=0 must be at least 1"),
    (2, -1, None, "--grace_seconds=-1 must be >= 0"),
    (2, 60, 0, "--timeout_seconds=0 must be > 0"),
])
def test_bad_launch_flags_are_refused(workers, grace, timeout, message):
    with pytest.raises(UsageError, match=message):
        launch.check_launch_flags(workers, grace, timeout)


@pytest.mark.parametrize("argv,message", [
    (["--workers", "2"], "error: give tfmask.train's arguments after --"),
    (["--workers", "0", "--", "--config", "c.yaml"], "error: --workers=0 must be at least 1"),
    (["--workers", "2", "--", "--config", "c.yaml", "--set", "runtime.strategy=mirrored"],
     "error: the launcher runs runtime.strategy=multi_worker, not 'mirrored'"),
    (["--print_tf_config"], "error: --print_tf_config needs --hosts"),
    (["--print_tf_config", "--hosts", "a:1", "--", "--config", "c.yaml"],
     "error: --print_tf_config starts nothing"),
    (["--hosts", "a:1", "--workers", "2", "--", "--config", "c.yaml"],
     "error: --hosts and --task_index go with --print_tf_config"),
    (["--workers", "2", "stray", "--", "--config", "c.yaml"], "error: unexpected arguments"),
    (["--workers", "two"], "error: flag --workers=two"),
])
def test_the_command_line_refuses_in_one_line_with_exit_2(argv, message, capsys):
    assert launch.cli(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), captured.err
    assert not captured.out


def test_the_command_line_prints_tf_config(capsys):
    assert launch.cli(["--print_tf_config", "--hosts", "a:2222,b:2222", "--task_index", "1"]) == 0
    assert capsys.readouterr().out == launch.export_lines(["a:2222", "b:2222"], 1)[0] + "\n"


def test_exit_codes_read_as_a_shell_shows_them():
    assert launch.exit_code(0) == 0 and launch.exit_code(2) == 2
    assert launch.exit_code(-signal.SIGTERM) == 143 and launch.exit_code(-signal.SIGKILL) == 137


# ------------------------------------------------------------ supervision (stand-in workers)
# A stand-in worker: its index from TF_CONFIG, then what the test asks of that index.
WORKER = """
import json, os, signal, sys, time
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
behaviour = json.loads(sys.argv[1])[index]
if behaviour == "trap":
    def stop(number, frame):
        print(f"saved at signal {number}", flush=True)
        sys.exit(128 + number)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
elif behaviour == "deaf":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print(f"ready {index} pid {os.getpid()} unbuffered {os.environ.get('PYTHONUNBUFFERED')}")
print(f"a warning from {index}", file=sys.stderr)
if isinstance(behaviour, int):
    sys.exit(behaviour)
time.sleep(120)
"""


class Stream(io.StringIO):
    """An output stream a test can read while the launcher writes it."""

    def lines(self):
        return self.getvalue().splitlines()


def stand_ins(behaviours, **kwargs):
    out, err = Stream(), Stream()
    run = Launch([json.dumps(behaviours)], launch.local_addresses(len(behaviours)), out=out,
                 err=err, program=(sys.executable, "-c", WORKER), **kwargs)
    return run, out, err


def test_every_line_is_prefixed_and_the_chief_exit_code_is_returned():
    run, out, err = stand_ins([0, 0])
    assert run.run() == 0
    assert f"[worker 0] ready 0 pid {run.processes[0].pid} unbuffered 1" in out.lines()
    assert f"[worker 1] ready 1 pid {run.processes[1].pid} unbuffered 1" in out.lines()
    assert {"[worker 0] a warning from 0", "[worker 1] a warning from 1"} <= set(err.lines())
    assert out.lines()[0].startswith("launch: 2 workers on 127.0.0.1:")


def test_a_failed_worker_stops_the_others_after_the_grace_time():
    # Worker 1 fails at once; the chief ignores SIGTERM (as one blocked in a
    # collective does), so it takes SIGKILL.
    run, out, err = stand_ins(["deaf", 3], grace_seconds=0.5, kill_after_seconds=0.5)
    began = time.monotonic()
    assert run.run() == 3  # the failure, not the chief's SIGKILL that followed
    assert time.monotonic() - began < 20
    assert run.processes[0].returncode == -signal.SIGKILL
    assert any(line.startswith("launch: worker 1 exited with 3") for line in err.lines())
    assert err.lines()[-1].startswith("error: worker 1 failed (exit 3")


def test_a_failed_chief_gives_its_own_exit_code():
    run, out, err = stand_ins([2, "trap"], grace_seconds=1.0)
    assert run.run() == 2
    assert run.processes[1].returncode == 143  # stopped with SIGTERM, saving
    assert "[worker 1] saved at signal 15" in out.lines()
    assert err.lines()[-1].startswith("error: worker 0 failed (exit 2")


def test_a_chief_that_finished_waits_for_the_others_within_the_grace_time():
    run, out, err = stand_ins([0, "trap"], grace_seconds=1.0)
    assert run.run() == 0  # the chief's: the run is trained, saved and exported
    assert run.processes[1].returncode == 143


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_launcher_reaches_every_worker(number):
    run, out, err = stand_ins(["trap", "trap"])

    def signal_when_ready():
        deadline = time.monotonic() + 60
        while sum("ready" in line for line in out.lines()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), number)  # the launcher's handler runs in this (main) thread

    previous = signal.getsignal(number)
    thread = threading.Thread(target=signal_when_ready)
    thread.start()
    code = run.run()
    thread.join()
    assert signal.getsignal(number) == previous  # the handlers are put back
    assert code == 128 + number
    assert {f"[worker {i}] saved at signal {int(number)}" for i in (0, 1)} <= set(out.lines())
    assert not any(line.startswith("error:") for line in err.lines())


def test_the_timeout_stops_every_worker_with_sigterm():
    run, out, err = stand_ins(["trap", "trap"], timeout_seconds=2.0)
    assert run.run() == 143
    assert any("--timeout_seconds=2 reached" in line for line in err.lines())
    assert {"[worker 0] saved at signal 15", "[worker 1] saved at signal 15"} <= set(out.lines())


# ------------------------------------------------------------ journeys
def run_launcher(*args, timeout):
    return subprocess.run([sys.executable, "-m", "tfmask.launch", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


@pytest.mark.journey
def test_workers_that_fail_at_once_end_the_launcher_in_bounded_time(tmp_path):
    began = time.monotonic()
    done = run_launcher("--workers", "2", "--grace_seconds", "20", "--", "--config", TINY_MLM,
                        "--output_dir", str(tmp_path / "run"), "--set", "model.num_layer=2",
                        timeout=240)
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-3000:]
    assert time.monotonic() - began < 200
    for index in (0, 1):
        assert f"[worker {index}] error: Unknown key model.num_layer" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: worker ")


LAUNCHER_OF_SLEEPERS = """
import sys
from tfmask.launch import Launch, local_addresses
sleeper = "import os, time; print('pid', os.getpid(), flush=True); time.sleep(300)"
Launch([], local_addresses(2), program=(sys.executable, "-c", sleeper)).run()
"""


@pytest.mark.journey
def test_a_launcher_killed_with_sigkill_leaves_no_worker():
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER_OF_SLEEPERS], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    pids = []
    try:
        while len(pids) < 2:
            line = launcher.stdout.readline()
            assert line, "the launcher ended before its workers started"
            if " pid " in line:
                pids.append(int(line.split()[-1]))
    finally:
        launcher.kill()
        launcher.wait()
    deadline = time.monotonic() + 30
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.1)
        alive = [pid for pid in pids if _running(pid)]
    assert not alive, f"workers {alive} outlived their launcher"


def _running(pid):
    """True while `pid` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# ------------------------------------------------------------ docs/scale.md's cluster recipes
SCALE = os.path.join(REPO, "docs", "scale.md")


def scale_block(start):
    """The fenced block of docs/scale.md whose first line starts with `start`."""
    text = open(SCALE, encoding="utf-8").read()
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)
    [block] = [b for b in blocks if b.startswith(start)]
    return block


def test_the_page_shows_what_print_tf_config_prints():
    shown = scale_block("export TF_CONFIG=").splitlines()
    assert shown == launch.export_lines(["node1:2222", "node2:2222"])


def stubs(folder):
    """A PATH folder where `python -m tfmask.train` prints its TF_CONFIG and
    arguments (every other python is the real one), `srun` runs its command
    once per task of two with SLURM_PROCID set, and `scontrol show
    hostnames` expands node[1-2]."""
    scripts = {
        "python": f"""#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "tfmask.train" ]; then
  shift 2; printf 'TRAIN %s | %s\\n' "$TF_CONFIG" "$*"; exit 0
fi
exec {sys.executable} "$@"
""",
        "srun": """#!/bin/sh
for i in 0 1; do SLURM_PROCID=$i "$@" || exit $?; done
""",
        "scontrol": """#!/bin/sh
[ "$1 $2 $3" = "show hostnames node[1-2]" ] && printf 'node1\\nnode2\\n'
""",
    }
    for name, text in scripts.items():
        path = folder / name
        path.write_text(text)
        path.chmod(0o755)
    return {**os.environ, "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}",
            "TF_CPP_MIN_LOG_LEVEL": "3"}


def trained(stdout):
    """[(TF_CONFIG as a dict, tfmask.train's arguments)] of the stub's lines."""
    found = []
    for line in stdout.splitlines():
        if line.startswith("TRAIN "):
            config, args = line[len("TRAIN "):].split(" | ")
            found.append((json.loads(config), args))
    return found


TRAIN_ARGS = "--config configs/mlm_austen_wordnet.yaml --set runtime.strategy=multi_worker"


@pytest.mark.journey
def test_the_slurm_script_gives_each_task_its_tf_config(tmp_path):
    script = tmp_path / "train.sbatch"
    script.write_text(scale_block("#!/bin/bash"))
    done = subprocess.run(["bash", str(script)], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**stubs(tmp_path),
                                            "SLURM_JOB_NODELIST": "node[1-2]"})
    assert done.returncode == 0, done.stderr[-3000:]
    tasks = trained(done.stdout)
    assert [config for config, _ in tasks] == [
        json.loads(launch.tf_config(["node1:2222", "node2:2222"], i)) for i in (0, 1)]
    assert all(args == f"{TRAIN_ARGS} --output_dir /shared/runs/mlm" for _, args in tasks)


@pytest.mark.journey
def test_the_kubernetes_job_gives_each_pod_its_tf_config(tmp_path):
    import yaml

    service, job = yaml.safe_load_all(scale_block("apiVersion: v1\nkind: Service"))
    pods = job["spec"]["template"]["spec"]
    # The headless Service names the pods' subdomain and selects the Job's pods.
    assert service["spec"]["clusterIP"] == "None"
    assert pods["subdomain"] == service["metadata"]["name"]
    assert service["spec"]["selector"] == {"job-name": job["metadata"]["name"]}
    assert job["spec"]["completionMode"] == "Indexed"
    count = job["spec"]["completions"]
    assert job["spec"]["parallelism"] == count
    name, subdomain = job["metadata"]["name"], pods["subdomain"]
    hosts = [f"{name}-{i}.{subdomain}:2222" for i in range(count)]
    [container] = pods["containers"]
    assert container["command"] == ["bash", "-c"]
    for index in range(count):
        done = subprocess.run(["bash", "-c", container["args"][0]], cwd=REPO,
                              capture_output=True, text=True, timeout=120,
                              env={**stubs(tmp_path), "JOB_COMPLETION_INDEX": str(index)})
        assert done.returncode == 0, done.stderr[-3000:]
        [(config, args)] = trained(done.stdout)
        assert config == json.loads(launch.tf_config(hosts, index))
        assert args == f"{TRAIN_ARGS} --output_dir /runs/mlm"
