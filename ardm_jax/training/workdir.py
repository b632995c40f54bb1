"""A trained workdir as eval, sampling, planning and compression see it: its config (`config.json`) and latest good
state; only what these modes may change (checkpointing.RESUMABLE_FIELDS) is taken from the command line.
Design notes: docs/design.md#workdir
"""

from absl import logging
import ml_collections

from ardm_jax.training import checkpointing
from ardm_jax.training import experiment
from ardm_jax.training import metrics_io
from ardm_jax.training import train


def _overridable(key: str) -> bool:
  return key in checkpointing.RESUMABLE_FIELDS or key.startswith(checkpointing.RESUMABLE_SECTIONS)


def effective_config(
  config: ml_collections.ConfigDict | None, workdir: str, overrides: dict | None = None
) -> ml_collections.ConfigDict:
  """The workdir's training config with overridable fields replaced.

  Args:
    config: the config given to this run (None: the workdir's alone).
    workdir: the trained workdir.
    overrides: dotted key -> value given explicitly (main.py passes the `--config.a.b=v` flags). When None,
      the overridable fields of `config` are taken instead (library callers pass the config they want).
  Raises:
    CheckpointError: neither a config was given nor does the workdir record one.
  """
  saved = checkpointing.saved_config(workdir)
  if saved is None:
    if config is None:
      raise checkpointing.CheckpointError(
        f"{workdir} records no config (no {checkpointing.CONFIG_NAME}): pass --config, or train first (--mode=train)."
      )
    return config
  merged = ml_collections.ConfigDict(saved)
  if overrides is None:
    overrides = metrics_io.flatten_config(config) if config is not None else {}
  trained = metrics_io.flatten_config(saved)
  ignored = []
  for key, value in overrides.items():
    if not _overridable(key):
      if trained.get(key, value) != value:
        ignored.append(f"{key}={value!r} (trained with {trained[key]!r})")
      continue
    node = merged
    *parents, leaf = key.split(".")
    for part in parents:
      node = node[part]
    with node.ignore_type():
      node[leaf] = value
  if ignored:
    logging.warning(
      "Using the config %s was trained with; %s apply to training only and were ignored.", workdir, ", ".join(ignored)
    )
  return merged


def restore(config: ml_collections.ConfigDict | None, workdir: str):
  """(experiment, trainer, state) of the workdir's latest good checkpoint, under its effective config.

  Raises:
    CheckpointError: the workdir has no usable checkpoint.
  """
  config = effective_config(config, workdir)
  exp = experiment.build_experiment(config)
  trainer = train.Trainer(exp)
  ckpt = checkpointing.Checkpointer(workdir, config, read_only=True)
  try:
    state = ckpt.restore_latest(trainer.abstract_state())
  finally:
    ckpt.close()
  if state is None:
    raise checkpointing.CheckpointError(f"No checkpoint in {ckpt.directory}: train first (--mode=train).")
  return exp, trainer, state
