#!/usr/bin/env bash
# Runs on each TPU VM worker, started detached by launch/tpu_pod.sh from the repository root:
#   launch/tpu_worker.sh --python=PYTHON --workdir=gs://BUCKET/run --config=CONFIG [more main.py flags] [--dry_run]
# Trains with `PYTHON main.py --workdir=WORKDIR --distributed FLAGS`, appends its output to ~/ardm_logs/train.log,
# and copies that log to WORKDIR/logs/worker-<hostname>.log every minute and when training ends.
# ~/ardm_logs/train.pid holds this script's pid while it runs (tpu_pod.sh does not start a second one).
set -uo pipefail  # No -e: the log is copied and the pid file removed whatever main.py's status.
SCRIPT=tpu_worker.sh
source "$(dirname "$0")/lib.sh"
PYTHON="" WORKDIR="" DRY_RUN=0 MAIN_FLAGS=()
for arg in "$@"; do
  case $arg in
    --python=*) PYTHON=${arg#*=} ;;
    --workdir=*) WORKDIR=${arg#*=} ;;
    --dry_run) DRY_RUN=1 ;;
    *) MAIN_FLAGS+=("$arg") ;;
  esac
done
need "$PYTHON" --python "\$HOME/ardm_venv/bin/python"
need "$WORKDIR" --workdir gs://BUCKET/runs/cifar10
LOG_DIR=$HOME/ardm_logs
LOG=$LOG_DIR/train.log
COPY_LOG=(gcloud storage cp --quiet "$LOG" "$WORKDIR/logs/worker-$(hostname).log")
TRAIN=("$PYTHON" main.py --workdir="$WORKDIR" --distributed "${MAIN_FLAGS[@]}")
if [[ $DRY_RUN == 1 ]]; then
  show "${TRAIN[@]}"
  echo "# output appended to $LOG, copied every 60 s and at exit with:"
  show "${COPY_LOG[@]}"
  exit 0
fi

mkdir -p "$LOG_DIR"
echo $$ > "$LOG_DIR/train.pid"
echo "$(date -u +%FT%TZ) $(hostname): $(quote "${TRAIN[0]}") ${TRAIN[*]:1}" >> "$LOG"
copy_log_every_minute() {
  trap 'kill "$sleeper" 2> /dev/null; exit 0' TERM  # Stops with its sleep.
  while true; do
    sleep 60 &
    sleeper=$!
    wait "$sleeper"
    "${COPY_LOG[@]}" > /dev/null 2>&1
  done
}
copy_log_every_minute &
copier=$!
"${TRAIN[@]}" >> "$LOG" 2>&1
status=$?
echo "$(date -u +%FT%TZ) $(hostname): main.py exited with status $status" >> "$LOG"
kill "$copier"
"${COPY_LOG[@]}" > /dev/null 2>&1
rm -f "$LOG_DIR/train.pid"
exit "$status"
