"""The discretized logistic mixture: exact bin probabilities, normalisation, intervals, sampling, gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from ardm_jax.core import distributions

class_log_probs = jax.jit(distributions.class_log_probs, static_argnums=1)
interval_log_prob = jax.jit(distributions.interval_log_prob, static_argnums=3)


def _params(seed, shape, num_mixtures, log_scale_range=(-3.0, 0.5)):
  """float32 [*shape, 3M]: random weight logits, means in [-1.2, 1.2] and log-scales in the range."""
  rs = np.random.RandomState(seed)
  logits = rs.normal(size=(*shape, num_mixtures))
  means = rs.uniform(-1.2, 1.2, size=(*shape, num_mixtures))
  log_scales = rs.uniform(*log_scale_range, size=(*shape, num_mixtures))
  return jnp.asarray(np.concatenate([logits, means, log_scales], -1), jnp.float32)


def _integrated_bins(params_3M, num_classes):
  """float64 [K]: the mixture density integrated over every bin by quadrature, component by component (the
  open first and last bins cut 60 scales from the mean, where the remaining mass is below e^-60)."""
  logits, means, log_scales = np.split(np.asarray(params_3M, np.float64), 3)
  weights = np.exp(logits - logits.max())
  weights /= weights.sum()
  half = 1.0 / (num_classes - 1)
  inner = [2.0 * k * half - 1.0 + half for k in range(num_classes - 1)]
  bins = np.zeros(num_classes)
  for weight, mean, scale in zip(weights, means, np.exp(log_scales)):
    edges = [min(mean - 60 * scale, inner[0])] + inner + [max(mean + 60 * scale, inner[-1])]

    def density(x, mean=mean, scale=scale):
      e = np.exp(-abs(x - mean) / scale)
      return e / (scale * (1.0 + e) ** 2)

    for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
      points = [mean] if lo < mean < hi else None
      bins[k] += weight * integrate.quad(density, lo, hi, points=points, epsabs=1e-14, epsrel=1e-12, limit=200)[0]
  return bins


def test_bin_probabilities_match_numerical_integration_of_the_density():
  num_classes, num_mixtures = 6, 3
  params = _params(0, (4,), num_mixtures)
  probs = np.exp(np.asarray(class_log_probs(params[None], num_classes))[0])  # [4, K]
  for row in range(4):
    expected = _integrated_bins(params[row], num_classes)
    np.testing.assert_allclose(expected.sum(), 1.0, atol=1e-9)  # the quadrature itself is exact here
    np.testing.assert_allclose(probs[row], expected, rtol=2e-5, atol=1e-7)


def test_probabilities_over_all_classes_sum_to_one():
  # Broad to far narrower than a bin, centred inside and outside [-1, 1].
  cases = [(2, (-3.0, 2.0)), (7, (-8.0, 1.0)), (256, (-9.0, 0.0)), (65536, (-16.0, -6.0)), (65536, (-6.0, 0.0))]
  for num_classes, scales in cases:
    params = _params(1, (3,), 4, scales)
    log_probs = class_log_probs(params[None], num_classes)[0]
    total = np.exp(np.asarray(jax.nn.logsumexp(log_probs.astype(jnp.float32), axis=-1), np.float64))
    np.testing.assert_allclose(total, 1.0, atol=2e-6, err_msg=f"K={num_classes}")
    assert np.all(np.isfinite(log_probs))


def test_interval_probability_is_the_total_of_its_classes():
  num_classes = 16
  params = _params(2, (5,), 2, (-5.0, 0.0))
  log_probs = class_log_probs(params[None], num_classes)[0]  # [5, K]
  for lo, hi in [(0, 0), (0, 15), (3, 9), (8, 15), (15, 15), (0, 7)]:
    lo_B = jnp.full((1, 5), lo)
    got = interval_log_prob(params[None], lo_B, jnp.full((1, 5), hi), num_classes)[0]
    np.testing.assert_allclose(got, jax.nn.logsumexp(log_probs[:, lo : hi + 1], axis=-1), atol=2e-5)
  whole = interval_log_prob(params[None], jnp.zeros((1, 5), int), jnp.full((1, 5), 15), num_classes)
  np.testing.assert_allclose(whole, 0.0, atol=1e-6)


def test_samples_follow_the_bin_probabilities():
  num_classes, num_draws = 5, 200_000
  params = _params(3, (), 2, (-2.0, -0.5))
  draws = distributions.sample(jax.random.key(0), jnp.broadcast_to(params, (num_draws, 3 * 2)), num_classes)
  frequencies = np.bincount(np.asarray(draws), minlength=num_classes) / num_draws
  probs = np.exp(np.asarray(class_log_probs(params, num_classes)))
  # 5 binomial standard deviations at most.
  np.testing.assert_allclose(frequencies, probs, atol=5 * np.sqrt(probs * (1 - probs) / num_draws).max())


def test_gradients_are_finite_in_the_tails():
  num_classes = 65536
  params = jnp.asarray([[0.0, 5.0, -30.0], [0.0, -0.99, 40.0], [0.0, 0.3, 2.0]], jnp.float32)  # [3, 3M], M=1
  classes = jnp.asarray([0, 65535, 12345])

  def total(p):
    return jnp.sum(interval_log_prob(p, classes, classes, num_classes))

  value, grad = jax.value_and_grad(total)(params)
  assert np.isfinite(value) and np.all(np.isfinite(grad))


@pytest.mark.parametrize("num_classes", [7, 65536])
def test_partition_probabilities_are_the_interval_probabilities_of_the_runs(num_classes):
  """The coder's digits: runs between consecutive edges (empty ones too, and both open ends)."""
  rs = np.random.RandomState(4)
  params = _params(2, (5,), 3, (-8.0, 0.0))
  cuts = np.sort(rs.randint(0, num_classes + 1, (5, 6)), -1)
  edges = np.concatenate([np.zeros((5, 1), int), cuts, np.full((5, 1), num_classes)], -1)
  edges[0, 3] = edges[0, 2]  # an empty run
  edges[1] = [0, 0, 0, num_classes // 2, num_classes - 1, num_classes, num_classes, num_classes]  # empty at both ends
  log_p = np.asarray(distributions.partition_log_probs(params, jnp.asarray(edges, jnp.int32), num_classes))
  lo, hi = edges[:, :-1], edges[:, 1:] - 1
  nonempty = hi >= lo
  expected = np.asarray(
    distributions.interval_log_prob(
      jnp.broadcast_to(params[:, None], lo.shape + params.shape[-1:]),
      np.maximum(lo, 0),
      np.maximum(hi, lo),
      num_classes,
    )
  )
  np.testing.assert_allclose(np.exp(log_p[nonempty]), np.exp(expected[nonempty]), rtol=1e-5, atol=1e-7)
  assert np.all(np.exp(log_p[~nonempty]) < 1e-20)
  np.testing.assert_allclose(np.exp(log_p).sum(-1), 1.0, atol=1e-5)
