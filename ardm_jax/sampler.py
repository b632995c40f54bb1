"""Sampling from an ARDM under a plan of network calls (PAPER.md section 3).

A plan is its starts [n]: 0 = starts[0] < ... < starts[n-1] < D. Call i sees the variables with
sigma < starts[i] and draws every variable with starts[i] <= sigma < starts[i+1] at once, each independently
from that call's categorical. starts = arange(D) is plain sequential sampling (D calls). Each example has
its own random order. The calls run in a lax.fori_loop, so a jitted sampler compiles once per number of calls
and takes the starts as data.
"""
import math
from typing import Sequence

import jax
import jax.numpy as jnp

from ardm_jax import objective
from ardm_jax import orders
from ardm_jax import upscale


def sample_oa(logits_fn: objective.LogitsFn, rng: jax.Array, starts, shape: Sequence[int], *,
              absorbing_value: int) -> jax.Array:
  """Samples an OA-ARDM with one network call per planned step.

  Args:
    logits_fn: network, (x_in, known, t) -> logits [B, *event, K].
    rng: PRNG key.
    starts: int [n], the plan (see the module docstring).
    shape: (B, *event_shape).
    absorbing_value: input value of the variables not generated yet.
  Returns:
    x: int32 [B, *event_shape].
  """
  batch_size, num_variables = shape[0], math.prod(shape[1:])
  starts, ends = orders.plan_bounds(starts, num_variables)
  order_rng, sample_rng = jax.random.split(rng)
  sigma = orders.sample_orders(order_rng, shape)

  def call(i, x):
    known = orders.known_mask(sigma, starts[i])
    logits = logits_fn(x, known, jnp.full((batch_size,), starts[i]))
    drawn = jax.random.categorical(jax.random.fold_in(sample_rng, i), logits).astype(jnp.int32)
    return jnp.where(orders.step_mask(sigma, starts[i], ends[i]), drawn, x)

  x = jnp.full(tuple(shape), absorbing_value, jnp.int32)  # every variable unknown: x is the network input
  return jax.lax.fori_loop(0, starts.shape[0], call, x)


def sample_upscale(logits_fn: objective.LogitsFn, rng: jax.Array, starts, shape: Sequence[int],
                   transitions: upscale.Transitions, *, parametrisation: str) -> jax.Array:
  """Samples an upscale ARDM: S stages, each an OA-ARDM under its plan, coarse to fine.

  Args:
    logits_fn: network, (x_in, known, stage * D + t) -> logits [B, *event, C].
    rng: PRNG key.
    starts: int [n] (the same plan for every stage) or [S, n] (one plan per stage).
    shape: (B, *event_shape).
    transitions: the stages.
    parametrisation: "direct" or "data".
  Returns:
    x: int32 [B, *event_shape], the final fine values.
  """
  batch_size, num_variables = shape[0], math.prod(shape[1:])
  num_stages = transitions.num_stages
  starts, ends = orders.plan_bounds(starts, num_variables)
  starts = jnp.broadcast_to(starts, (num_stages, starts.shape[-1]))
  ends = jnp.broadcast_to(ends, starts.shape)

  def stage(s, coarse):
    order_rng, sample_rng = jax.random.split(jax.random.fold_in(rng, s))
    sigma = orders.sample_orders(order_rng, shape)

    def call(i, refined):
      start, end = starts[s, i], ends[s, i]
      known = orders.known_mask(sigma, start)
      t_global = jnp.full((batch_size,), s * num_variables + start)
      logits = logits_fn(jnp.where(known, refined, coarse), known, t_global)
      log_probs = upscale.next_state_log_probs(transitions, logits, coarse, s, parametrisation)
      drawn = upscale.sample_refined(transitions, jax.random.fold_in(sample_rng, i), log_probs, coarse, s,
                                     parametrisation)
      return jnp.where(orders.step_mask(sigma, start, end), drawn, refined)

    # The refined values start as a copy of the coarse ones; every variable is overwritten by its call.
    return jax.lax.fori_loop(0, starts.shape[1], call, coarse)

  nothing_known = jnp.full(tuple(shape), transitions.state_values[0, 0], jnp.int32)
  return jax.lax.fori_loop(0, num_stages, stage, nothing_known)
