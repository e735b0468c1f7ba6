"""CoNLL column files (CoNLL-2003 NER and the many sets shipped like it) as `tf.data`.

The format, as CoNLL-2003 writes it:

    -DOCSTART- -X- -X- O

    EU NNP B-NP B-ORG
    rejects VBZ B-VP O
    German JJ B-NP B-MISC

One token per line, whitespace-separated columns (token, then annotations;
the entity tag last), a blank line after every sentence, `-DOCSTART-` lines
between documents. `conll_files` yields one sentence per element:

    text   tf.string        the tokens joined by single spaces
    words  tf.string [None] the tokens
    tags   tf.string [None] the tag column (BIO/IOB1/IOBES entity tags, or POS...)

`read_sentences` is the plain-Python parser underneath. Every line of a
file must have as many columns as its first token line; a line that does
not fails with the file and line number (usually a token holding a space,
or a tab-separated file with empty cells).

Hand-written rather than taken from a library: the format is a trivial
line format, and the readers that exist (`nltk`'s `ConllCorpusReader`,
Hugging Face `datasets`' per-corpus scripts) either load whole corpora into
memory without line numbers in their errors or know one corpus's column
layout only; this one streams, takes any column layout and shares the
decode-error handling, counting and batching of `tfmask.data.sources.core`.

Example:
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "a.conll")
>>> _ = open(path, "w").write("-DOCSTART- -X- -X- O\\n\\nAnna NNP B-NP B-PER\\n"
...                           "sings VBZ B-VP O\\n\\nParis NNP B-NP B-LOC\\n")
>>> [(s["text"].numpy(), s["tags"].numpy().tolist()) for s in conll_files(path)]
[(b'Anna sings', [b'B-PER', b'O']), (b'Paris', [b'B-LOC'])]
"""

import tensorflow as tf

from tfmask.data import features as F
from tfmask.data.sources.core import (
    FILE_KEY,
    RECORD_KEY,
    SourceError,
    base_spec,
    check_mode,
    describe,
    document_spec,
    finish,
    generator_batches,
    open_text,
    resolve_paths,
    to_bytes,
)

DOCSTART = "-DOCSTART-"
WORDS, TAGS = "words", "tags"


def _column(index, width):
    """A possibly negative column index -> 0-based, or None when out of range."""
    position = index + width if index < 0 else index
    return position if 0 <= position < width else None


def read_sentences(path, token_column=0, tag_column=-1):
    """Yields (first line number, tokens, tags) per sentence of one file.

    Args:
        path: a CoNLL file (local or `gs://...`), UTF-8; invalid bytes are
            kept as surrogates (`tfmask.data.sources` decides what to do).
        token_column: the column holding the token (default 0, the first).
        tag_column: the column holding the tag (default -1, the last), or
            None for files without tags (then `tags` is an empty list).

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.conll")
    >>> _ = open(path, "w").write("a x O\\nb y B-LOC\\n\\n\\nc z O\\n")
    >>> list(read_sentences(path, tag_column=2))
    [(1, ['a', 'b'], ['O', 'B-LOC']), (5, ['c'], ['O'])]
    """
    width = first = None
    tokens, tags, start = [], [], None
    with open_text(path) as f:
        for number, line in enumerate(f, 1):
            columns = line.split()
            if not columns or columns[0] == DOCSTART:
                if tokens:
                    yield start, tokens, tags
                tokens, tags = [], []
                continue
            if width is None:
                width, first = len(columns), number
                token_at = _column(token_column, width)
                tag_at = None if tag_column is None else _column(tag_column, width)
                if token_at is None or (tag_column is not None and tag_at is None):
                    which, value = (("token_column", token_column) if token_at is None
                                    else ("tag_column", tag_column))
                    raise SourceError(
                        f"{path} line {number} has {width} columns, so {which}={value} is "
                        f"out of range; set {which} to a column from 0 to {width - 1}."
                    )
                if tag_at == token_at:
                    raise SourceError(
                        f"{path} has {width} column(s), so the token and the tag column are "
                        "both column "
                        f"{token_at}; set tag_column=None for a file without tags."
                    )
            elif len(columns) != width:
                raise SourceError(
                    f"{path} line {number} has {len(columns)} columns but line {first} has "
                    f"{width}; every token line needs the same whitespace-separated columns "
                    "(a token with a space inside, or an empty cell?)."
                )
            if not tokens:
                start = number
            tokens.append(columns[token_at])
            if tag_at is not None:
                tags.append(columns[tag_at])
    if tokens:
        yield start, tokens, tags


def conll_files(paths, token_column=0, tag_column=-1, on_decode_error="fail"):
    """CoNLL column files: one `{text, words, tags}` element per sentence.

    Args:
        paths: a path, glob or list of them (see `tfmask.data.sources`).
        token_column, tag_column: see `read_sentences` (tag_column=None:
            no `tags` feature).
        on_decode_error: "fail", "replace" or "skip", as for every source;
            errors name the file and the sentence's first line.

    `words` and `tags` are dense 1-D string tensors per sentence (batch
    them with `ragged_batch`; `tfmask.datasets.load` makes them ragged so
    that plain `batch` works). The first sentence is read when the source is
    built, so a wrong column or an empty file fails at once; `.stats` counts
    sentences like every source counts documents.
    """
    check_mode(on_decode_error)
    files = resolve_paths(paths)
    for path in files:
        if next(iter(read_sentences(path, token_column, tag_column)), None) is not None:
            break
    else:
        raise SourceError(
            f"No sentences in {describe(files)}: every line is blank or "
            f"{DOCSTART}; check the paths."
        )
    spec = base_spec()
    spec[WORDS] = tf.TensorSpec([None], tf.string)
    if tag_column is not None:
        spec[TAGS] = tf.TensorSpec([None], tf.string)

    def records():
        for path in files:
            for number, tokens, tags in read_sentences(path, token_column, tag_column):
                words = [to_bytes(t) for t in tokens]
                example = {F.TEXT: b" ".join(words), WORDS: words,
                           FILE_KEY: path, RECORD_KEY: number}
                if tag_column is not None:
                    example[TAGS] = [to_bytes(t) for t in tags]
                yield example

    batches = generator_batches(records, spec, "sentences starting at lines")
    if on_decode_error == "replace":  # the text is repaired (and counted) by finish
        lists = [k for k in (WORDS, TAGS) if k in spec]
        batches = batches.map(lambda batch: {**batch, **{
            k: tf.strings.unicode_transcode(batch[k], "UTF-8", "UTF-8", errors="replace",
                                            replacement_char=0xFFFD) for k in lists}})
    return finish(batches, on_decode_error, "sentence starting at line",
                  element_spec=document_spec(spec))
