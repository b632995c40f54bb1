"""Upscale transitions (digits, text8), both parametrisations, and the exact summed stage ELBO."""

import functools
import itertools
import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ardm_jax.core import objective
from ardm_jax.core import orders
from ardm_jax.core import plan_walk
from ardm_jax.core import upscale
from tests import exact_model

VOWEL_IDS = [1, 5, 9, 15, 21]  # a e i o u


@pytest.mark.parametrize(
  "num_classes,branching,num_stages", [(256, 4, 4), (256, 16, 2), (27, 4, 3), (3, 2, 2), (256, 2, 8), (16, 4, 2)]
)
def test_digit_stages_follow_the_paper_formula(num_classes, branching, num_stages):
  tr = upscale.digit_transitions(num_classes, branching)
  assert tr.num_stages == num_stages and tr.num_classes == num_classes
  assert tr.max_branching == min(branching, num_classes)
  x = np.arange(num_classes)
  for s in range(num_stages + 1):
    scale = branching ** (num_stages - s)
    np.testing.assert_array_equal(tr.state_values[s], (x // scale) * scale)
  np.testing.assert_array_equal(tr.state_values[0], np.zeros(num_classes))  # nothing known
  np.testing.assert_array_equal(tr.state_values[-1], x)  # the last stage recovers x
  digits = [(x // branching ** (num_stages - s - 1)) % branching for s in range(num_stages)]
  np.testing.assert_array_equal(tr.child_index, digits)  # "direct" targets: most significant digit first
  np.testing.assert_array_equal(sum(d * branching ** (num_stages - s - 1) for s, d in enumerate(digits)), x)


@pytest.mark.parametrize(
  "tr",
  [upscale.digit_transitions(27, 4), upscale.digit_transitions(256, 16), upscale.text8_transitions()],
  ids=["digits27b4", "digits256b16", "text8"],
)
def test_every_stage_refines_the_previous_and_children_round_trip(tr):
  x = np.arange(tr.num_classes)
  for s in range(tr.num_stages):
    coarse, fine = tr.state_values[s], tr.state_values[s + 1]
    for v in np.unique(fine):  # classes that agree at stage s+1 agree at stage s
      assert len(np.unique(coarse[fine == v])) == 1
    np.testing.assert_array_equal(tr.child_state[s, coarse, tr.child_index[s]], fine)
    np.testing.assert_array_equal(
      tr.consistent_classes[s, coarse[:, None], x[None, :]], coarse[:, None] == coarse[None, :]
    )
    for v in np.unique(coarse):
      assert tr.valid_children[s, v].sum() == len(np.unique(fine[coarse == v]))
    assert np.all(tr.valid_children[s, tr.state_values[s], tr.child_index[s]])


def test_text8_map_has_space_vowel_consonant_groups():
  tr = upscale.text8_transitions()
  assert tr.num_stages == 2 and tr.num_classes == 27 and tr.max_branching == 21
  group = tr.state_values[1]
  assert group[0] == 0 and set(group[VOWEL_IDS]) == {1}
  consonants = [k for k in range(1, 27) if k not in VOWEL_IDS]
  assert set(group[consonants]) == {2} and len(consonants) == 21
  np.testing.assert_array_equal(tr.child_index[0], group)  # stage 0 picks the group: 0, 1, 2
  np.testing.assert_array_equal(tr.child_index[1][VOWEL_IDS], np.arange(5))
  np.testing.assert_array_equal(tr.child_index[1][consonants], np.arange(21))
  np.testing.assert_array_equal(tr.valid_children[0, 0].sum(), 3)
  np.testing.assert_array_equal(tr.valid_children[1, [0, 1, 2]].sum(-1), [1, 5, 21])
  # Round trip: (group, child index) -> letter, for every letter.
  np.testing.assert_array_equal(tr.child_state[1, group, tr.child_index[1]], np.arange(27))
  assert tr.num_outputs("direct") == 21 and tr.num_outputs("data") == 27


@pytest.mark.parametrize(
  "table,message",
  [
    ([[0, 0, 0, 0], [0, 3, 0, 3], [0, 1, 2, 3]], "smallest class"),
    ([[0, 0, 0, 0], [0, 0, 2, 2], [0, 2, 2, 3]], "last stage"),
    ([[0, 1, 0, 0], [0, 1, 2, 3]], "stage 0"),
    ([[0, 0, 0, 0], [0, 1, 1, 3], [0, 0, 2, 2], [0, 1, 2, 3]], "does not refine"),
  ],
)
def test_invalid_tables_are_rejected_with_a_reason(table, message):
  with pytest.raises(ValueError, match=message):
    upscale.make_transitions(table)


def test_bad_parametrisation_or_logit_count_is_rejected():
  tr = upscale.digit_transitions(16, 4)
  coarse = jnp.zeros((1, 3), jnp.int32)
  with pytest.raises(ValueError, match="parametrisation must be one of"):
    upscale.next_state_log_probs(tr, jnp.zeros((1, 3, 4)), coarse, 0, "bits")
  with pytest.raises(ValueError, match="needs 16 logits"):
    upscale.next_state_log_probs(tr, jnp.zeros((1, 3, 4)), coarse, 0, "data")


def test_network_input_by_hand():
  process = plan_walk.upscale_process(upscale.digit_transitions(16, 4), "direct")  # the 4s digit, then the units
  x = jnp.array([[5, 14, 7]])
  known = orders.known_mask(jnp.array([[1, 0, 2]]), jnp.array([1]))

  def network_input(stage):
    refined, coarse = plan_walk.stage_values(process, x, stage + 1), plan_walk.stage_values(process, x, stage)
    return plan_walk.network_input(process, refined, coarse, known, stage)

  np.testing.assert_array_equal(known, [[False, True, False]])
  np.testing.assert_array_equal(network_input(1), [[4, 14, 4]])  # known: the fine value; others: the stage-1 value
  np.testing.assert_array_equal(network_input(0), [[0, 12, 0]])


@pytest.mark.parametrize(
  "tr", [upscale.digit_transitions(27, 4), upscale.text8_transitions()], ids=["digits27b4", "text8"]
)
@pytest.mark.parametrize("parametrisation", ["direct", "data"])
def test_log_probs_are_normalised_over_the_possible_outputs_only(tr, parametrisation):
  batch = 64
  x = jax.random.randint(jax.random.key(0), (batch, 5), 0, tr.num_classes)
  logits = 3.0 * jax.random.normal(jax.random.key(1), (batch, 5, tr.num_outputs(parametrisation)))

  @jax.jit
  def probs_at(s):
    coarse = upscale.stage_values(tr, x, s)
    log_probs = upscale.next_state_log_probs(tr, logits, coarse, s, parametrisation)
    return coarse, log_probs, upscale.refined_log_prob(tr, log_probs, x, s, parametrisation)

  table = tr.valid_children if parametrisation == "direct" else tr.consistent_classes
  for s in range(tr.num_stages):
    coarse, log_probs, log_p_true = (np.asarray(a) for a in probs_at(s))
    possible = table[s][coarse]
    assert np.all(np.isneginf(log_probs[~possible])) and np.all(np.isfinite(log_probs[possible]))
    np.testing.assert_allclose(np.exp(log_probs).sum(-1), 1.0, rtol=1e-5)
    assert np.all(np.isfinite(log_p_true))  # the true next value of x is always possible
    if s == 0 and parametrisation == "direct" and tr.max_branching == 4:  # 27 < 2 * 16: first digit 0 or 1
      assert np.all(np.isneginf(log_probs[..., 2:])) and np.all(np.isfinite(log_probs[..., :2]))


def _enumerated_elbo(tr, parametrisation, num_variables, seed):
  """([K^D] average over all global steps and orders of the upscale ELBO, [K^D] log P, step losses)."""
  joint = exact_model.random_joint(seed, num_variables, tr.num_classes)
  logits_fn = exact_model.staged_logits_fn(joint, tr, parametrisation)
  xs = exact_model.all_sequences(num_variables, tr.num_classes)
  perms = np.array(list(itertools.permutations(range(num_variables))), np.int32)
  num_steps = tr.num_stages * num_variables
  n, p, g = (
    a.ravel() for a in np.meshgrid(np.arange(len(xs)), np.arange(len(perms)), np.arange(num_steps), indexing="ij")
  )
  process = plan_walk.upscale_process(tr, parametrisation)
  loss_at = jax.jit(lambda x, s, t: objective.ardm_loss_at(process, logits_fn, x, s, t)[1])
  terms = loss_at(jnp.asarray(xs[n]), jnp.asarray(perms[p]), jnp.asarray(g, jnp.int32))
  elbo = -np.asarray(terms.per_example["nelbo_bpd"]).reshape(len(xs), -1) * num_variables * math.log(2)
  step_loss = np.asarray(terms.per_example["step_loss"]).reshape(len(xs), len(perms), num_steps)
  return elbo.mean(1), np.log(joint), step_loss.mean(1).sum(1)


ELBO_CASES = {
  "digits_K3_b2_D3": lambda: (upscale.digit_transitions(3, 2), 3),
  "text8_D2": lambda: (upscale.text8_transitions(), 2),
  "bits_K16_b2_D2": lambda: (upscale.digit_transitions(16, 2), 2),  # 4 one-bit stages, as 16-bit audio's 16
}


@pytest.mark.parametrize("parametrisation", ["direct", "data"])
@pytest.mark.parametrize("case", list(ELBO_CASES))
def test_summed_stage_elbo_equals_exact_log_likelihood(case, parametrisation):
  tr, num_variables = ELBO_CASES[case]()
  elbo, log_p, steps_bpd = _enumerated_elbo(tr, parametrisation, num_variables, seed=1)
  np.testing.assert_allclose(elbo, log_p, rtol=1e-5, atol=2e-5)
  np.testing.assert_allclose(steps_bpd, -log_p / (num_variables * math.log(2)), rtol=1e-5, atol=2e-6)


def test_sampled_upscale_loss_is_unbiased_and_stratified():
  tr = upscale.digit_transitions(3, 2)
  joint = exact_model.random_joint(2, 3, 3)
  logits_fn = exact_model.staged_logits_fn(joint, tr, "data")
  xs = jnp.asarray(exact_model.all_sequences(3, 3))  # B = 27
  process = plan_walk.upscale_process(tr, "data")
  one_draw = lambda key: objective.ardm_loss(process, logits_fn, xs, key, antithetic=True)[1]
  draw = jax.jit(functools.partial(jax.lax.map, one_draw))
  terms = draw(jax.random.split(jax.random.key(3), 300))
  batch_means = np.asarray(terms.scalars["nelbo_bpd"], np.float64)
  exact_bpd = np.mean(-np.log2(joint)) / 3
  assert abs(batch_means.mean() - exact_bpd) < 4 * batch_means.std(ddof=1) / np.sqrt(300)
  counts = np.stack([np.bincount(t, minlength=6) for t in np.asarray(terms.per_example["t"])])
  assert counts.min() >= 4 and counts.max() <= 5  # 27 examples over S*D = 6 global steps


@pytest.mark.parametrize("parametrisation", ["direct", "data"])
def test_gradient_only_reaches_possible_outputs_of_unknown_variables(parametrisation):
  tr = upscale.digit_transitions(27, 4)
  x = jax.random.randint(jax.random.key(4), (4, 6), 0, 27)
  sigma = jnp.stack([jax.random.permutation(k, 6) for k in jax.random.split(jax.random.key(5), 4)])
  t_global = jnp.array([2, 6 + 3, 12 + 0, 12 + 5], jnp.int32)
  params = jax.random.normal(jax.random.key(6), (4, 6, tr.num_outputs(parametrisation)))

  def loss(p):
    process = plan_walk.upscale_process(tr, parametrisation)
    return objective.ardm_loss_at(process, lambda x_in, known, t: p, x, sigma, t_global, ce_weight=0.1)[0]

  grad = np.abs(np.asarray(jax.jit(jax.grad(loss))(params)))
  stage, t = np.asarray(t_global) // 6, np.asarray(t_global) % 6
  known = np.asarray(sigma) < t[:, None]
  table = tr.valid_children if parametrisation == "direct" else tr.consistent_classes
  possible = table[stage[:, None], tr.state_values[stage[:, None], np.asarray(x)]]  # [B, D, C]
  assert np.all(grad[known] == 0.0)
  assert np.all(grad[~known][~possible[~known]] == 0.0)
  assert np.all(grad[~known].sum(-1) > 1e-5)


@pytest.mark.parametrize("branching,num_stages", [(2, 16), (65536, 1)])
def test_16_bit_tables_are_small_and_refine_bit_by_bit(branching, num_stages):
  start = time.perf_counter()
  tr = upscale.digit_transitions(65536, branching)  # 16-bit audio: bit upscaling, and the OA-ARDM's one stage
  assert time.perf_counter() - start < 10.0
  assert tr.num_stages == num_stages and tr.max_branching == branching
  # [S+1, K] and [S, K] tables only: the [S, K, C] and [S, K, K] ones are built only when asked for.
  assert sum(a.nbytes for a in (tr.state_values, tr.child_index, tr.num_children)) < 16 * 2**20
  assert not {"valid_children", "child_state", "consistent_classes"} & set(vars(tr))
  assert tr.all_allowed("direct")
  x = jnp.asarray([[0, 1, 32767, 32768, 65535, 43690]], jnp.int32)
  bits = (np.asarray(x)[..., None] >> np.arange(15, -1, -1)) & 1  # most significant first
  values = jnp.zeros_like(x)
  for s in range(num_stages):
    child = upscale.class_lookup(tr.child_index, s, x)
    if branching == 2:
      np.testing.assert_array_equal(child, bits[..., s])
    values = upscale.refine_values(tr, values, child, s)
    np.testing.assert_array_equal(values, upscale.stage_values(tr, x, s + 1))
  np.testing.assert_array_equal(values, x)
  log_probs = upscale.next_state_log_probs(tr, jnp.zeros((1, 6, branching)), jnp.zeros_like(x), 0, "direct")
  np.testing.assert_allclose(np.exp(log_probs).sum(-1), 1.0, rtol=1e-5)


def test_sixteen_bit_stages_sum_to_the_exact_log_likelihood():
  """Bit upscaling of 16-bit audio (b = 2, S = 16) with the true conditionals of a product of two random
  distributions over the 65,536 values: the ELBO averaged over all 2 x 16 global steps and both orders is
  log p(x) exactly, for values across the range (the 16 stages telescope; arXiv 2110.02037, section 4.1)."""
  num_classes, num_variables = 65536, 2
  tr = upscale.digit_transitions(num_classes, 2)
  rs = np.random.RandomState(3)
  probs_DxK = rs.gamma(0.3, size=(num_variables, num_classes)) + 1e-12
  probs_DxK /= probs_DxK.sum(-1, keepdims=True)
  # log P(group) of every bit level L (groups of 2^(16-L) values, 2^L of them), in float64, at offset 2^L - 1.
  levels = [np.log(probs_DxK.reshape(num_variables, 2**level, -1).sum(-1)) for level in range(17)]
  log_mass_DxG = jnp.asarray(np.concatenate(levels, -1), jnp.float32)

  def logits_fn(x_in, known, t):
    del known  # the known variables' outputs are never scored
    stage = (t // num_variables)[:, None, None]
    children = x_in[..., None] + (2 ** (15 - stage)) * jnp.arange(2)  # [B, D, 2]: v and v + 2^(15-s)
    index = 2 ** (stage + 1) - 1 + (children >> (15 - stage))  # their groups at level s + 1
    return jnp.take_along_axis(jnp.broadcast_to(log_mass_DxG, (x_in.shape[0],) + log_mass_DxG.shape), index, -1)

  xs = np.stack([rs.randint(0, num_classes, 40), rs.randint(0, num_classes, 40)], 1).astype(np.int32)
  xs[:4] = [[0, 65535], [65535, 0], [32767, 32768], [1, 2]]
  perms = np.array([[0, 1], [1, 0]], np.int32)
  num_steps = tr.num_stages * num_variables
  n, p, g = (a.ravel() for a in np.meshgrid(np.arange(len(xs)), np.arange(2), np.arange(num_steps), indexing="ij"))
  process = plan_walk.upscale_process(tr, "direct")
  loss_at = jax.jit(lambda x, s, t: objective.ardm_loss_at(process, logits_fn, x, s, t)[1])
  terms = loss_at(jnp.asarray(xs[n]), jnp.asarray(perms[p]), jnp.asarray(g, jnp.int32))
  elbo = -np.asarray(terms.per_example["nelbo_bpd"], np.float64).reshape(len(xs), -1) * num_variables * math.log(2)
  log_p = np.log(probs_DxK[0, xs[:, 0]]) + np.log(probs_DxK[1, xs[:, 1]])
  np.testing.assert_allclose(elbo.mean(1), log_p, rtol=1e-5, atol=1e-4)
