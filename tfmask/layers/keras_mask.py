"""Reading the Keras mask attached to a tensor (one place for a private API)."""

try:  # Keras has no public getter; keras-hub uses this one too.
    from keras.src.backend import get_keras_mask as _get_keras_mask
except ImportError:  # pragma: no cover - older/newer Keras layouts
    def _get_keras_mask(x):
        return getattr(x, "_keras_mask", None)


def keras_mask_of(tensor):
    """The Keras mask attached to `tensor` (e.g. by `MaskedEmbedding`), or None."""
    if tensor is None:
        return None
    return _get_keras_mask(tensor)
