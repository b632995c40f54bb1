"""Exact log-likelihood of data under a fixed order and a plan: one network call per planned step.

With the plan's starts [n], call i sees the variables with sigma < starts[i] and scores every variable with
starts[i] <= sigma < starts[i+1] with its own log-probs. This is the log-probability of the model that the
parallel sampler (sampler.py) samples from, and the cost a lossless coder pays (PAPER.md section 4). With
starts = arange(D) it is the model's exact log p(x) for that order.
"""
import jax
import jax.numpy as jnp

from ardm_jax import objective
from ardm_jax import orders
from ardm_jax import upscale


def oa_log_likelihood(logits_fn: objective.LogitsFn, x: jax.Array, sigma: jax.Array, starts, *,
                      absorbing_value: int):
  """log p(x) of an OA-ARDM under a plan, in nats.

  Args:
    logits_fn: network, (x_in, known, t) -> logits [B, *event, K].
    x: int32 [B, *event].
    sigma: int32 order, broadcastable to x.shape (e.g. one order [*event] for the whole batch).
    starts: int [n], the plan.
    absorbing_value: input value of unknown variables.
  Returns:
    (log_px [B], log_px_per_call [B, n]).
  """
  batch_size = x.shape[0]
  sigma = jnp.broadcast_to(sigma, x.shape)
  starts, ends = orders.plan_bounds(starts, sigma[0].size)

  def call(i, per_call):
    known = orders.known_mask(sigma, starts[i])
    logits = logits_fn(orders.corrupt(x, known, absorbing_value), known, jnp.full((batch_size,), starts[i]))
    log_p = objective.log_prob_of(logits, x)
    scored = orders.step_mask(sigma, starts[i], ends[i])
    return per_call.at[:, i].set(objective.sum_over_event(jnp.where(scored, log_p, 0.0)))

  per_call = jax.lax.fori_loop(0, starts.shape[0], call, jnp.zeros((batch_size, starts.shape[0]), jnp.float32))
  return per_call.sum(axis=1), per_call


def upscale_log_likelihood(logits_fn: objective.LogitsFn, x: jax.Array, sigma: jax.Array, starts,
                           transitions: upscale.Transitions, *, parametrisation: str):
  """log p(x) of an upscale ARDM under a plan per stage, in nats (the sum over stages).

  Args:
    logits_fn: network, (x_in, known, stage * D + t) -> logits [B, *event, C].
    x: int32 [B, *event].
    sigma: int32 orders broadcastable to [S, B, *event] (one order for all stages, or one per stage).
    starts: int [n] (the same plan for every stage) or [S, n].
    transitions: the stages.
    parametrisation: "direct" or "data".
  Returns:
    (log_px [B], log_px_per_call [B, S, n]).
  """
  batch_size, num_stages = x.shape[0], transitions.num_stages
  sigma = jnp.broadcast_to(sigma, (num_stages,) + x.shape)
  starts, ends = orders.plan_bounds(starts, sigma[0, 0].size)
  starts = jnp.broadcast_to(starts, (num_stages, starts.shape[-1]))
  ends = jnp.broadcast_to(ends, starts.shape)
  num_calls = starts.shape[1]

  def call(k, per_call):
    s, i = k // num_calls, k % num_calls
    x_in, known = upscale.stage_input(transitions, x, sigma[s], jnp.full((batch_size,), starts[s, i]), s)
    logits = logits_fn(x_in, known, jnp.full((batch_size,), s * sigma[0, 0].size + starts[s, i]))
    log_probs = upscale.next_state_log_probs(transitions, logits, upscale.stage_values(transitions, x, s), s,
                                             parametrisation)
    log_p = upscale.refined_log_prob(transitions, log_probs, x, s, parametrisation)
    scored = orders.step_mask(sigma[s], starts[s, i], ends[s, i])
    return per_call.at[:, s, i].set(objective.sum_over_event(jnp.where(scored, log_p, 0.0)))

  per_call = jax.lax.fori_loop(0, num_stages * num_calls, call,
                               jnp.zeros((batch_size, num_stages, num_calls), jnp.float32))
  return per_call.sum(axis=(1, 2)), per_call
