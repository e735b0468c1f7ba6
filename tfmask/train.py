"""Train from a config: `python -m tfmask.train --config configs/NAME.yaml`.

    python -m tfmask.train --config configs/rotten_tomatoes_minilm.yaml \\
        --set train.steps=200 --output_dir runs/rt

Writes into the output folder: `config.yaml` (the resolved config),
`checkpoints/` (every `runtime.checkpoint_every` steps, the last K kept),
`metrics.jsonl`, TensorBoard `logs/`, and `export/` (model.keras,
saved_model/, vocab.txt). Re-running the same command resumes from the last
checkpoint (a changed model or data setting is refused), SIGTERM / Ctrl-C
save a checkpoint first, and a NaN stops the run without exporting. A bad
config, flag or data file is reported in one line (exit 2), before any work
where it can be; `--debug` shows the traceback.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import flags  # noqa: E402

from tfmask.cli import define_shared_flags  # noqa: E402

define_shared_flags("config", "set", "output_dir", "debug", "verbose")
flags.DEFINE_bool("reexport", False, "Write export/ again although the run is finished.")
FLAGS = flags.FLAGS


def run(config_path, overrides=(), output_dir=None, verbose=True, reexport=False):
    """Loads, validates and trains; returns (final metrics, output folder)."""
    from tfmask.tasks import load_config
    from tfmask.training.strategy import configure_cpu_devices
    from tfmask.training.trainer import Trainer

    config = load_config(config_path, overrides)
    name = os.path.splitext(os.path.basename(config_path))[0]
    # --output_dir=~/runs is not expanded by the shell (nor is a YAML value).
    output_dir = os.path.expanduser(output_dir or config.runtime.output_dir
                                    or os.path.join("runs", name))
    if config.runtime.strategy == "mirrored" and config.runtime.num_devices > 1:
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            configure_cpu_devices(config.runtime.num_devices)
    # The trainer first: multi_worker must set up collectives before
    # TensorFlow runs anything (reading a file: source would).
    trainer = Trainer(config, output_dir, verbose=verbose)
    if verbose:
        from tfmask.training.start_report import start_lines

        print("\n".join(start_lines(config, trainer, output_dir)), flush=True)
        report_file_sources(config)
    return trainer.fit(reexport=reexport), output_dir


COUNTED_BYTES = 256 * 2**20


def report_file_sources(config):
    """For `file:` sources: how many records were read, and how many were
    dropped (empty, undecodable) or repaired (replaced bytes). Counting reads
    the whole source, so a source above COUNTED_BYTES is only named with its
    size (the streaming benchmark spent 140 s of each start counting 2 GB)."""
    import tensorflow as tf

    from tfmask import datasets
    from tfmask.data.sources import resolve_paths

    for name in config.data.name.split("+"):
        if name.startswith("file:"):
            # One file per split ({split} in the path): count the training file.
            split = config.data.train_split if "{split}" in name else "all"
            files = resolve_paths(name[len("file:"):].replace("{split}", split))
            size = sum(tf.io.gfile.stat(path).length for path in files)
            if size > COUNTED_BYTES:
                print(f"{name}: {len(files)} files, {size / 2**30:.2f} GiB (not counted before "
                      "training: counting would read it all)")
                continue
            documents = datasets.load(name, split=split, **config.data.dataset_options)
            documents.reduce(0, lambda count, _: count + 1)
            stats = getattr(documents, "stats", None)
            if stats is not None:
                print(f"{name}: {stats}")


def cli(argv):
    """Runs the command line `argv` (without the program name) in this
    process; returns the exit code (see `tfmask.cli`)."""
    from tfmask.cli import USER_ERROR

    FLAGS.unparse_flags()
    try:
        FLAGS(["tfmask.train"] + list(argv))
    except flags.Error as error:
        print(f"error: {error}", file=sys.stderr)
        return USER_ERROR
    return main(["tfmask.train"])


def main(argv):
    from absl import logging

    from tfmask.cli import USER_ERROR, extra_arguments_error, report

    logging.set_verbosity(logging.WARNING)  # checkpoint/export INFO lines drown the progress bar
    if extra_arguments_error(argv):
        return USER_ERROR
    if not FLAGS.config:
        print("error: --config is required, e.g. --config configs/mlm_austen_wordnet.yaml",
              file=sys.stderr)
        return USER_ERROR

    def train():
        results, output_dir = run(FLAGS.config, FLAGS.set, FLAGS.output_dir,
                                  reexport=FLAGS.reexport)
        print("final: " + ", ".join(f"{k} {v:.4f}" for k, v in results.items()))
        print(f"outputs in {output_dir}")

    return report(train, FLAGS.debug)


def entry_point():
    from tfmask.cli import run_main

    run_main(main)


if __name__ == "__main__":
    entry_point()
