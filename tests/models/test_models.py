"""Tests of the networks: output contract, non-causality, use of t / known / stage, parameter counts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ardm_jax.models import Transformer, UNet, count_params
from ardm_jax.models.unet import AttnBlock

TINY_UNET = dict(num_classes=256, ch=32, num_res_blocks=1)
TINY_TRANSFORMER = dict(num_classes=27, num_layers=2, width=32, num_heads=4, mlp_dim=64)


def _inputs(event_shape, num_values, batch=2, seed=0):
  """Random (x_in, known, t) for a batch of `event_shape` data with values in 0..num_values-1."""
  rng = np.random.default_rng(seed)
  x_in = jnp.asarray(rng.integers(0, num_values, (batch, *event_shape)), jnp.int32)
  known = jnp.asarray(rng.random((batch, *event_shape)) < 0.5)
  t = jnp.arange(batch, dtype=jnp.int32) * 7
  return x_in, known, t


def _perturbed(params, seed=1, scale=0.1):
  """Params plus Gaussian noise, so zero-initialised layers (output conv, residual convs) become active."""
  rng = np.random.default_rng(seed)
  return jax.tree_util.tree_map(lambda leaf: leaf + scale * rng.standard_normal(leaf.shape, np.float32), params)


def _num_params(params) -> int:
  return sum(leaf.size for leaf in jax.tree_util.tree_leaves(params))


@pytest.mark.parametrize(
  "event_shape,num_stages,num_classes_out",
  [((8, 8, 3), 1, 256), ((32, 32, 3), 1, 256), ((8, 8, 3), 4, 4), ((16, 16, 3), 4, 256)],
)
def test_unet_output_shape_and_dtype(event_shape, num_stages, num_classes_out):
  model = UNet(**TINY_UNET, num_stages=num_stages, num_classes_out=num_classes_out)
  x_in, known, t = _inputs(event_shape, 256)
  params = model.init(jax.random.key(0), x_in, known, t)
  logits = model.apply(params, x_in, known, t)
  assert logits.shape == (2, *event_shape, num_classes_out)
  assert logits.dtype == jnp.float32
  # The output conv is zero-initialised: every prediction starts uniform.
  np.testing.assert_array_equal(logits, 0.0)


def test_unet_bfloat16_compute_keeps_float32_params_and_logits():
  model = UNet(**TINY_UNET, dtype="bfloat16")
  x_in, known, t = _inputs((8, 8, 3), 256)
  params = model.init(jax.random.key(0), x_in, known, t)
  assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(params)} == {jnp.dtype(jnp.float32)}
  logits = model.apply(_perturbed(params), x_in, known, t)
  assert logits.dtype == jnp.float32
  reference = UNet(**TINY_UNET).apply(_perturbed(params), x_in, known, t)
  np.testing.assert_allclose(logits, reference, atol=0.1 * float(jnp.abs(reference).max()))
  assert not np.array_equal(logits, reference)


def test_unet_uses_t_known_and_stage():
  model = UNet(**TINY_UNET, num_stages=4, num_classes_out=4)
  x_in, known, t = _inputs((8, 8, 3), 256)
  params = _perturbed(model.init(jax.random.key(0), x_in, known, t))
  logits = model.apply(params, x_in, known, t)
  num_variables = 8 * 8 * 3
  # Same stage (0), different step within it: only the step embedding differs.
  changed_t = model.apply(params, x_in, known, t + 1)
  assert np.abs(logits - changed_t).max() > 1e-4
  changed_known = model.apply(params, x_in, ~known, t)
  assert np.abs(logits - changed_known).max() > 1e-4
  # Two global steps with the same local step in different stages.
  other_stage = model.apply(params, x_in, known, t + num_variables)
  assert np.abs(logits - other_stage).max() > 1e-4


def test_unet_attn_everywhere_adds_one_attention_block_per_res_block():
  event_shape = (8, 8, 3)
  for num_res_blocks in (1, 2):
    config = dict(TINY_UNET, num_res_blocks=num_res_blocks)
    base = count_params(UNet(**config), event_shape)
    with_attn = count_params(UNet(**config, attn_everywhere=True), event_shape)
    block = AttnBlock(num_heads=1, dtype=jnp.float32)
    block_params = block.init(jax.random.key(0), jnp.zeros((1, 8, 8, config["ch"])))
    # num_res_blocks down blocks + (num_res_blocks + 1) up blocks each get one.
    assert with_attn - base == (2 * num_res_blocks + 1) * _num_params(block_params)
    assert _num_params(block_params) == 4 * 32 * 32 + 4 * 32 + 2 * 32


@pytest.mark.parametrize(
  "model,event_shape",
  [
    (UNet(**TINY_UNET, attn_everywhere=True), (8, 8, 3)),
    (UNet(**TINY_UNET, num_stages=4, num_classes_out=4), (16, 16, 3)),
    (Transformer(**TINY_TRANSFORMER), (10,)),
    (Transformer(**TINY_TRANSFORMER, num_stages=2, num_classes_out=3), (10,)),
  ],
)
def test_count_params_matches_real_init(model, event_shape):
  x_in, known, t = _inputs(event_shape, 27)
  params = model.init(jax.random.key(0), x_in, known, t)
  assert count_params(model, event_shape) == _num_params(params)


def test_unet_dropout_only_in_training():
  model = UNet(**TINY_UNET, dropout=0.5)
  x_in, known, t = _inputs((8, 8, 3), 256)
  params = _perturbed(model.init(jax.random.key(0), x_in, known, t))
  evaluated = model.apply(params, x_in, known, t)
  np.testing.assert_array_equal(evaluated, UNet(**TINY_UNET).apply(params, x_in, known, t))
  train_a = model.apply(params, x_in, known, t, train=True, rngs={"dropout": jax.random.key(1)})
  train_b = model.apply(params, x_in, known, t, train=True, rngs={"dropout": jax.random.key(2)})
  np.testing.assert_array_equal(
    train_a, model.apply(params, x_in, known, t, train=True, rngs={"dropout": jax.random.key(1)})
  )
  assert np.abs(train_a - train_b).max() > 1e-4


def test_unet_rejects_bad_width():
  x_in, known, t = _inputs((8, 8, 3), 256)
  with pytest.raises(ValueError, match="model.ch must be a multiple of 4"):
    UNet(ch=30, num_res_blocks=1).init(jax.random.key(0), x_in, known, t)


@pytest.mark.parametrize("num_stages,num_classes_out", [(1, 27), (2, 27), (2, 3)])
def test_transformer_output_shape_and_dtype(num_stages, num_classes_out):
  model = Transformer(**TINY_TRANSFORMER, num_stages=num_stages, num_classes_out=num_classes_out)
  x_in, known, t = _inputs((12,), 28)
  params = model.init(jax.random.key(0), x_in, known, t)
  logits = model.apply(params, x_in, known, t)
  assert logits.shape == (2, 12, num_classes_out)
  assert logits.dtype == jnp.float32


def test_transformer_is_not_causal():
  model = Transformer(**TINY_TRANSFORMER)
  x_in, known, t = _inputs((12,), 27)
  params = model.init(jax.random.key(0), x_in, known, t)
  logits = model.apply(params, x_in, known, t)
  last_changed = x_in.at[:, -1].set(27)  # absorb the last token
  first_changed = x_in.at[:, 0].set(27)
  assert np.abs(model.apply(params, last_changed, known, t)[:, 0] - logits[:, 0]).min() > 1e-5
  assert np.abs(model.apply(params, first_changed, known, t)[:, -1] - logits[:, -1]).min() > 1e-5


def test_transformer_t_only_matters_through_the_stage():
  x_in, known, t = _inputs((12,), 28)
  oa_model = Transformer(**TINY_TRANSFORMER)
  oa_params = oa_model.init(jax.random.key(0), x_in, known, t)
  np.testing.assert_array_equal(
    oa_model.apply(oa_params, x_in, known, t), oa_model.apply(oa_params, x_in, known, t + 5)
  )
  upscale = Transformer(**TINY_TRANSFORMER, num_stages=2)
  params = upscale.init(jax.random.key(0), x_in, known, t)
  logits = upscale.apply(params, x_in, known, t)
  np.testing.assert_array_equal(logits, upscale.apply(params, x_in, known, t + 1))  # same stage
  assert np.abs(logits - upscale.apply(params, x_in, known, t + 12)).max() > 1e-4  # next stage
  assert np.abs(logits - upscale.apply(params, x_in, ~known, t)).max() > 1e-4


def test_transformer_rejects_bad_heads():
  x_in, known, t = _inputs((12,), 27)
  with pytest.raises(ValueError, match="must be a multiple of model.num_heads"):
    Transformer(**dict(TINY_TRANSFORMER, width=30)).init(jax.random.key(0), x_in, known, t)


def test_full_size_parameter_counts():
  """The paper-size networks, counted without allocation (numbers quoted in the README)."""
  assert count_params(Transformer(known_embed=True), (250,)) == 85_099_803  # Before the paper arch dropped it.
  assert count_params(Transformer(), (250,)) == 85_099_803 - 2 * 768
  unet = count_params(UNet(), (32, 32, 3))
  unet_attn = count_params(UNet(attn_everywhere=True), (32, 32, 3))
  assert unet == 123_921_536
  # 65 extra attention blocks of 4 * 256^2 + 6 * 256 parameters.
  assert unet_attn - unet == 65 * (4 * 256**2 + 6 * 256)
