# tfmask training images.
#   docker build -t tfmask .                                  GPU (the default)
#   docker run --gpus all -v $PWD/runs:/app/runs tfmask --config configs/mlm_austen_wordnet.yaml
#   docker build --build-arg ACCELERATOR=tpu -t tfmask-tpu .  TPU VMs
#   docker run --privileged --net=host tfmask-tpu --config configs/NAME.yaml \
#              --set runtime.strategy=tpu --set runtime.tpu=local
#
# Corpora: five are read from pinned Debian bookworm packages (`apt-get download
# NAME=VERSION`, tfmask/datasets/cache.py), which the Ubuntu-based TensorFlow image
# does not carry. The `corpora` stage therefore runs `prepare all` (every dataset and
# the MiniLM encoder) on Debian bookworm, and the image gets the prepared cache
# (/data/tfmask, $TFMASK_DATA_DIR). A failed prepare fails the build; the image then
# re-runs `prepare all`, which only verifies the checksums, so a cache that does not
# load there fails the build too. Mounting a volume over /data/tfmask hides it.
#
# TPU: TensorFlow for TPUs is the `tensorflow-tpu` distribution, whose newest release
# on PyPI is 2.20.0 (there is no 2.21), while tfmask requires `tensorflow` 2.21. Both
# distributions install the same `tensorflow` package, so they must never be installed
# together, and pip cannot be told that one stands in for the other: tfmask,
# tensorflow-text and keras-hub would pull `tensorflow` back in. The TPU image thus
# installs docker/requirements-tpu.txt, a complete lock (tensorflow-tpu 2.20.0 with
# libtpu 0.0.14, tensorflow-text 2.20.1 and tensorboard 2.20.0 to match, and tfmask's
# other dependencies), with --no-deps, and tfmask with --no-deps: TensorFlow 2.20,
# one minor release below the GPU image and the tests.
# gpu or tpu: picks the runtime stage the last FROM builds on (global, for that FROM).
ARG ACCELERATOR=gpu

# ---- prepared corpora, built on Debian bookworm (where the pinned .debs live)
FROM python:3.11-slim-bookworm AS corpora
ENV TF_CPP_MIN_LOG_LEVEL=2 TFMASK_DATA_DIR=/data/tfmask
WORKDIR /src
COPY setup.py README.md ./
RUN mkdir tfmask && touch tfmask/__init__.py \
 && pip install --no-cache-dir -e . \
 && rm -rf tfmask
COPY tfmask ./tfmask
# As root, prepare runs `apt-get update` itself when the package lists are empty.
RUN python -m tfmask.datasets prepare all

# ---- GPU: TensorFlow's image; its tensorflow 2.21.0 satisfies setup.py, so pip keeps it
FROM tensorflow/tensorflow:2.21.0-gpu AS runtime-gpu
WORKDIR /app
# Dependencies first, so code edits do not reinstall them.
COPY setup.py README.md ./
RUN mkdir tfmask && touch tfmask/__init__.py \
 && pip install --no-cache-dir -e . \
 && rm -rf tfmask

# ---- TPU: the lock above; --no-deps keeps `tensorflow` out (see the header)
FROM python:3.11-slim-bookworm AS runtime-tpu
COPY docker/requirements-tpu.txt /tmp/requirements-tpu.txt
RUN pip install --no-cache-dir --no-deps -r /tmp/requirements-tpu.txt

# ---- the image
# DL3006 (untagged image): runtime-gpu or runtime-tpu is one of the stages above, not a
# registry image; any other ACCELERATOR fails here, naming the missing stage.
# hadolint ignore=DL3006
FROM runtime-${ACCELERATOR}
ENV PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2 TFMASK_DATA_DIR=/data/tfmask
WORKDIR /app
COPY setup.py README.md ./
COPY tfmask ./tfmask
COPY configs ./configs
COPY experiments ./experiments
RUN pip install --no-cache-dir --no-deps -e .
COPY --from=corpora /data/tfmask /data/tfmask
# Checks every prepared file against its checksum with this image's TensorFlow (no
# fetching: all is there). TPU_LOAD_LIBRARY=0: no TPU at build time, and libtpu
# would spend minutes asking for TPU metadata.
RUN TPU_LOAD_LIBRARY=0 python -m tfmask.datasets prepare all

ENTRYPOINT ["python", "-m", "tfmask.train"]
CMD ["--help"]
