"""A SavedModel that serves raw text: what was trained, as it was trained.

`export_serving(task, model, path)` writes a SavedModel whose default
signature takes a batch of strings and returns the family's outputs: it
contains the WordPiece tokenizer (tensorflow-text ops and the vocabulary
table, in the graph), the run's input masking (term masking of names, ages,
patterns) and the decoding loop, so a serving system does not reimplement any
of them. The signature runs `Task.serve`, the same function
`python -m tfmask.predict` prints, so the two agree by construction (a test
checks it in a fresh process that does not import tfmask).

| family | input `text` [B] | outputs |
|---|---|---|
| classifier | texts | `probabilities` [B, classes] |
| mlm | texts with `[MASK]` | `positions` [B, W] (-1 = unused slot), `tokens`, `token_ids`, `probabilities` [B, W, top_k] |
| seq2seq_transformer, seq2seq_lstm | source texts | `text` [B], greedy decoding |
| causal_lm | prompts | `text` [B], the greedy continuation |

A second signature, `serve_token_ids`, is the bare model on token ids, for
systems that tokenize themselves.

Loading needs TensorFlow and tensorflow-text (its ops are in the graph):

    import tensorflow as tf, tensorflow_text  # noqa: F401  (registers the ops)
    served = tf.saved_model.load("runs/rotten_tomatoes_minilm/export/saved_model")
    served.signatures["serving_default"](text=tf.constant(["a gorgeous film"]))
"""

import keras
import tensorflow as tf
from keras.src.export.export_utils import get_input_signature

TOP_K = 5  # fill-mask candidates per [MASK] in the served signature


def export_serving(task, model, path, top_k=TOP_K):
    """Writes the raw-text SavedModel of `model` (trained by `task`) to `path`."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    # Lookup tables (vocabulary, masked terms) are not variables: track them.
    for resource in task.serving_resources():
        archive.track(resource)

    def serve(text):
        return task.serve(model, text, top_k=top_k)

    # The first endpoint is also "serving_default".
    archive.add_endpoint("serve", serve,
                         input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    archive.add_endpoint("serve_token_ids", lambda inputs: model(inputs, training=False),
                         input_signature=get_input_signature(model))
    archive.write_out(path, verbose=False)
    return path
