"""Sampling from an ARDM under a plan of network calls (arXiv 2110.02037: parallel generation).

A plan is its starts [n] (or [S, n], one per stage): 0 = starts[0] < ... < starts[n-1] < D. Call i of a stage
sees the variables with sigma < starts[i] and draws every variable with starts[i] <= sigma < starts[i+1] at
once, each independently from that call's categorical over its children (plan_walk.py). starts = arange(D) is
plain sequential sampling (D calls per stage). Each example has its own random order per stage. The calls run
in lax.fori_loops, so a jitted sampler compiles once per number of calls and takes the starts as data.
"""

import math
from typing import Sequence

import jax
import jax.numpy as jnp

from ardm_jax import orders
from ardm_jax import plan_walk


def sample(
  logits_fn: plan_walk.LogitsFn, rng: jax.Array, starts, shape: Sequence[int], process: plan_walk.Process
) -> jax.Array:
  """Samples an ARDM stage by stage, coarse to fine, with one network call per planned step.

  Args:
    logits_fn: network, (x_in, known, stage * D + t) -> logits [B, *event, outputs].
    rng: PRNG key.
    starts: int [n] (the same plan for every stage) or [S, n].
    shape: (B, *event_shape).
    process: plan_walk.oa_process or plan_walk.upscale_process.
  Returns:
    x: int32 [B, *event_shape], the final (fine) values.
  """
  starts, ends = plan_walk.plan_steps(starts, math.prod(shape[1:]), process.num_stages)

  def stage(s, coarse):
    order_rng, sample_rng = jax.random.split(jax.random.fold_in(rng, s))
    sigma = orders.sample_orders(order_rng, shape)

    def call(i, values):
      known = orders.known_mask(sigma, starts[s, i])
      child = plan_walk.call_draw(
        process, logits_fn, values, coarse, known, s, starts[s, i], jax.random.fold_in(sample_rng, i)
      )
      drawn = plan_walk.refine(process, coarse, child, s)
      return jnp.where(orders.step_mask(sigma, starts[s, i], ends[s, i]), drawn, values)

    # Every variable is overwritten by its call; until then only the known ones are read.
    return jax.lax.fori_loop(0, starts.shape[1], call, coarse)

  nothing_known = jnp.full(tuple(shape), process.transitions.state_values[0, 0], jnp.int32)
  return jax.lax.fori_loop(0, process.num_stages, stage, nothing_known)
