"""Shared benchmark helpers: alternating timed rounds, statistics, matmul peak.

Every benchmark times its contenders in the same process, round after
round, alternating between them, so that machine noise (2 shared cores)
hits all of them alike; ratios are taken per round.
"""

import time

import numpy as np
import tensorflow as tf


def stats(values):
    """{"median", "min", "max"} of a list of numbers."""
    return {"median": float(np.median(values)), "min": float(np.min(values)),
            "max": float(np.max(values))}


def race(contenders, rounds):
    """Times `contenders` ({name: run() -> units done}) in alternating rounds.

    Each `run` does one round of work and returns how many units (tokens,
    sequences) it processed; the result is units per second per round.
    """
    speeds = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, run in contenders.items():
            start = time.perf_counter()
            units = run()
            speeds[name].append(units / (time.perf_counter() - start))
    return speeds


def warmed_runner(step, batches, units, warm=2):
    """A `race` contender: `step` over `batches` once per round, `units` done.

    The first `warm` batches are run here, untimed, to trace, compile and warm up.
    """
    for batch in batches[:warm]:
        step(batch).numpy()

    def run():
        for batch in batches:
            loss = step(batch)
        loss.numpy()  # wait for the last step, not just its dispatch
        return units

    return run


def ratio_cell(ratio):
    """A ratio summary as a table cell: "median (min-max)", "1.00" for the reference."""
    if ratio is None:
        return "1.00"
    return f"{ratio['median']:.2f} ({ratio['min']:.2f}-{ratio['max']:.2f})"


def ratios(speeds, name, reference):
    """Per-round speed ratios `name / reference`, summarised."""
    return stats(np.array(speeds[name]) / np.array(speeds[reference]))


def times_against(speeds, reference):
    """Per contender of `race` (units per second): milliseconds per unit
    (min / median / max) and its per-round speed-up over `reference`."""
    return {name: {"ms": stats(1000 / np.array(speed)),
                   "speedup": None if name == reference else ratios(speeds, name, reference)}
            for name, speed in speeds.items()}


def times_rows(contenders, digits=0):
    """Table rows of `times_against`'s result: name, ms median / min / max, speed-up."""
    rows = []
    for name, entry in contenders.items():
        ms, speedup = entry["ms"], entry["speedup"]
        rows.append([name, *(f"{ms[k]:.{digits}f}" for k in ("median", "min", "max")),
                     ratio_cell(speedup)])
    return rows


def matmul_peak(dtype, size=2048, repeats=10):
    """GFLOP/s of a large square matmul in `dtype`: this machine's practical peak."""
    a = tf.random.normal((size, size), dtype=tf.float32)
    a, b = tf.cast(a, dtype), tf.cast(tf.transpose(a), dtype)
    run = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32)))
    run()
    start = time.perf_counter()
    for _ in range(repeats):
        run().numpy()
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def print_table(title, header, rows):
    """A fixed-width table: `rows` are lists of already formatted cells."""
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    print(f"\n{title}")
    for row in [header] + rows:
        print("  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                        for i, (c, w) in enumerate(zip(row, widths))))
