"""Orders are uniform permutations, steps are uniform (also when stratified), masks follow sigma < t."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from ardm_jax.core import orders


def test_orders_are_permutations_per_example_for_any_event_shape():
  sigma = np.asarray(orders.sample_orders(jax.random.key(0), (5, 2, 3, 2)))
  assert sigma.shape == (5, 2, 3, 2) and sigma.dtype == np.int32
  for b in range(5):
    np.testing.assert_array_equal(np.sort(sigma[b].ravel()), np.arange(12))
  assert len({tuple(s.ravel()) for s in sigma}) == 5  # examples get their own orders


def test_orders_are_uniform_over_all_permutations():
  sigma = np.asarray(orders.sample_orders(jax.random.key(1), (12000, 3)))
  perms = list(itertools.permutations(range(3)))
  counts = [np.sum(np.all(sigma == np.array(p), axis=1)) for p in perms]
  assert sum(counts) == 12000
  assert stats.chisquare(counts).pvalue > 1e-3


def test_uniform_steps_cover_range_uniformly():
  t = np.asarray(orders.sample_steps(jax.random.key(2), 20000, 7))
  assert t.dtype == np.int32 and t.min() == 0 and t.max() == 6
  assert stats.chisquare(np.bincount(t, minlength=7)).pvalue > 1e-3


def test_antithetic_steps_stratify_the_batch():
  keys = jax.random.split(jax.random.key(0), 20)
  draws = jax.jit(functools.partial(jax.lax.map, lambda k: orders.sample_steps(k, 12, 6, antithetic=True)))
  for t in np.asarray(draws(keys)):
    np.testing.assert_array_equal(np.bincount(t, minlength=6), 2 * np.ones(6))
  # B < D: example b (after sorting) falls in the b-th quarter of 0..9.
  draws = jax.jit(functools.partial(jax.lax.map, lambda k: orders.sample_steps(k, 4, 10, antithetic=True)))
  quarters = np.arange(5) * 2.5
  for t in np.sort(np.asarray(draws(keys)), axis=1):
    assert np.all(np.floor(quarters[:4]) <= t) and np.all(t <= np.floor(quarters[1:])), t


def test_antithetic_steps_are_marginally_uniform():
  draw = jax.jit(functools.partial(jax.lax.map, lambda k: orders.sample_steps(k, 3, 5, antithetic=True)))
  t = np.asarray(draw(jax.random.split(jax.random.key(3), 10000)))  # [draws, B]
  for b in range(3):  # every slot of the batch, not only the batch as a whole
    assert stats.chisquare(np.bincount(t[:, b], minlength=5)).pvalue > 1e-3


def test_masks_and_corruption_by_hand():
  sigma = jnp.array([[2, 0, 3, 1], [0, 1, 2, 3]])
  t = jnp.array([2, 0])
  known = orders.known_mask(sigma, t)
  np.testing.assert_array_equal(known, [[False, True, False, True], [False] * 4])
  np.testing.assert_array_equal(
    orders.step_mask(sigma, t, t + 2), [[True, False, True, False], [True, True, False, False]]
  )
  x = jnp.array([[5, 6, 7, 8], [1, 2, 3, 4]])
  np.testing.assert_array_equal(orders.corrupt(x, known, 128), [[128, 6, 128, 8], [128] * 4])
