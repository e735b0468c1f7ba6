"""Helpers for tests that walk a journey through the command line in-process."""


def train_cli(capsys, config, output_dir, *sets, extra=()):
    """`python -m tfmask.train` in this process: (exit code, stdout, stderr)."""
    from tfmask.train import cli

    args = ["--config", str(config), "--output_dir", str(output_dir), *extra]
    for value in sets:
        args += ["--set", value]
    code = cli(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def wait_for_training(processes, folder, rows=2, timeout=300):
    """Waits until `folder`'s metrics.jsonl has `rows` records (the run is
    training) or a process ends or `timeout` seconds pass."""
    import os
    import time

    metrics = os.path.join(folder, "metrics.jsonl")
    deadline = time.time() + timeout
    while time.time() < deadline and all(p.poll() is None for p in processes):
        if os.path.exists(metrics):
            with open(metrics) as f:
                if sum(1 for line in f if line.strip().endswith("}")) >= rows:
                    return
        time.sleep(0.1)


def one_error_line(stderr):
    """The single `error:` line a user mistake prints (no traceback)."""
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return lines[0]
