"""The DiffWave network: output contract, its two-sided receptive field, use of t / stage, bf16 and remat."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ardm_jax.models import count_params
from ardm_jax.models.diffwave import DiffWave

TINY = dict(num_classes=65536, ch=8, num_blocks=3, dilation_cycle=2)  # dilations 1, 2, 1: reach 4 each side


def _inputs(length, batch=2, seed=0, num_classes=65536):
  rng = np.random.default_rng(seed)
  x_in = jnp.asarray(rng.integers(0, num_classes, (batch, length)), jnp.int32)
  known = jnp.asarray(rng.random((batch, length)) < 0.5)
  return x_in, known, jnp.arange(batch, dtype=jnp.int32) * 5


def _perturbed(params, seed=1, scale=0.3):
  """The init with noise in its all-zero leaves (the output layer, the biases), so every block passes its
  input on; the other weights keep their init scale, which keeps the gated units out of saturation."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(
    lambda leaf: leaf + scale * rng.standard_normal(leaf.shape, np.float32) if not np.any(leaf) else leaf, params
  )


@pytest.mark.parametrize("num_stages,num_classes_out", [(1, 90), (16, 2)])
def test_output_shape_dtype_and_uniform_start(num_stages, num_classes_out):
  model = DiffWave(**TINY, num_stages=num_stages, num_classes_out=num_classes_out)
  x_in, known, t = _inputs(20)
  params = model.init(jax.random.key(0), x_in, known, t)
  out = model.apply(params, x_in, known, t)
  assert out.shape == (2, 20, num_classes_out) and out.dtype == jnp.float32
  np.testing.assert_array_equal(out, 0.0)  # zero-initialised output layer
  assert count_params(model, (20,)) == sum(leaf.size for leaf in jax.tree.leaves(params))


def test_every_output_sees_exactly_its_two_sided_receptive_field():
  model = DiffWave(**TINY, num_classes_out=3)
  x_in, known, t = _inputs(21, batch=1)
  params = _perturbed(model.init(jax.random.key(0), x_in, known, t))
  out = model.apply(params, x_in, known, t)
  middle, reach = 10, 1 + 2 + 1  # the last block's skip sees its input 1 away, that input 2 away, ...
  changed = model.apply(params, x_in.at[0, middle].set((x_in[0, middle] + 30000) % 65536), known, t)
  moved = np.abs(np.asarray(changed - out)).max(axis=-1)[0] > 0
  expected = np.zeros(21, bool)
  expected[middle - reach : middle + reach + 1] = True  # non-causal: both sides, nothing further
  np.testing.assert_array_equal(moved, expected)
  flipped = model.apply(params, x_in, known.at[0, 0].set(~known[0, 0]), t)
  np.testing.assert_array_equal(np.abs(np.asarray(flipped - out)).max(axis=-1)[0] > 0, np.arange(21) <= reach)


def test_step_and_stage_reach_every_position():
  model = DiffWave(**TINY, num_stages=4, num_classes_out=2)
  x_in, known, t = _inputs(12)
  params = _perturbed(model.init(jax.random.key(0), x_in, known, t))
  out = model.apply(params, x_in, known, t)
  assert np.all(np.abs(np.asarray(model.apply(params, x_in, known, t + 1) - out)).max(-1) > 1e-6)
  assert np.all(np.abs(np.asarray(model.apply(params, x_in, known, t + 12) - out)).max(-1) > 1e-6)


def test_without_the_step_only_the_stage_reaches_the_network():
  model = DiffWave(**TINY, num_stages=4, num_classes_out=2, use_step=False)
  x_in, known, t = _inputs(12)
  params = _perturbed(model.init(jax.random.key(0), x_in, known, t))
  out = model.apply(params, x_in, known, t)
  np.testing.assert_array_equal(model.apply(params, x_in, known, t + 1), out)  # same stage
  assert np.all(np.abs(np.asarray(model.apply(params, x_in, known, t + 12) - out)).max(-1) > 1e-6)


def test_bfloat16_and_remat_give_the_float32_result():
  x_in, known, t = _inputs(16)
  reference_model = DiffWave(**TINY, num_classes_out=6)
  params = _perturbed(reference_model.init(jax.random.key(0), x_in, known, t))
  assert {leaf.dtype for leaf in jax.tree.leaves(params)} == {jnp.dtype(jnp.float32)}

  def loss(model, p):
    return jnp.mean(jnp.sin(model.apply(p, x_in, known, t)))

  reference, reference_grads = jax.value_and_grad(loss, argnums=1)(reference_model, params)
  out32 = reference_model.apply(params, x_in, known, t)
  out16 = DiffWave(**TINY, num_classes_out=6, dtype="bfloat16").apply(params, x_in, known, t)
  assert out16.dtype == jnp.float32 and not np.array_equal(out16, out32)
  np.testing.assert_allclose(out16, out32, atol=0.05 * float(jnp.abs(out32).max()))
  for policy in ("full", "dots"):
    remat_model = DiffWave(**TINY, num_classes_out=6, remat=policy)
    value, grads = jax.value_and_grad(loss, argnums=1)(remat_model, params)
    np.testing.assert_allclose(value, reference, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(grads), jax.tree.leaves(reference_grads)):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_full_size_parameter_count():
  """36 blocks x (step projection 512x256 + dilated conv 3x256x512 + 1x1 conv 256x512, with biases) + the rest."""
  block = (512 * 256 + 256) + (3 * 256 * 512 + 512) + (256 * 512 + 512)
  rest = (128 * 512 + 512) + (512 * 512 + 512) + (2 * 256 + 256) + (256 * 256 + 256) + (256 * 90 + 90)
  assert count_params(DiffWave(num_classes_out=90), (16000,)) == 36 * block + rest


def test_analytic_flops_match_xla_on_the_forward_pass():
  import sys

  saved_path = list(sys.path)
  from benchmarks import train_step_cost  # it puts the checkout first on sys.path: undone below

  sys.path[:] = saved_path

  model = DiffWave(num_classes=65536, num_classes_out=12, ch=64, num_blocks=4, dilation_cycle=4, num_stages=3)
  x_in, known, t = _inputs(512, batch=2)
  params = jax.eval_shape(model.init, jax.random.key(0), x_in, known, t)
  cost = jax.jit(model.apply).lower(params, x_in, known, t).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  analytic = 2 * train_step_cost.diffwave_forward_flops(64, 4, 512, 3, 12)
  assert 0.9 < float(cost["flops"]) / analytic < 1.1
