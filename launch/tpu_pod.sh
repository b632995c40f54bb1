#!/usr/bin/env bash
# Train on a Cloud TPU pod slice: every worker runs the same command; jax.distributed.initialize() finds peers.
#   REPO=<git URL of this repo> TPU=my-v4-32 ZONE=us-central2-b CONFIG=configs/cifar10.py \
#     WORKDIR=gs://bucket/runs/cifar10 launch/tpu_pod.sh
# WORKDIR must be storage every worker sees (a GCS bucket); EXTRA takes more flags, e.g. --config.data.download=True.
set -euo pipefail
: "${REPO:?set REPO to the git URL of this repository}" "${TPU:?set TPU to the TPU VM name}" "${ZONE:?set ZONE}"
: "${CONFIG:?set CONFIG}" "${WORKDIR:?set WORKDIR}"
EXTRA=${EXTRA:-}
gcloud compute tpus tpu-vm ssh "$TPU" --zone "$ZONE" --worker=all --command "
  set -e
  [ -d ardm_jax ] || git clone $REPO ardm_jax
  cd ardm_jax && git pull -q
  pip install -q -r requirements.txt 'jax[tpu]==0.10.2'
  python main.py --config=$CONFIG --workdir=$WORKDIR --distributed $EXTRA"
