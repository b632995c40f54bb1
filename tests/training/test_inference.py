"""The read-only modes' helpers that need no trained model."""

import numpy as np
import pytest

from ardm_jax.training import inference


@pytest.mark.parametrize("available, wanted", [(1, 1), (5, 3), (9672, 128), (100, 100), (7, 64), (2, 1), (10, 4)])
def test_measured_plans_spread_their_points_over_the_test_set(available, wanted):
  chosen = inference.spread_points(available, wanted)
  assert len(chosen) == min(available, wanted) and np.all(np.diff(chosen) > 0)
  assert chosen[0] == 0 and (chosen[-1] == available - 1 or wanted == 1)
  if 3 <= wanted < available:  # Evenly: the gaps differ by at most one point.
    assert np.diff(chosen).max() - np.diff(chosen).min() <= 1
