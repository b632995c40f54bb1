#!/usr/bin/env bash
# Trains on a Cloud TPU pod slice. Run it from a checkout of this repository on your own machine (needs gcloud):
#
#   launch/tpu_pod.sh --tpu=ardm-v4-32 --zone=us-central2-b --accelerator_type=v4-32 \
#     --runtime_version=tpu-ubuntu2204-base --config=configs/cifar10.py --workdir=gs://BUCKET/runs/cifar10 \
#     [--spot] [--extra="--config.data.download=True"] [--copy=LOCAL_FILE] [--repo=GIT_URL] [--ref=COMMIT] \
#     [--project=PROJECT] [--dry_run]
#   launch/tpu_pod.sh --tpu=ardm-v4-32 --zone=us-central2-b --delete [--dry_run]
#
# 1. Unless a queued resource named TPU exists, creates one (`gcloud compute tpus queued-resources create`, one
#    node with the same name, --spot when asked), then polls it until it is ACTIVE.
# 2. On every worker (--worker=all): clones REPO into ~/ardm_jax and checks out REF, a full commit hash or a branch
#    (default: the URL of this checkout's `origin` and its HEAD commit, so push first), makes a Python 3.11 venv
#    ~/ardm_venv with uv and installs requirements.txt plus jax[tpu] at the jax version pinned there.
#    --copy=FILE first copies a local file to every worker's home directory, which is .. for main.py (it runs in
#    ~/ardm_jax): e.g. --copy=text8.zip --extra="--config.data.path=../text8.zip".
# 3. Starts launch/tpu_worker.sh detached (nohup setsid, so it survives the ssh session): `python main.py
#    --config=CONFIG --workdir=WORKDIR --distributed EXTRA`, its output appended to ~/ardm_logs/train.log on each
#    worker and copied every minute to WORKDIR/logs/worker-<hostname>.log. A worker where training still runs is
#    left alone.
# Running the same command again resumes: checkpoints live in WORKDIR, and nothing is ever deleted except by
# --delete, which deletes the queued resource and its TPU VMs (never the workdir). A preempted spot slice leaves
# the queued resource SUSPENDED: run --delete, then the launch command again.
# --dry_run prints every command ('+ ...', one per line) instead of running it.
set -euo pipefail
SCRIPT=tpu_pod.sh
source "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
UV_VERSION=0.13.8  # uv installs Python 3.11 on the workers: the TPU base images have 3.10, too old for numpy 2.4.
PYTHON_VERSION=3.11
POLL_SECONDS=30

TPU="" ZONE="" ACCELERATOR_TYPE="" RUNTIME_VERSION="" CONFIG="" WORKDIR="" EXTRA="" COPY="" REPO="" REF=""
PROJECT=""
SPOT=0 DELETE=0 DRY_RUN=0
for arg in "$@"; do
  case $arg in
    --tpu=*) TPU=${arg#*=} ;;
    --zone=*) ZONE=${arg#*=} ;;
    --accelerator_type=*) ACCELERATOR_TYPE=${arg#*=} ;;
    --runtime_version=*) RUNTIME_VERSION=${arg#*=} ;;
    --config=*) CONFIG=${arg#*=} ;;
    --workdir=*) WORKDIR=${arg#*=} ;;
    --extra=*) EXTRA=${arg#*=} ;;
    --copy=*) COPY=${arg#*=} ;;
    --repo=*) REPO=${arg#*=} ;;
    --ref=*) REF=${arg#*=} ;;
    --project=*) PROJECT=${arg#*=} ;;
    --spot) SPOT=1 ;;
    --delete) DELETE=1 ;;
    --dry_run) DRY_RUN=1 ;;
    *) die "unknown argument '$arg'; see the usage at the top of launch/${SCRIPT}" ;;
  esac
done
need "$TPU" --tpu ardm-v4-32
need "$ZONE" --zone us-central2-b
GCLOUD_FLAGS=(--zone="$ZONE")
[[ -z $PROJECT ]] || GCLOUD_FLAGS+=(--project="$PROJECT")

if [[ $DELETE == 1 ]]; then
  # --force also deletes the TPU VMs of the queued resource; --quiet skips the confirmation prompt.
  run gcloud compute tpus queued-resources delete "$TPU" "${GCLOUD_FLAGS[@]}" --force --quiet
  exit 0
fi

need "$ACCELERATOR_TYPE" --accelerator_type v4-32
need "$RUNTIME_VERSION" --runtime_version tpu-ubuntu2204-base
need "$CONFIG" --config configs/cifar10.py
need "$WORKDIR" --workdir gs://BUCKET/runs/cifar10
[[ $WORKDIR == gs://* ]] || die "--workdir=$WORKDIR must be a gs:// path: every worker writes checkpoints there"
[[ -z $COPY || -f $COPY ]] || die "--copy=$COPY is not a file on this machine"
if [[ -z $REPO ]]; then
  REPO=$(git -C "$ROOT" remote get-url origin 2>/dev/null) || die "this checkout has no 'origin' remote; pass \
--repo=GIT_URL (a URL every TPU worker can clone)"
fi
if [[ -z $REF ]]; then
  REF=$(git -C "$ROOT" rev-parse HEAD)
  git -C "$ROOT" diff --quiet HEAD || echo "${SCRIPT}: uncommitted changes are not on the workers; \
they run commit $REF" >&2
  [[ -n $(git -C "$ROOT" branch -r --contains HEAD 2>/dev/null) ]] || echo "${SCRIPT}: commit $REF is on no \
remote branch here; push it, or the workers cannot fetch it" >&2
fi
JAX_VERSION=$(requirement_version jax)

# 1. The slice.
DESCRIBE=(gcloud compute tpus queued-resources describe "$TPU" "${GCLOUD_FLAGS[@]}" --format='value(state.state)')
state=""
if [[ $DRY_RUN == 1 ]]; then
  show "${DESCRIBE[@]}"
  echo "# if it does not exist:"
else
  state=$("${DESCRIBE[@]}" 2>/dev/null) || state=""
fi
if [[ -z $state ]]; then
  CREATE=(gcloud compute tpus queued-resources create "$TPU" --node-id="$TPU"
          --accelerator-type="$ACCELERATOR_TYPE" --runtime-version="$RUNTIME_VERSION" "${GCLOUD_FLAGS[@]}")
  [[ $SPOT == 0 ]] || CREATE+=(--spot)
  run "${CREATE[@]}"
fi
if [[ $DRY_RUN == 1 ]]; then
  echo "# then repeats the describe every ${POLL_SECONDS} s until the state is ACTIVE"
else
  while [[ $state != ACTIVE ]]; do
    case $state in
      FAILED|SUSPENDING|SUSPENDED|DELETING) die "queued resource $TPU is $state; run launch/${SCRIPT} \
--tpu=$TPU --zone=$ZONE --delete, then this command again (the checkpoints in $WORKDIR are kept)" ;;
    esac
    [[ -z $state ]] || echo "queued resource $TPU: $state; checking again in ${POLL_SECONDS} s"
    sleep "$POLL_SECONDS"
    state=$("${DESCRIBE[@]}") || die "cannot read the state of queued resource $TPU (gcloud's error is above)"
  done
fi

# 2 and 3. Every worker: the --copy file, pinned code and packages, then training started detached. A worker that
# still trains (its pid file names a live process) keeps its process and its code.
venv_python='$HOME/ardm_venv/bin/python'  # Expanded on the worker.
read -ra extra_words <<< "$EXTRA"
main_flags="--config=$(quote "$CONFIG")"
for word in "${extra_words[@]}"; do main_flags+=" $(quote "$word")"; done
remote_steps=(
  "set -euo pipefail"
  "mkdir -p ~/ardm_logs"
  "if [ -f ~/ardm_logs/train.pid ] && kill -0 \"\$(cat ~/ardm_logs/train.pid)\" 2>/dev/null; then
     echo \"\$(hostname): training is already running; not starting another\"; exit 0; fi"
  "[ -d ~/ardm_jax/.git ] || git clone -q $(quote "$REPO") ~/ardm_jax"
  "cd ~/ardm_jax"
  "git fetch -q $(quote "$REPO") $(quote "$REF")"
  "git checkout -q --detach FETCH_HEAD"
  "python3 -m pip install -q --user uv==$UV_VERSION"
  "python3 -m uv venv -q --allow-existing --python $PYTHON_VERSION ~/ardm_venv"
  "python3 -m uv pip install -q --python $venv_python -r requirements.txt $(quote "jax[tpu]==$JAX_VERSION")"
  "nohup setsid bash launch/tpu_worker.sh --python=$venv_python --workdir=$(quote "$WORKDIR") $main_flags
     > /dev/null 2>&1 < /dev/null &"
)
[[ -z $COPY ]] || run gcloud compute tpus tpu-vm scp "$COPY" "$TPU": "${GCLOUD_FLAGS[@]}" --worker=all
shopt -s extglob
remote_command=""
for step in "${remote_steps[@]}"; do remote_command+="${step//$'\n'+( )/ }; "; done  # One line.
run gcloud compute tpus tpu-vm ssh "$TPU" "${GCLOUD_FLAGS[@]}" --worker=all --command="${remote_command%; }"
[[ $DRY_RUN == 1 ]] || echo "Started on every worker of $TPU. Logs: $WORKDIR/logs/worker-*.log (every minute) and \
~/ardm_logs/train.log on each worker; metrics and checkpoints: $WORKDIR."
