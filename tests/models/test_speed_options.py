"""Speed and memory options: bf16 compute, fused attention, rematerialisation, gradient accumulation and the
persistent compilation cache, each against the default path on tiny models."""

import importlib

import jax
from jax.experimental.compilation_cache import compilation_cache
import jax.numpy as jnp
import numpy as np
import pytest

from ardm_jax.training import experiment
from ardm_jax.training import train

pytestmark = pytest.mark.slow  # Processes, emulators, launchers, faults or training: the full tier.

# Tiny versions of the two networks on small events: (config module, event shape, classes).
FAMILIES = {
  "text": ("text8", (8,), 27),
  "text_upscale": ("text8_upscale", (8,), 27),
  "image": ("cifar10", (2, 2, 3), 256),
}


def tiny_experiment(family: str, **overrides) -> experiment.Experiment:
  """The family's :local config, smaller still, with --config-style overrides {'model.dtype': ...}."""
  name, event_shape, num_classes = FAMILIES[family]
  config = importlib.import_module(f"configs.{name}").get_config("local")
  config.training.batch_size = 8
  if config.model.name == "unet":
    config.model.ch = 8
    config.model.attn_everywhere = True  # Every block kind (ResBlock, AttnBlock) is exercised.
  else:
    config.model.num_layers = 1
    config.model.width = 16
    config.model.mlp_dim = 32
  for key, value in overrides.items():
    section, field = key.split(".")
    config[section][field] = value
  return experiment.shape_only_experiment(config, event_shape, num_classes)


def random_batch(exp, seed=0):
  shape = (exp.config.training.batch_size,) + exp.dataset.event_shape
  return jax.random.randint(jax.random.key(seed), shape, 0, exp.dataset.num_classes)


def random_params(exp, seed=0, scale=0.2):
  """Gaussian parameters of the network's shapes (no init compile). The zero-initialised output layers of the
  default init would make whole blocks inert; random ones make every block contribute."""
  shapes = jax.eval_shape(exp.init_params, jax.random.key(0))
  leaves, treedef = jax.tree.flatten(shapes)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return treedef.unflatten([scale * jax.random.normal(k, leaf.shape) for k, leaf in zip(keys, leaves)])


def train_run(exp, num_steps: int):
  """(losses [num_steps], final state, metrics of the first step) of train steps from the seed-0 init."""
  trainer = train.Trainer(exp)
  state = trainer.init(jax.random.key_data(jax.random.key(0)))
  losses, first_metrics = [], None
  for step in range(num_steps):
    state, metrics = trainer.train_step(state, random_batch(exp, seed=step))
    losses.append(float(metrics["loss"]))
    first_metrics = first_metrics or metrics
  return np.array(losses), state, first_metrics


def loss_and_grads(exp, params, x):
  """Training loss and its gradients at a fixed rng (dropout is off in the tiny configs)."""
  rng = jax.random.key_data(jax.random.key(1))
  return jax.jit(jax.value_and_grad(lambda p: exp.loss(p, x, rng, train=True)[0]))(params)


def assert_trees_close(actual, desired, rtol, atol, what=""):
  assert jax.tree.structure(actual) == jax.tree.structure(desired), what
  for a, d in zip(jax.tree.leaves(actual), jax.tree.leaves(desired)):
    np.testing.assert_allclose(a, d, rtol=rtol, atol=atol, err_msg=what)


def test_bf16_loss_stays_within_1_percent_of_float32_and_state_stays_float32():
  # A large learning rate so that the few steps move the loss well away from its initial value.
  fast = {"optimizer.learning_rate": 1e-2, "optimizer.warmup_steps": 0}
  losses32, _, _ = train_run(tiny_experiment("text", **fast), 4)
  exp16 = tiny_experiment("text", **fast, **{"model.dtype": "bfloat16"})
  losses16, state16, _ = train_run(exp16, 4)
  # bf16 keeps 8 bits of mantissa (rounding 2^-9 = 0.2% per operation); over the network and four updates the
  # bits/dim stay within 1%.
  np.testing.assert_allclose(losses16, losses32, rtol=1e-2)
  assert losses32[0] - losses32[-1] > 0.05, losses32  # The updates did move the loss.
  leaves = jax.tree.leaves((state16.params, state16.opt_state, state16.ema_params, state16.tracker.ema))
  assert {leaf.dtype for leaf in leaves if jnp.issubdtype(leaf.dtype, jnp.floating)} == {jnp.dtype("float32")}
  # The U-Net: the same loss within 1% at the same (random) parameters, float32 logits.
  exp32, exp16 = tiny_experiment("image"), tiny_experiment("image", **{"model.dtype": "bfloat16"})
  params, x = random_params(exp32), random_batch(exp32)
  loss32 = float(loss_and_grads(exp32, params, x)[0])
  logits16 = jax.jit(exp16.model.apply)({"params": params}, x, x > 100, jnp.zeros(x.shape[0], jnp.int32))
  assert logits16.dtype == jnp.float32
  np.testing.assert_allclose(float(loss_and_grads(exp16, params, x)[0]), loss32, rtol=1e-2)


@pytest.mark.parametrize("family", ["text", "image"])
def test_dot_product_attention_equals_einsum_attention(family):
  exp_einsum = tiny_experiment(family)
  exp_fused = tiny_experiment(family, **{"model.attention": "dot_product"})
  params, x = random_params(exp_einsum), random_batch(exp_einsum)
  loss_einsum, grads_einsum = loss_and_grads(exp_einsum, params, x)
  loss_fused, grads_fused = loss_and_grads(exp_fused, params, x)
  np.testing.assert_allclose(loss_fused, loss_einsum, rtol=1e-5)
  assert_trees_close(grads_fused, grads_einsum, rtol=1e-4, atol=1e-5)
  # The attention does matter: removing it (value projection zero) changes the loss.
  ablated = jax.tree_util.tree_map_with_path(
    lambda path, p: 0 * p if "attention" in jax.tree_util.keystr(path) else p, params
  )
  assert abs(float(loss_and_grads(exp_einsum, ablated, x)[0]) - float(loss_einsum)) > 1e-3


@pytest.mark.parametrize("family,policy", [("text", "full"), ("text", "dots"), ("image", "full")])
def test_remat_gives_the_same_gradients(family, policy):
  exp_plain = tiny_experiment(family)
  exp_remat = tiny_experiment(family, **{"model.remat": policy})
  params, x = random_params(exp_plain), random_batch(exp_plain)
  assert jax.tree.structure(jax.eval_shape(exp_remat.init_params, jax.random.key(0))) == jax.tree.structure(params)
  _, grads_plain = loss_and_grads(exp_plain, params, x)
  _, grads_remat = loss_and_grads(exp_remat, params, x)
  assert_trees_close(grads_remat, grads_plain, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("family", ["text", "text_upscale"])
def test_grad_accumulation_gives_the_full_batch_update(family):
  # One update compares everything that depends on the gradients: parameters, Adam moments (a wrong gradient
  # scale would show in mu and nu even where Adam's first update, ~ lr * sign(g), hides it), EMA, tracker.
  _, state_full, metrics_full = train_run(tiny_experiment(family), 1)
  for num_micro in (2, 4):
    exp_micro = tiny_experiment(family, **{"training.grad_accum_steps": num_micro})
    _, state_micro, metrics_micro = train_run(exp_micro, 1)
    np.testing.assert_array_equal(state_micro.tracker.count, state_full.tracker.count)
    assert_trees_close(state_micro, state_full, rtol=1e-5, atol=1e-7, what=f"{family}, {num_micro}")
    assert_trees_close(metrics_micro, metrics_full, rtol=1e-5, atol=1e-7, what=f"{family}, {num_micro}")


def test_bad_speed_options_name_the_key():
  with pytest.raises(experiment.ConfigError, match=r"config\.model\.attention = 'flash'"):
    tiny_experiment("text", **{"model.attention": "flash"})
  with pytest.raises(experiment.ConfigError, match=r"config\.model\.remat = 'some'"):
    tiny_experiment("text", **{"model.remat": "some"})
  with pytest.raises(experiment.ConfigError, match=r"config\.model\.dtype = 'float16'"):
    tiny_experiment("text", **{"model.dtype": "float16"})
  exp = tiny_experiment("text", **{"training.grad_accum_steps": 3})
  with pytest.raises(experiment.ConfigError, match=r"training\.grad_accum_steps \(3\)"):
    train.Trainer(exp)


def test_compilation_cache_dir_receives_the_compiled_programs(tmp_path):
  cache_dir = tmp_path / "xla_cache"
  saved = {
    name: getattr(jax.config, name)
    for name in (
      "jax_compilation_cache_dir",
      "jax_persistent_cache_min_compile_time_secs",
      "jax_persistent_cache_min_entry_size_bytes",
    )
  }
  try:
    compilation_cache.reset_cache()
    exp = tiny_experiment("text", **{"training.compilation_cache_dir": str(cache_dir)})
    experiment.enable_compilation_cache(exp.config.training.compilation_cache_dir)
    assert not cache_dir.exists() or not any(cache_dir.iterdir())
    train_run(exp, 1)
    entries = list(cache_dir.iterdir())
    assert len(entries) >= 2, entries  # At least the init and the train step.
  finally:
    for name, value in saved.items():
      jax.config.update(name, value)
    compilation_cache.reset_cache()
