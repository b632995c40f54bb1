"""Exponential moving averages of the per-step losses L_t, the input of the budget planner: one entry per global step
(S * D of them: stage * D + t), L_t = -log_px / ((D - t) D ln 2), so sum_t L_t is the model's bits/dim.
Design notes: docs/design.md#step_tracker
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class StepTracker(NamedTuple):
  """ema: float32 [S*D] moving average of L_t; count: int32 [S*D] number of examples seen per step."""

  ema: jax.Array
  count: jax.Array


def init(num_steps: int) -> StepTracker:
  """An empty tracker over num_steps = S * D global steps (every ema 0, no step seen)."""
  return StepTracker(ema=jnp.zeros((num_steps,), jnp.float32), count=jnp.zeros((num_steps,), jnp.int32))


def update(tracker: StepTracker, t: jax.Array, step_loss: jax.Array, momentum: float = 0.95) -> StepTracker:
  """Folds one batch into the averages (pure, jit-able).

  Batch entries with the same step are averaged first; a step seen for the first time takes that mean, a
  step seen before becomes momentum * ema + (1 - momentum) * mean, and unseen steps keep their value.

  Args:
    tracker: current state.
    t: int [B] global steps.
    step_loss: float [B] L_t of each example.
    momentum: decay of the old average (0.95 as in the paper).
  """
  num_steps = tracker.ema.shape[0]
  batch_count = jax.ops.segment_sum(jnp.ones_like(t), t, num_segments=num_steps)
  batch_sum = jax.ops.segment_sum(step_loss.astype(jnp.float32), t, num_segments=num_steps)
  batch_mean = batch_sum / jnp.maximum(batch_count, 1)
  decayed = momentum * tracker.ema + (1.0 - momentum) * batch_mean
  ema = jnp.where(batch_count == 0, tracker.ema, jnp.where(tracker.count == 0, batch_mean, decayed))
  return StepTracker(ema=ema, count=tracker.count + batch_count.astype(jnp.int32))


def per_stage_losses(tracker: StepTracker, num_stages: int = 1) -> jax.Array:
  """float32 [S, D]: the averages of each stage in step order (the planner sorts them itself)."""
  return tracker.ema.reshape(num_stages, -1)


def seen_stage_losses(tracker: StepTracker, num_stages: int = 1):
  """(float64 [S, D] losses, int number of unseen steps): steps never seen take the linear interpolation of
  the seen steps of their stage (the nearest seen value beyond the ends), never 0, so that a planner does not
  treat them as free. Raises ValueError if a stage has no seen step."""
  ema = np.asarray(tracker.ema, np.float64).reshape(num_stages, -1)
  seen = np.asarray(tracker.count).reshape(num_stages, -1) > 0
  filled = np.empty_like(ema)
  for s in range(num_stages):
    steps = np.flatnonzero(seen[s])
    if not steps.size:
      raise ValueError(f"stage {s} has no step the tracker has seen: train longer before planning.")
    filled[s] = np.interp(np.arange(ema.shape[1]), steps, ema[s, steps])
  return filled, int((~seen).sum())


def unseen_note(num_unseen: int, num_steps: int) -> str:
  """The sentence plan reports carry about the steps training never saw ('' when it saw them all)."""
  if not num_unseen:
    return ""
  return (
    f"planned with the steps training has seen: {num_unseen} of {num_steps} steps were never seen and take "
    "the interpolated loss of the seen steps around them (not 0)."
  )
