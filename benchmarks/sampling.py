r"""Sampling cost against the budget: network calls and time for budgets 1, 20, 100 and D.

Parallel sampling under a plan of network calls: arXiv 2110.02037, section 3.2.

The local (tiny, CPU) networks of configs/text8.py:local at two lengths (D = 32 and the paper's D = 250) and of
configs/cifar10.py:local (D = 3072), at their initial parameters (time does not depend on the values), sample
under the optimal plan of each budget for a decreasing loss curve. Calls are counted on the host by a callback
in the network function; the time is the median of a few runs after compilation. Sampling time should grow
with the number of calls and not with D.

  python benchmarks/sampling.py [--repeats=3]

Prints a table and writes benchmarks/results/sampling.json.
"""

import importlib
import json
import pathlib
import sys
import time

# Run from a checkout, no install: the checkout replaces this folder on the path, so that compression.py here
# does not shadow the `compression` module (Python 3.14's standard library) that jax's compilation cache imports.
sys.path.pop(0)
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from absl import app
from absl import flags
import jax

from ardm_jax.training import experiment
from benchmarks import _measure

FLAGS = flags.FLAGS
flags.DEFINE_integer("repeats", 2, "Timed runs per budget (median reported).")
flags.DEFINE_integer("num_samples", 4, "Samples drawn per run.")
flags.DEFINE_integer("max_calls", 3072, "Budgets above this are skipped (3072 sequential U-Net calls take long).")
flags.DEFINE_string("out", str(pathlib.Path(__file__).parent / "results" / "sampling.json"), "JSON path.")

# (name, config module, event shape, classes).
MODELS = (
  ("text8:local D=32", "text8", (32,), 27),
  ("text8:local D=250", "text8", (250,), 27),
  ("cifar10:local", "cifar10", (32, 32, 3), 256),
)
BUDGETS = (1, 20, 100, "D")


def main(argv):
  del argv
  rows = []
  for label, module, event_shape, num_classes in MODELS:
    config = importlib.import_module(f"configs.{module}").get_config("local")
    exp = experiment.shape_only_experiment(config, event_shape, num_classes)
    params = jax.jit(exp.init_params)(jax.random.key(0))
    num_variables = exp.num_variables
    timer = _measure.SamplerTimer(exp, params, FLAGS.num_samples)
    for budget in BUDGETS:
      budget = num_variables if budget == "D" else budget
      if budget > num_variables or budget > FLAGS.max_calls:
        continue
      timed = timer.time(budget, FLAGS.repeats)
      seconds = timed["seconds"]
      rows.append({"model": label, "D": num_variables, "budget": budget, **timed})
      print(f"done {label} budget {budget}: {seconds:.3f} s", flush=True)

  header = "| model | D | budget | network calls | time (s) | ms per call |"
  print(f"\njax {jax.__version__}, {jax.devices()[0].device_kind}, {FLAGS.num_samples} samples per run\n")
  print(header + "\n" + "|---" * (header.count("|") - 1) + "|")
  for r in rows:
    print(f"| {r['model']} | {r['D']} | {r['budget']} | {r['calls']} | {r['seconds']:.3f} | {r['ms_per_call']:.2f} |")
  out = pathlib.Path(FLAGS.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(
    json.dumps(
      {
        "jax": jax.__version__,
        "device": jax.devices()[0].device_kind,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "num_samples": FLAGS.num_samples,
        "rows": rows,
      },
      indent=1,
    )
  )
  print(f"\nwrote {out}")


if __name__ == "__main__":
  app.run(main)
