"""Predict with a trained run: fill-mask, classification, generation or entities.

    python -m tfmask.predict --run runs/mlm_austen_wordnet --text "the movie was [MASK] ."
    python -m tfmask.predict --run runs/rotten_tomatoes_minilm --text "a gorgeous, moving film"
    python -m tfmask.predict --run runs/kjv_rv1909_transformer --text "In the beginning" --sampler beam
    python -m tfmask.predict --run runs/ner_wnut16_minilm --text "going to see Justin Bieber in London"

The run folder is what `python -m tfmask.train` wrote (`config.yaml` and
`export/` with `model.keras` and `vocab.txt`); its model family's task
(`tfmask.tasks`) answers, framing and masking the text as in training.
`[MASK]` in the text marks the positions to fill.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import flags  # noqa: E402

from tfmask.cli import define_shared_flags, run_main  # noqa: E402

flags.DEFINE_multi_string("text", [], "Input text (repeat for several).")
flags.DEFINE_integer("top_k", 5, "Fill-mask: candidates per [MASK].")
flags.DEFINE_enum("sampler", "greedy", ["greedy", "beam"], "Generation search.")
flags.DEFINE_integer("num_beams", 4, "Beam search width.")
define_shared_flags("run", "debug", "verbose")
FLAGS = flags.FLAGS


class Predictor:
    """A trained run, loaded once, answering texts through its family's task.

    Example (after training):
        predictor = Predictor("runs/mlm_austen_wordnet")
        predictor.predict("it is a truth universally [MASK] .")
    """

    def __init__(self, run_dir):
        import keras

        import tfmask.layers  # noqa: F401  (registers the layers for loading)
        import tfmask.models  # noqa: F401
        from tfmask.run_folder import RunFolder
        from tfmask.tasks import TASKS, load_config
        from tfmask.tasks.base import config_tokenizer

        run_dir = os.path.expanduser(run_dir)  # --run=~/runs/x: no shell expands it
        folder = RunFolder(run_dir)
        if not folder.is_run():
            raise FileNotFoundError(
                f"{run_dir} has no export/model.keras; train it with python -m tfmask.train "
                "(runtime.export: true) first.")
        # The run's data may have moved since: prediction needs only the run folder.
        self.config = load_config(folder.config_file, check_data=False)
        if TASKS.get(self.config.model.family).dense:
            raise ValueError(f"model.family={self.config.model.family} reads arrays, not "
                             "--text: load export/model.keras (keras.models.load_model, "
                             "with tfmask imported) and call it on your arrays.")
        export = folder.current_export()  # never an export behind the run's checkpoints
        vocabulary = export.vocabulary
        self.tokenizer = config_tokenizer(self.config, vocabulary)
        self.task = TASKS.get(self.config.model.family)(self.config, self.tokenizer, vocabulary)
        self.model = keras.models.load_model(export.model)

    def predict(self, text, top_k=5, sampler="greedy", num_beams=4):
        """Printable lines: fill-mask candidates, class probabilities or a generation."""
        check_search(top_k, num_beams)
        return self.task.predict(self.model, text, top_k=top_k, sampler=sampler,
                                 num_beams=num_beams)


def check_search(top_k, num_beams):
    """One line for a --top_k or --num_beams below 1 (an empty answer, or
    a beam search with no beam)."""
    for flag, value, what in (("top_k", top_k, "candidates printed per [MASK]"),
                              ("num_beams", num_beams, "beams of --sampler beam")):
        if value < 1:
            raise ValueError(f"--{flag}={value} must be >= 1 ({what}); pass 1 or more.")


def main(argv):
    from tfmask.cli import USER_ERROR, extra_arguments_error, report

    if extra_arguments_error(argv):
        return USER_ERROR
    if not FLAGS.run or not FLAGS.text:
        print("error: --run and --text are required.", file=sys.stderr)
        return USER_ERROR

    def predict():
        check_search(FLAGS.top_k, FLAGS.num_beams)  # before loading the run
        predictor = Predictor(FLAGS.run)
        for text in FLAGS.text:
            for line in predictor.predict(text, FLAGS.top_k, FLAGS.sampler, FLAGS.num_beams):
                print(line)

    return report(predict, FLAGS.debug)


if __name__ == "__main__":
    run_main(main)
