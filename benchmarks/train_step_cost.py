r"""Cost of one train step of each full-size paper config: XLA FLOPs and measured time on this machine.

FLOPs come from XLA's cost analysis of the compiled step at the config's global batch (hardware independent;
divide by an accelerator's sustained FLOP/s to project). The time is measured at a small batch (the full batch
of the 124M-parameter U-Net would take many minutes per step on a CPU) and scaled by the batch ratio in the
last column only as a rough CPU projection.

  python benchmarks/train_step_cost.py [--configs=cifar10,text8] [--time_batch=2] [--repeats=3]
"""
import importlib
import os
import sys
import time
import types

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from ardm_jax import experiment  # pylint: disable=g-import-not-at-top
from ardm_jax import train  # pylint: disable=g-import-not-at-top

FLAGS = flags.FLAGS
flags.DEFINE_list("configs", ["cifar10", "cifar10_upscale", "text8", "text8_upscale"], "Config modules.")
flags.DEFINE_integer("time_batch", 2, "Global batch of the timed steps.")
flags.DEFINE_integer("repeats", 3, "Timed steps (median reported), after one compile + warm-up step.")

EVENT = {"cifar10": ((32, 32, 3), 256), "text8": ((250,), 27)}


def shape_only_experiment(config) -> experiment.Experiment:
  """The experiment of `config` with a dataset stub that only knows shapes (no data needed)."""
  event_shape, num_classes = EVENT[config.data.name]
  event_shape = (config.data.seq_len,) if config.data.name == "text8" else event_shape
  transitions = experiment.build_transitions(config, num_classes)
  return experiment.Experiment(
      config=config, dataset=types.SimpleNamespace(event_shape=event_shape, num_classes=num_classes),
      model=experiment.build_model(config, num_classes, transitions),
      optimizer=experiment.make_optimizer(config.optimizer), transitions=transitions)


def step_flops(trainer: train.Trainer, state, batch_size: int) -> float:
  x = jax.ShapeDtypeStruct((batch_size,) + tuple(trainer.exp.dataset.event_shape), jnp.int32,
                           sharding=trainer.batch_sharding)
  compiled = trainer.train_step.lower(state, x).compile()
  analysis = compiled.cost_analysis()
  analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
  return float(analysis["flops"])


def main(argv):
  del argv
  rows = []
  for name in FLAGS.configs:
    config = importlib.import_module(f"configs.{name}").get_config()
    exp = shape_only_experiment(config)
    trainer = train.Trainer(exp)
    abstract = trainer.abstract_state()
    full_batch = config.training.batch_size
    flops_full = step_flops(trainer, abstract, full_batch)
    flops_small = step_flops(trainer, abstract, FLAGS.time_batch)
    state = trainer.init(jax.random.key_data(jax.random.key(0)))
    num_params = sum(p.size for p in jax.tree.leaves(state.params))
    x = np.zeros((FLAGS.time_batch,) + tuple(exp.dataset.event_shape), np.int32)
    t0 = time.perf_counter()
    state, metrics = trainer.train_step(state, trainer.global_array(x))
    jax.block_until_ready(metrics["loss"])
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(FLAGS.repeats):
      t0 = time.perf_counter()
      state, metrics = trainer.train_step(state, trainer.global_array(x))
      jax.block_until_ready(metrics["loss"])
      times.append(time.perf_counter() - t0)
    step_s = float(np.median(times))
    rows.append((name, num_params, full_batch, flops_full, FLAGS.time_batch, flops_small, step_s, compile_s))
    print(f"done {name}", flush=True)

  print(f"\ndevices: {jax.device_count()} x {jax.devices()[0].device_kind}")
  header = (f"{'config':<16} {'params':>12} {'batch':>6} {'TFLOP/step':>11} {'t_batch':>7} {'TFLOP':>8} "
            f"{'s/step':>8} {'GFLOP/s':>8} {'compile s':>9} {'CPU s/full step':>15}")
  print(header)
  for name, n, b, f, tb, fs, s, c in rows:
    print(f"{name:<16} {n:>12,} {b:>6} {f / 1e12:>11.2f} {tb:>7} {fs / 1e12:>8.4f} {s:>8.2f} "
          f"{fs / s / 1e9:>8.1f} {c:>9.1f} {s * f / fs:>15.0f}")


if __name__ == "__main__":
  app.run(main)
