"""Output distributions over K ordered classes: the discretized logistic mixture (arXiv 2110.02037, section 5;
PixelCNN++). 3M parameters per variable, laid out [weight logits (M), means (M), log-scales (M)]; class k is the bin
centred at 2k / (K - 1) - 1 in [-1, 1]. Design notes: docs/design.md#distributions
"""

import jax
import jax.numpy as jnp

# Log-scales are clamped to [-16, 10]: a logistic with s = e^-16 is far narrower than a 16-bit bin (2 / 65535),
# so every class can still get (almost) all the mass, s = e^10 is flat over [-1, 1], and 1 / s stays a normal
# float32 either way.
LOG_SCALE_MIN, LOG_SCALE_MAX = -16.0, 10.0


def num_params(num_mixtures: int) -> int:
  """Network outputs per variable of an M-component mixture: 3M."""
  return 3 * num_mixtures


def split_params(params_BxEx3M: jax.Array):
  """(log mixture weights, means, log-scales), each float32 [B, *event, M], from params [B, *event, 3M]."""
  if params_BxEx3M.shape[-1] % 3:
    raise ValueError(f"a logistic mixture has 3M parameters per variable, got {params_BxEx3M.shape[-1]}.")
  logits, means, log_scales = jnp.split(params_BxEx3M.astype(jnp.float32), 3, axis=-1)
  return jax.nn.log_softmax(logits, axis=-1), means, jnp.clip(log_scales, LOG_SCALE_MIN, LOG_SCALE_MAX)


def _log_cosh(x):
  """log(cosh(x)), stable for any x."""
  x = jnp.abs(x)
  return x + jnp.log1p(jnp.exp(-2.0 * x)) - jnp.log(2.0)


def _log_sinh(x):
  """log(sinh(x)) for x > 0, stable for tiny and large x (and with finite gradients on both branches)."""
  small, large = jnp.minimum(x, 20.0), jnp.maximum(x, 20.0)
  return jnp.where(x < 20.0, jnp.log(jnp.sinh(small)), large + jnp.log1p(-jnp.exp(-2.0 * large)) - jnp.log(2.0))


def _log_sigmoid_difference(upper, lower):
  """log(sigmoid(upper) - sigmoid(lower)) for upper > lower, accurate in both tails and for narrow bins.

  sigmoid(a) - sigmoid(b) = sinh((a - b) / 2) / (2 cosh(a / 2) cosh(b / 2)): no difference of two sigmoids is
  formed, and a - b of two nearby floats is exact (Sterbenz), so a bin keeps its digits however narrow.
  """
  width = jnp.maximum(upper - lower, 1e-30)
  return _log_sinh(0.5 * width) - jnp.log(2.0) - _log_cosh(0.5 * upper) - _log_cosh(0.5 * lower)


def _edge(j, num_classes: int):
  """The edge between classes j - 1 and j, (2j - K) / (K - 1): one expression for every use, so the upper
  edge of class j - 1 and the lower edge of class j are the same float and the bins tile the line exactly."""
  return (2.0 * j - num_classes) / (num_classes - 1.0)


def _open_ends(log_p, upper, lower, first, last):
  """log_p of runs of classes, with the runs that hold the first class (from -inf) or the last (to +inf) taking
  the open-ended log-probabilities (upper, lower: their edges in logistic units)."""
  log_p = jnp.where(first, jax.nn.log_sigmoid(upper), log_p)
  log_p = jnp.where(last, jax.nn.log_sigmoid(-lower), log_p)
  return jnp.where(first & last, 0.0, log_p)


def interval_log_prob(params_BxEx3M: jax.Array, lo_BxE: jax.Array, hi_BxE: jax.Array, num_classes: int):
  """float32 [B, *event]: log P(lo <= x <= hi) of every variable's mixture (lo <= hi, classes in 0..K-1).

  Args:
    params_BxEx3M: network outputs [B, *event, 3M] (see the module docstring).
    lo_BxE, hi_BxE: int [B, *event], the first and last class of the interval.
    num_classes: K.
  """
  log_weights, means, log_scales = split_params(params_BxEx3M)
  inv_scales = jnp.exp(-log_scales)
  lo = lo_BxE[..., None].astype(jnp.float32)
  hi = hi_BxE[..., None].astype(jnp.float32)
  upper = (_edge(hi + 1.0, num_classes) - means) * inv_scales  # [B, *event, M], in logistic units
  lower = (_edge(lo, num_classes) - means) * inv_scales
  # The open ends: the first class takes all of (-inf, c_0 + h], the last all of [c_{K-1} - h, inf).
  log_p = _open_ends(_log_sigmoid_difference(upper, lower), upper, lower, lo == 0, hi == num_classes - 1)
  return jax.nn.logsumexp(log_weights + log_p, axis=-1)


def partition_log_probs(params_Nx3M: jax.Array, edges_NxR1: jax.Array, num_classes: int) -> jax.Array:
  """float32 [N, E-1]: log P(edges[i] <= x < edges[i+1]) of every row's mixture, for E-1 consecutive runs of
  classes (edges int, nondecreasing in 0..K; an empty run gets a negligible, finite log-probability).

  The coder's digits (coder.py): each logistic is evaluated once per edge, not twice per run as by
  `interval_log_prob`, the mixture is split once per row, and the components are the major axis (a reduction
  over a minor axis of M ~ 10-30 is 3-4x slower on a CPU).
  """
  log_weights, means, log_scales = (a.T[:, :, None] for a in split_params(params_Nx3M))  # [M, N, 1]
  edges = edges_NxR1[None]  # [1, N, R + 1]
  x = (_edge(edges.astype(jnp.float32), num_classes) - means) * jnp.exp(-log_scales)  # [M, N, E], logistic units
  half_log_cosh = _log_cosh(0.5 * x)
  upper, lower = x[..., 1:], x[..., :-1]
  width = jnp.maximum(upper - lower, 1e-30)
  log_p = _log_sinh(0.5 * width) - jnp.log(2.0) - half_log_cosh[..., 1:] - half_log_cosh[..., :-1]
  nonempty = edges[..., 1:] > edges[..., :-1]
  log_p = _open_ends(log_p, upper, lower, nonempty & (edges[..., :-1] == 0), nonempty & (edges[..., 1:] == num_classes))
  return jax.nn.logsumexp(log_weights + log_p, axis=0)


def class_log_probs(params_BxEx3M: jax.Array, num_classes: int) -> jax.Array:
  """float32 [B, *event, K]: log P(k) of every class k; the components are added one at a time (lax.scan),
  so the memory is B * D * K, not B * D * K * M."""
  log_weights, means, log_scales = split_params(params_BxEx3M)
  classes = jnp.arange(num_classes, dtype=jnp.int32)

  def add_component(total_BxExK, component):
    log_weight, mean, log_scale = component  # [B, *event] each
    one = jnp.stack([jnp.zeros_like(mean), mean, log_scale], axis=-1)[..., None, :]  # [B, *event, 1, 3]
    log_p_BxExK = interval_log_prob(one, classes, classes, num_classes)
    return jnp.logaddexp(total_BxExK, log_weight[..., None] + log_p_BxExK), None

  components = tuple(jnp.moveaxis(a, -1, 0) for a in (log_weights, means, log_scales))  # [M, B, *event]
  initial = jnp.full((*means.shape[:-1], num_classes), -jnp.inf, jnp.float32)
  return jax.lax.scan(add_component, initial, components)[0]


def sample(rng: jax.Array, params_BxEx3M: jax.Array, num_classes: int) -> jax.Array:
  """int32 [B, *event]: one class per variable drawn from its mixture, without materialising the K bins.

  A component m is drawn by its weight, then x = mu_m + s_m * logit(u), u ~ U(0, 1); the class is the bin
  holding x (round((x + 1) (K - 1) / 2), clipped to 0..K-1: the open end bins), so P(class k) is `interval_log_prob`.
  """
  log_weights, means, log_scales = split_params(params_BxEx3M)
  component_rng, uniform_rng = jax.random.split(rng)
  component = jax.random.categorical(component_rng, log_weights)[..., None]
  mean = jnp.take_along_axis(means, component, axis=-1)[..., 0]
  log_scale = jnp.take_along_axis(log_scales, component, axis=-1)[..., 0]
  u = jax.random.uniform(uniform_rng, mean.shape, minval=1e-7, maxval=1.0 - 1e-7)
  x = mean + jnp.exp(log_scale) * (jnp.log(u) - jnp.log1p(-u))
  return jnp.clip(jnp.round((x + 1.0) * (0.5 * (num_classes - 1))), 0, num_classes - 1).astype(jnp.int32)
