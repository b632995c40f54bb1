"""An experiment: the config validated and turned into dataset, network, objective and optimizer.

This is the one place that wires the independent pieces (data, models, the ARDM math) together; the train
loop, the tools in main.py and the tests all start from `build_experiment(config)`.
"""
import dataclasses
import functools
import math
import types
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax

from ardm_jax import data as data_lib
from ardm_jax import objective
from ardm_jax import upscale
from ardm_jax.models import layers
from ardm_jax.models import transformer
from ardm_jax.models import unet

MODELS = {"unet": unet.UNet, "transformer": transformer.Transformer}
CHOICES = {
    "objective.kind": ("oa", "upscale"),
    "objective.transitions": ("digits", "text8"),
    "objective.parametrisation": ("direct", "data"),
    "optimizer.name": ("adam", "adamw"),
    "training.on_nonfinite": ("stop", "skip"),
    "model.name": tuple(MODELS),
    "model.dtype": ("float32", "bfloat16"),
    "model.attention": tuple(layers.ATTENTION),
    "model.remat": ("none", *layers.REMAT_POLICIES),
}
POSITIVE = ("training.batch_size", "training.num_train_steps", "training.log_every_steps",
            "training.eval_every_steps", "training.checkpoint_every_steps",
            "training.max_checkpoints_to_keep", "eval.batch_size", "eval.num_passes",
            "sample.num_samples", "compress.num_examples", "optimizer.grad_clip_norm",
            "training.grad_accum_steps")
NON_NEGATIVE = ("training.profile_steps", "optimizer.learning_rate", "optimizer.warmup_steps", "optimizer.weight_decay",
                "objective.ce_weight", "eval.max_batches")
UNIT_INTERVAL = ("optimizer.ema_decay", "optimizer.b1", "optimizer.b2", "training.tracker_momentum")


class ConfigError(ValueError):
  """A config value or input file no run can use; the message names the key or file and the fix."""


def _get(config, dotted: str):
  node = config
  for part in dotted.split("."):
    node = node[part]
  return node


def _check_range(key: str, value, ok, requirement: str) -> None:
  if value is None:
    raise ConfigError(f"config.{key} is not set; it is required and {requirement} (--config.{key}=...).")
  if not ok(value):
    raise ConfigError(f"config.{key} = {value!r}, but it {requirement}; fix it with --config.{key}=...")


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the key and the fix for values no run can use."""
  for key, allowed in CHOICES.items():
    if _get(config, key) not in allowed:
      raise ConfigError(f"config.{key} = {_get(config, key)!r} is not one of {list(allowed)}; pick one "
                        f"with --config.{key}=...")
  for key in POSITIVE:
    _check_range(key, _get(config, key), lambda v: v > 0, "must be > 0")
  for key in NON_NEGATIVE:
    _check_range(key, _get(config, key), lambda v: v >= 0, "must be >= 0")
  for key in UNIT_INTERVAL:
    _check_range(key, _get(config, key), lambda v: 0 <= v < 1, "must be in [0, 1)")
  if config.objective.kind == "upscale" and config.objective.transitions == "digits":
    _check_range("objective.branching", config.objective.branching, lambda v: v >= 2,
                 "must be >= 2 (each upscale stage chooses among b >= 2 refinements)")


def check_batch_divisibility(config: ml_collections.ConfigDict, num_devices: int) -> None:
  for key in ("training.batch_size", "eval.batch_size"):
    if _get(config, key) % num_devices:
      raise ConfigError(f"config.{key} = {_get(config, key)} is not divisible by the {num_devices} devices "
                        f"of the mesh; use a multiple of {num_devices} (--config.{key}=...).")
  micro = config.training.grad_accum_steps * num_devices
  if config.training.batch_size % micro:
    raise ConfigError(f"config.training.batch_size = {config.training.batch_size} is not divisible by "
                      f"training.grad_accum_steps ({config.training.grad_accum_steps}) x {num_devices} devices; "
                      f"every micro-batch must split evenly over the devices "
                      f"(--config.training.grad_accum_steps=...).")


def enable_compilation_cache(cache_dir: str) -> None:
  """Points JAX's persistent compilation cache at cache_dir ('' leaves it off); every compilation is stored.

  A later run (or another mode) with the same programs loads them instead of compiling, which saves minutes per
  start for the full U-Net. Local paths and gs:// work (JAX's cache uses etils.epath).
  """
  if not cache_dir:
    return
  jax.config.update("jax_compilation_cache_dir", cache_dir)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def check_budget(config: ml_collections.ConfigDict, num_variables: int) -> None:
  """sample.budget and compress.budget (network calls per stage) must lie in 1..D."""
  for key in ("sample.budget", "compress.budget"):
    budget = _get(config, key)
    if budget is None or not 1 <= budget <= num_variables:
      raise ConfigError(f"config.{key} = {budget} network calls per stage, but it is required and must "
                        f"lie in 1..D with D = {num_variables} variables per data point (D: one call per "
                        f"variable); set it with --config.{key}=...")


@dataclasses.dataclass(frozen=True)
class Experiment:
  """Everything a run needs, derived once from the config."""
  config: ml_collections.ConfigDict
  dataset: Any  # data.Dataset: event_shape, num_classes, train_batch, eval_batches.
  model: Any  # A flax module mapping (x_in, known, t) to logits.
  optimizer: optax.GradientTransformation
  transitions: Any  # upscale.Transitions, or None for OA-ARDM.

  @property
  def num_variables(self) -> int:
    return math.prod(self.dataset.event_shape)

  @property
  def num_stages(self) -> int:
    return 1 if self.transitions is None else self.transitions.num_stages

  @property
  def total_steps(self) -> int:
    """S * D: generation steps of a full sequential sample (the tracker's length)."""
    return self.num_stages * self.num_variables

  def logits_fn(self, params, dropout_rng=None) -> Callable:
    """The network as the ARDM math takes it: (x_in, known, t) -> logits; training mode iff dropout_rng."""
    if dropout_rng is None:
      return functools.partial(self.model.apply, {"params": params})
    return functools.partial(self.model.apply, {"params": params}, train=True, rngs={"dropout": dropout_rng})

  def init_params(self, rng: jax.Array):
    x = jnp.zeros((1,) + tuple(self.dataset.event_shape), jnp.int32)
    return self.model.init(rng, x, x > 0, jnp.zeros((1,), jnp.int32))["params"]

  def sample_orders_and_steps(self, rng: jax.Array, x_shape):
    """The loss's randomness for a batch of shape x_shape: orders sigma [B, *event] and global steps t [B]."""
    return objective.sample_orders_and_steps(rng, x_shape, self.total_steps, self.config.objective.antithetic)

  def loss_at(self, params, x: jax.Array, sigma: jax.Array, t: jax.Array, dropout_rng=None):
    """(scalar loss in bits/dim, objective.Terms) at given orders and global steps; training iff dropout_rng."""
    obj = self.config.objective
    logits_fn = self.logits_fn(params, dropout_rng)
    if self.transitions is None:
      return objective.oa_ardm_loss_at(logits_fn, x, sigma, t, absorbing_value=obj.absorbing_value,
                                       ce_weight=obj.ce_weight)
    return upscale.upscale_loss_at(logits_fn, x, sigma, t, self.transitions,
                                   parametrisation=obj.parametrisation, ce_weight=obj.ce_weight)

  def loss(self, params, x: jax.Array, rng: jax.Array, train: bool = False):
    """(scalar training loss in bits/dim, objective.Terms) with a random order and step per example."""
    dropout_rng = None
    if train:
      rng, dropout_rng = jax.random.split(rng)
    sigma, t = self.sample_orders_and_steps(rng, x.shape)
    return self.loss_at(params, x, sigma, t, dropout_rng)


def make_optimizer(opt: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Adam or AdamW with linear warmup then constant rate, after global-norm clipping."""
  lr = opt.learning_rate
  if opt.warmup_steps > 0:
    lr = optax.linear_schedule(0.0, opt.learning_rate, opt.warmup_steps)
  if opt.name == "adam":
    inner = optax.adam(lr, b1=opt.b1, b2=opt.b2)
  else:
    inner = optax.adamw(lr, b1=opt.b1, b2=opt.b2, weight_decay=opt.weight_decay)
  return optax.chain(optax.clip_by_global_norm(opt.grad_clip_norm), inner)


def build_transitions(config: ml_collections.ConfigDict, num_classes: int):
  obj = config.objective
  if obj.kind == "oa":
    return None
  if obj.transitions == "text8":
    if num_classes != 27:
      raise ConfigError(f"config.objective.transitions = 'text8' needs 27 classes, the data has {num_classes}.")
    return upscale.text8_transitions()
  return upscale.digit_transitions(num_classes, obj.branching)


def build_model(config: ml_collections.ConfigDict, num_classes: int, transitions) -> Any:
  fields = {k: v for k, v in config.model.items() if k != "name"}
  if transitions is None:
    num_stages, num_classes_out = 1, num_classes
  else:
    num_stages = transitions.num_stages
    num_classes_out = transitions.num_outputs(config.objective.parametrisation)
  module = MODELS[config.model.name]
  try:
    return module(num_classes=num_classes, num_classes_out=num_classes_out, num_stages=num_stages, **fields)
  except TypeError as e:
    raise ConfigError(f"config.model does not fit {module.__name__}: {e}; remove or rename the key "
                      f"(the model's fields are those of {module.__name__} in ardm_jax/models).") from e


def build_experiment(config: ml_collections.ConfigDict) -> Experiment:
  """Validates the config and builds its parts; ConfigError (or FileNotFoundError) names what to fix."""
  validate_config(config)
  enable_compilation_cache(config.training.compilation_cache_dir)
  try:
    dataset = data_lib.make_dataset(config.data)
  except ValueError as e:
    raise ConfigError(str(e)) from e
  check_budget(config, math.prod(dataset.event_shape))
  transitions = build_transitions(config, dataset.num_classes)
  if transitions is None and not 0 <= config.objective.absorbing_value <= dataset.num_classes:
    raise ConfigError(f"config.objective.absorbing_value = {config.objective.absorbing_value} is outside "
                      f"0..{dataset.num_classes} for {dataset.num_classes}-class data; use {dataset.num_classes} (an "
                      f"extra token, as for text) or a mid-range value (images: 128) with "
                      f"--config.objective.absorbing_value=...")
  return Experiment(config=config, dataset=dataset, model=build_model(config, dataset.num_classes, transitions),
                    optimizer=make_optimizer(config.optimizer), transitions=transitions)


def shape_only_experiment(config: ml_collections.ConfigDict, event_shape, num_classes: int) -> Experiment:
  """The experiment of `config` on a dataset that only knows shapes (benchmarks, tests: no data is read).

  Args:
    config: a run config (validated here).
    event_shape: shape of one data point, e.g. (32, 32, 3) or (250,).
    num_classes: K, the number of values per variable.
  """
  validate_config(config)
  dataset = types.SimpleNamespace(event_shape=tuple(event_shape), num_classes=num_classes)
  transitions = build_transitions(config, num_classes)
  return Experiment(config=config, dataset=dataset, model=build_model(config, num_classes, transitions),
                    optimizer=make_optimizer(config.optimizer), transitions=transitions)
