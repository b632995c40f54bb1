"""Sampling from an ARDM under a plan of network calls (arXiv 2110.02037: parallel generation): starts [n] or [S, n],
0 = starts[0] < ... < starts[n-1] < D; starts = arange(D) is sequential sampling. A jitted sampler compiles once per
number of calls and takes the starts as data. Design notes: docs/design.md#sampler
"""

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ardm_jax.core import orders
from ardm_jax.core import plan_walk


def sample(
  logits_fn: plan_walk.LogitsFn,
  rng: jax.Array,
  starts,
  shape: Sequence[int],
  process: plan_walk.Process,
  known=None,
  x_known=None,
) -> jax.Array:
  """Samples an ARDM stage by stage, coarse to fine, with one network call per planned step.

  Args:
    logits_fn: network, (x_in, known, stage * D + t) -> logits [B, *event, outputs].
    rng: PRNG key.
    starts: int [n] (the same plan for every stage) or [S, n]; with k given variables every stage's plan
      starts at k (planner.plan_remaining), else at 0.
    shape: (B, *event_shape).
    process: plan_walk.oa_process or plan_walk.upscale_process.
    known: optional bool, broadcastable to shape: the given variables (infilling, inpainting, a prompt), the
      same number k in every example. They come first in every stage's order, keep their classes and the
      others are drawn from p(x_unknown | x_known). None: nothing given.
    x_known: int, broadcastable to shape: the classes of the given variables (the others are ignored).
  Returns:
    x: int32 [B, *event_shape], the final (fine) values.
  """
  known_BxE, x_known_BxE, first_step = _given(known, x_known, tuple(shape))
  starts, ends = plan_walk.plan_steps(starts, math.prod(shape[1:]), process.num_stages, first_step)

  def stage(s, coarse):
    order_rng, sample_rng = jax.random.split(jax.random.fold_in(rng, s))
    sigma, given_values = plan_walk.conditioned_stage(process, order_rng, coarse, known_BxE, x_known_BxE, s)

    def call(i, values):
      known = orders.known_mask(sigma, starts[s, i])
      child = plan_walk.call_draw(
        process, logits_fn, values, coarse, known, s, starts[s, i], jax.random.fold_in(sample_rng, i)
      )
      drawn = plan_walk.refine(process, coarse, child, s)
      return jnp.where(orders.step_mask(sigma, starts[s, i], ends[s, i]), drawn, values)

    # Every other variable is overwritten by its call; until then only the known ones are read.
    return jax.lax.fori_loop(0, starts.shape[1], call, given_values)

  nothing_known = jnp.full(tuple(shape), process.transitions.state_values[0, 0], jnp.int32)
  return jax.lax.fori_loop(0, process.num_stages, stage, nothing_known)


def _given(known, x_known, shape):
  """(known bool [B, *event], x_known int32 [B, *event], k or None if traced): what sample conditions on."""
  if known is None:
    return jnp.zeros(shape, bool), jnp.zeros(shape, jnp.int32), 0
  if x_known is None:
    raise ValueError("sample(known=...) needs x_known, the classes of the known variables.")
  first_step = None
  if not isinstance(known, jax.core.Tracer):
    counts = np.broadcast_to(np.asarray(known, bool), shape).reshape(shape[0], -1).sum(axis=1)
    if np.any(counts != counts[0]):
      raise ValueError(f"every example must have the same number of known variables, got {sorted(set(counts))}.")
    first_step = int(counts[0])
  known_BxE = jnp.broadcast_to(jnp.asarray(known, bool), shape)
  return known_BxE, jnp.broadcast_to(jnp.asarray(x_known, jnp.int32), shape), first_step
