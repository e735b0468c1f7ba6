"""Predict with a trained run: fill-mask, classification or generation.

    python -m tfmask.predict --run runs/mlm_austen_wordnet --text "the movie was [MASK] ."
    python -m tfmask.predict --run runs/rotten_tomatoes_minilm --text "a gorgeous, moving film"
    python -m tfmask.predict --run runs/kjv_rv1909_transformer --text "In the beginning" --sampler beam

The run folder is what `python -m tfmask.train` wrote (`config.yaml` and
`export/` with `model.keras` and `vocab.txt`); the model type decides the
task. `[MASK]` in the text marks the positions to fill.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags  # noqa: E402

flags.DEFINE_string("run", None, "Run folder written by tfmask.train.")
flags.DEFINE_multi_string("text", [], "Input text (repeat for several).")
flags.DEFINE_integer("top_k", 5, "Fill-mask: candidates per [MASK].")
flags.DEFINE_enum("sampler", "greedy", ["greedy", "beam"], "Generation search.")
flags.DEFINE_integer("num_beams", 4, "Beam search width.")
FLAGS = flags.FLAGS


class Predictor:
    """A trained run, loaded once, answering texts.

    Example (after training):
        predictor = Predictor("runs/mlm_austen_wordnet")
        predictor.fill_mask("it is a truth universally [MASK] .")
    """

    def __init__(self, run_dir):
        import keras

        import tfmask.layers  # noqa: F401  (registers the layers for loading)
        import tfmask.models  # noqa: F401
        from tfmask.text import WordPieceTokenizer
        from tfmask.training.config import load_config

        export = os.path.join(run_dir, "export")
        if not os.path.exists(os.path.join(export, "model.keras")):
            raise FileNotFoundError(
                f"{run_dir} has no export/model.keras; train it with python -m tfmask.train "
                "(runtime.export: true) first.")
        self.config = load_config(os.path.join(run_dir, "config.yaml"))
        self.tokenizer = WordPieceTokenizer(os.path.join(export, "vocab.txt"),
                                            lowercase=self.config.data.lowercase)
        self.model = keras.models.load_model(os.path.join(export, "model.keras"))
        self.kind = type(self.model).__name__

    def _ids(self, text, add_special=True):
        """Token ids of `text`, with `[MASK]` kept as the mask token."""
        tokenizer, ids = self.tokenizer, []
        for i, part in enumerate(text.split("[MASK]")):
            if i:
                ids.append(tokenizer.mask_id)
            if part.strip():
                ids += tokenizer.tokenize([part])["token_ids"].to_list()[0]
        length = self.config.data.sequence_length
        if add_special:
            ids = [tokenizer.cls_id] + ids[: length - 2] + [tokenizer.sep_id]
        return ids[:length]

    def fill_mask(self, text, top_k=5):
        import numpy as np

        ids = self._ids(text)
        positions = [i for i, t in enumerate(ids) if t == self.tokenizer.mask_id]
        if not positions:
            raise ValueError("fill-mask needs at least one [MASK] in the text.")
        width = self.config.masking.max_predictions
        padded = (positions + [0] * width)[:width]
        logits = np.asarray(self.model({"token_ids": np.array([ids], "int32"),
                                        "mask_positions": np.array([padded], "int32")}))[0]
        results = []
        for slot, position in enumerate(positions[:width]):
            probs = np.exp(logits[slot] - logits[slot].max())
            probs /= probs.sum()
            best = np.argsort(-probs)[:top_k]
            results.append((position, [(self.tokenizer.id_to_token(int(t)), float(probs[t]))
                                       for t in best]))
        return results

    def classify(self, text):
        import numpy as np

        logits = np.asarray(self.model({"token_ids": np.array([self._ids(text)], "int32")}))[0]
        probs = np.exp(logits - logits.max())
        return (probs / probs.sum()).tolist()

    def generate(self, text, sampler="greedy", num_beams=4):
        import numpy as np

        data, tokenizer = self.config.data, self.tokenizer
        if self.kind == "CausalLMModel":
            ids = self._ids(text, add_special=False)
            output = self.model.generate(np.array([ids], "int32"), np.array([len(ids)]),
                                         max_length=data.sequence_length, sampler=sampler,
                                         num_beams=num_beams, stop_token_ids=[tokenizer.sep_id])
            new = [int(t) for t in np.asarray(output)[0][len(ids):]]
        else:
            ids = self._ids(text, add_special=False)[: data.sequence_length - 1] + [tokenizer.sep_id]
            output = self.model.generate(np.array([ids], "int32"), max_length=data.target_length + 1,
                                         sampler=sampler, num_beams=num_beams,
                                         stop_token_ids=[tokenizer.sep_id])
            new = [int(t) for t in np.asarray(output)[0][1:]]
        new = new[: new.index(tokenizer.sep_id)] if tokenizer.sep_id in new else new
        return tokenizer.detokenize([new]).numpy()[0].decode("utf-8")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not FLAGS.run or not FLAGS.text:
        print("error: --run and --text are required.", file=sys.stderr)
        return 2
    try:
        predictor = Predictor(FLAGS.run)
        for text in FLAGS.text:
            if predictor.kind == "MaskedLMModel":
                for position, candidates in predictor.fill_mask(text, FLAGS.top_k):
                    shown = ", ".join(f"{token} {p:.3f}" for token, p in candidates)
                    print(f"[MASK] at token {position}: {shown}")
            elif predictor.kind == "ClassifierModel":
                probs = predictor.classify(text)
                print(" ".join(f"class {i}: {p:.3f}" for i, p in enumerate(probs)))
            else:
                print(predictor.generate(text, FLAGS.sampler, FLAGS.num_beams))
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    app.run(main)
