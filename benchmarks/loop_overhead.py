r"""Training-loop overhead: the real loop (train.run) against a bare jitted step in a loop, in one run.

Both use the same Trainer (so the same compiled step) and the same batches of configs/quickstart.py (embedded
text, a 0.4M-parameter Transformer). The loop's rate is measured differentially, (N2 - N1) / (T(N2) - T(N1))
for two fresh runs of N1 and N2 steps, so its fixed costs (restore/init, writer, the final eval and checkpoint)
cancel and what remains is its per-step cost: batch assembly from the data pipeline, the finiteness check,
the metric window, the progress hooks and the periodic logging. The bare loop steps through batches built
beforehand. The step's achieved FLOP/s (XLA's FLOPs per step / bare step time) is shown next to a large float32
matmul's FLOP/s measured in the same run. Target: the loop keeps >= 95% of the bare rate.

  python benchmarks/loop_overhead.py [--steps=100,400] [--rounds=2]

Prints a table and writes benchmarks/results/loop_overhead.json.
"""

import importlib
import json
import pathlib
import sys
import tempfile
import time

# Run from a checkout, no install: the checkout replaces this folder on the path, so that compression.py here
# does not shadow the `compression` module (Python 3.14's standard library) that jax's compilation cache imports.
sys.path.pop(0)
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from ardm_jax.training import evaluation
from ardm_jax.training import experiment
from ardm_jax.training import train

FLAGS = flags.FLAGS
flags.DEFINE_list("steps", ["100", "400"], "N1, N2: steps of the two training runs.")
flags.DEFINE_integer("rounds", 2, "Alternating rounds of (bare, loop) measurements; medians reported.")
flags.DEFINE_integer("matmul_size", 2048, "n of the n x n float32 matmul.")
flags.DEFINE_string("out", str(pathlib.Path(__file__).parent / "results" / "loop_overhead.json"), "JSON path.")


def matmul_flops_per_s(n: int, repeats: int = 5) -> float:
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  matmul = jax.jit(lambda x: x @ x)
  jax.block_until_ready(matmul(a))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(matmul(a))
    times.append(time.perf_counter() - start)
  return 2 * n**3 / float(np.median(times))


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # The loop's per-log console lines are not what is measured.
  n1, n2 = (int(s) for s in FLAGS.steps)
  config = importlib.import_module("configs.quickstart").get_config()
  config.training.log_every_steps = 100
  config.training.eval_every_steps = 10**6  # Only the final eval (a fixed cost, cancelled out).
  config.training.checkpoint_every_steps = 10**6
  config.eval.num_passes, config.eval.max_batches = 1, 1
  exp = experiment.build_experiment(config)
  trainer = train.Trainer(exp)
  batches = [trainer.train_batch(step) for step in range(n2)]
  state = trainer.init(jax.random.key_data(jax.random.key(0)))
  compiled = trainer.train_step.lower(state, batches[0]).compile()
  cost = compiled.cost_analysis()
  step_flops = float((cost[0] if isinstance(cost, (list, tuple)) else cost)["flops"])
  state, metrics = trainer.train_step(state, batches[0])  # Compile, and warm the eval step too.
  evaluation.evaluate(exp, trainer, state.ema_params, jax.random.key_data(jax.random.key(1)))

  def bare_rate():
    nonlocal state
    jax.block_until_ready(state)
    start = time.perf_counter()
    for step in range(n1, n2):
      state, _ = trainer.train_step(state, batches[step])
    jax.block_until_ready(state)
    return (n2 - n1) / (time.perf_counter() - start)

  def run_seconds(num_steps: int) -> float:
    config.training.num_train_steps = num_steps
    with tempfile.TemporaryDirectory() as workdir:
      start = time.perf_counter()
      jax.block_until_ready(train.run(exp, trainer, workdir))
      return time.perf_counter() - start

  bare, loop = [], []
  for _ in range(FLAGS.rounds):
    bare.append(bare_rate())
    loop.append((n2 - n1) / (run_seconds(n2) - run_seconds(n1)))
  bare_steps_s, loop_steps_s = float(np.median(bare)), float(np.median(loop))
  matmul = matmul_flops_per_s(FLAGS.matmul_size)
  result = {
    "config": "quickstart",
    "batch": config.training.batch_size,
    "steps": [n1, n2],
    "bare_steps_per_s": bare_steps_s,
    "loop_steps_per_s": loop_steps_s,
    "loop_over_bare": loop_steps_s / bare_steps_s,
    "bare_rounds": bare,
    "loop_rounds": loop,
    "step_flops": step_flops,
    "step_flops_per_s": step_flops * bare_steps_s,
    "matmul_size": FLAGS.matmul_size,
    "matmul_flops_per_s": matmul,
    "jax": jax.__version__,
    "device": jax.devices()[0].device_kind,
    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
  }
  print(f"\njax {jax.__version__}, {jax.devices()[0].device_kind}\n")
  print(
    "| bare step/s | training loop step/s | loop / bare | step GFLOP | step GFLOP/s | "
    f"{FLAGS.matmul_size}^2 matmul GFLOP/s | step / matmul |"
  )
  print("|---|---|---|---|---|---|---|")
  print(
    f"| {bare_steps_s:.1f} | {loop_steps_s:.1f} | {loop_steps_s / bare_steps_s:.3f} | "
    f"{step_flops / 1e9:.2f} | {step_flops * bare_steps_s / 1e9:.1f} | {matmul / 1e9:.1f} | "
    f"{step_flops * bare_steps_s / matmul:.2f} |"
  )
  out = pathlib.Path(FLAGS.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(result, indent=1))
  print(f"\nwrote {out}")


if __name__ == "__main__":
  app.run(main)
