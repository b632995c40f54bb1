"""Fault injection: SIGKILL at random moments, interrupted and corrupted checkpoints, NaN losses, SIGTERM.

Every run is the tiny text8 `:local` model on a small fake text8.zip. In-process runs share one compiled
Trainer (only the host loop reads step counts, checkpoint intervals and on_nonfinite, so configs that differ in
those alone can share it); subprocess runs share a persistent XLA compilation cache.
"""

import dataclasses
import json
import logging
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time

from etils import epath
import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

import fake_data
from ardm_jax.training import checkpointing
from ardm_jax.training import evaluation
from ardm_jax.training import experiment
from ardm_jax.training import lease
from ardm_jax.training import train
from configs import text8

# A restore that fails on a corrupted file leaves orbax's async readers complaining about a closed event loop.
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]
NUM_STEPS = 16  # Of the uninterrupted run; a checkpoint after every step, the last 3 kept: 14, 15, 16.
OVERRIDES = {
  "training.checkpoint_every_steps": 1,
  "training.eval_every_steps": 1000,
  "training.log_every_steps": 1,
  "eval.max_batches": 1,
}


@pytest.fixture(name="text8_zip", scope="module")
def fixture_text8_zip(tmp_path_factory):
  path = tmp_path_factory.mktemp("data") / "text8.zip"
  fake_data.write_text8_zip(path, fake_data.random_text(40_000, seed=1))
  return str(path)


def main_command(workdir, text8_zip, num_steps=NUM_STEPS, **overrides):
  flags = [f"--config.{k}={v}" for k, v in dict(OVERRIDES, **overrides).items()]
  return fake_data.text8_local_command(workdir, text8_zip, num_steps, *flags)


@pytest.fixture(name="subprocess_env", scope="module")
def fixture_subprocess_env(tmp_path_factory):
  cache = str(tmp_path_factory.mktemp("xla_cache"))
  return dict(
    os.environ,
    JAX_COMPILATION_CACHE_DIR=cache,
    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
    JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
  )


@pytest.fixture(name="straight", scope="module")
def fixture_straight(text8_zip, tmp_path_factory):
  """One uninterrupted in-process run of main_command's config: (trainer, workdir, final state)."""
  config = text8.get_config("local")
  config.data.path = text8_zip
  config.training.num_train_steps = NUM_STEPS
  for key, value in OVERRIDES.items():
    section, field = key.split(".")
    config[section][field] = value
  exp = experiment.build_experiment(config)
  trainer = train.Trainer(exp)
  workdir = str(tmp_path_factory.mktemp("straight"))
  state = jax.device_get(train.run(exp, trainer, workdir))
  return trainer, workdir, state


def continue_run(trainer, workdir, num_steps, **training):
  """Trains (resuming) to num_steps in workdir with the compiled steps of `trainer` and these training fields."""
  config = trainer.exp.config.copy_and_resolve_references()
  config.training.update(dict(training, num_train_steps=num_steps))
  return jax.device_get(train.run(dataclasses.replace(trainer.exp, config=config), trainer, workdir))


def tree_equal(a, b) -> bool:
  leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
  return len(leaves_a) == len(leaves_b) and all(
    np.asarray(x).dtype == np.asarray(y).dtype and np.array_equal(x, y) for x, y in zip(leaves_a, leaves_b)
  )


def restore(trainer, workdir, read_only=True):
  ckpt = checkpointing.Checkpointer(workdir, trainer.exp.config, read_only=read_only)
  try:
    return ckpt.restore_latest(trainer.abstract_state())
  finally:
    ckpt.close()


def restore_step(trainer, workdir, step):
  """The state orbax holds for `step`, read directly (no fingerprint checks)."""
  with ocp.CheckpointManager(
    os.path.join(workdir, "checkpoints"), options=ocp.CheckpointManagerOptions(read_only=True)
  ) as manager:
    return manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(trainer.abstract_state())))[
      "state"
    ]


def listing(workdir):
  """(complete step numbers, names of orbax temporary directories) in workdir/checkpoints."""
  directory = os.path.join(workdir, "checkpoints")
  names = os.listdir(directory) if os.path.isdir(directory) else []
  return sorted(int(n) for n in names if n.isdigit()), [n for n in names if ocp.path.step.TMP_DIR_SUFFIX in n]


def wait_for(condition, proc, log_path, timeout=180.0, poll=0.002):
  deadline = time.monotonic() + timeout
  while not condition():
    if proc.poll() is not None or time.monotonic() > deadline:
      proc.kill()
      raise AssertionError(f"gave up waiting (exit code {proc.poll()}):\n" + open(log_path).read()[-3000:])
    time.sleep(poll)


def test_sigkill_at_random_moments_then_resume_is_bit_identical(straight, text8_zip, subprocess_env, tmp_path):
  trainer, _, straight_state = straight
  workdir = str(tmp_path / "killed")
  rng = np.random.default_rng(5)
  resumed, killed_mid_write = [], []
  for run, how in enumerate(["random", "mid_write", "random", "finish"]):
    newest_before = max(listing(workdir)[0], default=0)
    log_path = str(tmp_path / f"run{run}.log")
    with open(log_path, "w") as log:
      proc = subprocess.Popen(
        main_command(workdir, text8_zip), env=subprocess_env, stdout=log, stderr=subprocess.STDOUT
      )
    if how == "finish":
      assert proc.wait(timeout=300) == 0, open(log_path).read()[-3000:]
    else:
      if how == "random":  # After this run's first new checkpoint, at a random moment.
        wait_for(lambda: max(listing(workdir)[0], default=0) > newest_before, proc, log_path)
        time.sleep(rng.uniform(0.0, 0.5))
      else:  # As soon as orbax starts writing a step, once this run's first save has removed any leftovers.
        wait_for(lambda: f"[{newest_before + 2}] " in open(log_path).read(), proc, log_path, poll=0.05)
        wait_for(lambda: listing(workdir)[1], proc, log_path)
      proc.kill()
      proc.wait()
      killed_mid_write.append(bool(listing(workdir)[1]))  # orbax's temporary directory was left behind.
    if run > 0:
      resumed.append((newest_before, f"Resumed from checkpoint at step {newest_before}." in open(log_path).read()))
  assert all(found for _, found in resumed), resumed  # Each restart resumed from the newest complete step.
  assert 0 < resumed[0][0] < resumed[-1][0] < NUM_STEPS, resumed
  assert killed_mid_write[1], "the kill did not land during a checkpoint write"
  final = restore(trainer, workdir)
  assert int(final.step) == NUM_STEPS
  assert tree_equal(final, straight_state)  # params, opt_state, ema, tracker, rng, step, num_skipped


def test_interrupted_checkpoint_write_is_ignored(straight, tmp_path):
  """What a kill during orbax's async save leaves behind: `<step>.orbax-checkpoint-tmp/` with unfinished items."""
  trainer, source, straight_state = straight
  workdir = str(tmp_path / "work")
  shutil.copytree(source, workdir)
  checkpoints = os.path.join(workdir, "checkpoints")
  partial = os.path.join(checkpoints, f"{NUM_STEPS + 1}{ocp.path.step.TMP_DIR_SUFFIX}")
  shutil.copytree(os.path.join(checkpoints, str(NUM_STEPS)), partial)
  os.rename(os.path.join(partial, "state"), os.path.join(partial, "state" + ocp.path.step.TMP_DIR_SUFFIX))
  os.remove(os.path.join(partial, "commit_success.txt"))

  resumed = continue_run(trainer, workdir, NUM_STEPS)  # Restores; there is nothing left to train.
  assert tree_equal(resumed, straight_state)
  assert listing(workdir) == ([NUM_STEPS - 2, NUM_STEPS - 1, NUM_STEPS], [])  # The manager removed the leftover.
  state = continue_run(trainer, workdir, NUM_STEPS + 2)  # and the interrupted step can be written for real.
  assert int(state.step) == NUM_STEPS + 2 and listing(workdir) == ([NUM_STEPS, NUM_STEPS + 1, NUM_STEPS + 2], [])


def corrupt(path, how):
  """Truncates the file to half its length, or flips one bit of its middle byte."""
  data = bytearray(open(path, "rb").read())
  if how == "truncate":
    data = data[: len(data) // 2]
  else:
    data[len(data) // 2] ^= 0x10
  with open(path, "wb") as f:
    f.write(bytes(data))


def largest_array_file(step_dir):
  """The biggest data file (the arrays' bytes) of a checkpoint's state item."""
  files = [
    os.path.join(d, f)
    for d, _, fs in os.walk(os.path.join(step_dir, "state"))
    for f in fs
    if os.path.basename(d) == "d"
  ]
  return max(files, key=os.path.getsize)


@pytest.mark.parametrize("how", ["truncate", "bitflip"])
def test_corrupted_latest_checkpoint_falls_back_and_training_goes_on(how, straight, tmp_path, caplog):
  trainer, source, _ = straight
  workdir = str(tmp_path / "work")
  shutil.copytree(source, workdir)
  corrupt(largest_array_file(os.path.join(workdir, "checkpoints", str(NUM_STEPS))), how)
  previous = restore_step(trainer, source, NUM_STEPS - 1)
  with caplog.at_level(logging.INFO):
    state = continue_run(trainer, workdir, NUM_STEPS + 1)
  # Ours, not orbax's: its readers may log their own errors about the same file, depending on thread timing.
  ours = [r for r in caplog.records if os.sep + "ardm_jax" + os.sep in r.pathname]
  reasons = [r.getMessage() for r in ours if r.levelno >= logging.ERROR]
  assert len(reasons) == 1, reasons
  assert reasons[0].startswith(f"Checkpoint at step {NUM_STEPS} in {workdir}") and "unusable" in reasons[0]
  why = reasons[0].split(f"trying an older one: step {NUM_STEPS}: ")[1]
  assert why.split(": ")[0].endswith(("Error", "Exception")) and len(why) > 30, why  # e.g. 'ValueError: ...'
  assert f"Resumed from step {NUM_STEPS - 1} after skipping bad checkpoints: step {NUM_STEPS}:" in caplog.text
  # The bad step was set aside, so the resumed run wrote it anew (and one more), starting from the previous.
  assert os.listdir(os.path.join(workdir, checkpointing.UNUSABLE_DIR))[0].startswith(f"{NUM_STEPS}_")
  assert listing(workdir) == ([NUM_STEPS - 1, NUM_STEPS, NUM_STEPS + 1], [])
  assert tree_equal(restore_step(trainer, workdir, NUM_STEPS - 1), previous)
  assert int(state.step) == NUM_STEPS + 1


def test_every_single_file_corruption_is_detected_or_harmless(straight, tmp_path):
  """Truncating or bit-flipping any one file of the newest checkpoint never restores a wrong state: restore
  yields the exact newest state (the file did not matter) or falls back to the previous step."""
  trainer, source, newest = straight
  workdir = str(tmp_path / "work")
  shutil.copytree(source, workdir)
  step_dir = os.path.join(workdir, "checkpoints", str(NUM_STEPS))
  files = sorted(os.path.join(d, f) for d, _, fs in os.walk(step_dir) for f in fs)
  outcomes = {}
  for path in files:
    original = open(path, "rb").read()
    for how in ("truncate", "bitflip"):
      corrupt(path, how)
      state = restore(trainer, workdir)
      if int(state.step) == NUM_STEPS:
        assert tree_equal(state, newest), (path, how)
        outcomes[os.path.relpath(path, step_dir), how] = "harmless"
      else:
        assert int(state.step) == NUM_STEPS - 1, (path, how)
        outcomes[os.path.relpath(path, step_dir), how] = "detected"
      with open(path, "wb") as f:
        f.write(original)
  must_detect = [k for k in outcomes if k[0] in ("meta/metadata", "state/manifest.ocdbt")]
  must_detect.append((os.path.relpath(largest_array_file(step_dir), step_dir), "bitflip"))
  assert len(must_detect) == 5 and all(outcomes[k] == "detected" for k in must_detect), outcomes


def test_all_checkpoints_corrupted_raises(straight, tmp_path):
  trainer, source, _ = straight
  workdir = str(tmp_path / "work")
  shutil.copytree(source, workdir)
  for step in listing(workdir)[0]:
    corrupt(largest_array_file(os.path.join(workdir, "checkpoints", str(step))), "truncate")
  with pytest.raises(
    checkpointing.CheckpointError,
    match="Every checkpoint in .* is unusable, refusing to start "
    "over: step 16: .*; step 15: .*; step 14: .*Move .* away to start from scratch",
  ):
    continue_run(trainer, workdir, NUM_STEPS + 1)
  assert listing(workdir)[0] == [14, 15, 16]  # Nothing moved or deleted.


@pytest.mark.parametrize("garbage", ["empty_step_dir", "step_file", "foreign_dir"])
def test_checkpoint_dir_with_only_garbage_raises(garbage, straight, tmp_path):
  trainer, _, _ = straight
  checkpoints = tmp_path / "work" / "checkpoints"
  checkpoints.mkdir(parents=True)
  if garbage == "empty_step_dir":
    (checkpoints / "7").mkdir()
  elif garbage == "step_file":
    (checkpoints / "7").write_text("not a checkpoint")
  else:
    (checkpoints / "backup").mkdir()
  with pytest.raises(checkpointing.CheckpointError, match="refusing to start over"):
    restore(trainer, str(tmp_path / "work"), read_only=False)


POISONED_STEP = 5


@pytest.fixture(name="poisoned_trainer")
def fixture_poisoned_trainer(straight, monkeypatch):
  """The straight run's trainer, serving at step 5 a corrupted batch of out-of-vocabulary token ids, which the
  model turns into a NaN loss and NaN gradients (out-of-range gathers fill with NaN)."""
  trainer = straight[0]
  batch = trainer.train_batch

  def train_batch(step):
    x = batch(step)
    return trainer.global_array(np.full(x.shape, 10**6, np.int32)) if step == POISONED_STEP else x

  monkeypatch.setattr(trainer, "train_batch", train_batch)
  return trainer


def finite(state) -> bool:
  return all(np.isfinite(leaf).all() for leaf in jax.tree.leaves(state) if np.issubdtype(leaf.dtype, np.floating))


def test_nan_loss_stops_naming_the_step_without_checkpointing_it(poisoned_trainer, tmp_path):
  workdir = str(tmp_path / "work")
  with pytest.raises(
    train.NonFiniteLossError,
    match=f"Non-finite loss or gradient at step {POISONED_STEP} "
    r"\(loss=nan, grad_norm=nan\).*on_nonfinite=skip",
  ):
    continue_run(poisoned_trainer, workdir, 10, checkpoint_every_steps=2, on_nonfinite="stop")
  assert listing(workdir) == ([2, 4], [])  # Step 6 was due but is past the NaN: not written.
  latest = restore(poisoned_trainer, workdir)
  assert int(latest.step) == 4 and int(latest.num_skipped) == 0 and finite(latest)


def test_nan_loss_skip_drops_that_update_and_counts_it(poisoned_trainer, tmp_path, caplog):
  workdir = str(tmp_path / "work")
  with caplog.at_level(logging.WARNING):
    state = continue_run(poisoned_trainer, workdir, 10, on_nonfinite="skip", max_checkpoints_to_keep=20)
  assert int(state.step) == 10 and int(state.num_skipped) == 1 and finite(state)
  warnings = [r.getMessage() for r in caplog.records if "Non-finite" in r.getMessage()]
  assert len(warnings) == 1 and f"at step {POISONED_STEP} " in warnings[0] and "skip" in warnings[0]
  # The dropped update left params, EMA, optimizer and tracker as they were before it.
  before, after = (restore_step(poisoned_trainer, workdir, s) for s in (POISONED_STEP, POISONED_STEP + 1))
  assert (int(before.num_skipped), int(after.num_skipped), int(after.step)) == (0, 1, POISONED_STEP + 1)
  assert tree_equal(
    (before.params, before.ema_params, before.opt_state, before.tracker, before.rng),
    (after.params, after.ema_params, after.opt_state, after.tracker, after.rng),
  )
  assert not tree_equal(after.params, state.params)  # Training went on after it.


def test_sigterm_checkpoints_the_step_reached_and_exits_cleanly(straight, text8_zip, subprocess_env, tmp_path, caplog):
  trainer = straight[0]
  workdir = str(tmp_path / "work")
  log_path = str(tmp_path / "run.log")
  num_steps = 500
  with open(log_path, "w") as log:
    proc = subprocess.Popen(
      main_command(workdir, text8_zip, num_steps, **{"training.checkpoint_every_steps": 1000}),
      env=subprocess_env,
      stdout=log,
      stderr=subprocess.STDOUT,
    )
  wait_for(lambda: "loss=" in open(log_path).read(), proc, log_path, poll=0.05)  # Training has started.
  proc.send_signal(signal.SIGTERM)
  assert proc.wait(timeout=120) == 0, open(log_path).read()[-3000:]
  steps, temporaries = listing(workdir)
  assert len(steps) == 1 and 0 < steps[0] < num_steps and not temporaries, open(log_path).read()[-3000:]
  assert f"SIGTERM received: checkpointed step {steps[0]} and stopping." in open(log_path).read()
  with caplog.at_level(logging.INFO):
    rerun = continue_run(trainer, workdir, steps[0] + 2)
  assert f"Resumed from checkpoint at step {steps[0]}." in caplog.text and int(rerun.step) == steps[0] + 2


def test_sigterm_in_process_checkpoints_the_step_reached(straight, tmp_path, monkeypatch, caplog):
  trainer = straight[0]
  workdir = str(tmp_path / "work")
  batch = trainer.train_batch

  def batch_then_sigterm(step):
    if step == 3:
      os.kill(os.getpid(), signal.SIGTERM)
    return batch(step)

  monkeypatch.setattr(trainer, "train_batch", batch_then_sigterm)
  handler = signal.getsignal(signal.SIGTERM)
  with caplog.at_level(logging.WARNING):
    state = continue_run(trainer, workdir, 100, checkpoint_every_steps=1000)
  assert int(state.step) == 4 and listing(workdir) == ([4], [])
  assert "SIGTERM received: checkpointed step 4 and stopping." in caplog.text
  assert signal.getsignal(signal.SIGTERM) is handler  # The run put the previous handler back.


def last_line(text: str) -> str:
  return text.strip().splitlines()[-1]


def test_a_checkpoint_that_cannot_be_written_stops_the_run(text8_zip, subprocess_env, tmp_path):
  """A per-file size limit (RLIMIT_FSIZE, binding root too) stands in for a full disk: the first save fails."""
  limit = 64 * 1024  # Logs and metrics fit; the checkpoint's array file does not.
  workdir = tmp_path / "work"
  env = {k: v for k, v in subprocess_env.items() if not k.startswith("JAX_")}  # Its cache entries are large.
  command = main_command(str(workdir), text8_zip, num_steps=8, **{"training.checkpoint_every_steps": 3})
  run = subprocess.run(
    command,
    env=dict(env, JAX_PLATFORMS="cpu"),
    capture_output=True,
    text=True,
    timeout=240,
    preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)),
  )
  assert run.returncode == 1, run.stderr[-3000:]
  # The first save (step 3) failed; training stopped at the latest when the next save (step 6) began. (orbax's
  # writer threads may print their own tracebacks around it.)
  errors = [line[line.index("Error (") :] for line in run.stderr.splitlines() if "Error (CheckpointError)" in line]
  assert len(errors) == 1, run.stderr[-3000:]
  assert errors[0].startswith(f"Error (CheckpointError): Saving the checkpoint of step 3 to {workdir / 'checkpoints'}")
  assert "File too large" in errors[0] and "[7]" not in run.stderr
  assert not [name for name in os.listdir(workdir / "checkpoints") if name.isdigit()]


def test_an_os_error_that_tensorstore_reports_as_a_code_is_named():
  """tensorstore's messages run to pages and give the OS error as a code; the one-line error keeps its name."""
  middle = "Error writing local file: File too large" + " x" * 300
  message = "INTERNAL: Error opening 'ocdbt' driver: " + middle + " [os_error_code='27']\n{'driver': ...}"
  line = checkpointing._first_line(RuntimeError(message))  # pylint: disable=protected-access
  assert line.startswith("RuntimeError: INTERNAL: Error opening") and "\n" not in line and len(line) < 500
  assert line.endswith(f"[OS error 27: {os.strerror(27)}]")


def test_a_second_run_on_a_leased_workdir_is_refused_before_touching_it(text8_zip, subprocess_env, tmp_path):
  workdir = tmp_path / "work"
  in_flight = workdir / "checkpoints" / f"3{ocp.path.step.TMP_DIR_SUFFIX}-1700000000"
  in_flight.mkdir(parents=True)  # The holder's checkpoint being written; orbax's startup cleanup would delete it.
  holder = lease.Lease(epath.Path(workdir))
  holder.acquire()  # Held by this (live) test process.
  try:
    run = subprocess.run(
      main_command(str(workdir), text8_zip, num_steps=2),
      env=subprocess_env,
      capture_output=True,
      text=True,
      timeout=240,
    )
    assert run.returncode == 1
    line = last_line(run.stderr)
    assert line.startswith("Error (WorkdirBusyError)") and f"pid {os.getpid()}" in line, line
    assert sorted(os.listdir(workdir)) == ["checkpoints", "lease.json"] and in_flight.is_dir()
    holder.renew(force=True)  # Still ours.
  finally:
    holder.release()
  assert not (workdir / "lease.json").exists()


def test_stale_leases_are_taken_over_and_live_ones_are_not(tmp_path):
  directory = epath.Path(tmp_path)
  path = directory / lease.LEASE_NAME
  dead = subprocess.Popen(["true"])
  dead.wait()
  now = time.time()
  cases = [
    ({"host": socket.gethostname(), "pid": dead.pid, "heartbeat": now}, True),  # kill -9 on this host.
    ({"host": "other-vm", "pid": 1, "heartbeat": now - lease.STALE_AFTER_S - 1}, True),  # A preempted VM.
    ({"host": "other-vm", "pid": 1, "heartbeat": now}, False),  # Alive elsewhere.
    ({"host": socket.gethostname(), "pid": os.getpid(), "heartbeat": now}, False),
  ]  # Alive here.
  for record, stale in cases:
    path.write_text(json.dumps(dict(record, owner="someone")))
    taker = lease.Lease(directory)
    if stale:
      taker.acquire()
      assert json.loads(path.read_text())["owner"] == taker.record["owner"]
      taker.release()
    else:
      with pytest.raises(lease.WorkdirBusyError, match="in use by another run"):
        taker.acquire()
      assert json.loads(path.read_text())["owner"] == "someone"
  path.write_bytes(b"\x00garbage")  # A lease cut short by a crash while it was written.
  lease.Lease(directory).acquire()


@pytest.mark.parametrize("where", ["workdir", "checkpoints"])
def test_a_file_where_a_directory_belongs_is_refused_at_start(straight, tmp_path, where):
  trainer = straight[0]
  workdir = tmp_path / "work"
  if where == "workdir":
    workdir.write_text("not a directory")
  else:
    workdir.mkdir()
    (workdir / "checkpoints").write_text("not a directory")
  with pytest.raises(checkpointing.CheckpointError, match="is a file, not a directory"):
    continue_run(trainer, str(workdir), 2)


def test_sigterm_during_eval_aborts_it_and_checkpoints_first(straight, tmp_path, monkeypatch, caplog):
  trainer = straight[0]
  config = trainer.exp.config.copy_and_resolve_references()
  config.eval.num_passes, config.eval.max_batches = 1000, 0  # Far longer than a preemption grace period.
  monkeypatch.setattr(trainer, "exp", dataclasses.replace(trainer.exp, config=config))
  calls = []
  eval_sums = trainer.eval_sums

  def eval_sums_then_sigterm(*args):
    calls.append(1)
    if len(calls) == 1:
      os.kill(os.getpid(), signal.SIGTERM)
    return eval_sums(*args)

  monkeypatch.setattr(trainer, "eval_sums", eval_sums_then_sigterm)
  with caplog.at_level(logging.WARNING):
    state = continue_run(trainer, str(tmp_path / "work"), 100, eval_every_steps=2, checkpoint_every_steps=1000)
  assert int(state.step) == 2 and listing(str(tmp_path / "work")) == ([2], []) and len(calls) == 1
  assert "Evaluation aborted in pass 1/1000" in caplog.text
  assert "SIGTERM received: checkpointed step 2 and stopping." in caplog.text


def test_long_evaluations_report_progress(straight, monkeypatch, caplog):
  trainer, _, state = straight
  monkeypatch.setattr(evaluation, "PROGRESS_EVERY_S", 0.0)
  with caplog.at_level(logging.INFO):
    result = evaluation.evaluate(trainer.exp, trainer, state.ema_params, state.rng)
  assert "eval: pass 1/" in caplog.text and f"running bpd {result['eval_bpd']:.4f}" in caplog.text


@pytest.mark.parametrize("lost", ["manifest.ocdbt", "ocdbt.process_0"])
def test_a_lost_checkpoint_file_falls_back_in_one_line_without_tracebacks(lost, straight, tmp_path, subprocess_env):
  """tensorstore finishes the failed restore's other reads after their event loop closed; each used to print
  a 'RuntimeError: Event loop is closed' traceback (hundreds for one lost file)."""
  _, source, _ = straight
  workdir = str(tmp_path / "work")
  shutil.copytree(source, workdir)
  lost_path = os.path.join(workdir, "checkpoints", str(NUM_STEPS), "state", lost)
  shutil.rmtree(lost_path) if os.path.isdir(lost_path) else os.remove(lost_path)
  out = tmp_path / "bundle"
  result = subprocess.run(
    [sys.executable, "-m", "ardm_jax.compress", "export", f"--workdir={workdir}", "-o", str(out), "--budgets=4"],
    capture_output=True,
    text=True,
    env=subprocess_env,
    cwd=fake_data.REPO,
    timeout=300,
  )
  assert result.returncode == 0, result.stderr[-2000:]
  assert "Traceback" not in result.stderr and "Event loop is closed" not in result.stderr
  assert f"(step {NUM_STEPS - 1})" in result.stdout and (out / "codec.json").exists()
  unusable = [line for line in result.stderr.splitlines() if "is unusable, trying an older one" in line]
  assert len(unusable) == 1
