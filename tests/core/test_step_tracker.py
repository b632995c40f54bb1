"""The per-step loss EMA: hand-computed updates, duplicate steps averaged, unseen steps untouched."""

import jax
import jax.numpy as jnp
import numpy as np

from ardm_jax.core import step_tracker


def test_updates_by_hand():
  update = jax.jit(step_tracker.update, static_argnames="momentum")
  tracker = step_tracker.init(6)
  # Step 1 appears twice (mean 3), step 3 once; the first observation initialises, no decay from 0.
  tracker = update(tracker, jnp.array([1, 3, 1]), jnp.array([2.0, 5.0, 4.0]))
  np.testing.assert_allclose(tracker.ema, [0, 3, 0, 5, 0, 0])
  np.testing.assert_array_equal(tracker.count, [0, 2, 0, 1, 0, 0])
  # Step 1 again (mean of 1 and 3 is 2): 0.95 * 3 + 0.05 * 2; step 4 is new; step 3 keeps its value.
  tracker = update(tracker, jnp.array([1, 4, 1]), jnp.array([1.0, 7.0, 3.0]))
  np.testing.assert_allclose(tracker.ema, [0, 0.95 * 3 + 0.05 * 2, 0, 5, 7, 0], rtol=1e-6)
  np.testing.assert_array_equal(tracker.count, [0, 4, 0, 1, 1, 0])
  tracker = update(tracker, jnp.array([3]), jnp.array([1.0]), momentum=0.5)
  np.testing.assert_allclose(tracker.ema[3], 3.0)


def test_tracker_is_a_pytree_usable_in_scan():
  """Many updates inside one jitted scan: a constant loss per step converges to that constant."""
  targets = jnp.arange(8, dtype=jnp.float32) / 10

  def body(tracker, key):
    t = jax.random.randint(key, (4,), 0, 8)
    return step_tracker.update(tracker, t, targets[t] + 1.0), None

  keys = jax.random.split(jax.random.key(0), 300)
  tracker, _ = jax.jit(lambda keys: jax.lax.scan(body, step_tracker.init(8), keys))(keys)
  np.testing.assert_allclose(tracker.ema, targets + 1.0, rtol=1e-6)
  assert int(tracker.count.sum()) == 1200


def test_per_stage_losses_layout():
  tracker = step_tracker.StepTracker(ema=jnp.arange(6, dtype=jnp.float32), count=jnp.ones(6, jnp.int32))
  np.testing.assert_array_equal(step_tracker.per_stage_losses(tracker, num_stages=2), [[0, 1, 2], [3, 4, 5]])
  np.testing.assert_array_equal(step_tracker.per_stage_losses(tracker), [[0, 1, 2, 3, 4, 5]])
