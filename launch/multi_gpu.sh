#!/usr/bin/env bash
# Train on the GPUs of one or more machines. One process per machine sees all its local GPUs.
#   Single machine:   CONFIG=configs/text8.py WORKDIR=/runs/t8 launch/multi_gpu.sh
#   Machine i of N:   NUM_PROCESSES=N PROCESS_ID=i COORDINATOR=host0:12345 CONFIG=... WORKDIR=... launch/multi_gpu.sh
# WORKDIR must be shared storage (e.g. NFS or a bucket) when N > 1. Install jax first: pip install 'jax[cuda12]==0.10.2'.
set -euo pipefail
: "${CONFIG:?set CONFIG}" "${WORKDIR:?set WORKDIR}"
cd "$(dirname "$0")/.."
ARGS=(--config="$CONFIG" --workdir="$WORKDIR")
if [ "${NUM_PROCESSES:-1}" -gt 1 ]; then
  ARGS+=(--num_processes="$NUM_PROCESSES" --process_id="${PROCESS_ID:?set PROCESS_ID}"
         --coordinator_address="${COORDINATOR:?set COORDINATOR=host:port of process 0}")
fi
exec python main.py "${ARGS[@]}" ${EXTRA:-}
