"""The discretized logistic mixture as the output head of the one plan walk: objective, likelihood, sampler and
coder on small exact cases.

The network here ignores its input and returns fixed mixture parameters per variable, so it is an exact model
of the product distribution p(x) = prod_d P_d(x_d) of those mixtures: every conditional the walks ask for is
P_d itself (restricted to the current group for upscaling), and the ELBO averaged over all steps and orders is
log p(x) exactly.
"""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ardm_jax.codec import coder
from ardm_jax.core import distributions
from ardm_jax.core import likelihood
from ardm_jax.core import objective
from ardm_jax.core import plan_walk
from ardm_jax.core import sampler
from ardm_jax.core import upscale

K, D, M = 16, 3, 2


def _params(seed=0):
  """float32 [1, D, 3M]: per-variable mixture parameters (weight logits, means, log-scales)."""
  rs = np.random.RandomState(seed)
  return jnp.asarray(
    np.concatenate([rs.normal(size=(1, D, M)), rs.uniform(-1, 1, (1, D, M)), rs.uniform(-2.5, -0.5, (1, D, M))], -1),
    jnp.float32,
  )


def _fixed_network(params_1xDx3M):
  def logits_fn(x_in, known, t):
    del known, t
    return jnp.broadcast_to(params_1xDx3M, (x_in.shape[0], *params_1xDx3M.shape[1:]))

  return logits_fn


def _log_p(params_1xDx3M, xs):
  """float64 [N]: log prod_d P_d(x_d)."""
  table = np.asarray(distributions.class_log_probs(params_1xDx3M, K), np.float64)[0]  # [D, K]
  return table[np.arange(D), xs].sum(-1)


PROCESSES = {
  "oa": lambda: plan_walk.oa_process(K, K // 2, num_mixtures=M),
  "upscale_bits": lambda: plan_walk.upscale_process(upscale.digit_transitions(K, 2), "data", num_mixtures=M),
}


@pytest.mark.parametrize("name", list(PROCESSES))
def test_elbo_over_all_steps_and_orders_is_the_exact_log_likelihood(name):
  process, params = PROCESSES[name](), _params()
  xs = np.array(list(itertools.product(range(K), repeat=D)), np.int32)[::37]  # 111 of the 4096 sequences
  perms = np.array(list(itertools.permutations(range(D))), np.int32)
  num_steps = process.num_stages * D
  n, p, g = (a.ravel() for a in np.meshgrid(np.arange(len(xs)), np.arange(len(perms)), np.arange(num_steps)))
  loss_at = jax.jit(lambda x, s, t: objective.ardm_loss_at(process, _fixed_network(params), x, s, t)[1])
  terms = loss_at(jnp.asarray(xs[n]), jnp.asarray(perms[p]), jnp.asarray(g, jnp.int32))
  elbo = np.zeros(len(xs))
  np.add.at(elbo, n, -np.asarray(terms.per_example["nelbo_bpd"], np.float64) * D * math.log(2))
  np.testing.assert_allclose(elbo / (len(perms) * num_steps), _log_p(params, xs), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(PROCESSES))
def test_objective_and_likelihood_agree_with_the_class_log_probs(name):
  """The objective's interval probabilities (no K array) equal the K class log-probs the other walks use."""
  process, params = PROCESSES[name](), _params(1)
  xs = jax.random.randint(jax.random.key(0), (32, D), 0, K)
  sigma = jnp.asarray(np.stack([np.random.RandomState(i).permutation(D) for i in range(32)]), jnp.int32)
  t_global = jnp.arange(32, dtype=jnp.int32) % (process.num_stages * D)
  stage, t = t_global // D, t_global % D

  @jax.jit
  def fast_and_slow(xs, sigma, t, stage):
    fast = plan_walk.step_log_px(process, _fixed_network(params), xs, sigma, t, stage)
    coarse = plan_walk.stage_values(process, xs, stage)
    log_probs = plan_walk.children_log_probs(process, jnp.broadcast_to(params, (32, D, 3 * M)), coarse, stage)
    slow = jnp.take_along_axis(log_probs, plan_walk.child_number(process, xs, stage)[..., None], -1)[..., 0]
    return fast, jnp.sum(jnp.where(sigma >= t[:, None], slow, 0.0), -1)

  fast, slow = fast_and_slow(xs, sigma, t, stage)
  np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-5)
  log_px, _ = jax.jit(
    lambda xs, sigma: likelihood.log_likelihood(_fixed_network(params), xs, sigma, jnp.arange(D), process)
  )(xs, sigma)
  np.testing.assert_allclose(log_px, _log_p(params, np.asarray(xs)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(PROCESSES))  # oa: drawn directly; upscale: from the class log-probs
def test_sampler_draws_from_the_mixture(name):
  process, params = PROCESSES[name](), _params(2)
  draws = jax.jit(lambda rng: sampler.sample(_fixed_network(params), rng, jnp.asarray([0, 2]), (4000, D), process))(
    jax.random.key(3)
  )
  probs = np.exp(np.asarray(distributions.class_log_probs(params, K), np.float64))[0]  # [D, K]
  for d in range(D):
    frequencies = np.bincount(np.asarray(draws[:, d]), minlength=K) / 4000
    np.testing.assert_allclose(frequencies, probs[d], atol=5 * np.sqrt(probs[d].max() / 4000))


@pytest.mark.parametrize("name", list(PROCESSES))
def test_coding_round_trips_near_the_code_length(name):
  process, params = PROCESSES[name](), _params(3)
  logits_fn = jax.jit(_fixed_network(params))
  xs = np.asarray(jax.random.randint(jax.random.key(4), (4, D), 0, K), np.int32)
  sigma, starts = np.array([2, 0, 1]), [0, 1, 2]
  messages = coder.encode(logits_fn, xs, sigma, starts, process, batch_size=4)
  np.testing.assert_array_equal(coder.decode(logits_fn, messages, sigma, starts, process, xs.shape, batch_size=4), xs)
  for message, log_p in zip(messages, _log_p(params, xs)):
    # The header and the ANS flush (96 bits), and the smoothing of each of the S * D coded choices.
    assert coder.compressed_bits(message) <= -log_p / math.log(2) + 96 + process.num_stages * D * 0.01


def test_digits_of_a_mixture_choice():
  """A choice among C children is coded in the fewest digits of at most 256 values (16-bit audio: two bytes)."""
  assert [coder._digits(c) for c in (2, 27, 256, 257, 300, 65536)] == [
    (1, 2),
    (1, 27),
    (1, 256),
    (2, 17),
    (2, 18),
    (2, 256),
  ]
  for c in (2, 27, 256, 257, 300, 65536, 70000):
    levels, base = coder._digits(c)
    assert base <= coder.MAX_DIGIT_BASE and base**levels >= c and (base - 1) ** levels < c


@pytest.mark.parametrize("num_classes", [300, 65536])  # two digits each: 18 x 18 (the last digits cut), 256 x 256
def test_coding_many_classes_in_digits_round_trips_near_the_code_length(num_classes):
  """Classes coded as two digits, each an interval probability of the mixture: the same model, P(k) =
  P(high digit) P(low digit | high), so the code length is still -log2 P(x) (no K-wide table is built)."""
  num_variables, mixtures = 8, 3
  rs = np.random.RandomState(5)
  params = jnp.asarray(
    np.concatenate(
      [
        rs.normal(size=(1, num_variables, mixtures)),
        rs.uniform(-0.8, 0.8, (1, num_variables, mixtures)),
        rs.uniform(-6, -3, (1, num_variables, mixtures)),
      ],
      -1,
    ),  # fmt: skip
    jnp.float32,
  )
  process = plan_walk.oa_process(num_classes, num_classes // 2, num_mixtures=mixtures)
  logits_fn = jax.jit(_fixed_network(params))
  shape = (3, num_variables, 3 * mixtures)
  xs = np.array(distributions.sample(jax.random.key(6), jnp.broadcast_to(params, shape), num_classes), np.int32)
  xs[0, 0], xs[1, 0] = 0, num_classes - 1  # the open end bins
  sigma, starts = rs.permutation(num_variables), [0, 3, 5]
  messages = coder.encode(logits_fn, xs, sigma, starts, process, batch_size=2)
  np.testing.assert_array_equal(coder.decode(logits_fn, messages, sigma, starts, process, xs.shape, batch_size=2), xs)
  log_p = np.asarray(
    distributions.interval_log_prob(jnp.broadcast_to(params, (3, num_variables, 3 * mixtures)), xs, xs, num_classes),
    np.float64,
  ).sum(-1)
  for message, lp in zip(messages, log_p):
    bits = coder.compressed_bits(message)
    assert -lp / math.log(2) - 64 <= bits <= -lp / math.log(2) + 96 + 2 * num_variables * 0.01


def test_the_likelihood_of_a_16_bit_model_never_forms_the_class_log_probs():
  """XLA's memory analysis of the fixed-order likelihood at K = 65,536: interval probabilities need a few MiB;
  the [B, D, K] class log-probs would need 8 x 512 x 65536 x 4 bytes = 1 GiB."""
  num_variables, mixtures = 512, 4
  process = plan_walk.oa_process(65536, 32768, num_mixtures=mixtures)
  params = jnp.zeros((1, num_variables, 3 * mixtures), jnp.float32)
  xs = jnp.zeros((8, num_variables), jnp.int32)
  sigma = jnp.arange(num_variables, dtype=jnp.int32)
  log_px = jax.jit(
    lambda x: likelihood.log_likelihood(_fixed_network(params), x, sigma, jnp.arange(0, 512, 64), process)
  )
  memory = log_px.lower(xs).compile().memory_analysis()
  assert memory.temp_size_in_bytes < 64 * 2**20, memory


@pytest.mark.parametrize("num_classes, branching", [(16, 2), (300, 16)])  # 300: the last children are cut short
def test_upscale_children_by_intervals_equal_the_totals_of_their_class_log_probs(num_classes, branching):
  tr = upscale.digit_transitions(num_classes, branching)
  process = plan_walk.upscale_process(tr, "data", num_mixtures=M)
  rs = np.random.RandomState(7)
  params = jnp.asarray(
    np.concatenate([rs.normal(size=(6, D, M)), rs.uniform(-1, 1, (6, D, M)), rs.uniform(-4, -1, (6, D, M))], -1),
    jnp.float32,
  )
  xs = jnp.asarray(rs.randint(0, num_classes, (6, D)), jnp.int32)
  for stage in range(tr.num_stages):
    coarse = plan_walk.stage_values(process, xs, stage)
    fast = plan_walk.mixture_children_log_probs(process, params, coarse, stage)
    class_log_probs = upscale.next_state_log_probs(
      tr, distributions.class_log_probs(params, num_classes), coarse, stage, "data"
    )
    to_child = tr.child_index[stage][None, None, :, None] == np.arange(tr.max_branching)  # [1, 1, K, C]
    slow = jax.nn.logsumexp(jnp.where(to_child, class_log_probs[..., None], -jnp.inf), axis=-2)
    np.testing.assert_allclose(np.exp(fast), np.exp(slow), atol=2e-6)
    np.testing.assert_array_equal(np.isfinite(fast), np.isfinite(slow))
