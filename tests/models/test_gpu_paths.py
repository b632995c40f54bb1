"""Code paths only a GPU takes: cuDNN fused attention against the einsum path, and bf16 train steps on the device.

Skipped elsewhere. The test session defaults to the CPU (conftest.py), so on a GPU machine run them with
JAX_PLATFORMS=cuda python -m pytest tests/test_gpu_paths.py.
"""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ardm_jax.training import experiment
from ardm_jax.training import train
from ardm_jax.models import layers

pytestmark = [
  pytest.mark.slow,
  pytest.mark.skipif(
    jax.default_backend() != "gpu",
    reason="needs a GPU (cuDNN attention, bf16 on the device); the test session runs on the CPU unless "
    "JAX_PLATFORMS=cuda is set",
  ),
]

# (length, heads, head size): text8's Transformer (250 characters, 12 heads of 64), the CIFAR-10 U-Net's
# attention (32 x 32 positions, one head of 256 channels), and a shape cuDNN's flash attention always takes.
SHAPES = ((250, 12, 64), (1024, 1, 256), (1024, 4, 64))
# (config module, event shape, classes) of each network.
NETWORKS = {
  "text8": ((32,), 27),
  "text8_upscale": ((32,), 27),
  "cifar10": ((32, 32, 3), 256),
  "cifar10_upscale": ((32, 32, 3), 256),
}


@pytest.mark.parametrize("length,heads,head_dim", SHAPES)
def test_cudnn_attention_gives_the_einsum_result_to_bf16_tolerance(length, heads, head_dim):
  keys = jax.random.split(jax.random.key(0), 3)
  q_BxLxHxD, k_BxLxHxD, v_BxLxHxD = (
    jax.random.normal(key, (2, length, heads, head_dim), jnp.float32).astype(jnp.bfloat16) for key in keys
  )
  fused = jax.jit(layers.ATTENTION["dot_product"])
  einsum = jax.jit(layers.ATTENTION["einsum"])
  fused_BxLxHxD = fused(q_BxLxHxD, k_BxLxHxD, v_BxLxHxD)
  einsum_BxLxHxD = einsum(q_BxLxHxD, k_BxLxHxD, v_BxLxHxD)
  assert fused_BxLxHxD.dtype == einsum_BxLxHxD.dtype == jnp.bfloat16
  np.testing.assert_allclose(
    np.asarray(fused_BxLxHxD, np.float32), np.asarray(einsum_BxLxHxD, np.float32), atol=2e-2, rtol=2e-2
  )
  if (length, heads, head_dim) == (1024, 4, 64):  # The fused path is cuDNN's, not the XLA fallback.
    assert "cudnn" in fused.lower(q_BxLxHxD, k_BxLxHxD, v_BxLxHxD).as_text().lower()


@pytest.mark.parametrize("module", sorted(NETWORKS))
def test_a_bf16_train_step_of_each_network_is_finite(module):
  config = importlib.import_module(f"configs.{module}").get_config("local")
  config.model.dtype, config.model.attention = "bfloat16", "dot_product"
  if config.model.name == "unet":
    config.model.attn_everywhere = True  # Every block kind, attention at all 1024 positions too.
  event_shape, num_classes = NETWORKS[module]
  if config.data.name == "text8":
    config.data.seq_len = event_shape[0]
  exp = experiment.shape_only_experiment(config, event_shape, num_classes)
  trainer = train.Trainer(exp)
  state = trainer.init(jax.random.key_data(jax.random.key(0)))
  shape = (config.training.batch_size,) + event_shape
  for step in range(2):
    x_BxE = jax.random.randint(jax.random.key(step + 1), shape, 0, num_classes)
    state, metrics = trainer.train_step(state, jax.device_put(x_BxE, trainer.batch_sharding))
    assert bool(metrics["finite"]) and np.isfinite(float(metrics["loss"])), (module, step, metrics)
  assert int(state.num_skipped) == 0
  assert all(bool(jnp.all(jnp.isfinite(p))) for p in jax.tree.leaves(state.params))
