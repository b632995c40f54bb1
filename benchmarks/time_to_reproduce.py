r"""Projected time to reproduce each paper run: measured FLOPs per step x the paper's step counts, divided by
a stated fraction of an accelerator's peak bf16 FLOP/s. A projection, not a measurement.

Reads the float32 / no-remat rows of benchmarks/results/train_step_cost.json (FLOPs do not depend on the dtype;
rematerialisation adds about a third for recomputation, not counted here).

  python benchmarks/time_to_reproduce.py [--utilisation=0.4]

Prints a table and writes benchmarks/results/time_to_reproduce.json.
"""

import importlib
import json
import pathlib
import sys

# Run from a checkout, no install: the checkout replaces this folder on the path, so that compression.py here
# does not shadow the `compression` module (Python 3.14's standard library) that jax's compilation cache imports.
sys.path.pop(0)
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from absl import app
from absl import flags


FLAGS = flags.FLAGS
flags.DEFINE_float("utilisation", 0.4, "Fraction of peak bf16 FLOP/s sustained (model FLOP utilisation).")
RESULTS = pathlib.Path(__file__).parent / "results"

# Dense bf16 peak FLOP/s (vendor data sheets): H100 SXM 989 TFLOP/s; TPU v4 275 TFLOP/s per chip, a v4-8 slice
# has 4 chips (8 TensorCores); TPU v5e 197 TFLOP/s per chip, a v5e-16 slice has 16 chips.
MACHINES = {"1 x H100 SXM": 989e12, "TPU v4-8 (4 chips)": 4 * 275e12, "TPU v5e-16 (16 chips)": 16 * 197e12}
PAPER_HOURS = 14 * 24  # "about two weeks" (paper, CIFAR-10 on 8 TPUv4), arXiv 2110.02037, appendix.


def main(argv):
  del argv
  cost = json.loads((RESULTS / "train_step_cost.json").read_text())
  rows = []
  for r in cost["rows"]:
    if r["dtype"] != "float32" or r["remat"] != "none":
      continue
    module = "cifar10" if r["config"] == "cifar10_middle_attn" else r["config"]
    steps = importlib.import_module(f"configs.{module}").get_config().training.num_train_steps
    total = steps * r["xla_flops"]
    hours = {m: total / (FLAGS.utilisation * peak) / 3600 for m, peak in MACHINES.items()}
    rows.append(
      {
        "config": r["config"],
        "tflop_per_step": r["xla_flops"] / 1e12,
        "steps": steps,
        "total_flops": total,
        "hours": hours,
      }
    )
  header = (
    "| config | TFLOP/step (XLA) | paper steps | total EFLOP | " + " | ".join(f"h on {m}" for m in MACHINES) + " |"
  )
  print(
    f"Projection at {FLAGS.utilisation:.0%} of peak bf16; the paper: ~{PAPER_HOURS} h (2 weeks) for "
    f"CIFAR-10 on 8 TPUv4.\n\n{header}\n" + "|---" * (header.count("|") - 1) + "|"
  )
  for r in rows:
    print(
      f"| {r['config']} | {r['tflop_per_step']:.1f} | {r['steps']:,} | {r['total_flops'] / 1e18:.0f} | "
      + " | ".join(f"{h:.0f}" for h in r["hours"].values())
      + " |"
    )
  (RESULTS / "time_to_reproduce.json").write_text(
    json.dumps(
      {"utilisation": FLAGS.utilisation, "peak_bf16_flops_per_s": MACHINES, "paper_hours": PAPER_HOURS, "rows": rows},
      indent=1,
    )
  )


if __name__ == "__main__":
  app.run(main)
