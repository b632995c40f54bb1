"""The ARDM loss in its one-stage (OA-ARDM) case: exact ELBO on an enumerable joint, unbiased estimates, gradients."""

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np

from ardm_jax.core import objective
from ardm_jax.core import plan_walk
from tests import exact_model

D, K = 4, 3
EVENT = (2, 2)  # D = 4 variables laid out as a 2x2 "image": the math must not care.
ABSORBING = K
OA = plan_walk.oa_process(K, ABSORBING)  # The OA-ARDM: the one-stage process.


def _joint():
  return exact_model.random_joint(0, D, K)


def _all_x():
  return jnp.asarray(exact_model.all_sequences(D, K)).reshape(-1, *EVENT)


def test_enumerated_elbo_equals_log_likelihood_for_every_x():
  joint = _joint()
  logits_fn = exact_model.oa_logits_fn(joint, K)
  perms = np.array(list(itertools.permutations(range(D))), np.int32)  # [24, D]
  xs = _all_x()
  rows = [(n, p, t) for n in range(len(xs)) for p in range(len(perms)) for t in range(D)]
  n_idx, p_idx, t_idx = (np.array(c) for c in zip(*rows))
  sigma = jnp.asarray(perms[p_idx].reshape(-1, *EVENT))
  loss_at = jax.jit(lambda x, s, t: objective.ardm_loss_at(OA, logits_fn, x, s, t))
  _, terms = loss_at(xs[n_idx], sigma, jnp.asarray(t_idx, jnp.int32))
  bits = D * math.log(2.0)
  elbo = -np.asarray(terms.per_example["nelbo_bpd"]).reshape(len(xs), len(perms) * D) * bits
  np.testing.assert_allclose(elbo.mean(axis=1), np.log(joint), rtol=1e-5, atol=1e-5)
  # The per-step losses L_t, averaged over orders, sum over t to the bits/dim of x.
  step_loss = np.asarray(terms.per_example["step_loss"]).reshape(len(xs), len(perms), D)
  np.testing.assert_allclose(step_loss.mean(axis=1).sum(axis=1), -np.log2(joint) / D, rtol=1e-5, atol=1e-6)
  assert np.all(np.asarray(terms.per_example["t"]) == t_idx)


def test_sampled_estimator_is_unbiased_uniform_and_antithetic():
  """Batch = all 81 sequences; the mean nelbo over draws matches the exact mean within 4 standard errors."""
  joint = _joint()
  logits_fn = exact_model.oa_logits_fn(joint, K)
  xs = _all_x()
  exact_bpd = float(np.mean(-np.log2(joint)) / D)
  for antithetic in (False, True):
    draw = jax.jit(
      functools.partial(
        jax.lax.map,
        lambda key: objective.ardm_loss(OA, logits_fn, xs, key, antithetic=antithetic)[1].scalars["nelbo_bpd"],
      )
    )
    batch_means = np.asarray(draw(jax.random.split(jax.random.key(int(antithetic)), 400)), np.float64)
    stderr = batch_means.std(ddof=1) / np.sqrt(len(batch_means))
    assert abs(batch_means.mean() - exact_bpd) < 4 * stderr, (antithetic, batch_means.mean(), exact_bpd, stderr)


def test_antithetic_removes_the_variance_due_to_t():
  """A network whose loss depends on t only: stratified batches (B = 2D) all have the same mean."""
  t_dependent = lambda x_in, known, t: (
    jnp.zeros(x_in.shape + (K,)).at[..., 0].set(0.5 * t[:, None, None].astype(jnp.float32))
  )
  x = jnp.zeros((2 * D, *EVENT), jnp.int32)
  for antithetic, expect_constant in ((True, True), (False, False)):
    draw = jax.jit(
      functools.partial(
        jax.lax.map,
        lambda key: objective.ardm_loss(OA, t_dependent, x, key, antithetic=antithetic)[1].scalars["nelbo_bpd"],
      )
    )
    batch_means = np.asarray(draw(jax.random.split(jax.random.key(7), 50)))
    assert (np.ptp(batch_means) < 1e-5) == expect_constant, np.ptp(batch_means)


def test_terms_by_hand_for_a_uniform_network():
  """Uniform logits: log_px = -(D - t) log K, so the nelbo is log2 K bits/dim whatever t is."""
  event, num_classes, ce_weight = (2, 3), 5, 0.25
  x = jax.random.randint(jax.random.key(0), (4, *event), 0, num_classes)
  sigma = jnp.asarray(np.stack([np.random.RandomState(n).permutation(6).reshape(event) for n in range(4)]))
  t = jnp.array([0, 1, 3, 5], jnp.int32)
  logits_fn = lambda x_in, known, t: jnp.zeros(x_in.shape + (num_classes,))
  loss, terms = jax.jit(
    lambda x, s, t: objective.ardm_loss_at(
      plan_walk.oa_process(num_classes, 2), logits_fn, x, s, t, ce_weight=ce_weight
    )
  )(x, sigma, t)
  log2k = math.log2(num_classes)
  np.testing.assert_allclose(terms.per_example["nelbo_bpd"], log2k * np.ones(4), rtol=1e-6)
  np.testing.assert_allclose(terms.per_example["step_loss"], log2k / 6 * np.ones(4), rtol=1e-6)
  np.testing.assert_allclose(terms.scalars["ce_bpd"], np.mean((6 - np.array([0, 1, 3, 5])) / 6) * log2k, rtol=1e-6)
  np.testing.assert_allclose(loss, log2k + ce_weight * terms.scalars["ce_bpd"], rtol=1e-6)
  assert terms.scalars["loss"] == loss and terms.scalars["nelbo_bpd"].shape == ()
  assert terms.per_example["t"].shape == (4,)


def test_network_never_sees_the_variables_it_predicts():
  """A network that copies its input would be perfect if masked values leaked; with corruption it is uniform."""
  copy_input = lambda x_in, known, t: 30.0 * jax.nn.one_hot(x_in, K + 1)[..., :K]
  x = jax.random.randint(jax.random.key(2), (64, *EVENT), 0, K)
  _, terms = jax.jit(lambda x, key: objective.ardm_loss(OA, copy_input, x, key))(x, jax.random.key(3))
  np.testing.assert_allclose(terms.per_example["nelbo_bpd"], math.log2(K) * np.ones(64), rtol=1e-5)


def test_antithetic_loss_covers_every_step_once_when_batch_equals_d():
  logits_fn = lambda x_in, known, t: jnp.zeros(x_in.shape + (K,))
  x = jnp.zeros((D, *EVENT), jnp.int32)
  _, terms = jax.jit(lambda key: objective.ardm_loss(OA, logits_fn, x, key, antithetic=True))(jax.random.key(4))
  np.testing.assert_array_equal(np.sort(terms.per_example["t"]), np.arange(D))


def test_gradient_is_zero_at_known_positions_only():
  x = jax.random.randint(jax.random.key(5), (3, *EVENT), 0, K)
  sigma = jnp.asarray(np.array([[2, 0, 3, 1], [0, 1, 2, 3], [3, 2, 1, 0]]).reshape(3, *EVENT), jnp.int32)
  t = jnp.array([2, 0, 3], jnp.int32)
  params = jax.random.normal(jax.random.key(6), (3, *EVENT, K))

  def loss(p):
    return objective.ardm_loss_at(OA, lambda x_in, known, t: p, x, sigma, t, ce_weight=0.1)[0]

  grad_norm = np.abs(np.asarray(jax.jit(jax.grad(loss))(params))).sum(-1)  # [B, *event]
  known = np.asarray(sigma) < np.asarray(t)[:, None, None]
  assert np.all(grad_norm[known] == 0.0)
  assert np.all(grad_norm[~known] > 1e-4)
