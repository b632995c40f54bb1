"""The ARDM training objective (arXiv 2110.02037, sections 3 and 4.1): a one-step, unbiased estimate of the ELBO,
D / (D - t) * log_px for an order sigma and a 0-based step t of stage s; losses in bits per dimension.
Design notes: docs/design.md#objective
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ardm_jax.core import orders
from ardm_jax.core import plan_walk


class Terms(NamedTuple):
  """The named terms of one loss evaluation (a pytree).

  scalars: batch means, {'loss', 'nelbo_bpd', 'ce_bpd'} (what training logs).
  per_example: [B] arrays, {'nelbo_bpd': the nelbo estimate of each example (bits/dim), 't': its global step,
    'step_loss': -log_px / ((D - t) D ln 2), the bits/dim of step t alone (sum over steps = bpd)}.
  """

  scalars: dict[str, jax.Array]
  per_example: dict[str, jax.Array]


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


def ardm_loss_at(
  process: plan_walk.Process,
  logits_fn: plan_walk.LogitsFn,
  x: jax.Array,
  sigma: jax.Array,
  t_global: jax.Array,
  *,
  ce_weight: float = 0.0,
  per_stage: bool = False,
):
  """The loss at given orders sigma [B, *event] and global steps t_global [B] = stage * D + t.

  One function for every ARDM: the OA-ARDM is the one-stage process (plan_walk.oa_process), an upscale ARDM
  (arXiv 2110.02037, section 4.1) the S-stage one. per_stage=False: the stage is one uniform draw out of S, so
  its ELBO is multiplied by S (an unbiased estimate of the total; S = 1 for OA). per_stage=True: the terms are
  that stage's own ELBO (sum over stages for the total). Returns (loss, Terms) as `loss_terms`.
  """
  num_variables = sigma[0].size
  stage, t = t_global // num_variables, t_global % num_variables
  log_px = plan_walk.step_log_px(process, logits_fn, x, sigma, t, stage)
  scale = 1.0 if per_stage else float(process.num_stages)
  return loss_terms(log_px, t, t_global, num_variables, ce_weight=ce_weight, elbo_scale=scale)


def ardm_loss(
  process: plan_walk.Process,
  logits_fn: plan_walk.LogitsFn,
  x: jax.Array,
  rng: jax.Array,
  *,
  ce_weight: float = 0.0,
  antithetic: bool = False,
):
  """The training loss in bits/dim with a random order and (stage, step) per example.

  Args:
    process: plan_walk.oa_process or plan_walk.upscale_process.
    logits_fn: network, (x_in, known, stage * D + t) -> logits [B, *event, outputs].
    x: int32 [B, *event] data.
    rng: PRNG key.
    ce_weight: auxiliary cross-entropy weight (0.001 images, 0.0001 text).
    antithetic: stratify the global steps across the batch (orders.sample_steps).
  Returns:
    (loss, Terms) as `loss_terms`.
  """
  num_steps = process.num_stages * math.prod(x.shape[1:])
  sigma, t_global = sample_orders_and_steps(rng, x.shape, num_steps, antithetic)
  return ardm_loss_at(process, logits_fn, x, sigma, t_global, ce_weight=ce_weight)


def sample_orders_and_steps(rng: jax.Array, x_shape, num_steps: int, antithetic: bool):
  """One random order sigma [B, *event] and step t [B] in 0..num_steps-1 per example (the loss's randomness).

  Drawn for the whole batch at once: with antithetic steps the draws of one example depend on the batch.
  """
  order_rng, step_rng = jax.random.split(rng)
  sigma = orders.sample_orders(order_rng, x_shape)
  return sigma, orders.sample_steps(step_rng, x_shape[0], num_steps, antithetic)
