"""Exact log-likelihood of data under fixed orders and a plan, one network call per planned step: the log-probability
of the model the parallel sampler samples from, and the cost a lossless coder pays. With starts = arange(D) it is the
model's exact log p(x) for those orders. Design notes: docs/design.md#likelihood
"""

import jax
import jax.numpy as jnp

from ardm_jax.core import orders
from ardm_jax.core import plan_walk


def log_likelihood(logits_fn: plan_walk.LogitsFn, x: jax.Array, sigma: jax.Array, starts, process: plan_walk.Process):
  """log p(x) under a plan per stage, in nats (the sum over stages and calls).

  Args:
    logits_fn: network, (x_in, known, stage * D + t) -> logits [B, *event, outputs].
    x: int32 [B, *event].
    sigma: int32 orders broadcastable to [S, B, *event] (e.g. one order [*event] for everything, [B, *event]
      per example, or [S, 1, *event] per stage).
    starts: int [n] (the same plan for every stage) or [S, n].
    process: plan_walk.oa_process or plan_walk.upscale_process.
  Returns:
    (log_px [B], log_px_per_call [B, S, n]).
  """
  batch_size, num_stages = x.shape[0], process.num_stages
  sigma = jnp.broadcast_to(sigma, (num_stages,) + x.shape)
  starts, ends = plan_walk.plan_steps(starts, x[0].size, num_stages)
  num_calls = starts.shape[1]

  def call(k, per_call):
    s, i = k // num_calls, k % num_calls
    known = orders.known_mask(sigma[s], starts[s, i])
    coarse = plan_walk.stage_values(process, x, s)
    refined = plan_walk.stage_values(process, x, s + 1)
    outputs = plan_walk.call_network(process, logits_fn, refined, coarse, known, s, starts[s, i])
    log_p = plan_walk.refined_log_prob(process, outputs, x, coarse, s)
    scored = orders.step_mask(sigma[s], starts[s, i], ends[s, i])
    return per_call.at[:, s, i].set(plan_walk.sum_over_event(jnp.where(scored, log_p, 0.0)))

  per_call = jax.lax.fori_loop(
    0, num_stages * num_calls, call, jnp.zeros((batch_size, num_stages, num_calls), jnp.float32)
  )
  return per_call.sum(axis=(1, 2)), per_call


def bits_per_dim(logits_fn: plan_walk.LogitsFn, x: jax.Array, rng: jax.Array, starts, process: plan_walk.Process):
  """float32 [B]: -log2 p(x) / D of each example under the plan `starts`, each along its own random order per
  stage: a Monte-Carlo estimate, over examples and orders, of the likelihood a plan actually obtains."""
  num_stages = process.num_stages
  sigma = orders.sample_orders(rng, (num_stages * x.shape[0],) + x.shape[1:]).reshape((num_stages,) + x.shape)
  log_px, _ = log_likelihood(logits_fn, x, sigma, starts, process)
  return -log_px / (jnp.log(2.0) * x[0].size)
