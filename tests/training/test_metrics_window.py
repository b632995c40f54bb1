"""Train metrics averaged over the logging window, and the profiling hook."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from ardm_jax.training import metrics_io


def step_metrics(loss, grad_norm, finite=True):
  return {"loss": jnp.float32(loss), "grad_norm": jnp.float32(grad_norm), "finite": jnp.bool_(finite)}


def test_window_averages_the_finite_steps_since_the_last_report():
  window = metrics_io.MetricWindow()
  window.add(step_metrics(1.0, 10.0))
  window.add(step_metrics(math.nan, math.inf, finite=False))  # A dropped update: masked out.
  window.add(step_metrics(4.0, 20.0))
  assert window.compute_and_reset() == {"loss": 2.5, "grad_norm": 15.0}
  window.add(step_metrics(7.0, 1.0))
  assert window.compute_and_reset() == {"loss": 7.0, "grad_norm": 1.0}  # Reset: only the new step.
  assert window.compute_and_reset() == {}


def test_profile_hook_traces_from_the_first_profiled_step(tmp_path):
  hooks = metrics_io.progress_hooks(100, metrics_io.ConsoleWriter(), str(tmp_path), profile_steps=2)
  step_fn = jax.jit(lambda x: x @ x)
  x = jnp.ones((8, 8))
  for step in range(1, metrics_io.FIRST_PROFILED_STEP + 4):
    x = step_fn(x) / 8
    for hook in hooks:
      hook(step)
    traces = list(tmp_path.rglob("*.xplane.pb"))
    assert bool(traces) == (step >= metrics_io.FIRST_PROFILED_STEP + 2), (step, traces)
  np.testing.assert_allclose(x, np.ones((8, 8)))
