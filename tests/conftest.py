import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolate_keras_state():
    """Every test starts from float32 and a fixed seed, and leaks neither."""
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def tiny_config():
    """`tiny_config(family=None, **sections)` -> the tiny config dict the tests
    share (tests/tiny.py; importable from there for module-level use)."""
    from tests.tiny import tiny_config

    return tiny_config


@pytest.fixture
def tiny_sets():
    """`tiny_sets(family=None, **sections)` -> the same as `--set` values."""
    from tests.tiny import tiny_sets

    return tiny_sets


def pytest_collection_modifyitems(config, items):
    """`@pytest.mark.tensorflow_only("why")` tests need TensorFlow itself
    (tf.function, GradientTape, tf.train.Checkpoint, dynamic shapes); on
    another Keras backend (KERAS_BACKEND=jax) they are skipped with that reason."""
    if keras.backend.backend() == "tensorflow":
        return
    for item in items:
        marker = item.get_closest_marker("tensorflow_only")
        if marker is not None:
            item.add_marker(pytest.mark.skip(reason="TensorFlow only: " + marker.args[0]))
