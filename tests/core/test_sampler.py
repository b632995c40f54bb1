"""Samples under a plan follow the distribution the plan defines (chi-square tests, fixed seeds).

Each test draws 20000 samples from an exact network and accepts when the chi-square p-value is > 1e-3.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from ardm_jax.core import likelihood
from ardm_jax.core import plan_walk
from ardm_jax.core import sampler
from ardm_jax.core import upscale
from tests import exact_model

D, K, N = 3, 3, 20000
P_VALUE = 1e-3


def _frequencies(samples, num_variables, num_classes):
  samples = np.asarray(samples).reshape(len(samples), -1)
  cells = np.ravel_multi_index(samples.T, (num_classes,) * num_variables)
  return np.bincount(cells, minlength=num_classes**num_variables)


def _assert_follows(samples, probs, num_variables=D, num_classes=K):
  probs = np.asarray(probs, np.float64) / np.sum(probs)
  observed = _frequencies(samples, num_variables, num_classes)
  p_value = stats.chisquare(observed, probs * observed.sum()).pvalue
  assert p_value > P_VALUE, p_value


def _sample_oa(logits_fn, starts, seed):
  fn = jax.jit(lambda key, p: sampler.sample(logits_fn, key, p, (N, D), plan_walk.oa_process(K, K)))
  return fn(jax.random.key(seed), jnp.asarray(starts, jnp.int32))


def test_sequential_sampling_matches_the_joint():
  joint = exact_model.random_joint(0, D, K)
  samples = _sample_oa(exact_model.oa_logits_fn(joint, K), np.arange(D), seed=0)
  assert samples.shape == (N, D) and samples.dtype == jnp.int32
  _assert_follows(samples, joint)


def test_one_call_samples_the_product_of_marginals():
  joint = exact_model.random_joint(0, D, K)
  samples = _sample_oa(exact_model.oa_logits_fn(joint, K), [0], seed=1)
  _assert_follows(samples, exact_model.product_of_marginals(joint, D, K))
  # The joint itself is far from it: the test can tell the two apart.
  assert stats.chisquare(_frequencies(samples, D, K), joint * N).pvalue < 1e-10


def test_parallel_plan_samples_the_order_mixture_of_its_likelihood():
  """Plan [0, 2]: the sample law is the average over random orders of the plan's q_sigma(x)."""
  joint = exact_model.random_joint(0, D, K)
  logits_fn = exact_model.oa_logits_fn(joint, K)
  xs = jnp.asarray(exact_model.all_sequences(D, K))
  log_q = jax.jit(lambda order: likelihood.log_likelihood(logits_fn, xs, order, [0, 2], plan_walk.oa_process(K, K))[0])
  q = np.mean(
    [np.exp(np.asarray(log_q(jnp.asarray(order)), np.float64)) for order in itertools.permutations(range(D))], axis=0
  )
  counted_fn, seen = exact_model.count_calls(logits_fn)
  samples = _sample_oa(counted_fn, [0, 2], seed=2)
  jax.effects_barrier()
  assert [int(t[0]) for t in seen] == [0, 2]  # one network call per planned step
  _assert_follows(samples, q)


def test_upscale_sampler_calls_the_network_once_per_planned_step_of_each_stage():
  tr = upscale.digit_transitions(K, 2)
  staged_fn, seen = exact_model.count_calls(exact_model.staged_logits_fn(exact_model.random_joint(0, D, K), tr, "data"))
  jax.jit(lambda key: sampler.sample(staged_fn, key, [[0, 1], [0, 2]], (4, D), plan_walk.upscale_process(tr, "data")))(
    jax.random.key(0)
  )
  jax.effects_barrier()
  assert [int(t[0]) for t in seen] == [0, 1, D + 0, D + 2]  # global steps stage * D + start


def test_upscale_sequential_sampling_matches_the_joint():
  tr = upscale.digit_transitions(K, 2)  # 2 stages; K = 3 is not a power of 2
  joint = exact_model.random_joint(5, D, K)
  for seed, parametrisation in enumerate(("direct", "data")):
    logits_fn = exact_model.staged_logits_fn(joint, tr, parametrisation)
    process = plan_walk.upscale_process(tr, parametrisation)
    samples = jax.jit(lambda key: sampler.sample(logits_fn, key, np.arange(D), (N, D), process))(jax.random.key(seed))
    _assert_follows(samples, joint)


def test_text8_upscale_sampling_matches_the_letter_distribution():
  """One variable, 27 letters: group first (space / vowel / consonant), then the letter."""
  tr = upscale.text8_transitions()
  probs = exact_model.random_joint(6, 1, 27, scale=0.5)
  for seed, parametrisation in enumerate(("direct", "data")):
    logits_fn = exact_model.staged_logits_fn(probs, tr, parametrisation)
    process = plan_walk.upscale_process(tr, parametrisation)
    samples = jax.jit(lambda key: sampler.sample(logits_fn, key, [0], (N, 1), process))(jax.random.key(seed))
    _assert_follows(samples, probs, num_variables=1, num_classes=27)
