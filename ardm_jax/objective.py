"""The OA-ARDM objective (arXiv 2110.02037: the order-agnostic objective): a one-step, unbiased estimate of the ELBO.

For an order sigma and a 0-based step t, the network sees the variables with sigma < t and predicts all the
others at once; log_px sums their log-likelihoods and D / (D - t) * log_px is an unbiased estimate (over t)
of the ELBO of log p(x). Losses are reported in bits per dimension.
"""

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from ardm_jax import orders

LogitsFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


class Terms(NamedTuple):
  """The named terms of one loss evaluation (a pytree).

  scalars: batch means, {'loss', 'nelbo_bpd', 'ce_bpd'} (what training logs).
  per_example: [B] arrays, {'nelbo_bpd': the nelbo estimate of each example (bits/dim), 't': its global step,
    'step_loss': -log_px / ((D - t) D ln 2), the bits/dim of step t alone (sum over steps = bpd)}.
  """

  scalars: dict[str, jax.Array]
  per_example: dict[str, jax.Array]


def log_prob_of(logits: jax.Array, x: jax.Array) -> jax.Array:
  """log softmax(logits)[x]: logits [..., C], x int [...] -> [...]."""
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  return jnp.take_along_axis(log_probs, x[..., None], axis=-1)[..., 0]


def sum_over_event(values: jax.Array) -> jax.Array:
  """[B, *event] -> [B]."""
  return jnp.sum(values, axis=tuple(range(1, values.ndim)))


def oa_log_px(logits_fn: LogitsFn, x: jax.Array, sigma: jax.Array, t: jax.Array, absorbing_value: int) -> jax.Array:
  """Sum of log p(x_i | known) over the variables still to generate at step t, in nats.

  Args:
    logits_fn: network, (x_in, known, t) -> logits [B, *event, K].
    x: int32 [B, *event] data.
    sigma: int32 [B, *event] orders (ranks).
    t: int32 [B] 0-based steps.
    absorbing_value: input value of unknown variables.
  Returns:
    log_px: float32 [B].
  """
  known = orders.known_mask(sigma, t)
  logits = logits_fn(orders.corrupt(x, known, absorbing_value), known, t)
  # where, not multiply: the log-probs of known variables may be -inf and must not leak NaN gradients.
  return sum_over_event(jnp.where(known, 0.0, log_prob_of(logits, x)))


def loss_terms(
  log_px: jax.Array, t: jax.Array, t_global: jax.Array, num_variables: int, *, ce_weight: float, elbo_scale: float = 1.0
):
  """The training loss and named terms from the summed log-likelihood of one step per example.

  Args:
    log_px: [B] sum of log-likelihoods (nats) of the variables to generate at step t.
    t: [B] 0-based step within the stage (0..D-1).
    t_global: [B] step index reported to the tracker (stage * D + t for upscale, t for OA).
    num_variables: D.
    ce_weight: weight of the auxiliary cross-entropy term mean(-log_px) / (D ln 2).
    elbo_scale: multiplies the ELBO (S for upscale with one stage sampled out of S).
  Returns:
    (loss, Terms): loss = nelbo_bpd + ce_weight * ce_bpd (scalar, bits/dim); per_example['t'] = t_global.
  """
  d = num_variables
  bits = d * math.log(2.0)
  remaining = (d - t).astype(jnp.float32)
  nelbo_per_example = -elbo_scale * d / remaining * log_px / bits
  ce_bpd = jnp.mean(-log_px) / bits
  nelbo_bpd = jnp.mean(nelbo_per_example)
  loss = nelbo_bpd + ce_weight * ce_bpd
  scalars = {"loss": loss, "nelbo_bpd": nelbo_bpd, "ce_bpd": ce_bpd}
  per_example = {"nelbo_bpd": nelbo_per_example, "t": t_global, "step_loss": -log_px / (remaining * bits)}
  return loss, Terms(scalars, per_example)


def oa_ardm_loss_at(
  logits_fn: LogitsFn, x: jax.Array, sigma: jax.Array, t: jax.Array, *, absorbing_value: int, ce_weight: float = 0.0
):
  """OA-ARDM loss for given orders sigma [B, *event] and steps t [B] (e.g. enumerated for exact evaluation).

  Returns (loss, Terms) as `loss_terms`.
  """
  log_px = oa_log_px(logits_fn, x, sigma, t, absorbing_value)
  return loss_terms(log_px, t, t, sigma[0].size, ce_weight=ce_weight)


def oa_ardm_loss(
  logits_fn: LogitsFn,
  x: jax.Array,
  rng: jax.Array,
  *,
  absorbing_value: int,
  ce_weight: float = 0.0,
  antithetic: bool = False,
):
  """OA-ARDM training loss in bits/dim with a random order and step per example.

  Args:
    logits_fn: network, (x_in, known, t) -> logits [B, *event, K].
    x: int32 [B, *event] data.
    rng: PRNG key.
    absorbing_value: input value of unknown variables (128 for images, K for text).
    ce_weight: auxiliary cross-entropy weight (0.001 images, 0.0001 text).
    antithetic: stratify the steps t across the batch (orders.sample_steps).
  Returns:
    (loss, Terms) as `loss_terms`.
  """
  sigma, t = sample_orders_and_steps(rng, x.shape, math.prod(x.shape[1:]), antithetic)
  return oa_ardm_loss_at(logits_fn, x, sigma, t, absorbing_value=absorbing_value, ce_weight=ce_weight)


def sample_orders_and_steps(rng: jax.Array, x_shape, num_steps: int, antithetic: bool):
  """One random order sigma [B, *event] and step t [B] in 0..num_steps-1 per example (the loss's randomness).

  Drawn for the whole batch at once: with antithetic steps the draws of one example depend on the batch.
  """
  order_rng, step_rng = jax.random.split(rng)
  sigma = orders.sample_orders(order_rng, x_shape)
  return sigma, orders.sample_steps(step_rng, x_shape[0], num_steps, antithetic)
