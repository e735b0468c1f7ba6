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
| token_classifier | texts (words space-separated, or any Chinese text with `data.tag_unit: character`) | `tags` [B, U] per unit; `entity_count` [B]; `entity_types`, `entity_texts`, `entity_starts`, `entity_ends` (character offsets, end exclusive), `entity_scores` [B, E] |

A second signature, `serve_token_ids`, is the bare model on token ids, for
systems that tokenize themselves; it is the only one for runs that do not
answer raw text (T5 span corruption, classifiers on pre-segmented words).
Term masking with `replacement: random` draws its random tokens from a fixed
seed per request batch, so only "mask" and "drop" are reproducible per text.

Loading needs TensorFlow and tensorflow-text (its ops are in the graph):

    import tensorflow as tf, tensorflow_text  # noqa: F401  (registers the ops)
    served = tf.saved_model.load("runs/rotten_tomatoes_minilm/export/saved_model")
    served.signatures["serving_default"](text=tf.constant(["a gorgeous film"]))
"""

import keras
import tensorflow as tf

TOP_K = 5  # fill-mask candidates per [MASK] in the served signature


def token_id_signature(model):
    """The model's inputs as `tf.TensorSpec`s (its functional input structure)."""
    return [keras.tree.map_structure_up_to(
        model.input, lambda t: tf.TensorSpec(t.shape, t.dtype, name=t.name), model.input)]


def export_serving(task, model, path, top_k=TOP_K, log=print):
    """Writes the raw-text SavedModel of `model` (trained by `task`) to `path`.

    A run that cannot answer raw text (`Task.text_serving_refusal`: T5 span
    corruption, pre-segmented words) gets only `serve_token_ids`, and `log`
    says why."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    refusal = task.text_serving_refusal()
    if refusal is None:
        # Lookup tables (vocabulary, masked terms) are not variables: track them.
        for resource in task.serving_resources():
            archive.track(resource)

        def serve(text):
            return task.serve(model, text, top_k=top_k)

        # The first endpoint is also "serving_default".
        archive.add_endpoint("serve", serve,
                             input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    else:
        log(f"export/saved_model serves the model's own inputs only (serve_token_ids): "
            f"{refusal}")
    archive.add_endpoint("serve_token_ids", lambda inputs: model(inputs, training=False),
                         input_signature=token_id_signature(model))
    archive.write_out(path, verbose=False)
    return path
