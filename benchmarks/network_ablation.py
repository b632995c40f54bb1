r"""Which Transformer changes make the text OA-ARDM learn faster: each alone, in combination, at equal parameters.

The issue's side-by-side settings: `embedded_text`, 4 layers, width 128, 4 heads, batch 64, AdamW at 2e-3 with
100 warmup steps then constant, b2 0.99, weight decay 0.001, EMA 0.99, no gradient clipping; D = 32 for 1500
steps and D = 128 for 600 steps; held-out bits per character with 8 evaluation passes (mean +- standard error).
Every variant's mlp_dim is chosen so its parameter count is within 5% of today's network (mlp_dim 640: 0.93M).
Training is ardm_jax's own: `experiment.build_experiment`, `train.Trainer`'s jitted step, `evaluation.evaluate`.
Step time: every variant's compiled step timed in interleaved rounds after training, as a ratio to 'paper'.

  python benchmarks/network_ablation.py                       # every variant, both settings (~3 h, 2-core CPU)
  python benchmarks/network_ablation.py --variants=paper,improved --settings=32
  python benchmarks/network_ablation.py --steps_scale=0.02    # a smoke run (tests)

Rows already in --out are kept (a rerun continues); --fresh starts over.
"""

import dataclasses
import json
import os
import pathlib
import sys
import time

# The repository root instead of benchmarks/ on the path: benchmarks/compression.py would shadow the
# `compression` module that jax's compilation cache imports.
sys.path.pop(0)
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

from ardm_jax.training import evaluation  # noqa: E402
from ardm_jax.training import experiment  # noqa: E402
from ardm_jax.training import train  # noqa: E402
from ardm_jax.models import count_params  # noqa: E402
from ardm_jax.models import transformer  # noqa: E402
from configs import quickstart  # noqa: E402

# name -> Transformer fields over the 'paper' arch as it was before the known embedding was dropped
# (known_embed=True: the network the issue measured), so that no row changes when the arch's defaults do.
VARIANTS = {
  "paper": {},
  "improved": {"arch": "improved"},  # rotary + swiglu: the winners below.
  "rotary": {"positions": "rotary"},
  "adaln_zero": {"conditioning": "adaln_zero"},
  "zero_init": {"zero_init": True},
  "swiglu": {"mlp": "swiglu"},
  "no_known_embed": {"known_embed": False},
  "embed_scale_0.1": {"embed_scale": 0.1},
  "reference_init": {"known_embed": False, "kernel_init": "xavier"},  # The paper's public code.
  "rotary+adaln_zero": {"positions": "rotary", "conditioning": "adaln_zero"},
  "rotary+zero_init": {"positions": "rotary", "zero_init": True},
  "rotary+no_known_embed": {"positions": "rotary", "known_embed": False},
  "rotary+embed_scale_0.1": {"positions": "rotary", "embed_scale": 0.1},
  # All five changes of the peer's design (MD4-like): rotary, adaLN-Zero, SwiGLU, zero-init, no known embedding.
  "all_five": {
    "positions": "rotary",
    "conditioning": "adaln_zero",
    "mlp": "swiglu",
    "zero_init": True,
    "known_embed": False,
  },
  "improved+adaln_zero": {"arch": "improved", "conditioning": "adaln_zero"},
}
VARIANTS = {name: {"known_embed": True, **fields} for name, fields in VARIANTS.items()}
SETTINGS = {32: 1500, 128: 600}  # D -> training steps.
BASE_MLP_DIM = 640
# The image and audio quickstarts as they are (their own steps and sizes), one network field changed at a time.
QUICKSTART_VARIANTS = {
  "images": {"paper": {"arch": "paper"}, "scale_shift": {"arch": "paper", "conditioning": "scale_shift"}},
  "audio": {
    "paper": {"arch": "paper", "use_step": False},
    "paper+step": {"arch": "paper", "use_step": True},
    "zero_init": {"arch": "paper", "use_step": False, "zero_init": True},
    "zero_init+step": {"arch": "paper", "use_step": True, "zero_init": True},
  },
}

FLAGS = flags.FLAGS
flags.DEFINE_enum("family", "text", ["text", "images", "audio"], "Text ablation, or the image/audio quickstart.")
flags.DEFINE_list("variants", [], "Variants to run, in order (default: all of the family's).")
flags.DEFINE_list("settings", [str(d) for d in SETTINGS], "Sequence lengths D to run (32, 128).")
flags.DEFINE_float("steps_scale", 1.0, "Multiplies the training steps (a smoke run: 0.02).")
flags.DEFINE_integer("eval_passes", 8, "Evaluation passes over the held-out rows.")
flags.DEFINE_integer("eval_max_batches", 0, "Cap on eval batches per pass (0: all).")
flags.DEFINE_integer("timing_rounds", 5, "Interleaved rounds of step timing.")
flags.DEFINE_integer("timing_steps", 10, "Steps per timing round.")
flags.DEFINE_string("out", "benchmarks/results/network_ablation.json", "Results JSON (rows kept across reruns).")
flags.DEFINE_bool("fresh", False, "Ignore the rows already in --out.")


def config_for(seq_len: int, num_steps: int):
  """The issue's settings on the text quickstart config."""
  c = quickstart.get_config()
  c.data.seq_len = seq_len
  c.model.arch = "paper"  # Every variant's fields are over the paper arch (the quickstart's is 'improved').
  c.model.num_layers, c.model.width, c.model.num_heads, c.model.mlp_dim = 4, 128, 4, BASE_MLP_DIM
  c.training.batch_size = 64
  c.training.num_train_steps = num_steps
  c.optimizer.name = "adamw"
  c.optimizer.learning_rate = 2e-3
  c.optimizer.warmup_steps = 100
  c.optimizer.b2 = 0.99
  c.optimizer.weight_decay = 0.001
  c.optimizer.grad_clip_norm = 1e9  # No clipping.
  c.optimizer.ema_decay = 0.99
  c.eval.batch_size = 64
  c.eval.num_passes = FLAGS.eval_passes
  c.eval.max_batches = FLAGS.eval_max_batches
  return c


def matched_model(base: transformer.Transformer, fields: dict, seq_len: int) -> transformer.Transformer:
  """The variant with the mlp_dim (a multiple of 6) whose parameter count is closest to the base network's."""
  target = count_params(base, (seq_len,))
  mlp_dims = sorted({BASE_MLP_DIM, *range(6, 4 * BASE_MLP_DIM, 6)})
  candidates = [dataclasses.replace(base, mlp_dim=m, **fields) for m in mlp_dims]
  best = min(candidates, key=lambda m: abs(transformer.analytic_num_params(m, seq_len) - target))
  if abs(count_params(best, (seq_len,)) / target - 1) > 0.05:
    raise ValueError(f"no mlp_dim puts {fields} within 5% of {target} parameters")
  return best


def quickstart_config(family: str, num_steps_scale: float):
  c = quickstart.get_config(family)
  c.training.num_train_steps = max(1, round(c.training.num_train_steps * num_steps_scale))
  c.eval.num_passes = FLAGS.eval_passes
  c.eval.max_batches = FLAGS.eval_max_batches
  return c


def train_and_eval(exp, trainer) -> dict:
  state = trainer.init(jax.random.key_data(jax.random.key(exp.config.seed)))
  start = time.perf_counter()
  curve = []
  for step in range(exp.config.training.num_train_steps):
    state, metrics = trainer.train_step(state, trainer.train_batch(step))
    if (step + 1) % 100 == 0:
      curve.append((step + 1, float(metrics["nelbo_bpd"])))
  jax.block_until_ready(state)
  train_s = time.perf_counter() - start
  eval_rng = jax.random.fold_in(jax.random.key_data(jax.random.key(exp.config.seed)), 2**31 - 1)
  result = evaluation.evaluate(exp, trainer, state.ema_params, eval_rng)
  return {
    "bpc": result["eval_bpd"],
    "stderr": result["eval_bpd_stderr"],
    "eval_count": result["eval_count"],
    "train_s": train_s,
    "train_curve": curve,
  }


def step_times(trainers: dict) -> dict:
  """Median seconds per step of each compiled step, timed in interleaved rounds (noise hits all alike)."""
  states = {}
  for name, trainer in trainers.items():
    state = trainer.init(jax.random.key_data(jax.random.key(0)))
    state, _ = trainer.train_step(state, trainer.train_batch(0))  # Compiled already; warm.
    states[name] = jax.block_until_ready(state)
  samples = {name: [] for name in trainers}
  for _ in range(FLAGS.timing_rounds):
    for name, trainer in trainers.items():
      batch = trainer.train_batch(1)
      state = states[name]
      start = time.perf_counter()
      for _ in range(FLAGS.timing_steps):
        state, _ = trainer.train_step(state, batch)
      states[name] = jax.block_until_ready(state)
      samples[name].append((time.perf_counter() - start) / FLAGS.timing_steps)
  return {name: float(np.median(s)) for name, s in samples.items()}


def load_rows() -> dict:
  if FLAGS.fresh or not os.path.exists(FLAGS.out):
    return {}
  with open(FLAGS.out) as f:
    return {(r.setdefault("family", "text"), r["variant"], r["seq_len"]): r for r in json.load(f)["rows"]}


def save_rows(rows: dict) -> None:
  os.makedirs(os.path.dirname(FLAGS.out) or ".", exist_ok=True)
  meta = {"jax": jax.__version__, "devices": str(jax.devices()), "date": time.strftime("%Y-%m-%d")}
  with open(FLAGS.out + ".tmp", "w") as f:
    json.dump({"meta": meta, "rows": list(rows.values())}, f, indent=1)
  os.replace(FLAGS.out + ".tmp", FLAGS.out)


def print_table(rows: dict) -> None:
  print("| family | variant | D | steps | params | held-out bits/dim | step time / paper |")
  print("|---|---|---|---|---|---|---|")
  for (family, name, seq_len), r in rows.items():
    ratio = r.get("step_time_ratio")
    ratio = "" if ratio is None else f"{ratio:.2f}"
    print(
      f"| {family} | {name} | {seq_len} | {r['steps']} | {r['params'] / 1e6:.3f}M | {r['bpc']:.3f} +- "
      f"{r['stderr']:.3f} | {ratio} |"
    )


def experiments(family: str):
  """(setting D, steps, {variant: (fields, experiment)}) of each setting the flags ask for."""
  if family == "text":
    variants = FLAGS.variants or list(VARIANTS)
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
      raise app.UsageError(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    for seq_len in (int(s) for s in FLAGS.settings):
      num_steps = max(1, round(SETTINGS[seq_len] * FLAGS.steps_scale))
      base = experiment.build_experiment(config_for(seq_len, num_steps))
      models = {v: matched_model(base.model, VARIANTS[v], seq_len) for v in variants}
      yield seq_len, num_steps, {v: (VARIANTS[v], dataclasses.replace(base, model=m)) for v, m in models.items()}
    return
  table = QUICKSTART_VARIANTS[family]
  variants = FLAGS.variants or list(table)
  base = experiment.build_experiment(quickstart_config(family, FLAGS.steps_scale))
  exps = {v: (table[v], dataclasses.replace(base, model=dataclasses.replace(base.model, **table[v]))) for v in variants}
  yield base.num_variables, base.config.training.num_train_steps, exps


def main(argv):
  del argv
  rows = load_rows()
  family = FLAGS.family
  for seq_len, num_steps, exps in experiments(family):
    trainers = {}
    for name, (fields, exp) in exps.items():
      trainers[name] = train.Trainer(exp)
      key = (family, name, seq_len)
      if key in rows and rows[key]["steps"] == num_steps:
        continue
      print(f"training {family} {name} at D = {seq_len} for {num_steps} steps", flush=True)
      row = {"family": family, "variant": name, "seq_len": seq_len, "steps": num_steps, "fields": fields}
      params = count_params(exp.model, exp.dataset.event_shape)
      row.update(mlp_dim=getattr(exp.model, "mlp_dim", None), params=params, **train_and_eval(exp, trainers[name]))
      rows[key] = row
      save_rows(rows)
      print(f"  {name}: {row['bpc']:.3f} +- {row['stderr']:.3f} bits/dim ({row['train_s']:.0f} s)", flush=True)
    if "paper" in trainers:
      times = step_times(trainers)
      for name, seconds in times.items():
        rows[(family, name, seq_len)].update(step_s=seconds, step_time_ratio=seconds / times["paper"])
      save_rows(rows)
  print_table(rows)


if __name__ == "__main__":
  app.run(main)
