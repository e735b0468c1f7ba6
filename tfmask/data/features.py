"""The feature keys of tfmask batches, documented once.

Every pipeline stage reads and writes dicts of tensors with these keys; a
model builder reads the same keys. Shapes: B batch, S sequence length,
P `max_predictions`, T target length. Masks are bool, True = real / kept.

| key               | dtype   | shape  | meaning |
|-------------------|---------|--------|---------|
| `text`            | string  | [B]    | raw document text |
| `words`           | string  | [B, None] ragged | words after basic tokenization (lower-cased if the tokenizer is) |
| `token_ids`       | int32   | [B, S] | token ids, after masking if a strategy ran; 0-padded |
| `word_ids`        | int32   | [B, S] | index of the word each token belongs to, -1 for special tokens and padding |
| `padding_mask`    | bool    | [B, S] | True at real tokens; emitted once, by the tokenizer's framing or `pack`, and read by everything downstream (strategies, models) |
| `segment_ids`     | int32   | [B, S] | packed-document id per token, 1, 2, ...; 0 = padding |
| `position_ids`    | int32   | [B, S] | position inside its own document (restarts per packed document) |
| `token_type_ids`  | int32   | [B, S] | BERT sentence A/B type |
| `entity_ids`      | int32   | [B, S] | index of the entity span a token belongs to, -1 outside entities |
| `mask_positions`  | int32   | [B, P] | positions chosen by an MLM strategy (ascending; padded with 0) |
| `mask_ids`        | int32   | [B, P] | original token ids at `mask_positions` (the labels) |
| `mask_weights`    | float32 | [B, P] | 1 for real predictions, 0 for padding entries |
| `labels`          | int32   | [B, S] or [B] | next-token targets (causal LM, `tfmask.data.targets`) or class labels |
| `loss_weights`    | float32 | [B, S] | per-token loss weights (0 on prompt tokens and padding) |
| `decoder_token_ids` | int32 | [B, T] | decoder inputs (targets shifted right) for encoder-decoder models |
| `decoder_padding_mask` | bool | [B, T] | True at real decoder positions (position 0, the start token, included) |
| `targets`         | int32   | [B, T] | decoder targets (span corruption, translation) |
| `feature_mask`    | bool    | like the input | dense feature masks: True = kept, Y = M * X |
| `term_mask`       | bool    | [B, S] | False where `TermMasking` replaced a nuisance term (True = kept) |
| `truncated`       | bool    | [B]    | True where tokenization cut a document to fit |

MLM strategies follow keras-hub's output convention (`token_ids`,
`mask_positions`, `mask_ids`, `mask_weights`, `padding_mask`), so keras-hub's
`BertMaskedLM` and tfmask models both accept their batches.
"""

TEXT = "text"
WORDS = "words"
TOKEN_IDS = "token_ids"
WORD_IDS = "word_ids"
PADDING_MASK = "padding_mask"
SEGMENT_IDS = "segment_ids"
POSITION_IDS = "position_ids"
TOKEN_TYPE_IDS = "token_type_ids"
ENTITY_IDS = "entity_ids"
MASK_POSITIONS = "mask_positions"
MASK_IDS = "mask_ids"
MASK_WEIGHTS = "mask_weights"
LABELS = "labels"
LOSS_WEIGHTS = "loss_weights"
# 1 for a real example, 0 for a copy that fills an evaluation batch to full
# size where shapes must be static (TPUs, XLA; `full_batches`).
EXAMPLE_WEIGHT = "example_weight"
DECODER_TOKEN_IDS = "decoder_token_ids"
DECODER_PADDING_MASK = "decoder_padding_mask"
TARGETS = "targets"
FEATURE_MASK = "feature_mask"
MISSING_INDICATOR = "missing_indicator"  # dense: 1 where a value is hidden
TERM_MASK = "term_mask"
TRUNCATED = "truncated"
INPUTS = "inputs"

# Packed rows (`tfmask.data.packing.pack`) carry, besides token ids and the
# padding mask, which document each token belongs to and its position in it:
# every model and task that reads packed rows reads these.
PACKED_ROW_KEYS = (SEGMENT_IDS, POSITION_IDS)


def row_keys(packed):
    """Row-level keys a sequence model reads besides `token_ids` and
    `padding_mask`: `segment_ids` and `position_ids` for packed rows.

    >>> row_keys(True), row_keys(False)
    (['segment_ids', 'position_ids'], [])
    """
    return list(PACKED_ROW_KEYS) if packed else []


def one_document_rows(padding_mask):
    """`segment_ids` and `position_ids` of unpacked rows, for a model built
    for packed rows: each row is document 1, positions from 0, padding 0."""
    import tensorflow as tf

    real = tf.convert_to_tensor(padding_mask)
    return {SEGMENT_IDS: tf.cast(real, tf.int32),
            POSITION_IDS: tf.where(real, tf.range(tf.shape(real)[1])[None, :], 0)}
