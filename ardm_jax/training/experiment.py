"""An experiment: the config validated and turned into dataset, network, objective and optimizer; the one place that
wires them together (`build_experiment(config)`). Design notes: docs/design.md#experiment
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

from ardm_jax.training import config_schema
from ardm_jax import data as data_lib
from ardm_jax.core import distributions
from ardm_jax.core import objective
from ardm_jax.core import plan_walk
from ardm_jax.core import upscale
from ardm_jax.models import diffwave
from ardm_jax.models import transformer
from ardm_jax.models import unet

MODELS = {"unet": unet.UNet, "transformer": transformer.Transformer, "diffwave": diffwave.DiffWave}
ConfigError = config_schema.ConfigError
check_batch_divisibility = config_schema.check_batch_divisibility


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the key and the fix for values no run can use (see config_schema)."""
  config_schema.validate(config)


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


@dataclasses.dataclass(frozen=True)
class Experiment:
  """Everything a run needs, derived once from the config."""

  config: ml_collections.ConfigDict
  dataset: Any  # data.Dataset: event_shape, num_classes, train_batch, eval_batches.
  model: Any  # A flax module mapping (x_in, known, t) to logits.
  optimizer: optax.GradientTransformation
  transitions: Any  # upscale.Transitions, or None for OA-ARDM.
  process: plan_walk.Process  # The staged process (one stage for OA-ARDM) that training, sampling and coding walk.

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
    return objective.ardm_loss_at(
      self.process, self.logits_fn(params, dropout_rng), x, sigma, t, ce_weight=self.config.objective.ce_weight
    )

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
    return upscale.text8_transitions()
  return upscale.digit_transitions(num_classes, obj.branching)


def build_process(config: ml_collections.ConfigDict, num_classes: int) -> plan_walk.Process:
  """The staged process of the config's objective: one stage for OA-ARDM, S for upscale."""
  transitions = build_transitions(config, num_classes)
  num_mixtures = config.objective.get("num_mixtures", 0)  # absent in configs older than the mixture head
  if transitions is None:
    return plan_walk.oa_process(num_classes, config.objective.absorbing_value, num_mixtures)
  return plan_walk.upscale_process(transitions, config.objective.parametrisation, num_mixtures)


def build_model(config: ml_collections.ConfigDict, num_classes: int, transitions) -> Any:
  fields = {k: v for k, v in config.model.items() if k != "name"}
  if "arch" not in fields and config.model.name == "transformer":
    # A config from before model.arch (a workdir or bundle of an earlier version): its network had the known
    # embedding that the paper arch has since dropped, and its parameters hold it.
    fields["known_embed"] = True
  if transitions is None:
    num_stages, num_classes_out = 1, num_classes
  else:
    num_stages = transitions.num_stages
    num_classes_out = transitions.num_outputs(config.objective.parametrisation)
  if config.objective.get("num_mixtures", 0):  # the 3M parameters of a discretized logistic mixture
    num_classes_out = distributions.num_params(config.objective.num_mixtures)
  return MODELS[config.model.name](
    num_classes=num_classes, num_classes_out=num_classes_out, num_stages=num_stages, **fields
  )


def build_experiment(config: ml_collections.ConfigDict) -> Experiment:
  """Validates the config and builds its parts; ConfigError (or FileNotFoundError) names what to fix."""
  validate_config(config)
  enable_compilation_cache(config.training.compilation_cache_dir)
  try:
    dataset = data_lib.make_dataset(config.data)
  except ValueError as e:  # The data files themselves: a damaged zip, too little text, ...
    raise ConfigError(str(e)) from e
  config_schema.check_against_data(config, math.prod(dataset.event_shape), dataset.num_classes)
  transitions = build_transitions(config, dataset.num_classes)
  return Experiment(
    config=config,
    dataset=dataset,
    model=build_model(config, dataset.num_classes, transitions),
    optimizer=make_optimizer(config.optimizer),
    transitions=transitions,
    process=build_process(config, dataset.num_classes),
  )


def shape_only_experiment(config: ml_collections.ConfigDict, event_shape, num_classes: int) -> Experiment:
  """The experiment of `config` on a dataset that only knows shapes (benchmarks, tests: no data is read).

  Args:
    config: a run config (validated here).
    event_shape: shape of one data point, e.g. (32, 32, 3) or (250,).
    num_classes: K, the number of values per variable.
  """
  config = config.copy_and_resolve_references()
  if config.data.name == "text8" and config.data.path is None:
    config.data.path = "unread-text8.zip"  # Required of a run; nothing is read here.
  if config.data.name == "sc09" and config.data.path is None:
    config.data.path = "unread-sc09"
  validate_config(config)
  dataset = types.SimpleNamespace(event_shape=tuple(event_shape), num_classes=num_classes)
  transitions = build_transitions(config, num_classes)
  return Experiment(
    config=config,
    dataset=dataset,
    model=build_model(config, num_classes, transitions),
    optimizer=make_optimizer(config.optimizer),
    transitions=transitions,
    process=build_process(config, dataset.num_classes),
  )
