"""Activations that Keras has no string name for."""

import keras


@keras.saving.register_keras_serializable(package="tfmask")
def gelu_approximate(x):
    """tanh-approximated GELU (Hugging Face's "gelu_new", keras-hub's BERT).

    Keras' "gelu" is the exact erf form, which is Hugging Face BERT's "gelu".
    """
    return keras.activations.gelu(x, approximate=True)
