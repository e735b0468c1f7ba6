# tfmask training image for GPUs.
#   docker build -t tfmask .
#   docker run --gpus all -v $PWD/runs:/app/runs tfmask --config configs/mlm_austen_wordnet.yaml
#
# TPU VMs: build with the CPU base image and the TPU wheel instead (TensorFlow's
# TPU runtime is installed on the VM host; the strategy is picked by config):
#   docker build --build-arg BASE=tensorflow/tensorflow:2.21.0 \
#                --build-arg TF_EXTRA="tensorflow-tpu==2.21.0 -f https://storage.googleapis.com/libtpu-tf-releases/index.html" -t tfmask-tpu .
#   docker run --privileged --net=host tfmask-tpu --config configs/NAME.yaml \
#              --set runtime.strategy=tpu --set runtime.tpu=local
ARG BASE=tensorflow/tensorflow:2.21.0-gpu
FROM ${BASE}

ARG TF_EXTRA=""
ENV PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2 TFMASK_DATA_DIR=/data/tfmask
WORKDIR /app

# Dependencies first, so code edits do not reinstall them.
COPY setup.py README.md ./
RUN mkdir tfmask && touch tfmask/__init__.py \
 && pip install --no-cache-dir -e . ${TF_EXTRA} \
 && rm -rf tfmask

COPY tfmask ./tfmask
COPY configs ./configs
COPY experiments ./experiments
RUN pip install --no-cache-dir --no-deps -e .

# Offline corpora and the pretrained encoder are fetched into /data at build time;
# mount a volume there to keep them between images.
RUN python -m tfmask.datasets prepare all || echo "datasets will be prepared at run time"

ENTRYPOINT ["python", "-m", "tfmask.train"]
CMD ["--help"]
