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


# The tiers (README, "Tests"): a test is a journey or needs the network by
# its own marker; otherwise it is an integration test when it lives in one of
# these files or carries the marker, and a unit test when not. The default run
# (the README's command) is unit + integration.
INTEGRATION_FILES = ("tests/tasks/", "tests/training/test_trainer.py",
                     "tests/training/test_run_safety.py", "tests/training/test_work_is_never_lost.py",
                     "tests/test_serving.py")
TIERS = ("journey", "network", "integration")


def _tier(item):
    for tier in TIERS:
        if item.get_closest_marker(tier) is not None:
            return tier
    path = item.nodeid.split("::")[0]
    return "integration" if path.startswith(INTEGRATION_FILES) else "unit"


def pytest_collection_modifyitems(config, items):
    """Every test gets its tier's marker (`-m unit` selects the unit tier).
    `@pytest.mark.tensorflow_only("why")` tests need TensorFlow itself
    (tf.function, GradientTape, tf.train.Checkpoint, dynamic shapes); on
    another Keras backend (KERAS_BACKEND=jax) they are skipped with that reason."""
    for item in items:
        tier = _tier(item)
        if item.get_closest_marker(tier) is None:
            item.add_marker(getattr(pytest.mark, tier))
    if keras.backend.backend() == "tensorflow":
        return
    for item in items:
        marker = item.get_closest_marker("tensorflow_only")
        if marker is not None:
            item.add_marker(pytest.mark.skip(reason="TensorFlow only: " + marker.args[0]))
