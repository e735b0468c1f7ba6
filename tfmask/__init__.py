"""tfmask: masks, masked Keras layers and masking pipelines for TensorFlow/Keras.

One convention everywhere: a mask is boolean and True means "may attend" /
"is kept" (see `tfmask.masks`).
"""

from tfmask import layers, losses, masks, metrics

__version__ = "0.1.0"

__all__ = ["layers", "losses", "masks", "metrics", "__version__"]
