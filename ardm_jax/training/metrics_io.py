"""Metric writers, train metrics averaged over each logging window, periodic progress reports and profiles (clu),
usable where TensorFlow is not installed (scalars then go through absl, without TensorBoard files).
Design notes: docs/design.md#metrics_io
"""

import tempfile
import time
from typing import Any, Callable, Mapping

from absl import logging
from clu import metrics as clu_metrics
from clu import parameter_overview
import jax
import jax.numpy as jnp
import numpy as np

from ardm_jax.io import paths


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


# The first profiled step: compilation and warm-up are over by then.
FIRST_PROFILED_STEP = 10


def progress_hooks(num_train_steps: int, writer, workdir: str, profile_steps: int = 0) -> list[Callable[[int], None]]:
  """Periodic actions called with the step after every update: steps/s and ETA reports, and, if profile_steps
  > 0, a jax.profiler trace of profile_steps steps from step FIRST_PROFILED_STEP on and then every hour, written
  under workdir/plugins/profile (open with TensorBoard's profile plugin or Perfetto)."""
  clu_modules = _tensorflow_clu()
  if clu_modules is None:
    hooks = [_ConsoleProgress(num_train_steps)]
    if profile_steps:
      hooks.append(_TraceSteps(workdir, profile_steps))
    return hooks
  _, periodic_actions = clu_modules
  hooks = [periodic_actions.ReportProgress(num_train_steps=num_train_steps, writer=writer, every_secs=60.0)]
  if profile_steps:
    hooks.append(
      periodic_actions.Profile(
        logdir=workdir, num_profile_steps=profile_steps, profile_duration_ms=None, first_profile=FIRST_PROFILED_STEP
      )
    )
  return hooks


class _TraceSteps:
  """Traces profile_steps steps once from FIRST_PROFILED_STEP (the fallback of clu's Profile)."""

  def __init__(self, workdir: str, profile_steps: int):
    self.workdir, self.profile_steps, self.stop_at = workdir, profile_steps, None

  def __call__(self, step: int):
    if step == FIRST_PROFILED_STEP and self.stop_at is None:
      jax.profiler.start_trace(self.workdir)
      self.stop_at = step + self.profile_steps
    elif step == self.stop_at:
      jax.profiler.stop_trace()


class MetricWindow:
  """The train metrics averaged over the steps since the last report (clu Average metrics in a Collection).

  Each step's metrics are merged on the device (one small jitted call, no host sync); steps whose update was
  dropped as non-finite are masked out of the averages (num_skipped counts them).
  """

  def __init__(self):
    self._collection = None  # clu Collection class, built from the first step's metric names.
    self._merge = self._single = None
    self._merged = None

  def add(self, metrics: Mapping[str, jax.Array]) -> None:
    """Merges one step's scalar metrics (including the bool 'finite') into the window."""
    if self._collection is None:
      names = sorted(k for k in metrics if k != "finite")
      self._collection = clu_metrics.Collection.create(
        **{name: clu_metrics.Average.from_output(name) for name in names}
      )

      def single(step_metrics):
        outputs = {k: jnp.reshape(v, (1,)) for k, v in step_metrics.items()}  # Masks need a leading axis.
        finite = outputs.pop("finite")
        return self._collection.single_from_model_output(mask=finite, **outputs)

      self._single = jax.jit(single)
      self._merge = jax.jit(lambda merged, step_metrics: merged.merge(single(step_metrics)))
    if self._merged is None:
      self._merged = self._single(metrics)
    else:
      self._merged = self._merge(self._merged, metrics)

  def compute_and_reset(self) -> dict[str, float]:
    """{name: mean over the window's finite steps} (NaN if every step was dropped); empties the window."""
    if self._merged is None:
      return {}
    averages = {k: float(v) for k, v in self._merged.compute().items()}
    self._merged = None
    return averages


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
