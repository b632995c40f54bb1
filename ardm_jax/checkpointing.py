"""Resumable checkpoints: orbax CheckpointManager plus content fingerprints and the run's config.

Each checkpoint holds the train state (params, optimizer, EMA, tracker, rng, step; the data position is the
step) and a JSON item with the config, a SHA-256 fingerprint of every state leaf and a SHA-256 of the JSON item
itself. orbax writes each step into `<step>.orbax-checkpoint-tmp` and renames it when complete, so a kill
mid-write leaves no half checkpoint under a step name (the manager deletes such temporary directories when it
starts); the fingerprints catch what orbax cannot (truncated or bit-flipped files).

Restore walks back from the newest step to the newest good one, logging what it skipped and why. A training
run then moves the bad newer steps to `<workdir>/unusable_checkpoints/` (orbax would otherwise never save those
step numbers again). If every checkpoint is bad, or the directory holds only things that are not checkpoints,
it raises instead of silently starting over.
"""
import hashlib
import json
import os
import time
from typing import Any

from absl import logging
import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from ardm_jax import metrics_io

# Fields that may change between a run and its resumption; any other difference means another experiment.
RESUMABLE_FIELDS = ("training.num_train_steps", "training.log_every_steps", "training.eval_every_steps",
                    "training.checkpoint_every_steps", "training.max_checkpoints_to_keep",
                    "training.on_nonfinite", "data.path", "data.tfds_data_dir", "data.download")
RESUMABLE_SECTIONS = ("eval.", "sample.", "compress.")
TMP_SUFFIX = ".orbax-checkpoint-tmp"  # orbax's marker of an unfinished write (orbax 0.12).
UNUSABLE_DIR = "unusable_checkpoints"


class CheckpointError(RuntimeError):
  """No usable checkpoint, or a checkpoint that belongs to another config."""


def fingerprint(tree) -> str:
  """SHA-256 over the bytes, shapes and dtypes of every leaf (in a fixed order)."""
  digest = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    array = np.asarray(jax.device_get(leaf))
    digest.update(f"{jax.tree_util.keystr(path)}:{array.dtype}:{array.shape};".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
  return digest.hexdigest()


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
  """Saves and restores TrainStates under `workdir/checkpoints`; read_only for eval, sampling and planning."""

  def __init__(self, workdir: str, config: ml_collections.ConfigDict, read_only: bool = False):
    self.workdir = os.path.abspath(workdir)
    self.directory = os.path.join(self.workdir, "checkpoints")
    self.config = json.loads(config.to_json())
    self.read_only = read_only
    if read_only:
      options = ocp.CheckpointManagerOptions(read_only=True)
    else:
      options = ocp.CheckpointManagerOptions(
          max_to_keep=config.training.max_checkpoints_to_keep, create=True, cleanup_tmp_directories=True)
    self.manager = ocp.CheckpointManager(self.directory, options=options)

  def save(self, state) -> None:
    step = int(state.step)
    if step in self.manager.all_steps():
      return
    item = {"config": self.config, "fingerprint": fingerprint(state), "step": step}
    meta = dict(item, meta_sha256=_json_digest(item))
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)

  def _restore_step(self, step: int, abstract_state):
    meta = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    item = {k: v for k, v in meta.items() if k != "meta_sha256"}
    if meta.get("meta_sha256") != _json_digest(item) or meta["step"] != step:
      raise ValueError("its config/fingerprint record fails its checksum (corrupted or altered files)")
    diffs = config_differences(meta["config"], self.config)
    if diffs:
      raise CheckpointError(
          f"The checkpoint at step {step} in {self.directory} was written by a different config: "
          + "; ".join(diffs) + ". Use a new --workdir, or rerun with the original config.")
    state = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state)))["state"]
    if fingerprint(state) != meta["fingerprint"]:
      raise ValueError("its content fingerprint does not match (corrupted or altered files)")
    return state

  def restore_latest(self, abstract_state) -> Any:
    """The newest checkpoint that restores and verifies, or None if the workdir has none.

    Raises:
      CheckpointError: every checkpoint is unusable, the directory holds only non-checkpoints, or the newest
        checkpoint was written by a different config.
    """
    steps = sorted(self.manager.all_steps(), reverse=True)
    if not steps:
      self._check_no_leftovers()
      return None
    bad_steps, problems = [], []
    for step in steps:
      try:
        state = self._restore_step(step, abstract_state)
      except CheckpointError:
        raise
      except Exception as e:  # pylint: disable=broad-except
        bad_steps.append(step)
        reason = (str(e).strip().splitlines() or [""])[0][:300]  # tensorstore errors run to pages.
        problems.append(f"step {step}: {type(e).__name__}: {reason}")
        logging.error("Checkpoint at step %d in %s is unusable, trying an older one: %s", step,
                      self.directory, problems[-1])
        continue
      if problems:
        logging.warning("Resumed from step %d after skipping bad checkpoints: %s", step, "; ".join(problems))
        self._set_aside(bad_steps)
      else:
        logging.info("Resumed from checkpoint at step %d.", step)
      return state
    raise CheckpointError(
        f"Every checkpoint in {self.directory} is unusable, refusing to start over: " + "; ".join(problems)
        + f". Move {self.directory} away to start from scratch.")

  def _check_no_leftovers(self) -> None:
    """Raises if the checkpoint directory holds anything but orbax temporaries (unfinished writes)."""
    if not os.path.isdir(self.directory):
      return
    others = sorted(name for name in os.listdir(self.directory) if TMP_SUFFIX not in name)
    if others:
      raise CheckpointError(
          f"{self.directory} holds {others} but no readable checkpoint, refusing to start over: these are not "
          f"complete orbax checkpoints. Move the directory away to start from scratch.")

  def _set_aside(self, steps: list[int]) -> None:
    """Training only: moves unusable steps to workdir/unusable_checkpoints so the run can save them anew."""
    if self.read_only:
      return
    if jax.process_index() == 0:
      target = os.path.join(self.workdir, UNUSABLE_DIR)
      os.makedirs(target, exist_ok=True)
      for step in steps:
        destination = os.path.join(target, f"{step}_{time.time_ns()}")
        os.rename(os.path.join(self.directory, str(step)), destination)
        logging.warning("Moved the unusable checkpoint of step %d to %s.", step, destination)
    multihost_utils.sync_global_devices("ardm_checkpoints_set_aside")
    self.manager.reload()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()
