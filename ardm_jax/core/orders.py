"""Generation orders, step sampling and masks for order-agnostic ARDMs. An order is stored as ranks: `sigma[b, i]` is
the step at which variable i of example b is generated; at step t the variables with `sigma < t` are known.
Design notes: docs/design.md#orders
"""

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def per_example(values: jax.Array, ndim: int) -> jax.Array:
  """Reshapes per-example values [B] to [B, 1, ..., 1] (ndim axes) so they broadcast over the event."""
  values = jnp.asarray(values)
  return values.reshape(values.shape + (1,) * (ndim - values.ndim))


def sample_orders(rng: jax.Array, shape: Sequence[int]) -> jax.Array:
  """Independent uniform random orders, one per example.

  Args:
    rng: PRNG key.
    shape: (B, *event_shape).
  Returns:
    sigma: int32 [B, *event_shape]; sigma[b] is a permutation of 0..D-1, D = prod(event_shape).
  """
  batch_size, num_variables = shape[0], math.prod(shape[1:])
  # Sorting the variable indices by 64 random bits each gives a uniform permutation per row (a tie has
  # probability < D^2 / 2^65, and even then the row is a permutation). A uniform permutation's inverse is
  # uniform too, so the sorted indices serve directly as ranks.
  high_bits, low_bits = jax.random.bits(rng, (2, batch_size, num_variables), jnp.uint32)
  indices = jnp.broadcast_to(jnp.arange(num_variables, dtype=jnp.int32), (batch_size, num_variables))
  sigma = jax.lax.sort((high_bits, low_bits, indices), dimension=1, num_keys=2)[2]
  return sigma.reshape(tuple(shape))


def sample_steps(rng: jax.Array, batch_size: int, num_steps: int, antithetic: bool = False) -> jax.Array:
  """Steps t [B] in 0..num_steps-1, each marginally uniform.

  antithetic=False: independent uniform draws.
  antithetic=True: stratified over the batch. One offset u ~ U[0, 1) is shared; example b gets
  floor((b + u) / B * num_steps), then the B values are randomly permuted. Every t_b is still uniform on
  0..num_steps-1 (b is a uniformly random slot after the permutation), but the batch covers the steps
  evenly: when B is a multiple of num_steps every step appears exactly B / num_steps times.
  """
  if not antithetic:
    return jax.random.randint(rng, (batch_size,), 0, num_steps, dtype=jnp.int32)
  offset_rng, perm_rng = jax.random.split(rng)
  u = jax.random.uniform(offset_rng, ())
  slots = (jnp.arange(batch_size) + u) * (num_steps / batch_size)
  t = jnp.minimum(jnp.floor(slots).astype(jnp.int32), num_steps - 1)  # min guards float rounding.
  return jax.random.permutation(perm_rng, t)


def known_mask(sigma: jax.Array, t: jax.Array) -> jax.Array:
  """bool [B, *event]: variables already generated before step t [B] (sigma < t)."""
  return sigma < per_example(t, sigma.ndim)


def step_mask(sigma: jax.Array, start: jax.Array, end: jax.Array) -> jax.Array:
  """bool [B, *event]: variables generated in steps start..end-1 (start <= sigma < end); start, end [B] or []."""
  return (sigma >= per_example(start, sigma.ndim)) & (sigma < per_example(end, sigma.ndim))


def corrupt(x: jax.Array, known: jax.Array, absorbing_value: int) -> jax.Array:
  """The OA network input: x [B, *event] with every unknown variable replaced by absorbing_value."""
  return jnp.where(known, x, jnp.asarray(absorbing_value, x.dtype))


def plan_bounds(starts, num_variables: int, first_step: int | None = 0):
  """Step ranges of the calls of a plan: call i generates the steps starts[i] .. ends[i] - 1.

  Args:
    starts: int [..., n], starts[..., 0] = first_step, strictly increasing, all < D (checked unless traced).
    num_variables: D.
    first_step: k, the number of variables known before the first call (0 unless generation is conditioned
      on k given variables); None: any first start in 0..D-1.
  Returns:
    (starts, ends): int32 [..., n] each; ends[..., i] = starts[..., i + 1], and D for the last call.
  """
  if not isinstance(starts, jax.core.Tracer):
    concrete = np.asarray(starts)
    if (
      concrete.ndim == 0
      or concrete.shape[-1] == 0
      or (first_step is not None and np.any(concrete[..., 0] != first_step))
      or np.any(concrete < 0)
      or np.any(np.diff(concrete, axis=-1) <= 0)
      or np.any(concrete >= num_variables)
    ):
      first = "a step >= 0" if first_step is None else first_step
      raise ValueError(
        f"starts must begin at {first}, increase strictly and stay below D = {num_variables}; got {concrete}."
      )
  starts = jnp.asarray(starts, jnp.int32)
  last = jnp.full(starts.shape[:-1] + (1,), num_variables, jnp.int32)
  return starts, jnp.concatenate([starts[..., 1:], last], axis=-1)
