#!/usr/bin/env bash
# Trains on the GPUs of one machine, or of several machines joined by --distributed.
#   One machine (one process drives all its GPUs; no distributed flags):
#     launch/multi_gpu.sh --config=configs/text8.py --workdir=/runs/text8 [--extra="--config.x=y"] [--dry_run]
#   Several machines, one process each driving all its GPUs: run on every machine, I = 0..N-1, the same address:
#     launch/multi_gpu.sh --config=... --workdir=/shared/runs/text8 --distributed \
#       --coordinator_address=HOST0:1234 --num_processes=N --process_id=I
#   One process per GPU under Open MPI (jax.distributed.initialize() detects it; process i of a machine drives its
#   i-th GPU): mpirun -np TOTAL_GPUS -npernode GPUS_PER_MACHINE launch/multi_gpu.sh --config=... --workdir=... \
#     --distributed. Under SLURM use launch/slurm.sh.
# Install jax for CUDA first: pip install -r requirements.txt "jax[cuda12]==<the jax version in requirements.txt>".
# With several machines WORKDIR must be storage all of them see (a shared filesystem or gs://). Checkpoints,
# metrics and samples go to WORKDIR; rerunning the same command resumes from it.
# --dry_run prints the command ('+ ...') instead of running it.
set -euo pipefail
SCRIPT=multi_gpu.sh
source "$(dirname "$0")/lib.sh"
cd "$(dirname "$0")/.."
CONFIG="" WORKDIR="" EXTRA="" DRY_RUN=0 DISTRIBUTED=()
for arg in "$@"; do
  case $arg in
    --config=*) CONFIG=${arg#*=} ;;
    --workdir=*) WORKDIR=${arg#*=} ;;
    --extra=*) EXTRA=${arg#*=} ;;
    --distributed|--coordinator_address=*|--num_processes=*|--process_id=*) DISTRIBUTED+=("$arg") ;;
    --dry_run) DRY_RUN=1 ;;
    *) die "unknown argument '$arg'; see the usage at the top of launch/${SCRIPT}" ;;
  esac
done
need "$CONFIG" --config configs/text8.py
need "$WORKDIR" --workdir /runs/text8
read -ra extra_words <<< "$EXTRA"
run python main.py --config="$CONFIG" --workdir="$WORKDIR" "${DISTRIBUTED[@]}" "${extra_words[@]}"
