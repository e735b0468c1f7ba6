"""Training from a sharded corpus larger than anything held in memory.

    python -m benchmarks.streaming_corpus [--gigabytes 2] [--shards 64] [--steps 2000]

Writes a sharded JSONL corpus (`--gigabytes`, `--shards` files
`part-NNN.jsonl`, documents of 20-120 random words from a fixed synthetic
vocabulary, seeded) into a temporary folder, then runs `python -m
tfmask.train` on it as a user does: the tiny MLM config
(tests/configs/tiny_mlm.yaml) with `data.name=file:DIR/part-*.jsonl` (no
`{split}`: train/validation/test are the per-record hash split),
`data.shuffle_buffer` 10,000 (0 would mean a whole-split shuffle, which holds
up to 2^20 documents) and a prepared vocabulary file (`data.vocabulary`: the
corpus's own words, so no vocabulary is trained). Three runs:

  small    the same training on a `--small_gigabytes` corpus: the memory a
           run needs whatever the corpus size
  fresh    `--steps` steps on the big corpus: peak RSS, steps/s
  resume   the same command with train.steps = steps + 5: it restores the
           checkpoint and skips the `--steps` batches already trained (exact
           resume), then trains 5 more; the time from start to the first new
           step, against the fresh run's time from start to its first step

Peak RSS is the process's VmHWM from /proc, read until it exits (and
`resource.getrusage(RUSAGE_CHILDREN)` over all runs as a check); steps/s
comes from metrics.jsonl (steps over `train_seconds`, the training time the
trainer counts, evaluation and checkpoints excluded). Prints a table and
writes `results/streaming_corpus.json`.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "tests", "configs", "tiny_mlm.yaml")
RESULTS = os.path.join(REPO, "benchmarks", "results", "streaming_corpus.json")
RESUME_STEPS = 5
LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))


def words(count, seed):
    """`count` distinct lowercase words of 3-9 letters."""
    rng = np.random.default_rng(seed)
    found = set()
    while len(found) < count:
        found.add("".join(rng.choice(LETTERS, rng.integers(3, 10))))
    return sorted(found)


def write_corpus(folder, gigabytes, shards, vocabulary, seed):
    """`shards` JSONL files of about gigabytes / shards each; returns
    (bytes written, documents)."""
    rng = np.random.default_rng(seed)
    table = np.array(vocabulary, dtype=object)
    per_shard = gigabytes * 1e9 / shards
    total_bytes = total_documents = 0
    for shard in range(shards):
        written = 0
        with open(os.path.join(folder, f"part-{shard:03d}.jsonl"), "w") as out:
            while written < per_shard:
                lengths = rng.integers(20, 121, 512)
                ids = table[rng.integers(0, len(table), int(lengths.sum()))].tolist()
                ends = np.cumsum(lengths).tolist()
                starts = [0] + ends[:-1]
                lines = "".join('{"text": "' + " ".join(ids[a:b]) + '"}\n'
                                for a, b in zip(starts, ends))
                out.write(lines)
                written += len(lines)
                total_documents += len(lengths)
        total_bytes += written
    return total_bytes, total_documents


def write_vocabulary(path, vocabulary):
    """A vocab.txt: tfmask's special tokens first ([PAD] is id 0), then the words."""
    from tfmask.text.vocabulary import SpecialTokens

    tokens = list(SpecialTokens().reserved()) + list(vocabulary)
    with open(path, "w") as f:
        f.write("\n".join(tokens) + "\n")
    return len(tokens)


class Watched:
    """A `tfmask.train` process: its peak RSS (VmHWM, polled), when each
    metrics.jsonl row first appeared, and when stdout lines matching
    `marks` first appeared (seconds since start)."""

    def __init__(self, command, output_dir, marks=()):
        self.began = time.perf_counter()
        self.process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True,
                                        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        self.metrics = os.path.join(output_dir, "metrics.jsonl")
        self.peak_kib, self.marks = 0, {m: None for m in marks}
        self.rows, self.steps_seen = [], {}  # this run's metrics rows; step -> seconds
        self.stdout, self.stderr = [], []
        readers = [threading.Thread(target=self._read, args=(self.process.stdout, self.stdout,
                                                             True)),
                   threading.Thread(target=self._read, args=(self.process.stderr, self.stderr,
                                                             False))]
        for reader in readers:
            reader.start()
        self._watch()
        for reader in readers:
            reader.join()
        self.seconds = time.perf_counter() - self.began

    def _rows(self):
        if not os.path.exists(self.metrics):
            return 0
        with open(self.metrics) as f:
            return sum(1 for line in f if line.strip())

    def _new_rows(self, known):
        """Reads the rows after the first `known`; returns how many there are."""
        if not os.path.exists(self.metrics):
            return known
        with open(self.metrics) as f:
            found = [line for line in f if line.strip()]
        if found and not found[-1].endswith("\n"):
            found = found[:-1]  # a row still being written
        for line in found[known:]:
            row = json.loads(line)
            self.rows.append(row)
            if "train_loss" in row:
                self.steps_seen.setdefault(row["step"], time.perf_counter() - self.began)
        return max(known, len(found))

    def _read(self, stream, lines, marked):
        for line in stream:  # universal newlines: progress bars' \r ends a line too
            lines.append(line)
            if marked:
                for mark, seen in self.marks.items():
                    if seen is None and mark in line:
                        self.marks[mark] = time.perf_counter() - self.began

    def _watch(self):
        rows = self._rows()  # a resumed run's folder already has rows
        while self.process.poll() is None:
            try:
                with open(f"/proc/{self.process.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            self.peak_kib = max(self.peak_kib, int(line.split()[1]))
            except OSError:
                pass
            rows = self._new_rows(rows)
            time.sleep(0.2)
        self._new_rows(rows)
        if self.process.returncode:
            sys.stderr.write("".join(self.stderr[-40:]))
            raise SystemExit(f"tfmask.train failed with exit {self.process.returncode}")


def train(output_dir, pattern, vocabulary_path, vocabulary_size, steps, shuffle_buffer,
          log_every, marks=()):
    sets = [f"data.name=file:{pattern}", f"data.vocabulary={vocabulary_path}",
            f"data.vocabulary_size={vocabulary_size}", f"data.shuffle_buffer={shuffle_buffer}",
            f"train.steps={steps}", f"train.log_every={log_every}", "train.eval_batches=1",
            f"runtime.checkpoint_every={steps}", "runtime.export=false"]
    command = [sys.executable, "-m", "tfmask.train", "--config", CONFIG,
               "--output_dir", output_dir] + [a for s in sets for a in ("--set", s)]
    return Watched(command, output_dir, marks)


def steps_per_second(run):
    """Training steps per training second (`train_seconds`: the trainer's own
    count, evaluation and checkpoints excluded) of one run, from its first
    logged step on (that step's time holds the tracing)."""
    rows = [r for r in run.rows if "train_seconds" in r and "train_loss" in r]
    first, last = rows[0], rows[-1]
    return (last["step"] - first["step"]) / (last["train_seconds"] - first["train_seconds"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gigabytes", type=float, default=2.0, help="corpus size (1e9 bytes)")
    parser.add_argument("--small_gigabytes", type=float, default=0.02,
                        help="the small corpus of the memory comparison")
    parser.add_argument("--shards", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2000,
                        help="steps of the fresh run; the resume skips them")
    parser.add_argument("--shuffle_buffer", type=int, default=10_000)
    parser.add_argument("--words", type=int, default=2000, help="vocabulary of the corpus")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folder", default=None,
                        help="where to write the corpus and runs (default: a temporary "
                             "folder, deleted afterwards)")
    parser.add_argument("--out", default=RESULTS)
    args = parser.parse_args(argv)

    folder = args.folder or tempfile.mkdtemp(prefix="streaming_corpus_")
    os.makedirs(folder, exist_ok=True)
    try:
        vocabulary = words(args.words, args.seed)
        vocabulary_path = os.path.join(folder, "vocab.txt")
        vocabulary_size = write_vocabulary(vocabulary_path, vocabulary)
        corpora = {}
        for name, size in (("small", args.small_gigabytes), ("big", args.gigabytes)):
            corpus = os.path.join(folder, name)
            os.makedirs(corpus, exist_ok=True)
            began = time.perf_counter()
            written, documents = write_corpus(corpus, size, args.shards, vocabulary, args.seed)
            corpora[name] = {"pattern": os.path.join(corpus, "part-*.jsonl"), "bytes": written,
                             "documents": documents, "shards": args.shards,
                             "write_seconds": time.perf_counter() - began}
            print(f"{name} corpus: {written / 1e9:.2f} GB, {documents:,} documents in "
                  f"{args.shards} shards, written in {corpora[name]['write_seconds']:.0f} s",
                  flush=True)

        common = dict(vocabulary_path=vocabulary_path, vocabulary_size=vocabulary_size,
                      shuffle_buffer=args.shuffle_buffer)
        counted = "documents (dropped:"  # the line tfmask.train prints after counting a file: source
        runs = {}
        small_dir = os.path.join(folder, "run_small")
        small = train(small_dir, corpora["small"]["pattern"], steps=args.steps, log_every=1,
                      marks=(counted,), **common)
        fresh_dir = os.path.join(folder, "run_big")
        fresh = train(fresh_dir, corpora["big"]["pattern"], steps=args.steps, log_every=1,
                      marks=(counted,), **common)
        total = args.steps + RESUME_STEPS
        resume = train(fresh_dir, corpora["big"]["pattern"], steps=total, log_every=1,
                       marks=(counted,), **common)
        for name, run in (("small", small), ("fresh", fresh), ("resume", resume)):
            first = min(step for step in run.steps_seen) if run.steps_seen else None
            runs[name] = {
                "corpus": "small" if name == "small" else "big",
                "peak_rss_mib": run.peak_kib / 1024,
                "wall_seconds": run.seconds,
                "steps_per_second": steps_per_second(run),
                "counted_source_seconds": run.marks[counted],
                "first_logged_step": first,
                "seconds_to_first_logged_step": run.steps_seen.get(first),
            }
        # Each run: start-up (build the task), the count of the file: source
        # that tfmask.train prints, then fit(): restore, skip, first step.
        for run in runs.values():
            run["seconds_from_count_to_first_step"] = (
                run["seconds_to_first_logged_step"] - run["counted_source_seconds"])
        resume_row, fresh_row = runs["resume"], runs["fresh"]
        resume_row["skipped_batches"] = args.steps
        resume_row["skip_seconds"] = (resume_row["seconds_from_count_to_first_step"]
                                      - fresh_row["seconds_from_count_to_first_step"])
        children_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        results = {"config": os.path.relpath(CONFIG, REPO), "steps": args.steps,
                   "shuffle_buffer": args.shuffle_buffer, "vocabulary": "prepared file",
                   "vocabulary_size": vocabulary_size, "corpora": corpora, "runs": runs,
                   "children_max_rss_mib": children_kib / 1024,
                   "machine": f"{os.cpu_count()} CPUs"}
        print_table(results)
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
        print(f"\nwrote {os.path.relpath(args.out, REPO)}")
    finally:
        if args.folder is None:
            shutil.rmtree(folder, ignore_errors=True)


def print_table(results):
    from benchmarks.common import print_table as table

    corpora, runs = results["corpora"], results["runs"]
    rows = []
    for name, run in runs.items():
        corpus = corpora[run["corpus"]]
        rows.append([name, f"{corpus['bytes'] / 1e9:.2f}", f"{corpus['documents']:,}",
                     f"{run['peak_rss_mib']:,.0f}", f"{run['steps_per_second']:.1f}",
                     f"{run['counted_source_seconds']:.1f}",
                     f"{run['first_logged_step']} at {run['seconds_to_first_logged_step']:.1f}",
                     f"{run['seconds_from_count_to_first_step']:.1f}",
                     f"{run['wall_seconds']:.1f}"])
    table(f"Streaming a sharded JSONL corpus ({corpora['big']['shards']} shards), "
          f"{results['config']}, shuffle_buffer {results['shuffle_buffer']:,}; "
          "times in s from the start of tfmask.train",
          ["run", "GB", "documents", "peak RSS MiB", "steps/s", "source counted",
           "first step at", "count->step", "wall"], rows)
    resume = runs["resume"]
    print(f"\nresume after {resume['skipped_batches']:,} steps: {resume['skip_seconds']:.1f} s "
          "more from the count to the first step than the fresh run (restore + exact-resume "
          f"skip of {resume['skipped_batches']:,} batches), "
          f"{resume['skipped_batches'] / max(resume['skip_seconds'], 1e-9):.0f} batches/s")


if __name__ == "__main__":
    main()
