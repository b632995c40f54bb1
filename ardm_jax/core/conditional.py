"""Conditional generation under a budget (arXiv 2110.02037): the k given variables come first in the order, and
the planner plans only the D - k remaining steps. Design notes: docs/design.md#conditional.
"""

import dataclasses

import jax
import numpy as np

from ardm_jax.core import plan_walk
from ardm_jax.core import planner
from ardm_jax.core import sampler


class InfillError(ValueError):
  """An input, mask or budget that conditional generation cannot use; one line naming the problem and fix."""


@dataclasses.dataclass(frozen=True)
class Condition:
  """What generation conditions on: known_E bool [*event] (True: given), x_known_E int32 [*event]."""

  known_E: np.ndarray
  x_known_E: np.ndarray
  source: str  # the input's name, for messages ('' when nothing is given)

  @property
  def num_known(self) -> int:
    return int(self.known_E.sum())

  @property
  def num_unknown(self) -> int:
    return int(self.known_E.size - self.known_E.sum())


def nothing_known(event_shape) -> Condition:
  """Sampling from nothing: every variable unknown."""
  return Condition(np.zeros(event_shape, bool), np.zeros(event_shape, np.int32), "")


def plan_unknown(step_losses_SxD, budget: int, num_known: int) -> tuple[np.ndarray, float]:
  """(starts int64 [S, budget] from k, planned bits/dim of the unknown part summed over stages, per all D).

  Args:
    step_losses_SxD: the tracked L_t of every stage in step order (unseen steps interpolated).
    budget: network calls per stage, 1..D-k.
    num_known: k.
  """
  losses = np.asarray(step_losses_SxD, np.float64)
  num_unknown = losses.shape[1] - num_known
  if num_unknown < 1:
    raise InfillError("nothing unknown: every variable is given, there is nothing to generate.")
  if budget < 1 or budget > num_unknown:
    raise InfillError(
      f"a budget of {budget} network calls, but there are {num_unknown} unknown steps; use 1..{num_unknown} "
      f"({num_unknown}: one call per unknown variable)."
    )
  plans = [planner.plan_remaining(stage, budget, num_known) for stage in losses]
  return np.stack([p.starts for p in plans]), float(sum(p.cost for p in plans))


def summary(budget: int, num_stages: int, planned: float, condition: Condition, unit: str) -> str:
  """The sentence every output carries: calls used and the planned bits per unknown variable."""
  num_variables, unknown = condition.known_E.size, condition.num_unknown
  bits = planned * num_variables
  calls = f"{budget} network calls" + (f" per stage ({budget * num_stages} in all)" if num_stages > 1 else "")
  given = f"{condition.num_known} of {num_variables} given" if condition.num_known else "nothing given"
  return f"{calls}, planned {bits / unknown:.4f} bpd over the {unknown} unknown {unit} ({bits:.1f} bits; {given})"


def generate(
  logits_fn: plan_walk.LogitsFn, process: plan_walk.Process, seed: int, condition: Condition, starts, num_samples
) -> np.ndarray:
  """int32 [N, *event]: num_samples draws of p(x_unknown | x_known) under the plan starts [S, n] from k."""
  shape = (num_samples,) + condition.known_E.shape
  known_E, x_known_E = condition.known_E, condition.x_known_E
  sample_fn = jax.jit(lambda r: sampler.sample(logits_fn, r, starts, shape, process, known=known_E, x_known=x_known_E))
  samples = np.asarray(sample_fn(jax.random.key_data(jax.random.key(seed))))
  if not np.array_equal(samples[:, known_E], np.broadcast_to(x_known_E[known_E], (num_samples, condition.num_known))):
    raise RuntimeError("a given variable changed during generation")  # guards the walk, never expected
  return samples
