"""Resumable checkpoints: orbax CheckpointManager plus content fingerprints and the run's config (local or gs://).
Restore falls back to the newest good step; a training run moves bad newer steps to `<workdir>/unusable_checkpoints/`;
if no checkpoint is good it raises instead of starting over. Design notes: docs/design.md#checkpointing
"""

import hashlib
import logging as python_logging
import json
import os
import re
import sys
import time
from typing import Any

from absl import logging
import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from ardm_jax.training import lease as lease_lib
from ardm_jax.training import metrics_io
from ardm_jax.io import paths

# Fields that may change between a run and its resumption; any other difference means another experiment.
RESUMABLE_FIELDS = (
  "training.num_train_steps",
  "training.log_every_steps",
  "training.eval_every_steps",
  "training.checkpoint_every_steps",
  "training.max_checkpoints_to_keep",
  "training.on_nonfinite",
  "training.compilation_cache_dir",
  "training.profile_steps",
  "data.path",
  "data.tfds_data_dir",
  "data.download",
)
RESUMABLE_SECTIONS = ("eval.", "sample.", "compress.")
UNUSABLE_DIR = "unusable_checkpoints"
CONFIG_NAME = "config.json"  # The config a workdir was trained with (eval/sample/plan/compress reuse it).


class CheckpointError(RuntimeError):
  """No usable checkpoint, or a checkpoint that belongs to another config."""


def _local_copy(leaf) -> np.ndarray:
  """The host copy of a replicated leaf, read from this process's first device only."""
  if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
    return np.asarray(leaf.addressable_data(0))
  return np.asarray(jax.device_get(leaf))


def fingerprint(tree) -> str:
  """SHA-256 over the bytes, shapes and dtypes of every leaf (in a fixed order) of a replicated tree."""
  digest = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    array = _local_copy(leaf)
    digest.update(f"{jax.tree_util.keystr(path)}:{array.dtype}:{array.shape};".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
  return digest.hexdigest()


def all_processes_agree(ok: bool) -> bool:
  """True iff `ok` holds on every process (one small all-gather; no communication in a single process)."""
  if jax.process_count() == 1:
    return ok
  return bool(np.all(multihost_utils.process_allgather(np.int32(ok))))


def _first_line(error: BaseException) -> str:
  """`Type: message` on one line; a long tensorstore message keeps its start (what) and end, and the OS error it
  reports as a code (`os_error_code=27`) is named in words (`[OS error 27: File too large]`)."""
  text = str(error).strip()
  line = (text.splitlines() or [""])[0]
  if len(line) > 400:
    line = line[:200] + " ... " + line[-200:]
  codes = re.findall(r"os_error_code='?(\d+)", text)
  if codes:
    line += f" [OS error {codes[-1]}: {os.strerror(int(codes[-1]))}]"
  return f"{type(error).__name__}: {line}"


def _json_digest(item: dict) -> str:
  return hashlib.sha256(json.dumps(item, sort_keys=True).encode()).hexdigest()


def config_differences(saved: dict, current: dict) -> list[str]:
  """Keys (dotted) whose values differ and that change the experiment, e.g. ['model.ch: 32 -> 64']."""
  a, b = metrics_io.flatten_config(saved), metrics_io.flatten_config(current)
  diffs = []
  for key in sorted(set(a) | set(b)):
    if key in RESUMABLE_FIELDS or key.startswith(RESUMABLE_SECTIONS):
      continue
    if a.get(key, "<missing>") != b.get(key, "<missing>"):
      diffs.append(f"{key}: {a.get(key, '<missing>')!r} -> {b.get(key, '<missing>')!r}")
  return diffs


class Checkpointer:
  """Saves and restores TrainStates under `workdir/checkpoints`; read_only for eval, sampling and planning.

  A training Checkpointer holds the workdir's lease (lease.py) from construction to close(), so a second run
  on the same workdir is refused before it touches anything.
  """

  def __init__(self, workdir: str, config: ml_collections.ConfigDict, read_only: bool = False):
    self.workdir = paths.resolve(workdir)
    self.directory = self.workdir / "checkpoints"
    self.config = json.loads(config.to_json())
    self.read_only = read_only
    self.lease = None
    self._pending_step = None  # The step of the save that may still be running in the background.
    for path, what in ((self.workdir, "--workdir"), (self.directory, "its checkpoints/")):
      if path.exists() and not path.is_dir():
        raise CheckpointError(f"{what} {path} is a file, not a directory: pass a directory as --workdir.")
    if read_only:
      options = ocp.CheckpointManagerOptions(read_only=True, create=False, save_interval_steps=0)
    else:
      self._take_lease()
      options = ocp.CheckpointManagerOptions(
        max_to_keep=config.training.max_checkpoints_to_keep, create=True, cleanup_tmp_directories=True
      )
    try:
      self.manager = ocp.CheckpointManager(self.directory, options=options)
    except Exception as e:
      self._release_lease()
      raise CheckpointError(f"Cannot open the checkpoints in {self.directory}: {_first_line(e)}") from e
    if not read_only and jax.process_index() == 0:
      paths.write_atomically(self.workdir / CONFIG_NAME, json.dumps(self.config, indent=1, sort_keys=True))

  def _take_lease(self) -> None:
    """Process 0 takes the lease; every process learns the verdict, so all refuse together."""
    error = None
    if jax.process_index() == 0:
      self.lease = lease_lib.Lease(self.workdir)
      try:
        self.lease.acquire()
      except lease_lib.WorkdirBusyError as e:
        error, self.lease = e, None
    if not all_processes_agree(error is None):
      raise error or lease_lib.WorkdirBusyError(f"{self.workdir} is in use by another run (see process 0).")

  def _release_lease(self) -> None:
    if self.lease is not None:
      self.lease.release()
      self.lease = None

  def renew_lease(self) -> None:
    if self.lease is not None:
      self.lease.renew()

  def check(self, block: bool = False) -> None:
    """Raises CheckpointError once the last (asynchronous) save has ended and failed.

    orbax logs a failed background save and carries on; joining the ended save re-raises its error. Without
    `block` this never waits: a save still running is checked at a later call.
    """
    if self._pending_step is None or (not block and self.manager.is_saving_in_progress()):
      return
    step, self._pending_step = self._pending_step, None
    try:
      self.manager.wait_until_finished()
      self.manager.check_for_errors()
    except Exception as e:
      raise CheckpointError(
        f"Saving the checkpoint of step {step} to {self.directory} failed: {_first_line(e)}. "
        "Training stopped; fix the cause (space, permissions) and rerun to resume."
      ) from e

  def save(self, state) -> None:
    step = int(state.step)
    self.check(block=True)  # orbax would wait for the previous save anyway.
    if step in self.manager.all_steps():
      return
    digest = fingerprint(state) if jax.process_index() == 0 else ""  # orbax writes JSON on process 0 only.
    item = {"config": self.config, "fingerprint": digest, "step": step}
    meta = dict(item, meta_sha256=_json_digest(item))
    try:
      self.manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
      self._pending_step = step
    except Exception as e:
      raise CheckpointError(
        f"Saving the checkpoint of step {step} to {self.directory} failed: "
        f"{_first_line(e)}. Training stopped; fix the cause and rerun to resume."
      ) from e
    self.renew_lease()

  def _restore_step(self, step: int, abstract_state):
    meta = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    item = {k: v for k, v in meta.items() if k != "meta_sha256"}
    if meta.get("meta_sha256") != _json_digest(item) or meta["step"] != step:
      raise ValueError("its config/fingerprint record fails its checksum (corrupted or altered files)")
    diffs = config_differences(meta["config"], self.config)
    if diffs:
      raise CheckpointError(
        f"The checkpoint at step {step} in {self.directory} was written by a different config: "
        + "; ".join(diffs)
        + ". Use a new --workdir, or rerun with the original config."
      )
    state = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state)))["state"]
    if jax.process_index() == 0 and fingerprint(state) != meta["fingerprint"]:
      raise ValueError("its content fingerprint does not match (corrupted or altered files)")
    return state

  def restore_latest(self, abstract_state) -> Any:
    """The newest checkpoint that restores and verifies on every process, or None if the workdir has none.

    Raises:
      CheckpointError: every checkpoint is unusable, the directory holds only non-checkpoints, or the newest
        checkpoint was written by a different config.
    """
    steps = sorted(self.manager.all_steps(), reverse=True)
    if not steps:
      self._check_no_leftovers()
      return None
    _silence_closed_event_loop_reports()
    bad_steps, problems = [], []
    for step in steps:
      state, problem = None, None
      try:
        state = self._restore_step(step, abstract_state)
      except CheckpointError:
        raise
      except Exception as e:  # pylint: disable=broad-except
        problem = f"step {step}: {_first_line(e)}"  # tensorstore errors run to pages.
      if not all_processes_agree(problem is None):
        bad_steps.append(step)
        problems.append(problem or f"step {step}: unusable on another process")
        logging.error(
          "Checkpoint at step %d in %s is unusable, trying an older one: %s", step, self.directory, problems[-1]
        )
        continue
      if problems:
        logging.warning("Resumed from step %d after skipping bad checkpoints: %s", step, "; ".join(problems))
        self._set_aside(bad_steps)
      else:
        logging.info("Resumed from checkpoint at step %d.", step)
      return state
    raise CheckpointError(
      f"Every checkpoint in {self.directory} is unusable, refusing to start over: "
      + "; ".join(problems)
      + f". Move {self.directory} away to start from scratch."
    )

  def _check_no_leftovers(self) -> None:
    """Raises if the checkpoint directory holds anything but orbax temporaries (unfinished writes)."""
    if not self.directory.is_dir():
      return
    others = sorted(p.name for p in self.directory.iterdir() if not ocp.path.step.is_path_temporary(p))
    if others:
      raise CheckpointError(
        f"{self.directory} holds {others} but no readable checkpoint, refusing to start over: these are not "
        f"complete orbax checkpoints. Move the directory away to start from scratch."
      )

  def _set_aside(self, steps: list[int]) -> None:
    """Training only: moves unusable steps to workdir/unusable_checkpoints so the run can save them anew."""
    if self.read_only:
      return
    if jax.process_index() == 0:
      for step in steps:
        destination = self.workdir / UNUSABLE_DIR / f"{step}_{time.time_ns()}"
        paths.move_tree(self.directory / str(step), destination)
        logging.warning("Moved the unusable checkpoint of step %d to %s.", step, destination)
    multihost_utils.sync_global_devices("ardm_checkpoints_set_aside")
    self.manager.reload()

  def close(self, quiet: bool = False) -> None:
    """Waits for the last save and releases the lease; raises CheckpointError if that save failed, unless
    `quiet` (an error is already on its way out)."""
    try:
      self.check(block=True)
      self.manager.wait_until_finished()
    except Exception:  # pylint: disable=broad-except
      if not quiet:
        raise
    finally:
      self.manager.close()
      self._release_lease()


def _silence_closed_event_loop_reports() -> None:
  """Drops the "Event loop is closed" and unretrieved-exception reports of a failed restore's abandoned reads.

  When a restore fails part way, tensorstore completes its other reads after orbax has closed their event loop;
  each completion reports RuntimeError('Event loop is closed') through sys.excepthook (hundreds of tracebacks
  for one missing file). They say nothing the one-line fallback message does not.
  """
  if getattr(sys.excepthook, "drops_closed_event_loop", False):
    return
  previous = sys.excepthook

  def hook(exc_type, exc, traceback):
    if exc_type is RuntimeError and str(exc) == "Event loop is closed":
      return
    previous(exc_type, exc, traceback)

  hook.drops_closed_event_loop = True
  sys.excepthook = hook
  previous_unraisable = sys.unraisablehook

  def unraisable_hook(unraisable):
    if not (isinstance(unraisable.exc_value, RuntimeError) and str(unraisable.exc_value) == "Event loop is closed"):
      previous_unraisable(unraisable)

  sys.unraisablehook = unraisable_hook
  # Or the abandoned reads fail on their own (the lost file) and asyncio logs each task's unretrieved exception.
  python_logging.getLogger("asyncio").addFilter(_drop_abandoned_restore_reads)


def _drop_abandoned_restore_reads(record: python_logging.LogRecord) -> bool:
  """False (drop) for asyncio's "Task exception was never retrieved" report of an orbax read (async_deserialize)."""
  message = record.getMessage()
  return not (message.startswith("Task exception was never retrieved") and "async_deserialize" in message)


def saved_config(workdir: str) -> dict | None:
  """The config (nested dicts) a workdir was trained with, or None if it has none recorded."""
  path = paths.resolve(workdir) / CONFIG_NAME
  try:
    text = path.read_text()
  except FileNotFoundError:
    return None
  try:
    saved = json.loads(text)
  except ValueError as e:
    raise CheckpointError(
      f"{path} is not a readable config ({e}: truncated or edited?); restore it, or pass --config to use another."
    ) from None
  if not isinstance(saved, dict):
    raise CheckpointError(f"{path} holds a JSON {type(saved).__name__}, not a config; restore it.")
  return saved
