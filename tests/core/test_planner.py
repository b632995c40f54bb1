"""Tests for ardm_jax.planner: exact optimality against brute force and a plain DP, API contract, errors."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from ardm_jax.core import planner


def _cost(losses, starts):
  ends = list(starts[1:]) + [len(losses)]
  return sum((end - start) * losses[start] for start, end in zip(starts, ends))


def _brute_force_costs(losses):
  """Minimum over every plan with b calls, for b = 1..D: [D]."""
  num_steps = len(losses)
  later_starts = range(1, num_steps)
  return np.array(
    [
      min(_cost(losses, (0,) + rest) for rest in itertools.combinations(later_starts, b - 1))
      for b in range(1, num_steps + 1)
    ]
  )


def _reference_costs(losses, max_budget):
  """The paper's layered DP, O(B D^2) in numpy: optimal cost for budgets 1..max_budget."""
  num_steps = len(losses)
  t = np.arange(num_steps + 1)[:, None]
  s = np.arange(num_steps)[None, :]
  costs = np.full(num_steps + 1, np.inf)
  costs[0] = 0.0
  final = []
  for _ in range(max_budget):
    candidates = np.where(s < t, costs[None, :num_steps] + (t - s) * losses[None, :], np.inf)
    costs = candidates.min(axis=1)
    final.append(costs[num_steps])
  return np.array(final)


def _small_loss_vectors(num_steps):
  rng = np.random.default_rng(num_steps)
  yield planner.sort_step_losses(rng.exponential(size=num_steps))  # distinct floats
  yield planner.sort_step_losses(rng.integers(0, 4, size=num_steps))  # ties and zeros
  yield planner.sort_step_losses(
    np.concatenate([np.full(num_steps - num_steps // 2, 1.5), np.zeros(num_steps // 2)])
  )  # one plateau, zero tail


def _assert_valid_starts(starts, budget, num_steps):
  assert starts.shape == (budget,)
  assert starts[0] == 0
  assert np.all(np.diff(starts) > 0)
  assert starts[-1] < num_steps


@pytest.mark.parametrize("num_steps", range(1, 11))
def test_every_budget_matches_brute_force(num_steps):
  for losses in _small_loss_vectors(num_steps):
    expected = _brute_force_costs(losses)
    np.testing.assert_allclose(planner.plan_all(losses), expected, rtol=1e-12, atol=1e-12)
    for budget in range(1, num_steps + 1):
      result = planner.plan(losses, budget)
      _assert_valid_starts(result.starts, budget, num_steps)
      np.testing.assert_allclose(result.cost, expected[budget - 1], rtol=1e-12, atol=1e-12)
      np.testing.assert_allclose(_cost(losses, result.starts), expected[budget - 1], rtol=1e-12, atol=1e-12)


def test_cost_is_the_cost_of_the_returned_starts():
  losses = planner.sort_step_losses(np.random.default_rng(1).gamma(0.5, size=40))
  for budget in (1, 3, 10, 39):
    result = planner.plan(losses, budget)
    lengths = np.diff(np.append(result.starts, len(losses)))
    assert result.cost == pytest.approx(float(np.sum(lengths * losses[result.starts])), rel=1e-14)


def test_plan_all_matches_plan_and_is_non_increasing_and_convex():
  losses = planner.sort_step_losses(np.random.default_rng(2).exponential(size=40))
  costs = planner.plan_all(losses)
  assert costs.shape == (40,)
  np.testing.assert_allclose(costs, [planner.plan(losses, b).cost for b in range(1, 41)], rtol=1e-12)
  assert np.all(np.diff(costs) <= 0)
  assert np.all(np.diff(costs, 2) >= -1e-12)  # Monge costs are convex in the budget


def test_full_budget_generates_one_step_per_call():
  losses = planner.sort_step_losses(np.random.default_rng(3).exponential(size=40))
  result = planner.plan(losses, 40)
  np.testing.assert_array_equal(result.starts, np.arange(40))
  assert result.cost == pytest.approx(losses.sum(), rel=1e-14)


def test_paper_example():
  losses = [5, 4, 3, 2.85, 2.80]
  np.testing.assert_allclose(planner.plan_all(losses), [25, 19, 18, 17.7, 17.65], rtol=1e-12)
  np.testing.assert_allclose([planner.plan(losses, b).cost for b in range(1, 6)], [25, 19, 18, 17.7, 17.65], rtol=1e-12)
  np.testing.assert_array_equal(planner.plan(losses, 2).starts, [0, 2])


def _larger_loss_vectors(num_steps):
  t = np.arange(num_steps) / num_steps
  noisy = 1 + 6 * np.exp(-4 * t) + 0.1 * np.random.default_rng(4).standard_normal(num_steps)
  yield planner.sort_step_losses(np.maximum(noisy, 0))  # a smooth loss curve
  yield planner.sort_step_losses(np.random.default_rng(5).integers(0, 6, size=num_steps) / 4)  # ties, zeros


@pytest.mark.parametrize("losses", _larger_loss_vectors(300))
def test_matches_reference_dp_on_a_larger_case(losses):
  num_steps = len(losses)
  budgets = (1, 2, 7, 20, 64, 150, 299, 300)
  expected = _reference_costs(losses, max(budgets))
  for budget in budgets:
    result = planner.plan(losses, budget)
    _assert_valid_starts(result.starts, budget, num_steps)
    assert result.cost == pytest.approx(expected[budget - 1], rel=1e-12)
  np.testing.assert_allclose(planner.plan_all(losses), expected, rtol=1e-12)


def test_budget_sized_argmin_table_for_large_d(monkeypatch):
  monkeypatch.setattr(planner, "_MAX_TABLE_STEPS", 4)  # D = 9 takes the large-D path (tables by budget)
  losses = planner.sort_step_losses(np.random.default_rng(5).exponential(size=9))
  expected = _brute_force_costs(losses)
  np.testing.assert_allclose(planner.plan_all(losses), expected, rtol=1e-12)
  for budget in (2, 9):
    result = planner.plan(losses, budget)
    _assert_valid_starts(result.starts, budget, 9)
    assert _cost(losses, result.starts) == pytest.approx(expected[budget - 1], rel=1e-12)


def test_sort_step_losses_sorts_descending():
  sorted_losses = planner.sort_step_losses(np.float32([0.5, 3.0, 0.0, 2.0]))
  np.testing.assert_array_equal(sorted_losses, [3.0, 2.0, 0.5, 0.0])


def test_library_default_precision_is_unchanged():
  planner.plan([3.0, 2.0, 1.0], 2)
  assert jnp.zeros(1).dtype == jnp.float32


@pytest.mark.parametrize(
  "budget, message",
  [
    (0, r"budget must be in 1\.\.D"),
    (4, r"budget must be in 1\.\.D"),
    (2.0, "budget must be an integer"),
    (1.5, "budget must be an integer"),
    ("2", "budget must be an integer"),
    (True, "budget must be an integer"),
  ],
)
def test_bad_budget_raises(budget, message):
  with pytest.raises(ValueError, match=message):
    planner.plan([3.0, 2.0, 1.0], budget)


@pytest.mark.parametrize(
  "losses, message",
  [
    ([3.0, 1.0, 2.0], r"descending.*step_losses\[1\] = 1\.0 < step_losses\[2\] = 2\.0"),
    ([3.0, np.nan, 1.0], "finite"),
    ([np.inf, 2.0, 1.0], "finite"),
    ([3.0, 2.0, -1.0], "non-negative"),
    ([[3.0, 2.0], [1.0, 0.0]], "1-D"),
    (3.0, "1-D"),
    ([], "empty"),
    (["a", "b"], "real numbers"),
  ],
)
def test_bad_step_losses_raise(losses, message):
  with pytest.raises(ValueError, match=message):
    planner.plan(losses, 1)
  with pytest.raises(ValueError, match=message):
    planner.plan_all(losses)


@pytest.mark.parametrize("num_steps, budget", [(10, 1), (10, 3), (10, 10), (250, 20), (7, 6)])
def test_evenly_spaced_calls_start_at_zero_increase_and_never_beat_the_optimum(num_steps, budget):
  starts = planner.even_starts(num_steps, budget)
  assert starts[0] == 0 and len(starts) == budget and np.all(np.diff(starts) > 0) and starts[-1] < num_steps
  np.testing.assert_array_equal(planner.even_starts(num_steps, num_steps), np.arange(num_steps))
  losses = planner.sort_step_losses(np.random.RandomState(budget).exponential(size=num_steps))
  assert planner.plan(losses, budget).cost <= planner.plan_cost(losses, starts) + 1e-9
