"""Training (and caching) a WordPiece vocabulary from a corpus."""

import hashlib
import os

import tensorflow as tf

from tfmask.text.special_tokens import SpecialTokens

DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "tfmask", "vocabularies")


def _fingerprint(texts, vocabulary_size, lowercase, reserved):
    digest = hashlib.sha256()
    digest.update(repr((vocabulary_size, lowercase, reserved)).encode())
    count = 0
    for text in texts:
        digest.update(text.encode("utf-8") if isinstance(text, str) else text)
        digest.update(b"\0")
        count += 1
    return digest.hexdigest()[:16], count


def train_wordpiece_vocabulary(
    texts,
    vocabulary_size,
    lowercase=True,
    special_tokens=None,
    cache_dir=None,
):
    """Trains a WordPiece vocabulary (keras-hub's trainer) and caches it.

    The cache key is a hash of the texts and the arguments, so the same corpus
    gives the same file without retraining (seconds either way for a few MB).
    Special tokens, including the span-corruption sentinels, come first, so
    `[PAD]` is id 0. CJK characters are split, as BERT does.

    Args:
        texts: iterable of `str` (a list, a generator, or strings decoded from
            a `tf.data` pipeline).
        vocabulary_size: int, total size including the special tokens.
        lowercase: lower-case and strip accents. Default True.
        special_tokens: `SpecialTokens`. Default BERT's + 100 sentinels.
        cache_dir: where vocab files are kept. Default `~/.cache/tfmask/vocabularies`
            (or `$TFMASK_CACHE/vocabularies`).

    Returns: the path of the `vocab.txt`.

    Example:
    >>> path = train_wordpiece_vocabulary(["the cat sat", "the dog sat"], 120,
    ...     special_tokens=SpecialTokens(num_sentinels=2), cache_dir="/tmp/tfmask-doc")
    >>> open(path).read().split()[:6]
    ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', '[unused0]']
    """
    special_tokens = special_tokens or SpecialTokens()
    reserved = special_tokens.reserved()
    if vocabulary_size <= len(reserved):
        raise ValueError(
            f"vocabulary_size={vocabulary_size} leaves no room after "
            f"{len(reserved)} special tokens; raise it."
        )
    texts = [t.decode("utf-8") if isinstance(t, bytes) else t for t in texts]
    key, count = _fingerprint(texts, vocabulary_size, lowercase, reserved)
    if count == 0:
        raise ValueError("train_wordpiece_vocabulary got no texts; check the corpus.")
    cache_dir = cache_dir or os.path.join(
        os.environ.get("TFMASK_CACHE", os.path.dirname(DEFAULT_CACHE)), "vocabularies"
    )
    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(cache_dir, f"wordpiece-{vocabulary_size}-{key}.txt")
    if os.path.exists(path):
        return path
    # Imported here: keras-hub costs ~1.5 s at start-up and only training needs it.
    from keras_hub.tokenizers import compute_word_piece_vocabulary

    vocabulary = compute_word_piece_vocabulary(
        tf.data.Dataset.from_tensor_slices(texts),
        vocabulary_size,
        lowercase=lowercase,
        strip_accents=lowercase,
        reserved_tokens=reserved,
    )
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        f.write("\n".join(vocabulary) + "\n")
    os.replace(temporary, path)  # atomic: a crash never leaves half a vocab
    return path
