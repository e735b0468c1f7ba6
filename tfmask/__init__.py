"""tfmask: masks, masked Keras layers and masking pipelines for TensorFlow/Keras.

One convention everywhere: a mask is boolean and True means "may attend" /
"is kept" (see `tfmask.masks`).
"""

# A tfmask command line hides TensorFlow's C++ start-up lines; this must run
# before TensorFlow loads (`tfmask.native_log`). A library import is untouched.
from tfmask.native_log import quiet_command_line

quiet_command_line()

from tfmask import layers, losses, masks, metrics  # noqa: E402

__version__ = "0.1.0"

__all__ = ["layers", "losses", "masks", "metrics", "__version__"]
