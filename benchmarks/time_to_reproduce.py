r"""Projected time to reproduce each paper run: measured FLOPs per step x the paper's step counts, divided by
a fraction of an accelerator's peak bf16 FLOP/s: the utilisation measured by benchmarks/accelerator.py for
the configs its results/accelerator.json has (the fastest variant's steps/s x these FLOPs / the measured devices'
peak), else the stated --utilisation. Each row says which: measured, or projected.

Reads the float32 / no-remat rows of benchmarks/results/train_step_cost.json (FLOPs do not depend on the dtype;
rematerialisation adds about a third for recomputation, not counted here).

  python benchmarks/time_to_reproduce.py [--utilisation=0.4] [--accelerator_json=PATH]

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
RESULTS = pathlib.Path(__file__).parent / "results"
flags.DEFINE_float("utilisation", 0.4, "Fraction of peak bf16 FLOP/s sustained where none was measured.")
flags.DEFINE_string(
  "accelerator_json", str(RESULTS / "accelerator.json"), "benchmarks/accelerator.py's results (used if present)."
)
flags.DEFINE_string("out", str(RESULTS / "time_to_reproduce.json"), "JSON path.")

# Dense bf16 peak FLOP/s (vendor data sheets): H100 SXM 989 TFLOP/s; TPU v4 275 TFLOP/s per chip, a v4-8 slice
# has 4 chips (8 TensorCores); TPU v5e 197 TFLOP/s per chip, a v5e-16 slice has 16 chips.
MACHINES = {"1 x H100 SXM": 989e12, "TPU v4-8 (4 chips)": 4 * 275e12, "TPU v5e-16 (16 chips)": 16 * 197e12}
PAPER_HOURS = 14 * 24  # "about two weeks" (paper, CIFAR-10 on 8 TPUv4), arXiv 2110.02037, appendix.


def fastest_measured_rows(path: pathlib.Path) -> dict:
  """{config: the accelerator.py train row with the most steps/s} over rows on a device of known peak."""
  if not path.exists():
    return {}
  measured = json.loads(path.read_text())
  fastest = {}
  for r in [] if measured.get("dry_run") else measured["train"]:
    if r["peak_flops_per_s"] and r["finite"] and r["steps_per_s"] > fastest.get(r["config"], {}).get("steps_per_s", 0):
      fastest[r["config"]] = r
  return fastest


def main(argv):
  del argv
  cost = json.loads((RESULTS / "train_step_cost.json").read_text())
  measured = fastest_measured_rows(pathlib.Path(FLAGS.accelerator_json))
  rows = []
  for r in cost["rows"]:
    if r["dtype"] != "float32" or r["remat"] != "none" or r.get("arch", "paper") != "paper":
      continue
    module = "cifar10" if r["config"] == "cifar10_middle_attn" else r["config"]
    steps = importlib.import_module(f"configs.{module}").get_config().training.num_train_steps
    total = steps * r["xla_flops"]
    m = measured.get(r["config"])
    if m:  # This step's FLOPs at the measured rate, against the measured devices' peak.
      utilisation = r["xla_flops"] * m["steps_per_s"] / (m["num_devices"] * m["peak_flops_per_s"])
      variant = f"{m['dtype']}/{m['attention']}/{m['remat']}, grad_accum_steps {m['grad_accum_steps']}"
      source = f"measured: {m['steps_per_s']:.3g} steps/s on {m['num_devices']} x {m['device_kind']} ({variant})"
      measured_hours = steps / m["steps_per_s"] / 3600
    else:
      utilisation, source, measured_hours = FLAGS.utilisation, "projected", None
    hours = {name: total / (utilisation * peak) / 3600 for name, peak in MACHINES.items()}
    rows.append(
      {
        "config": r["config"],
        "tflop_per_step": r["xla_flops"] / 1e12,
        "steps": steps,
        "total_flops": total,
        "utilisation": utilisation,
        "source": source,
        "measured_hours": measured_hours,
        "hours": hours,
      }
    )
  header = (
    "| config | TFLOP/step (XLA) | paper steps | total EFLOP | utilisation | "
    + " | ".join(f"h on {m}" for m in MACHINES)
    + " | h on the measured devices | source |"
  )
  print(
    f"Projected rows at {FLAGS.utilisation:.0%} of peak bf16, measured rows at the utilisation of "
    f"{FLAGS.accelerator_json}; the paper: ~{PAPER_HOURS} h (2 weeks) for CIFAR-10 on 8 TPUv4.\n\n{header}\n"
    + "|---" * (header.count("|") - 1)
    + "|"
  )
  for r in rows:
    measured_hours = "-" if r["measured_hours"] is None else f"{r['measured_hours']:.0f}"
    print(
      f"| {r['config']} | {r['tflop_per_step']:.1f} | {r['steps']:,} | {r['total_flops'] / 1e18:.0f} | "
      f"{r['utilisation']:.1%} | "
      + " | ".join(f"{h:.0f}" for h in r["hours"].values())
      + f" | {measured_hours} | {r['source']} |"
    )
  pathlib.Path(FLAGS.out).write_text(
    json.dumps(
      {
        "utilisation": FLAGS.utilisation,
        "accelerator_json": FLAGS.accelerator_json if measured else None,
        "peak_bf16_flops_per_s": MACHINES,
        "paper_hours": PAPER_HOURS,
        "rows": rows,
      },
      indent=1,
    )
  )


if __name__ == "__main__":
  app.run(main)
