"""Metric writers and periodic progress reports (clu), usable where TensorFlow is not installed.

clu's metric writers and periodic actions import TensorFlow; accelerator images often lack it, so when that
import fails training logs scalars through absl instead (no TensorBoard files) and says so once. For a workdir
on an object store, TensorBoard event files are written to a local staging directory and copied into the
workdir at every flush (through the same path layer as everything else).
"""
import tempfile
import time
from typing import Any, Callable, Mapping

from absl import logging
from clu import parameter_overview
import jax
import numpy as np

from ardm_jax import paths


def _tensorflow_clu():
  """Returns (metric_writers, periodic_actions) from clu, or None when TensorFlow is missing."""
  try:
    from clu import metric_writers  # pylint: disable=g-import-not-at-top
    from clu import periodic_actions  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    logging.warning("clu metric writers unavailable (%s): logging metrics to the console only.", e)
    return None
  return metric_writers, periodic_actions


class ConsoleWriter:
  """The subset of clu's MetricWriter used here, writing through absl logging (no TensorFlow)."""

  def write_scalars(self, step: int, scalars: Mapping[str, Any]):
    logging.info("[%d] %s", step, ", ".join(f"{k}={float(v):.6g}" for k, v in sorted(scalars.items())))

  def write_hparams(self, hparams: Mapping[str, Any]):
    logging.info("hparams: %s", dict(hparams))

  def write_images(self, step: int, images: Mapping[str, np.ndarray]):
    logging.info("[%d] images %s", step, {k: np.shape(v) for k, v in images.items()})

  def write_texts(self, step: int, texts: Mapping[str, str]):
    for k, v in texts.items():
      logging.info("[%d] %s: %s", step, k, v)

  def flush(self):
    pass


class MirroredWriter:
  """A clu writer on a local staging directory whose files are copied to `destination` at every flush."""

  def __init__(self, writer, staging: str, destination):
    self._writer, self._staging, self._destination = writer, paths.resolve(staging), destination

  def __getattr__(self, name):
    return getattr(self._writer, name)

  def flush(self):
    self._writer.flush()
    self._destination.mkdir(parents=True, exist_ok=True)
    for local in self._staging.iterdir():
      if local.is_file():
        paths.write_atomically(self._destination / local.name, local.read_bytes())

  def close(self):
    self.flush()
    self._writer.close()


def create_writer(workdir: str):
  """TensorBoard + console writer on process 0 (console only on the others), via clu when available."""
  clu_modules = _tensorflow_clu()
  if clu_modules is None:
    return ConsoleWriter()
  metric_writers, _ = clu_modules
  if jax.process_index() > 0:
    return metric_writers.create_default_writer(None, just_logging=True)
  logdir = paths.resolve(workdir)
  if not paths.is_url(logdir):
    return metric_writers.create_default_writer(str(logdir))
  staging = tempfile.mkdtemp(prefix="ardm_tensorboard_")
  return MirroredWriter(metric_writers.create_default_writer(staging), staging, logdir)


def progress_hooks(num_train_steps: int, writer, workdir: str) -> list[Callable[[int], None]]:
  """Periodic actions called with the step after every update: steps/s and ETA reports."""
  clu_modules = _tensorflow_clu()
  if clu_modules is None:
    return [_ConsoleProgress(num_train_steps)]
  _, periodic_actions = clu_modules
  del workdir  # Profiles are taken with jax.profiler by hand when needed.
  return [periodic_actions.ReportProgress(num_train_steps=num_train_steps, writer=writer, every_secs=60.0)]


class _ConsoleProgress:
  """Logs steps/s and ETA every minute (the fallback of clu's ReportProgress)."""

  def __init__(self, num_train_steps: int, every_secs: float = 60.0):
    self.num_train_steps, self.every_secs = num_train_steps, every_secs
    self.last_time, self.last_step = time.monotonic(), None

  def __call__(self, step: int):
    now = time.monotonic()
    if self.last_step is None:
      self.last_time, self.last_step = now, step
    elif now - self.last_time >= self.every_secs:
      rate = (step - self.last_step) / (now - self.last_time)
      eta_min = (self.num_train_steps - step) / max(rate, 1e-9) / 60
      logging.info("step %d: %.3g steps/s, ETA %.1f min", step, rate, eta_min)
      self.last_time, self.last_step = now, step


def log_parameter_overview(params) -> None:
  parameter_overview.log_parameter_overview(params)


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  """{'optimizer.learning_rate': 1e-4, ...} from a ConfigDict or the nested dicts of its JSON."""
  flat = {}
  for key, value in config.items():
    if hasattr(value, "items"):
      flat.update(flatten_config(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat
