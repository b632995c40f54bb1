"""Eval, budgeted sampling, budget planning and lossless compression from a workdir's latest good checkpoint, all with
the EMA parameters. Design notes: docs/design.md#inference
"""

import json
import math

from absl import logging
import jax
import ml_collections
import numpy as np

from ardm_jax import data as data_lib
from ardm_jax.training import evaluation
from ardm_jax.training import experiment
from ardm_jax.core import conditional as infill
from ardm_jax.training import metrics_io
from ardm_jax.data import conditions
from ardm_jax.data import kinds
from ardm_jax.data import media
from ardm_jax.io import outputs
from ardm_jax.io import paths
from ardm_jax.core import likelihood
from ardm_jax.core import planner
from ardm_jax.core import sampler
from ardm_jax.core import step_tracker
from ardm_jax.training.workdir import restore

REPORT_BUDGETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


def evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
  """Test bits/dim of the EMA parameters: mean and standard error over num_passes (t, order) draws each."""
  exp, trainer, state = restore(config, workdir)
  config = exp.config
  result = evaluation.evaluate(exp, trainer, state.ema_params, jax.random.key_data(jax.random.key(config.seed + 1)))
  logging.info(
    "step %d: test bpd %.4f +- %.4f (%d estimates: %d passes, one (t, order) per example each)",
    int(state.step),
    result["eval_bpd"],
    result["eval_bpd_stderr"],
    result["eval_count"],
    config.eval.num_passes,
  )
  writer = metrics_io.create_writer(workdir)
  writer.write_scalars(int(state.step), result)
  writer.flush()
  return result


def stage_step_losses(exp: experiment.Experiment, state) -> tuple[np.ndarray, str]:
  """(float64 [S, D], note): the tracked L_t of every stage, each sorted in descending order for the planner.

  Steps training never saw take the interpolated loss of the seen steps around them (never 0); the note says
  how many there were ('' if none) and is logged as a warning.
  """
  per_stage, unseen = step_tracker.seen_stage_losses(state.tracker, exp.num_stages)
  note = step_tracker.unseen_note(unseen, exp.total_steps)
  if note:
    logging.warning("%s", note)
  return np.stack([planner.sort_step_losses(np.asarray(losses, np.float64)) for losses in per_stage]), note


def stage_plans(exp: experiment.Experiment, state, budget: int) -> tuple[np.ndarray, float]:
  """(starts [S, budget], planned bits/dim): the cheapest plan of `budget` calls for every stage."""
  plans = [planner.plan(losses, budget) for losses in stage_step_losses(exp, state)[0]]
  return np.stack([p.starts for p in plans]), float(sum(p.cost for p in plans))


def sample(config: ml_collections.ConfigDict, workdir: str) -> np.ndarray:
  """Draws config.sample.num_samples samples with config.sample.budget calls per stage and saves them.

  With config.sample.prompt (and sample.mask for images) the samples complete that input (infill.py).
  """
  exp, _, state = restore(config, workdir)
  config = exp.config
  if config.sample.get("prompt", "") or config.sample.get("mask", ""):
    return _sample_given(exp, state, workdir)
  budget = config.sample.budget
  starts, planned_bpd = stage_plans(exp, state, budget)
  shape = (config.sample.num_samples,) + tuple(exp.dataset.event_shape)
  rng = jax.random.key_data(jax.random.key(config.sample.seed))
  logits_fn = exp.logits_fn(state.ema_params)
  samples = np.asarray(jax.jit(lambda r: sampler.sample(logits_fn, r, starts, shape, exp.process))(rng))
  writer = metrics_io.create_writer(workdir)
  step = int(state.step)
  stem = str(paths.resolve(workdir) / f"samples_step{step}_budget{budget}")
  kind = kinds.of_data(config.data)
  if kind == "audio":  # 16-bit clips: one WAV each and a waveform/spectrogram plot
    pcm = data_lib.audio.to_pcm16(samples)
    for i, clip in enumerate(pcm):
      outputs.write_bytes(f"{stem}_{i}.wav", media.wav_bytes(clip, data_lib.audio.SAMPLE_RATE))
    path = stem + ".png"
    outputs.write_audio_plot(path, pcm, data_lib.audio.SAMPLE_RATE)
  elif kind == "image":
    grid = media.image_grid(list(samples))
    path = stem + ".png"
    outputs.write_bytes(path, media.png_bytes(grid))
    writer.write_images(step, {f"samples_budget{budget}": grid[None]})
  else:
    texts = [conditions.row_text(row, kind) for row in samples]
    path = stem + ".txt"
    outputs.write_text(path, "\n".join(texts) + "\n")
    writer.write_texts(step, {f"samples_budget{budget}": "\n\n".join(texts)})
  writer.flush()
  logging.info("Saved %d samples (%d calls per stage, planned %.4f bpd) to %s", len(samples), budget, planned_bpd, path)
  print(f"samples ({budget} calls per stage, planned {planned_bpd:.4f} bpd): {path}")
  return samples


def _sample_given(exp: experiment.Experiment, state, workdir: str) -> np.ndarray:
  """Completions of config.sample.prompt: the planner plans the unknown steps only (infill.py)."""
  cfg = exp.config.sample
  event_shape = tuple(exp.dataset.event_shape)
  kind = conditions.kind_of(event_shape, exp.dataset.num_classes)
  condition = conditions.load_condition(cfg.prompt, cfg.get("mask", ""), kind, event_shape, cfg.get("mask_char", "_"))
  losses, unseen = step_tracker.seen_stage_losses(state.tracker, exp.num_stages)
  note = step_tracker.unseen_note(unseen, exp.total_steps)
  if note:
    logging.warning("%s", note)
  starts, planned = infill.plan_unknown(losses, cfg.budget, condition.num_known)
  samples = infill.generate(exp.logits_fn(state.ema_params), exp.process, cfg.seed, condition, starts, cfg.num_samples)
  line = infill.summary(cfg.budget, exp.num_stages, planned, condition, kinds.UNITS[kind])
  stem = str(paths.resolve(workdir) / f"samples_step{int(state.step)}_budget{cfg.budget}_given")
  if kind == "image":
    path = conditions.write_images(stem, samples, condition, line)[-1]
  else:
    path = conditions.write_text(stem + ".txt", samples, kind, condition, line)
  logging.info("Saved %d completions of %s (%s) to %s", len(samples), cfg.prompt, line, path)
  if jax.process_index() == 0:
    print(f"completions of {cfg.prompt} ({line}): {path}")
  return samples


def plan_budgets(spec: str, num_variables: int) -> list[int]:
  """The budgets of a comma-separated spec ('D' = one call per variable), each capped at D, sorted."""
  try:
    budgets = {num_variables if b.strip() == "D" else int(b) for b in spec.split(",") if b.strip()}
  except ValueError:
    budgets = set()
  if not budgets or min(budgets) < 1:
    raise experiment.ConfigError(
      f"config.eval.plan_budgets = {spec!r} must list network calls per stage >= 1, e.g. '1,5,10,20,D'."
    )
  return sorted(min(b, num_variables) for b in budgets)


def spread_points(num_available: int, num_points: int) -> np.ndarray:
  """Indices of min(num_points, num_available) points spread evenly from the first to the last: the first rows
  of a test set are often one document or one corner of one photo."""
  return np.unique(np.linspace(0, num_available - 1, min(num_points, num_available)).round().astype(np.int64))


def measure_plans(exp: experiment.Experiment, state, budgets, num_points: int, seed: int = 0) -> list[dict]:
  """Test bits/dim actually obtained under the optimal plan of every budget, and under evenly spaced calls (the
  schedule a discrete diffusion model with that many steps takes), beside the planner's estimate.

  num_points test points spread evenly over the test set (spread_points) are each scored along their own
  random order per stage (a Monte-Carlo estimate over points and orders: mean and standard error over points;
  both schedules see the same points and orders, so their difference is paired). Returns one dict per budget:
  budget, planned, measured, measured_stderr, even, even_stderr, even_minus_optimal, even_minus_optimal_stderr.
  """
  cfg = exp.config.eval
  batches = exp.dataset.eval_batches(cfg.batch_size)
  xs = np.concatenate([batch[weight > 0] for batch, weight in batches])
  xs = xs[spread_points(len(xs), num_points)]
  logits_fn = exp.logits_fn(state.ema_params)
  losses, _ = stage_step_losses(exp, state)
  rows = []
  for budget in budgets:
    plans = [planner.plan(stage_losses, budget) for stage_losses in losses]
    schedules = {
      "measured": np.stack([p.starts for p in plans]),
      "even": np.stack([planner.even_starts(exp.num_variables, budget)] * exp.num_stages),
    }
    row = {"budget": budget, "planned": float(sum(p.cost for p in plans))}
    per_point = {}
    for name, starts in schedules.items():
      score = jax.jit(lambda x, rng, starts=starts: likelihood.bits_per_dim(logits_fn, x, rng, starts, exp.process))
      bpd = np.concatenate(
        [
          np.asarray(score(xs[i : i + cfg.batch_size], jax.random.key(seed * 1000 + i)), np.float64)
          for i in range(0, len(xs), cfg.batch_size)
        ]
      )
      row[name], row[f"{name}_stderr"] = float(bpd.mean()), float(bpd.std() / math.sqrt(len(bpd)))
      per_point[name] = bpd
    gap = per_point["even"] - per_point["measured"]  # Paired: the same points along the same orders.
    row["even_minus_optimal"], row["even_minus_optimal_stderr"] = (
      float(gap.mean()),
      float(gap.std() / math.sqrt(len(gap))),
    )
    rows.append(row)
  return rows


def plan_report(config: ml_collections.ConfigDict, workdir: str) -> dict[int, float]:
  """Budget (calls per stage) -> planned bits/dim from the tracked step losses; prints a table with the bits/dim
  measured under the optimal and the evenly spaced plans of config.eval.plan_budgets, saves a plot and JSON."""
  exp, _, state = restore(config, workdir)
  losses, note = stage_step_losses(exp, state)
  costs = sum(planner.plan_all(stage_losses) for stage_losses in losses)  # [D], per budget
  num_variables = exp.num_variables
  budgets = sorted({b for b in REPORT_BUDGETS if b < num_variables} | {num_variables})
  table = {b: float(costs[b - 1]) for b in budgets}
  cfg = exp.config.eval
  measured = measure_plans(
    exp, state, plan_budgets(cfg.get("plan_budgets", "1,5,10,20,D"), num_variables), cfg.get("plan_points", 64)
  )
  lines = [f"{'budget':>8} {'calls':>8} {'planned bpd':>12}"]
  lines += [f"{b:>8} {b * exp.num_stages:>8} {table[b]:>12.4f}" for b in budgets]
  lines += ["", "measured test bpd (mean +- standard error over points, one random order each):"]
  lines += [f"{'budget':>8} {'planned':>9} {'optimal plan':>20} {'evenly spaced':>20}"]
  lines += [
    f"{r['budget']:>8} {r['planned']:>9.4f} {r['measured']:>11.4f} +- {r['measured_stderr']:.4f} "
    f"{r['even']:>11.4f} +- {r['even_stderr']:.4f}"
    for r in measured
  ]
  text = "\n".join(lines + ([note] if note else []))
  root = paths.resolve(workdir)
  outputs.write_text(str(root / "plan.txt"), text + "\n")
  outputs.write_text(str(root / "plan.json"), json.dumps({"planned": table, "measured": measured}, indent=1))
  outputs.write_plan_plot(str(root / "plan.png"), costs, exp.num_stages, measured)
  if jax.process_index() == 0:
    print(text)
    print(f"plan table and plot: {root / 'plan.txt'}, {root / 'plan.png'}")
  return table
