"""Look at a batch: `python -m tfmask.inspect --config configs/NAME.yaml`.

Writes PNGs into `--output_dir` (default `runs/NAME/inspect`); for dense
families one `dense.png` (the input, the mask and the masked input of the
first rows, as images or heat maps); for text families:
- `tokens.png`: the first rows of one training batch as token strips; each
  position the masking strategy chose is coloured by what happened to it
  ([MASK], random token, kept), nuisance terms and loss-weighted tokens too;
- `masks.png`: the attention masks the model will use for the first row, as
  0/1 matrices: padding, causal, document (packed rows), cross-attention.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import flags  # noqa: E402

from tfmask.cli import define_shared_flags, run_main  # noqa: E402

define_shared_flags("config", "set", "output_dir", "debug", "verbose")
flags.DEFINE_integer("rows", 4, "How many rows of the batch to draw.")
FLAGS = flags.FLAGS


def _labels(tokenizer, ids, real):
    return [tokenizer.id_to_token(int(t)) if r else "" for t, r in zip(ids, real)]


def piece_tags(labels, tag_names):
    """A token classifier's labels [B, S] (a tag id at each word's first
    piece, -1 elsewhere) -> the tag names shown under the pieces ("" = none).

    >>> piece_tags([[-1, 0, 2, -1]], ["O", "B-LOC", "I-LOC"]).tolist()
    [['', 'O', 'I-LOC', '']]
    """
    import numpy as np

    labels = np.asarray(labels)
    return np.where(labels >= 0, np.asarray(list(tag_names))[np.maximum(labels, 0)], "")


def draw_tokens(batch, tokenizer, path, rows, tag_names=None):
    """Each row's tokens, coloured by what masking did to them; with
    `tag_names` (a token classifier's), each tagged piece also shows its tag
    and entity tags are coloured."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from tfmask.data import features as F

    ids = np.asarray(batch[F.TOKEN_IDS])[:rows]
    real = np.asarray(batch[F.PADDING_MASK])[:rows]
    length = int(real.sum(1).max())
    colour = np.zeros(ids.shape)  # 0 plain, 1 [MASK], 2 random, 3 kept-but-predicted, 4 term/loss
    if F.MASK_POSITIONS in batch:
        positions = np.asarray(batch[F.MASK_POSITIONS])[:rows]
        weights = np.asarray(batch[F.MASK_WEIGHTS])[:rows]
        originals = np.asarray(batch[F.MASK_IDS])[:rows]
        for r in range(ids.shape[0]):
            for p, w, o in zip(positions[r], weights[r], originals[r]):
                if w:
                    colour[r, p] = 1 if ids[r, p] == tokenizer.mask_id else (3 if ids[r, p] == o else 2)
    if F.TERM_MASK in batch:  # True = kept: colour the replaced terms
        colour[~np.asarray(batch[F.TERM_MASK])[:rows]] = 4
    if F.LOSS_WEIGHTS in batch:
        colour[np.asarray(batch[F.LOSS_WEIGHTS])[:rows] > 0] = 4
    tags = None
    if tag_names is not None:
        tags = piece_tags(np.asarray(batch[F.LABELS])[:rows], tag_names)
        colour[(tags != "") & (tags != "O") & (colour == 0)] = 5
    names = ["unchanged", "[MASK]", "random token", "kept, predicted", "term / loss weight",
             "entity tag"]
    palette = ["#ffffff", "#f4a261", "#e76f51", "#2a9d8f", "#8ab17d", "#a8dadc"]
    height = 1.2 if tags is None else 2.0  # room for the tag under the token
    fig, axes = plt.subplots(ids.shape[0], 1, figsize=(min(0.55 * length + 1, 40),
                                                       height * ids.shape[0] + 0.6),
                             squeeze=False)
    for r, axis in enumerate(axes[:, 0]):
        for p, token in enumerate(_labels(tokenizer, ids[r][:length], real[r][:length])):
            axis.add_patch(plt.Rectangle((p, 0), 1, 1, color=palette[int(colour[r, p])], ec="#999"))
            if tags is None:
                axis.text(p + 0.5, 0.5, token, ha="center", va="center", fontsize=6, rotation=90)
                continue
            # Token above, its tag below, inside the cell.
            axis.text(p + 0.5, 0.97, token, ha="center", va="top", fontsize=6, rotation=90)
            axis.text(p + 0.5, 0.03, tags[r, p], ha="center", va="bottom", fontsize=5,
                      rotation=90, color="#1d3557")
        axis.set_xlim(0, length)
        axis.set_ylim(0, 1)
        axis.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, ec="#999") for c in palette]
    fig.legend(handles, names, loc="lower center", ncol=len(names), fontsize=8)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


def attention_masks(batch, causal):
    """name -> [T, S] bool matrix for the first row of the batch; `causal`:
    the family's model attends causally (its task says)."""
    import numpy as np

    from tfmask import masks as M
    from tfmask.data import features as F

    ids = np.asarray(batch[F.TOKEN_IDS])[:1]
    padding = np.asarray(batch[F.PADDING_MASK])[:1]  # the pipeline's, the model's input
    shown = {"padding": np.asarray(M.cross_attention_mask(padding, padding))[0]}
    if causal:
        shown["causal + padding"] = np.asarray(
            M.combine_masks(shown["padding"], M.causal_mask(ids.shape[1])))
    if F.SEGMENT_IDS in batch:
        segments = np.asarray(batch[F.SEGMENT_IDS])[:1]
        shown["document (packed)"] = np.asarray(M.document_mask(segments))[0]
    if F.DECODER_TOKEN_IDS in batch:
        targets = np.asarray(batch[F.DECODER_TOKEN_IDS])[:1]
        target_padding = np.asarray(batch[F.DECODER_PADDING_MASK])[:1]
        shown["decoder causal"] = np.asarray(M.combine_masks(
            M.cross_attention_mask(target_padding, target_padding),
            M.causal_mask(targets.shape[1])))[0]
        shown["cross (decoder -> encoder)"] = np.asarray(
            M.cross_attention_mask(target_padding, padding))[0]
    return shown


def draw_masks(shown, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(shown), figsize=(4 * len(shown), 4.2), squeeze=False)
    for axis, (name, matrix) in zip(axes[0], shown.items()):
        axis.imshow(matrix, cmap="Greys", vmin=0, vmax=1, interpolation="nearest")
        axis.set_title(name, fontsize=10)
        axis.set_xlabel("key position")
        axis.set_ylabel("query position")
    fig.suptitle("attention masks, first row (black = may attend)")
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


def dense_panels(batch, rows):
    """name -> [rows, H, W] arrays to draw for a dense batch: the input, the
    mask (1 = kept) and what the model reads. Rows [F] become 1 x F strips,
    series [T, F] F x T heat maps, images their first channel."""
    import numpy as np

    from tfmask.data import features as F

    seen = np.asarray(batch[F.INPUTS])[:rows]
    original = np.asarray(batch.get(F.TARGETS, seen))[:rows]
    kept = np.asarray(batch.get(F.FEATURE_MASK, np.ones(seen.shape, bool)))[:rows]

    def as_image(values):
        values = values.astype("float32")
        if values.ndim == 2:  # [rows, F]
            return values[:, None, :]
        if values.ndim == 3:  # [rows, T, F]
            return np.transpose(values, (0, 2, 1))
        return values[..., 0]  # [rows, H, W, C]

    return {"input": as_image(original), "mask (white = kept)": as_image(kept),
            "model input (masked)": as_image(seen)}


def draw_dense(batch, path, rows):
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = dense_panels(batch, rows)
    image = np.asarray(batch["inputs"]).ndim == 4
    count = len(next(iter(panels.values())))
    fig, axes = plt.subplots(count, len(panels), figsize=(3.6 * len(panels), 2.4 * count),
                             squeeze=False)
    for column, (name, images) in enumerate(panels.items()):
        for row in range(count):
            axis = axes[row][column]
            axis.imshow(images[row], cmap="gray" if name.startswith("mask") else "viridis",
                        aspect="equal" if image else "auto", interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(name, fontsize=10)
    fig.suptitle("dense batch: first rows of one training batch")
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)


def inspect(config_path, overrides=(), output_dir=None, rows=4):
    """Builds the config's training pipeline and writes the two PNGs."""
    from tfmask.tasks import build_task, load_config

    config = load_config(config_path, overrides)
    name = os.path.splitext(os.path.basename(config_path))[0]
    output_dir = os.path.expanduser(output_dir or os.path.join("runs", name, "inspect"))
    os.makedirs(output_dir, exist_ok=True)
    task = build_task(config)
    batch = {k: v.numpy() for k, v in next(iter(task.train)).items()}
    if task.dense:  # no tokens and no attention masks: the input, its mask, the result
        dense_png = os.path.join(output_dir, "dense.png")
        draw_dense(batch, dense_png, rows)
        return (dense_png,)
    tokens_png = os.path.join(output_dir, "tokens.png")
    masks_png = os.path.join(output_dir, "masks.png")
    draw_tokens(batch, task.tokenizer, tokens_png, rows, getattr(task, "tags", None))
    draw_masks(attention_masks(batch, task.causal), masks_png)
    return tokens_png, masks_png


def main(argv):
    from tfmask.cli import USER_ERROR, extra_arguments_error, report

    if extra_arguments_error(argv):
        return USER_ERROR
    if not FLAGS.config:
        print("error: --config is required.", file=sys.stderr)
        return USER_ERROR

    def draw():
        for path in inspect(FLAGS.config, FLAGS.set, FLAGS.output_dir, FLAGS.rows):
            print(f"wrote {path}")

    return report(draw, FLAGS.debug)


if __name__ == "__main__":
    run_main(main)
