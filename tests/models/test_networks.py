"""Tests of the network architectures ('paper' and 'improved'): rotary positions, adaLN-Zero, zero-initialised
branches, parameter and FLOP counts, and that configs and bundles without `model.arch` keep the paper's network."""

import dataclasses
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ardm_jax.training import experiment
from ardm_jax.models import DiffWave, Transformer, UNet, count_params, layers
from ardm_jax.models import transformer
from configs import quickstart

TINY_TRANSFORMER = dict(num_classes=27, num_classes_out=27, num_layers=2, width=32, num_heads=4, mlp_dim=48)
TINY_UNET = dict(num_classes=256, ch=32, num_res_blocks=1)
TINY_DIFFWAVE = dict(num_classes=65536, num_classes_out=12, ch=16, num_blocks=3, dilation_cycle=3)
ADALN_ZERO = dict(positions="rotary", conditioning="adaln_zero", mlp="swiglu", zero_init=True)
SINGLE_OPTIONS = [
  dict(positions="rotary"),
  dict(conditioning="adaln_zero"),
  dict(mlp="swiglu"),
  dict(zero_init=True),
  dict(known_embed=False),
  dict(kernel_init="xavier", embed_scale=0.1),
]


def _inputs(event_shape, num_values, batch=2, seed=0):
  rng = np.random.default_rng(seed)
  x_in = jnp.asarray(rng.integers(0, num_values, (batch, *event_shape)), jnp.int32)
  known = jnp.asarray(rng.random((batch, *event_shape)) < 0.5)
  return x_in, known, jnp.asarray([3, 11][:batch], jnp.int32)


def _perturbed(params, seed=1, scale=0.1, keep=lambda path: False):
  """Params plus Gaussian noise, except the leaves whose path `keep` names (they stay as initialised)."""
  rng = np.random.default_rng(seed)

  def perturb(path, leaf):
    if keep(jax.tree_util.keystr(path)):
      return leaf
    return leaf + scale * rng.standard_normal(leaf.shape, np.float32)

  return jax.tree_util.tree_map_with_path(perturb, params)


def _num_params(params) -> int:
  return sum(leaf.size for leaf in jax.tree_util.tree_leaves(params))


def test_rotated_dot_products_depend_only_on_the_offset():
  rng = np.random.default_rng(0)
  q, k = (jnp.asarray(rng.standard_normal((1, 6, 2, 8)), jnp.float32) for _ in range(2))
  positions = jnp.arange(6)

  def scores(shift):
    return jnp.einsum("blhf,bmhf->bhlm", layers.rotate(q, positions + shift), layers.rotate(k, positions + shift))

  np.testing.assert_allclose(scores(0), scores(37), rtol=1e-4, atol=1e-4)
  assert np.abs(scores(0) - jnp.einsum("blhf,bmhf->bhlm", q, k)).max() > 1e-2  # The rotation does something.
  # A rotation keeps norms.
  np.testing.assert_allclose(
    jnp.linalg.norm(layers.rotate(q, positions + 5), axis=-1), jnp.linalg.norm(q, axis=-1), 1e-5
  )


@pytest.mark.parametrize("arch_fields", [dict(positions="rotary"), dict(arch="improved")])
def test_rotary_network_sees_relative_positions_only(arch_fields):
  """Shifting every position by the same amount leaves the logits unchanged; sinusoids do not allow that."""
  model = Transformer(**TINY_TRANSFORMER, **arch_fields)
  x_in, known, t = _inputs((10,), 28)
  params = _perturbed(model.init(jax.random.key(0), x_in, known, t))
  logits = model.apply(params, x_in, known, t)
  shifted = model.apply(params, x_in, known, t, positions=jnp.arange(10) + 23)
  np.testing.assert_allclose(logits, shifted, rtol=1e-4, atol=1e-4)
  # Not a network blind to position: a permuted input changes more than the order of the logits.
  permuted = model.apply(params, x_in[:, ::-1], known[:, ::-1], t)[:, ::-1]
  assert np.abs(permuted - logits).max() > 1e-3
  sinusoidal = Transformer(**TINY_TRANSFORMER)
  params = _perturbed(sinusoidal.init(jax.random.key(0), x_in, known, t))
  moved = sinusoidal.apply(params, x_in, known, t, positions=jnp.arange(10) + 23)
  assert np.abs(sinusoidal.apply(params, x_in, known, t) - moved).max() > 1e-3


@pytest.mark.parametrize(
  "model,event_shape,num_values,zero_leaves",
  [
    (Transformer(**TINY_TRANSFORMER, **ADALN_ZERO), (10,), 28, "modulation"),
    (Transformer(**dict(TINY_TRANSFORMER, num_classes_out=3), **ADALN_ZERO, num_stages=2), (10,), 28, "modulation"),
    (UNet(**TINY_UNET, conditioning="scale_shift"), (8, 8, 3), 256, "temb_proj"),
    (DiffWave(**TINY_DIFFWAVE, zero_init=True), (32,), 65536, "temb_proj"),
  ],
)
def test_zero_initialised_gates_make_the_initial_output_blind_to_the_step(model, event_shape, num_values, zero_leaves):
  """With every other parameter moved off its initial value, the step t reaches the output only through the
  zero-initialised modulation layers: the output does not depend on t until those move too."""
  x_in, known, t = _inputs(event_shape, num_values)
  params = model.init(jax.random.key(0), x_in, known, t)
  zero = [
    leaf for path, leaf in jax.tree_util.tree_leaves_with_path(params) if zero_leaves in jax.tree_util.keystr(path)
  ]
  assert zero and all(not np.any(leaf) for leaf in zero if leaf.ndim > 1)  # kernels start at zero
  # Within one stage (upscale models see the stage elsewhere): steps 3 and 4 of stage 0.
  t_a, t_b = jnp.asarray([3, 3]), jnp.asarray([4, 4])
  gated = _perturbed(params, keep=lambda path: zero_leaves in path and "kernel" in path)
  np.testing.assert_array_equal(model.apply(gated, x_in, known, t_a), model.apply(gated, x_in, known, t_b))
  other_x = model.apply(gated, _inputs(event_shape, num_values, seed=5)[0], known, t_a)
  assert np.abs(other_x - model.apply(gated, x_in, known, t_a)).max() > 1e-4  # The input does matter.
  opened = _perturbed(params)
  assert np.abs(model.apply(opened, x_in, known, t_a) - model.apply(opened, x_in, known, t_b)).max() > 1e-5


@pytest.mark.parametrize("fields", [dict(zero_init=True), ADALN_ZERO])
def test_zero_initialised_transformer_starts_uniform_and_learns_through_every_branch(fields):
  model = Transformer(**TINY_TRANSFORMER, **fields)
  x_in, known, t = _inputs((10,), 28)
  params = model.init(jax.random.key(0), x_in, known, t)
  np.testing.assert_array_equal(model.apply(params, x_in, known, t), 0.0)  # Zero logits: uniform predictions.

  def loss(p):
    return jnp.sum(model.apply(p, x_in, known, t)[..., 0] * jnp.arange(10.0))

  def dead(p):
    return [
      jax.tree_util.keystr(path) for path, g in jax.tree_util.tree_leaves_with_path(jax.grad(loss)(p)) if not np.any(g)
    ]

  # The zeros open in turn (logits, then the gates, then the branches): after two gradient steps every leaf
  # has a gradient, none is stuck behind two zeros.
  assert len(dead(params)) > 0
  for _ in range(2):
    params = jax.tree.map(lambda p, g: p - 0.1 * g, params, jax.grad(loss)(params))
  assert dead(params) == []


@pytest.mark.parametrize("fields", [{}, dict(arch="improved"), ADALN_ZERO, *SINGLE_OPTIONS])
@pytest.mark.parametrize("num_stages,num_classes_out", [(1, 27), (2, 3)])
def test_transformer_parameter_count_matches_the_analytic_count(fields, num_stages, num_classes_out):
  model = Transformer(**dict(TINY_TRANSFORMER, num_classes_out=num_classes_out), num_stages=num_stages, **fields)
  x_in, known, t = _inputs((10,), 28)
  real = _num_params(model.init(jax.random.key(0), x_in, known, t))
  assert count_params(model, (10,)) == real == transformer.analytic_num_params(model, 10)


def test_swiglu_keeps_the_gelu_parameter_count():
  gelu = Transformer(**TINY_TRANSFORMER)
  swiglu = Transformer(**TINY_TRANSFORMER, mlp="swiglu")
  # mlp_dim 48: hidden 32, and 3 x 32 x width weights = 2 x 48 x width; only the biases differ (2 x 32 vs 48).
  assert count_params(swiglu, (10,)) - count_params(gelu, (10,)) == 2 * (2 * 32 - 48)


def test_a_legacy_config_keeps_the_parameter_tree_of_earlier_versions():
  """Checkpoints and bundles from before model.arch hold the known embedding: a config without the key builds
  it (same names, same shapes); the paper arch itself, like the paper's public code, feeds no mask."""
  config = quickstart.get_config()
  config.model.num_layers, config.model.width, config.model.num_heads, config.model.mlp_dim = 2, 32, 4, 48
  del config.model["arch"]
  legacy = experiment.build_model(config, 27, None)
  x_in, known, t = _inputs((10,), 28)
  shapes = jax.tree.map(jnp.shape, legacy.init(jax.random.key(0), x_in, known, t)["params"])
  assert set(shapes) == {"token_embed", "known_embed", "block_0", "block_1", "final_norm", "logits"}
  assert set(shapes["block_0"]) == {"attn_norm", "attention", "mlp_norm", "mlp_in", "mlp_out"}
  assert shapes["block_0"]["attention"]["query"]["kernel"] == (32, 4, 8)
  assert shapes["block_0"]["mlp_in"]["kernel"] == (32, 48)
  paper = Transformer(**TINY_TRANSFORMER)
  assert count_params(legacy, (10,)) - count_params(paper, (10,)) == 2 * 32  # The known embedding alone.
  assert count_params(Transformer(**TINY_TRANSFORMER, num_stages=2), (10,)) == count_params(
    Transformer(**TINY_TRANSFORMER, num_stages=2, known_embed=True), (10,)
  )  # Upscale models need the known bit and keep it.


@pytest.mark.parametrize("fields", [{}, dict(arch="improved"), ADALN_ZERO])
def test_transformer_flops_match_xla(fields):
  sys_path = list(sys.path)
  from benchmarks import train_step_cost  # It puts the checkout first on sys.path: undone below.

  sys.path[:] = sys_path
  model = Transformer(num_classes=27, num_classes_out=27, num_layers=2, width=64, num_heads=4, mlp_dim=192, **fields)
  x_in, known, t = _inputs((128,), 28)
  params = jax.eval_shape(model.init, jax.random.key(0), x_in, known, t)
  cost = jax.jit(model.apply).lower(params, x_in, known, t).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  swiglu = model.option("mlp") == "swiglu"
  analytic = 2 * train_step_cost.transformer_forward_flops(2, 64, 192, 128, 27, swiglu)
  assert 0.9 < float(cost["flops"]) / analytic < 1.1


def test_a_config_without_arch_builds_the_paper_network_of_its_time():
  """Workdirs and bundles written before `model.arch` existed keep loading as the network they hold."""
  config = quickstart.get_config()
  config.model.arch = "improved"
  improved = experiment.build_model(config, 27, None)
  del config.model["arch"]
  experiment.validate_config(config)
  old = experiment.build_model(config, 27, None)
  assert old == dataclasses.replace(improved, arch="paper", known_embed=True)
  assert count_params(old, (32,)) != count_params(improved, (32,))


def test_unknown_arch_is_refused_by_name():
  config = quickstart.get_config()
  config.model.arch = "fast"
  with pytest.raises(experiment.ConfigError, match=r"config.model.arch = 'fast' is not one of \['paper', 'improved'\]"):
    experiment.validate_config(config)


def test_every_network_offers_the_architectures_the_schema_allows():
  from ardm_jax.models import diffwave, unet  # pylint: disable=g-import-not-at-top

  for module in (transformer, unet, diffwave):
    assert tuple(module.ARCHS) == layers.ARCH_NAMES, module.__name__
