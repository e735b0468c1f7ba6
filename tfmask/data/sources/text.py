"""Plain-text files: one document per line, or per blank-line separated paragraph.

Read with `tf.data.TextLineDataset`; CRLF line endings and a UTF-8 byte
order mark are handled.

Example:
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "a.txt")
>>> _ = open(path, "wb").write(b"first doc\\n\\nsecond doc\\n")
>>> docs = text_files(path)
>>> [d["text"].numpy() for d in docs]
[b'first doc', b'second doc']
>>> str(docs.stats)
'2 documents (dropped: 1 empty, 0 undecodable; 0 with replaced bytes)'
"""

import tensorflow as tf

from tfmask.data import features as F
from tfmask.data.sources.core import (
    FILE_KEY,
    RECORD_KEY,
    SourceError,
    check_mode,
    describe,
    files_dataset,
    finish,
    numbered_batches,
    open_binary,
    resolve_paths,
)

TEXT_UNITS = ("line", "paragraph")
_BOM = b"\xef\xbb\xbf"


def _strip_bom(lines, numbers):
    # A UTF-8 byte order mark is not text; only a file's first line has one.
    has_bom = tf.equal(numbers, 1) & tf.equal(tf.strings.substr(lines, 0, 3), _BOM)
    length = tf.strings.length(lines)
    return tf.strings.substr(lines, tf.where(has_bom, 3, 0), tf.where(has_bom, length - 3, length))



def _has_text(path, chunk_size=1 << 16):
    """True when the file holds a non-whitespace byte (reads up to the first)."""
    with open_binary(path) as f:
        while True:
            chunk = f.read(chunk_size)
            if not chunk:
                return False
            if chunk.replace(_BOM, b"").strip():
                return True


def text_files(paths, unit="line", on_decode_error="fail"):
    """Plain-text files: one document per line, or per paragraph.

    Args:
        paths: a path, glob or list of them.
        unit: "line" (default): every non-blank line is a document.
            "paragraph": blank-line separated blocks are documents; their
            lines are joined with "\\n".
        on_decode_error: "fail", "replace" or "skip" (see `tfmask.data.sources`).

    CRLF line endings and a UTF-8 byte order mark are handled. Returns a
    dataset of `{"text": tf.string}` with a `.stats` `SourceStats`.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "p.txt")
    >>> _ = open(path, "wb").write(b"a b\\r\\nc\\r\\n\\r\\nd\\r\\n")
    >>> [d["text"].numpy() for d in text_files(path, unit="paragraph")]
    [b'a b\\nc', b'd']
    """
    if unit not in TEXT_UNITS:
        raise ValueError(f"unit={unit!r} is not one of {TEXT_UNITS}.")
    check_mode(on_decode_error)
    files = resolve_paths(paths)
    if not any(_has_text(f) for f in files):
        raise SourceError(
            f"No text in {describe(files)}: every file is empty or blank; "
            "check the paths."
        )

    def lines_of(path):
        batches = numbered_batches(tf.data.TextLineDataset(path), path)
        return batches.map(
            lambda lines, numbers, where: (_strip_bom(lines, numbers), numbers, where)
        )

    if unit == "line":
        def read(path):
            return lines_of(path).map(
                lambda lines, numbers, where: {F.TEXT: lines, RECORD_KEY: numbers, FILE_KEY: where}
            )
        record_word = "line"
    else:
        def read(path):
            # A blank sentinel line closes the file's last paragraph.
            end = tf.data.Dataset.from_tensors(
                (tf.constant([""]), tf.constant([0], tf.int64), tf.reshape(path, [1]))
            )
            return lines_of(path).concatenate(end).scan(_no_paragraph(), _paragraph_step)
        record_word = "paragraph starting at line"
    return finish(files_dataset(files).flat_map(read), on_decode_error, record_word)


def _no_paragraph():
    """scan state: (unfinished paragraph, its first line number, whether any)."""
    return tf.constant(""), tf.constant(0, tf.int64), tf.constant(False)


def _paragraph_step(state, batch):
    """Joins a batch of lines into the paragraphs it completes.

    The paragraph still open at the end of the batch is carried to the next
    one (as a single line), so paragraphs may span batches.
    """
    carry, carry_start, has_carry = state
    lines, numbers, where = batch
    lines = tf.concat([[carry], lines], 0)
    numbers = tf.concat([[carry_start], numbers], 0)
    blank = tf.concat([[tf.logical_not(has_carry)],
                       tf.equal(tf.strings.length(tf.strings.strip(lines[1:])), 0)], 0)
    # Paragraph index of a line: blank lines seen up to and including it.
    paragraph = tf.cumsum(tf.cast(blank, tf.int32))
    count = paragraph[-1] + 1
    text = tf.boolean_mask(lines, ~blank)
    index = tf.boolean_mask(paragraph, ~blank)
    joined = tf.strings.unsorted_segment_join(text, index, count, separator="\n")
    starts = tf.math.unsorted_segment_min(tf.boolean_mask(numbers, ~blank), index, count)
    sizes = tf.math.unsorted_segment_sum(tf.ones_like(index), index, count)
    still_open = tf.logical_not(blank[-1])  # the last paragraph goes on
    done = (sizes > 0) & ~(still_open & tf.equal(tf.range(count), count - 1))
    state = (tf.where(still_open, joined[-1], ""),
             tf.where(still_open, starts[-1], tf.constant(0, tf.int64)),
             still_open)
    texts = tf.boolean_mask(joined, done)
    output = {F.TEXT: texts, RECORD_KEY: tf.boolean_mask(starts, done),
              FILE_KEY: tf.fill(tf.shape(texts), where[0])}
    return state, output

