"""Fixed-order likelihood under a plan: exact with D calls, one call per planned step, parallel never better."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ardm_jax.core import likelihood
from ardm_jax.core import plan_walk
from ardm_jax.core import upscale
from tests import exact_model

D, K = 4, 3
ALL_PLANS = [np.array((0,) + rest) for n in range(D) for rest in itertools.combinations(range(1, D), n)]


@functools.partial(jax.jit, static_argnums=0)  # compiled once per network and number of calls
def _oa_log_likelihood(logits_fn, xs, sigma, starts):
  return likelihood.log_likelihood(logits_fn, xs, sigma, starts, plan_walk.oa_process(K, K))[0]


def _oa_log_q(logits_fn, sigma, starts):
  """[K^D] float64 log q(x) of every sequence under the plan."""
  xs = jnp.asarray(exact_model.all_sequences(D, K))
  return np.asarray(_oa_log_likelihood(logits_fn, xs, jnp.asarray(sigma), jnp.asarray(starts, jnp.int32)), np.float64)


def test_budget_d_gives_the_exact_log_likelihood_for_any_order():
  joint = exact_model.random_joint(0, D, K)
  logits_fn = exact_model.oa_logits_fn(joint, K)
  for order in ([0, 1, 2, 3], [3, 1, 0, 2], [2, 3, 1, 0]):  # one order for the whole batch
    np.testing.assert_allclose(_oa_log_q(logits_fn, order, np.arange(D)), np.log(joint), rtol=1e-5, atol=1e-5)
  per_example = np.stack([np.random.RandomState(n).permutation(D) for n in range(K**D)])
  np.testing.assert_allclose(_oa_log_q(logits_fn, per_example, np.arange(D)), np.log(joint), rtol=1e-5, atol=1e-5)


def test_exactly_one_network_call_per_planned_step():
  joint = exact_model.random_joint(0, D, K)
  logits_fn, seen = exact_model.count_calls(exact_model.oa_logits_fn(joint, K))
  x = jnp.asarray(exact_model.all_sequences(D, K)[:5])
  fn = jax.jit(lambda p: likelihood.log_likelihood(logits_fn, x, jnp.arange(D), p, plan_walk.oa_process(K, K)))
  log_px, per_call = fn(jnp.array([0, 1, 3]))
  jax.effects_barrier()
  assert [int(t[0]) for t in seen] == [0, 1, 3] and all(len(set(t)) == 1 for t in seen)
  assert per_call.shape == (5, 1, 3)
  np.testing.assert_allclose(per_call.sum((1, 2)), log_px)

  tr = upscale.digit_transitions(K, 2)
  logits_fn, seen = exact_model.count_calls(exact_model.staged_logits_fn(joint, tr, "data"))
  jax.jit(lambda p: likelihood.log_likelihood(logits_fn, x, jnp.arange(D), p, plan_walk.upscale_process(tr, "data")))(
    jnp.array([0, 2])
  )
  jax.effects_barrier()
  assert [int(t[0]) for t in seen] == [0, 2, D + 0, D + 2]  # global steps stage * D + start


def test_invalid_plans_are_rejected():
  x = jnp.zeros((1, D), jnp.int32)
  logits_fn = lambda x_in, known, t: jnp.zeros(x_in.shape + (K,))
  for starts in ([1, 2], [0, 2, 2], [0, 4], []):
    with pytest.raises(ValueError, match="starts must begin at 0"):
      likelihood.log_likelihood(logits_fn, x, jnp.arange(D), starts, plan_walk.oa_process(K, K))


def test_plans_agree_for_a_context_free_network():
  """A network predicting the same position-wise distribution whatever it sees: every plan is the same."""
  table = jax.random.normal(jax.random.key(0), (D, K))
  context_free = lambda x_in, known, t: jnp.broadcast_to(table, x_in.shape + (K,))
  xs = exact_model.all_sequences(D, K)
  expected = np.asarray(jax.nn.log_softmax(table))[np.arange(D), xs].sum(1)
  for starts in ALL_PLANS:
    np.testing.assert_allclose(_oa_log_q(context_free, [2, 0, 3, 1], starts), expected, rtol=1e-5)


def test_parallel_plans_cost_at_least_the_sequential_one():
  """For a correlated P and exact conditionals, every plan is a normalised q with E_P[-log q] >= H(P).

  Refining a plan (adding starts) never costs more: each variable is predicted with more context.
  """
  joint = exact_model.random_joint(3, D, K, scale=1.5)
  logits_fn = exact_model.oa_logits_fn(joint, K)
  entropy = -np.sum(joint * np.log(joint))
  for order in ([0, 1, 2, 3], [1, 3, 0, 2]):
    cost = {}
    for starts in ALL_PLANS:
      log_q = _oa_log_q(logits_fn, order, starts)
      np.testing.assert_allclose(np.exp(log_q).sum(), 1.0, rtol=1e-5)
      cost[tuple(starts)] = -np.sum(joint * log_q)
      assert cost[tuple(starts)] >= entropy - 1e-5
    np.testing.assert_allclose(cost[tuple(range(D))], entropy, rtol=1e-5)
    assert cost[(0,)] > entropy + 0.05  # one call: the product of marginals loses the correlations
    for coarse, fine in itertools.permutations(cost, 2):
      if set(coarse) < set(fine):
        assert cost[fine] <= cost[coarse] + 1e-5, (coarse, fine)


@pytest.mark.parametrize("parametrisation", ["direct", "data"])
def test_upscale_likelihood_is_exact_with_budget_d_and_normalised_in_parallel(parametrisation):
  tr = upscale.digit_transitions(K, 2)  # 2 stages, K = 3 is not a power of 2
  joint = exact_model.random_joint(4, D, K)
  logits_fn = exact_model.staged_logits_fn(joint, tr, parametrisation)
  xs = jnp.asarray(exact_model.all_sequences(D, K))
  process = plan_walk.upscale_process(tr, parametrisation)
  fn = jax.jit(lambda s, p: likelihood.log_likelihood(logits_fn, xs, s, p, process)[0])
  shared = jnp.broadcast_to(jnp.array([2, 0, 3, 1]), (2, len(xs), D))  # one order for both stages
  per_stage = jnp.broadcast_to(jnp.array([[1, 2, 3, 0], [3, 0, 1, 2]])[:, None], (2, len(xs), D))
  for sigma in (shared, per_stage):
    np.testing.assert_allclose(fn(sigma, jnp.arange(D)), np.log(joint), rtol=1e-5, atol=1e-5)
  for starts in ([0], [[0, 1], [0, 3]]):  # the same plan for both stages, or one per stage
    log_q = np.asarray(fn(per_stage, jnp.asarray(starts)), np.float64)
    np.testing.assert_allclose(np.exp(log_q).sum(), 1.0, rtol=1e-5)
    assert -np.sum(joint * log_q) > -np.sum(joint * np.log(joint))


def test_bits_per_dim_under_a_plan_is_each_points_own_log_likelihood_along_a_random_order():
  """Budget D: -log2 p(x) / D exactly, whatever order each point draws; fewer calls: the same as scoring each
  point along the order it drew (every stage and example gets its own permutation)."""
  joint = exact_model.random_joint(0, D, K)
  logits_fn = exact_model.oa_logits_fn(joint, K)
  xs = jnp.asarray(exact_model.all_sequences(D, K))
  process = plan_walk.oa_process(K, K)
  bpd = likelihood.bits_per_dim(logits_fn, xs, jax.random.key(3), np.arange(D), process)
  np.testing.assert_allclose(bpd, -np.log2(joint) / D, rtol=1e-5, atol=1e-5)
  starts = np.array([0, 2])
  bpd = likelihood.bits_per_dim(logits_fn, xs, jax.random.key(3), starts, process)
  from ardm_jax.core import orders  # pylint: disable=g-import-not-at-top

  sigma = orders.sample_orders(jax.random.key(3), xs.shape)
  assert all(sorted(np.asarray(s).tolist()) == list(range(D)) for s in sigma)
  expected = -np.asarray(_oa_log_likelihood(logits_fn, xs, sigma, jnp.asarray(starts, jnp.int32))) / (np.log(2) * D)
  np.testing.assert_allclose(bpd, expected, rtol=1e-5, atol=1e-5)
  assert len({tuple(np.asarray(s)) for s in sigma}) > 1  # Points draw different orders.
