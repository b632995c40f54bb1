"""Training: one jitted data-parallel train step, periodic eval (evaluation.py), orbax checkpoints, clu metrics. The
global batch is sharded over a 1-D mesh of every device of every host (axis 'data'), the state is replicated, and
hosts agree on every decision that changes the sequence of collective steps. Design notes: docs/design.md#train
"""

import functools
import signal
import sys
import time
from typing import Any, Mapping

from absl import logging
import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from ardm_jax.training import checkpointing
from ardm_jax.training import evaluation
from ardm_jax.training import experiment
from ardm_jax.training import lease as lease_lib
from ardm_jax.training import metrics_io
from ardm_jax.io import paths
from ardm_jax.core import objective
from ardm_jax.core import step_tracker


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # [] int32, number of updates applied.
  params: Any
  ema_params: Any
  opt_state: Any
  tracker: Any  # step_tracker state: EMA of the per-step losses L_t over all S*D steps.
  rng: jax.Array  # [2] uint32 base key; each step folds in its step number.
  num_skipped: jax.Array  # [] int32, updates dropped because the loss or gradient was not finite.


class NonFiniteLossError(FloatingPointError):
  """Raised when a step produced a non-finite loss or gradient and the config says to stop."""


# Errors whose message says all a user needs (bad config or input files, unusable checkpoints, a diverged run);
# main.py prints them in one line instead of a traceback.
# (A FileNotFoundError from inside a library is a bug to show in full, not a user's missing input.)
RUN_ERRORS = (
  experiment.ConfigError,
  paths.InputNotFoundError,
  checkpointing.CheckpointError,
  NonFiniteLossError,
  lease_lib.WorkdirBusyError,
)


def init_state(exp: experiment.Experiment, rng: jax.Array) -> TrainState:
  """Initialises parameters, optimizer, EMA and tracker (jit-able; use with jax.eval_shape for shapes)."""
  init_rng, state_rng = jax.random.split(rng)
  params = exp.init_params(init_rng)
  return TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    ema_params=params,
    opt_state=exp.optimizer.init(params),
    tracker=step_tracker.init(exp.total_steps),
    rng=state_rng,
    num_skipped=jnp.zeros((), jnp.int32),
  )


def loss_and_grads(exp: experiment.Experiment, params, x: jax.Array, rng: jax.Array):
  """Training loss, objective.Terms and gradients on the batch x [B, *event], over grad_accum_steps micro-batches.

  The orders and steps are drawn for the whole batch first (antithetic steps are stratified over the batch), so
  any number of micro-batches gives the same loss, terms and gradients as one full batch, up to float rounding.
  Micro-batch k holds rows k, k + K, k + 2K, ... (K micro-batches): each device's contiguous slice of the
  sharded batch contributes to every micro-batch, which keeps every micro-batch data-parallel. Dropout masks
  are drawn per micro-batch (a different draw of the same distribution when K > 1).
  """
  noise_rng, dropout_rng = jax.random.split(rng)
  sigma, t = exp.sample_orders_and_steps(noise_rng, x.shape)
  grad_fn = jax.value_and_grad(exp.loss_at, has_aux=True)
  num_micro = exp.config.training.grad_accum_steps
  if num_micro == 1:
    (loss, terms), grads = grad_fn(params, x, sigma, t, dropout_rng)
    return loss, terms, grads

  def split(a_BxE):  # [B, ...] -> [U, B/U, ...], micro-batch u = rows u::U.
    return jnp.swapaxes(a_BxE.reshape(a_BxE.shape[0] // num_micro, num_micro, *a_BxE.shape[1:]), 0, 1)

  def merge(a_UxBxE):  # The inverse of split.
    return jnp.swapaxes(a_UxBxE, 0, 1).reshape(-1, *a_UxBxE.shape[2:])

  def micro_step(grad_sum, inputs):
    index, x_micro, sigma_micro, t_micro = inputs
    (loss, terms), grads = grad_fn(params, x_micro, sigma_micro, t_micro, jax.random.fold_in(dropout_rng, index))
    return jax.tree.map(jnp.add, grad_sum, grads), (loss, terms)

  zeros = jax.tree.map(jnp.zeros_like, params)
  grad_sum, (losses, terms) = jax.lax.scan(micro_step, zeros, (jnp.arange(num_micro), split(x), split(sigma), split(t)))
  # Every scalar term is a mean over equal micro-batches, so the batch mean is the mean of the micro means.
  scalars = jax.tree.map(lambda v: jnp.mean(v, axis=0), terms.scalars)
  per_example = jax.tree.map(merge, terms.per_example)
  grads = jax.tree.map(lambda g: g / num_micro, grad_sum)
  return jnp.mean(losses), objective.Terms(scalars, per_example), grads


def train_step(exp: experiment.Experiment, state: TrainState, x: jax.Array):
  """One update on the global batch x [B, *event]; returns (new_state, metrics).

  If the loss or the gradient norm is not finite, the update is dropped (the returned state equals the input
  but for num_skipped) and metrics['finite'] is False; the host loop then stops or carries on.
  """
  rng = jax.random.fold_in(state.rng, state.step)
  loss, terms, grads = loss_and_grads(exp, state.params, x, rng)
  grad_norm = optax.global_norm(grads)
  finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
  updates, opt_state = exp.optimizer.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  # EMA with the usual warm-up, so short runs are not dominated by the initial parameters.
  decay = jnp.minimum(exp.config.optimizer.ema_decay, (1.0 + state.step) / (10.0 + state.step))
  ema_params = jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, state.ema_params, params)
  tracker = step_tracker.update(
    state.tracker, terms.per_example["t"], terms.per_example["step_loss"], momentum=exp.config.training.tracker_momentum
  )
  updated = state.replace(
    step=state.step + 1, params=params, ema_params=ema_params, opt_state=opt_state, tracker=tracker
  )
  dropped = state.replace(step=state.step + 1, num_skipped=state.num_skipped + 1)
  new_state = jax.tree.map(lambda u, d: jnp.where(finite, u, d), updated, dropped)
  metrics = dict(terms.scalars, grad_norm=grad_norm, finite=finite)
  return new_state, metrics


class Trainer:
  """Wires an experiment to devices: the sharded jitted steps (train, eval sums) and host-side batch assembly."""

  def __init__(self, exp: experiment.Experiment, devices=None):
    self.exp = exp
    self.mesh = jax.sharding.Mesh(np.asarray(devices or jax.devices()), ("data",))
    self.replicated = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec())
    self.batch_sharding = jax.sharding.NamedSharding(self.mesh, jax.sharding.PartitionSpec("data"))
    experiment.check_batch_divisibility(exp.config, self.mesh.size)
    self.init = jax.jit(functools.partial(init_state, exp), out_shardings=self.replicated)
    self.train_step = jax.jit(
      functools.partial(train_step, exp),
      in_shardings=(self.replicated, self.batch_sharding),
      out_shardings=(self.replicated, self.replicated),
      donate_argnums=(0,),
    )
    self.eval_sums = jax.jit(
      functools.partial(evaluation.eval_sums, exp),
      in_shardings=(self.replicated, self.batch_sharding, self.batch_sharding, self.replicated),
      out_shardings=self.replicated,
    )
    self._max_over_devices = jax.jit(jnp.max, in_shardings=self.batch_sharding, out_shardings=self.replicated)

  def any_process(self, flag: bool):
    """Whether `flag` holds on any process: the bool itself in a single process; across hosts a replicated
    jax bool (dispatched asynchronously; reading it waits for the steps queued before it)."""
    if jax.process_count() == 1:
      return flag
    local = np.full((len(self.mesh.local_devices),), flag, np.int32)
    return self._max_over_devices(self.global_array(local)) > 0

  def abstract_state(self) -> TrainState:
    shapes = jax.eval_shape(functools.partial(init_state, self.exp), jax.random.key_data(jax.random.key(0)))
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=self.replicated), shapes)

  def global_array(self, local: np.ndarray) -> jax.Array:
    """Assembles the global batch from this process's rows [B/num_processes, ...]."""
    global_shape = (local.shape[0] * jax.process_count(),) + local.shape[1:]
    return jax.make_array_from_process_local_data(self.batch_sharding, local, global_shape)

  def train_batch(self, step: int) -> jax.Array:
    local = self.exp.dataset.train_batch(
      step, self.exp.config.training.batch_size, jax.process_index(), jax.process_count()
    )
    return self.global_array(local)


def _check_finite(metrics: Mapping[str, Any], step: int, on_nonfinite: str):
  if not bool(metrics["finite"]):
    msg = (
      f"Non-finite loss or gradient at step {step} (loss={float(metrics['loss'])}, "
      f"grad_norm={float(metrics['grad_norm'])}); the update was dropped"
    )
    if on_nonfinite == "stop":
      raise NonFiniteLossError(
        msg + ". Training stopped without checkpointing this state; lower the learning rate or set "
        "--config.training.on_nonfinite=skip to drop such steps."
      )
    logging.warning("%s and counted (training.on_nonfinite=skip).", msg)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> TrainState:
  """Trains (resuming from the latest good checkpoint in workdir), with periodic eval and checkpoints."""
  exp = experiment.build_experiment(config)
  return run(exp, Trainer(exp), workdir)


def run(exp: experiment.Experiment, trainer: Trainer, workdir: str) -> TrainState:
  """The training loop of train_and_evaluate, on an experiment already built."""
  config = exp.config
  ckpt = checkpointing.Checkpointer(workdir, config)
  try:
    state = ckpt.restore_latest(trainer.abstract_state())
  except checkpointing.CheckpointError:
    ckpt.close()
    raise
  if state is None:
    state = trainer.init(jax.random.key_data(jax.random.key(config.seed)))
    logging.info("Starting from scratch in %s.", workdir)
  writer = metrics_io.create_writer(workdir)
  start = int(state.step)
  if start == 0:
    metrics_io.log_parameter_overview(state.params)
    writer.write_hparams(metrics_io.flatten_config(config))
  cfg = config.training
  hooks = metrics_io.progress_hooks(cfg.num_train_steps, writer, workdir, cfg.profile_steps)
  window = metrics_io.MetricWindow()  # Train metrics averaged since the last log.
  eval_rng = jax.random.fold_in(jax.random.key_data(jax.random.key(config.seed)), 2**31 - 1)

  preempted = {"flag": False}
  previous_handler = signal.signal(signal.SIGTERM, lambda *_: preempted.update(flag=True))
  multi_host = jax.process_count() > 1
  try:
    pending = None  # (metrics, step) of the last step, checked after the next dispatch (async dispatch).
    previous_vote = False  # Across hosts: the stop vote dispatched after the previous step.
    for step in range(start, cfg.num_train_steps):
      state, metrics = trainer.train_step(state, trainer.train_batch(step))
      # The SIGTERM flag is read once per step; across hosts its max is read one step late, so that every host
      # stops after the same step without waiting for the step just dispatched.
      vote = trainer.any_process(preempted["flag"])
      stop = bool(previous_vote) if multi_host else vote
      previous_vote = vote
      window.add(metrics)
      if pending is not None:
        _check_finite(*pending, cfg.on_nonfinite)
      pending = (metrics, step)
      ckpt.check()  # The first failed (asynchronous) save stops training.
      done = step + 1
      for hook in hooks:
        hook(done)
      last = done == cfg.num_train_steps
      log = done % cfg.log_every_steps == 0 or last
      evaluate = (done % cfg.eval_every_steps == 0 or last) and not stop  # Preemption leaves little time.
      save = done % cfg.checkpoint_every_steps == 0 or last or stop
      if not (log or evaluate or save):
        continue
      _check_finite(*pending, cfg.on_nonfinite)  # Never log, eval or save past a non-finite step.
      pending = None
      ckpt.renew_lease()
      if log:
        writer.write_scalars(done, dict(window.compute_and_reset(), num_skipped=float(state.num_skipped)))
      if evaluate:
        start_time = time.perf_counter()
        result = evaluation.evaluate(exp, trainer, state.ema_params, eval_rng, should_stop=lambda: preempted["flag"])
        if result is None:  # Aborted by a SIGTERM on some host: checkpoint now instead.
          stop = save = True
        else:
          writer.write_scalars(done, dict(result, eval_time_s=time.perf_counter() - start_time))
      if save:
        start_time = time.perf_counter()
        ckpt.save(state)
        writer.write_scalars(done, {"checkpoint_time_s": time.perf_counter() - start_time})
      if stop:
        logging.warning("SIGTERM received: checkpointed step %d and stopping.", done)
        break
  finally:
    signal.signal(signal.SIGTERM, previous_handler)
    writer.flush()
    ckpt.close(quiet=sys.exc_info()[0] is not None)  # Never hide the error that stopped the loop.
  return state
