#!/usr/bin/env bash
# Submits launch/slurm.sbatch: one main.py process per GPU on NODES nodes, requeued on preemption or time limit.
# Run it from a login node, in the Python environment that has requirements.txt and jax[cuda12] installed (the job
# inherits it):
#   launch/slurm.sh --nodes=2 --gpus_per_node=8 --config=configs/cifar10.py --workdir=/shared/runs/cifar10 \
#     [--time=24:00:00] [--partition=PART] [--account=ACCOUNT] [--extra="--config.x=y"] [--dry_run]
# WORKDIR must be storage every node sees (a shared filesystem or gs://). The job's output is appended to
# slurm-ardm-JOBID.out in the repository root; checkpoints, metrics and samples go to WORKDIR.
# --dry_run prints the sbatch command and the srun command the job runs ('+ ...'), and submits nothing.
set -euo pipefail
SCRIPT=slurm.sh
source "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NODES="" GPUS_PER_NODE="" CONFIG="" WORKDIR="" TIME="" PARTITION="" ACCOUNT="" EXTRA="" DRY_RUN=0
for arg in "$@"; do
  case $arg in
    --nodes=*) NODES=${arg#*=} ;;
    --gpus_per_node=*) GPUS_PER_NODE=${arg#*=} ;;
    --config=*) CONFIG=${arg#*=} ;;
    --workdir=*) WORKDIR=${arg#*=} ;;
    --time=*) TIME=${arg#*=} ;;
    --partition=*) PARTITION=${arg#*=} ;;
    --account=*) ACCOUNT=${arg#*=} ;;
    --extra=*) EXTRA=${arg#*=} ;;
    --dry_run) DRY_RUN=1 ;;
    *) die "unknown argument '$arg'; see the usage at the top of launch/${SCRIPT}" ;;
  esac
done
need "$NODES" --nodes 2
need "$GPUS_PER_NODE" --gpus_per_node 8
need "$CONFIG" --config configs/cifar10.py
need "$WORKDIR" --workdir /shared/runs/cifar10
[[ $NODES =~ ^[1-9][0-9]*$ ]] || die "--nodes=$NODES must be a positive integer"
[[ $GPUS_PER_NODE =~ ^[1-9][0-9]*$ ]] || die "--gpus_per_node=$GPUS_PER_NODE must be a positive integer"
read -ra extra_words <<< "$EXTRA"
MAIN_FLAGS=(--config="$CONFIG" --workdir="$WORKDIR" "${extra_words[@]}")
SBATCH=(sbatch --chdir="$ROOT" --nodes="$NODES" --ntasks-per-node="$GPUS_PER_NODE"
        --gpus-per-node="$GPUS_PER_NODE")
[[ -z $TIME ]] || SBATCH+=(--time="$TIME")
[[ -z $PARTITION ]] || SBATCH+=(--partition="$PARTITION")
[[ -z $ACCOUNT ]] || SBATCH+=(--account="$ACCOUNT")
run "${SBATCH[@]}" launch/slurm.sbatch "${MAIN_FLAGS[@]}"
if [[ $DRY_RUN == 1 ]]; then
  echo "# the job runs on its first node (with the #SBATCH lines of launch/slurm.sbatch):"
  (cd "$ROOT" && DRY_RUN=1 bash launch/slurm.sbatch "${MAIN_FLAGS[@]}")
fi
