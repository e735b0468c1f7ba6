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


def one_error_line(stderr):
    """The single `error:` line a user mistake prints (no traceback)."""
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return lines[0]
