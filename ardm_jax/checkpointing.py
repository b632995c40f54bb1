"""Resumable checkpoints: orbax CheckpointManager plus a content fingerprint and the run's config.

Each checkpoint holds the train state (params, optimizer, EMA, tracker, rng, step; the data position is the
step) and a JSON item with the config and a SHA-256 fingerprint of every state leaf. orbax writes each step into
a temporary directory and renames it when complete, so a kill mid-write leaves no half checkpoint; the
fingerprint catches what orbax cannot (truncated or bit-flipped files). Restore walks back from the newest
step to the newest good one, logging what it skipped and why; if every checkpoint is bad it raises instead of
silently starting over.
"""
import hashlib
import json
import os
from typing import Any

from absl import logging
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

# Fields that may change between a run and its resumption; any other difference means another experiment.
RESUMABLE_FIELDS = ("training.num_train_steps", "training.log_every_steps", "training.eval_every_steps",
                    "training.checkpoint_every_steps", "training.max_checkpoints_to_keep",
                    "training.on_nonfinite", "data.path", "data.tfds_data_dir", "data.download")
RESUMABLE_SECTIONS = ("eval.", "sample.")


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


def _flat(config: dict, prefix="") -> dict:
  out = {}
  for key, value in config.items():
    if isinstance(value, dict):
      out.update(_flat(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def config_differences(saved: dict, current: dict) -> list[str]:
  """Keys (dotted) whose values differ and that change the experiment, e.g. ['model.ch: 32 -> 64']."""
  a, b = _flat(saved), _flat(current)
  diffs = []
  for key in sorted(set(a) | set(b)):
    if key in RESUMABLE_FIELDS or key.startswith(RESUMABLE_SECTIONS):
      continue
    if a.get(key, "<missing>") != b.get(key, "<missing>"):
      diffs.append(f"{key}: {a.get(key, '<missing>')!r} -> {b.get(key, '<missing>')!r}")
  return diffs


class Checkpointer:
  """Saves and restores TrainStates under `workdir/checkpoints`."""

  def __init__(self, workdir: str, config: ml_collections.ConfigDict):
    self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    self.config = json.loads(config.to_json())
    options = ocp.CheckpointManagerOptions(
        max_to_keep=config.training.max_checkpoints_to_keep, create=True, cleanup_tmp_directories=True)
    self.manager = ocp.CheckpointManager(self.directory, options=options)

  def save(self, state) -> None:
    step = int(state.step)
    if step in self.manager.all_steps():
      return
    meta = {"config": self.config, "fingerprint": fingerprint(state), "step": step}
    self.manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))

  def _restore_step(self, step: int, abstract_state):
    meta = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    diffs = config_differences(meta["config"], self.config)
    if diffs:
      raise CheckpointError(
          f"The checkpoint at step {step} in {self.directory} was written by a different config: "
          + "; ".join(diffs) + ". Use a new --workdir, or rerun with the original config.")
    state = self.manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state)))["state"]
    if fingerprint(state) != meta["fingerprint"]:
      raise ValueError("content fingerprint mismatch (corrupted or altered files)")
    return state

  def restore_latest(self, abstract_state) -> Any:
    """The newest checkpoint that restores and verifies, or None if the workdir has none."""
    steps = sorted(self.manager.all_steps(), reverse=True)
    problems = []
    for step in steps:
      try:
        state = self._restore_step(step, abstract_state)
      except CheckpointError:
        raise
      except Exception as e:  # pylint: disable=broad-except
        problems.append(f"step {step}: {type(e).__name__}: {e}")
        logging.error("Checkpoint at step %d in %s is unusable, trying an older one: %s", step,
                      self.directory, problems[-1])
        continue
      if problems:
        logging.warning("Resumed from step %d after skipping bad checkpoints: %s", step, "; ".join(problems))
      else:
        logging.info("Resumed from checkpoint at step %d.", step)
      return state
    if problems:
      raise CheckpointError(
          f"Every checkpoint in {self.directory} is unusable, refusing to start over: " + "; ".join(problems)
          + ". Move the directory away to start from scratch.")
    return None

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()
