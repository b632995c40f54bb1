r"""One command that measures an accelerator in minutes: train steps/s, model FLOP utilisation, memory, and the
code paths a CPU cannot show (cuDNN attention, the codec's batched calls, the sampler at D = 3072).

For each full-size config (text8, cifar10, cifar10_upscale, and every configs/*audio*.py once there is one),
on every device jax sees (the train step's data-parallel mesh), at the config's global batch: if the step does
not fit a device, `training.grad_accum_steps` doubles until it does (the same update: micro-batches inside the
one jitted step), and the row states it. Variants: model.dtype float32 / bfloat16 x model.attention einsum /
dot_product (cuDNN fused attention on GPUs in bf16) x model.remat none / full, most informative first: every
config's bf16 + dot_product step, then the codec and the sampler, then the other variants in VARIANTS order.
Each variant runs in its own process, so that the device's peak memory in use (`memory_stats`) is its own and an
out-of-memory error ends only that process. Columns: compile time; steps/s over timed steps after warm-up; XLA's
FLOPs per step (cost analysis of the compiled step, all devices); model FLOP utilisation (the architecture's
analytic FLOPs per step x steps/s / the devices' dense bf16 peak, PEAKS below, recomputation not counted) and
XLA FLOP utilisation (XLA's FLOPs, recomputation counted); peak memory in use and the compiler's peak.

A variant is started only if the time so far plus its estimate (the last variant of the same config, else the
slowest so far) stays within --budget_s; the JSON is rewritten after every row, so a run cut off keeps its rows.
Also measured: coder.encode / decode points/s at batch 1 against all rows in one call (untrained networks: the
coder is lossless for any network) and the bare network's rows/s; sampler.sample's ms per network call.

  python benchmarks/accelerator.py [--budget_s=420] [--configs=text8,cifar10] [--variants=bfloat16/einsum/none]
  python benchmarks/accelerator.py --dry_run   # CPU mode: the :local configs, under a minute

Writes benchmarks/results/accelerator.json (accelerator_dry_run.json in CPU mode, so a CPU run never replaces an
accelerator's measurement); time_to_reproduce.py reads the measured utilisation from it.
"""

import argparse
import functools
import json
import math
import os
import pathlib
import subprocess
import sys
import time

# Run from a checkout, no install: the checkout replaces this folder on the path, so that compression.py here
# does not shadow the `compression` module (Python 3.14's standard library) that jax's compilation cache imports.
sys.path.pop(0)
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
# pylint: disable=wrong-import-position
import jax
import jax.numpy as jnp
import numpy as np

from ardm_jax.training import experiment
from ardm_jax.core import planner
from ardm_jax.training import train
from benchmarks import _measure
from benchmarks import train_step_cost

REPO = pathlib.Path(__file__).resolve().parents[1]
RESULTS = pathlib.Path(__file__).parent / "results"
RESULT_PREFIX = "RESULT "  # A job process's last stdout line: this, then its JSON.

# model.dtype / model.attention / model.remat, most informative first: what an accelerator run uses, the cuDNN
# path's gain, the default config, remat's time cost (and memory saving), then the rest.
VARIANTS = (
  "bfloat16/dot_product/none",
  "bfloat16/einsum/none",
  "float32/einsum/none",
  "bfloat16/dot_product/full",
  "float32/dot_product/none",
  "bfloat16/einsum/full",
  "float32/einsum/full",
  "float32/dot_product/full",
)
CONFIGS = ("text8", "cifar10", "cifar10_upscale")

# Dense (no sparsity) bf16 peak FLOP/s of one jax device, by a lower-case substring of its device_kind, first
# match wins. NVIDIA's data sheets quote bf16 "with sparsity"; the dense peak is half of it.
PEAKS = (
  ("h200", "NVIDIA H200 SXM", 989e12, "https://www.nvidia.com/en-us/data-center/h200/ (1,979 TFLOPS sparse)"),
  ("h100 pcie", "NVIDIA H100 PCIe", 756e12, "https://www.nvidia.com/en-us/data-center/h100/ (1,513 sparse)"),
  ("h100", "NVIDIA H100 SXM", 989e12, "https://www.nvidia.com/en-us/data-center/h100/ (1,979 TFLOPS sparse)"),
  ("a100", "NVIDIA A100", 312e12, "https://www.nvidia.com/en-us/data-center/a100/ (BF16 312 TFLOPS dense)"),
  ("tpu v4", "TPU v4 (one chip)", 275e12, "https://cloud.google.com/tpu/docs/v4 (275 TFLOPS bf16 per chip)"),
  ("tpu v5 lite", "TPU v5e", 197e12, "https://cloud.google.com/tpu/docs/v5e (197 TFLOPS bf16 per chip)"),
  ("tpu v5e", "TPU v5e", 197e12, "https://cloud.google.com/tpu/docs/v5e (197 TFLOPS bf16 per chip)"),
  ("tpu v5", "TPU v5p", 459e12, "https://cloud.google.com/tpu/docs/v5p (459 TFLOPS bf16 per chip)"),
  ("tpu v6", "TPU v6e (Trillium)", 918e12, "https://cloud.google.com/tpu/docs/v6e (918 TFLOPS bf16 per chip)"),
)


def device_peak(device_kind: str):
  """{'name', 'flops_per_s', 'source'} of the device's dense bf16 peak, or None for a device not in PEAKS."""
  kind = device_kind.lower()
  for key, name, flops, source in PEAKS:
    if key in kind:
      return {"name": name, "flops_per_s": flops, "source": source}
  return None


def default_configs():
  audio = sorted(p.stem for p in (REPO / "configs").glob("*audio*.py"))
  return list(CONFIGS) + audio


# ---------------------------------------------------------------------------------------------------------------
# Jobs: each runs in its own process (python accelerator.py --job=JSON) and prints RESULT_PREFIX + its rows.


def memory_stats(devices):
  """(peak bytes in use, bytes limit) over the devices, or (None, None) where the backend keeps none (CPU)."""
  stats = [d.memory_stats() for d in devices]
  if any(not s or "peak_bytes_in_use" not in s for s in stats):
    return None, None
  limits = [s["bytes_limit"] for s in stats if "bytes_limit" in s]
  return max(s["peak_bytes_in_use"] for s in stats), (min(limits) if limits else None)


def time_steps(trainer, compiled, exp, job) -> dict:
  """Warm-up steps, then timed steps: at least min_timed_steps and about timed_s seconds of them."""
  state = trainer.init(jax.random.key_data(jax.random.key(0)))
  shape = (exp.config.training.batch_size,) + tuple(exp.dataset.event_shape)
  x_BxE = jax.device_put(
    np.random.default_rng(0).integers(0, exp.dataset.num_classes, shape, dtype=np.int32), trainer.batch_sharding
  )
  for _ in range(max(1, job["warmup_steps"])):
    state, metrics = compiled(state, x_BxE)
  jax.block_until_ready(state)
  start = time.perf_counter()
  state, metrics = compiled(state, x_BxE)
  jax.block_until_ready(state)
  one_step_s = time.perf_counter() - start
  num_steps = max(job["min_timed_steps"], min(1000, math.ceil(job["timed_s"] / one_step_s)))
  start = time.perf_counter()
  for _ in range(num_steps):
    state, metrics = compiled(state, x_BxE)
  jax.block_until_ready(state)
  seconds = time.perf_counter() - start
  return {"timed_steps": num_steps, "steps_per_s": num_steps / seconds, "finite": bool(metrics["finite"])}


def is_out_of_memory(error: Exception) -> bool:
  return "RESOURCE_EXHAUSTED" in str(error) or "out of memory" in str(error).lower()


def measure_train(job) -> list:
  """One variant's row; grad_accum_steps doubles from job['start_accum'] until the step fits a device."""
  config = train_step_cost.load_config(job["config"], "local" if job["dry_run"] else None)
  config.model.dtype, config.model.attention, config.model.remat = job["dtype"], job["attention"], job["remat"]
  devices = jax.devices()
  num_devices, batch = len(devices), config.training.batch_size
  _, bytes_limit = memory_stats(devices)
  accum, full_batch_flops, tried = job["start_accum"], None, []
  while True:
    config.training.grad_accum_steps = accum
    exp = experiment.shape_only_experiment(config, *train_step_cost.event_of(config))
    trainer = train.Trainer(exp)
    x_spec = jax.ShapeDtypeStruct((batch,) + exp.dataset.event_shape, jnp.int32, sharding=trainer.batch_sharding)
    tried.append(accum)
    try:
      start = time.perf_counter()
      compiled = trainer.train_step.lower(trainer.abstract_state(), x_spec).compile()
      compile_s = time.perf_counter() - start
      cost = train_step_cost.step_cost(compiled)  # Per device.
      if accum == 1:
        full_batch_flops = cost["xla_flops"] * num_devices
      if bytes_limit is None or cost["peak_bytes"] <= bytes_limit:
        timing = time_steps(trainer, compiled, exp, job)
        break
    except jax.errors.JaxRuntimeError as e:
      if not is_out_of_memory(e):
        raise
    if batch % (2 * accum * num_devices):
      raise RuntimeError(f"{job['config']} does not fit a device even at grad_accum_steps = {accum}")
    accum *= 2
  peak_in_use, _ = memory_stats(devices)
  # XLA counts a scan's body once: with K micro-batches, K x the body is the step (the optimizer is counted K
  # times, a small overcount) unless the full-batch step was compiled too.
  xla_flops = full_batch_flops if full_batch_flops is not None else cost["xla_flops"] * num_devices * accum
  model_flops = (
    float(train_step_cost.analytic_step_flops(config, exp)) if config.model.name in ("unet", "transformer") else None
  )
  peak = device_peak(devices[0].device_kind)
  steps_per_s = timing["steps_per_s"]

  def utilisation(flops):
    return None if peak is None or flops is None else flops * steps_per_s / (num_devices * peak["flops_per_s"])

  row = {
    "config": job["config"] + (":local" if job["dry_run"] else ""),
    "dtype": job["dtype"],
    "attention": job["attention"],
    "remat": job["remat"],
    "device_kind": devices[0].device_kind,
    "num_devices": num_devices,
    "global_batch": batch,
    "grad_accum_steps": accum,
    "per_device_batch": batch // (num_devices * accum),
    "accum_tried": tried,
    "compile_s": compile_s,
    "steps_per_s": steps_per_s,
    "step_s": 1 / steps_per_s,
    "timed_steps": timing["timed_steps"],
    "xla_flops": xla_flops,
    "xla_flops_counted": "full-batch step" if full_batch_flops is not None else "scan body x grad_accum_steps",
    "model_flops": model_flops,
    "peak_flops_per_s": None if peak is None else peak["flops_per_s"],
    "mfu": utilisation(model_flops),
    "xla_flop_utilisation": utilisation(xla_flops),
    "peak_bytes_in_use": peak_in_use,
    "bytes_limit": bytes_limit,
    "compiled_peak_bytes": cost["peak_bytes"],
    "finite": timing["finite"],
  }
  return [row]


def network_of(spec: str):
  """(experiment, its jitted network at initial parameters) of a 'module' or 'module:arg' config."""
  module, _, arg = spec.partition(":")
  config = train_step_cost.load_config(module, arg or None)
  exp = experiment.shape_only_experiment(config, *train_step_cost.event_of(config))
  params = jax.jit(exp.init_params)(jax.random.key(0))
  return exp, params, functools.partial(jax.jit(exp.model.apply), {"params": params})


def measure_codec(job) -> list:
  """coder.encode / decode points/s at batch 1 and with all rows in each call, and the bare network's rows/s."""
  exp, _, logits_fn = network_of(job["config"])
  event_shape, num_variables = tuple(exp.dataset.event_shape), exp.num_variables
  budget = min(job["budget"], num_variables)
  starts = planner.plan(_measure.decreasing_step_losses(num_variables), budget).starts
  rng = np.random.default_rng(0)
  order = rng.permutation(num_variables).reshape(event_shape)
  rows = rng.integers(0, exp.process.num_classes, (job["rows"],) + event_shape, dtype=np.int32)
  enc1, dec1, share1 = _measure.coding_speed(logits_fn, rows[: job["batch1_rows"]], order, starts, exp.process, 1)
  enc, dec, share = _measure.coding_speed(logits_fn, rows, order, starts, exp.process, len(rows))
  net1 = _measure.network_rows_per_s(logits_fn, rows, 1)
  net = _measure.network_rows_per_s(logits_fn, rows, len(rows))
  row = {
    "config": job["config"],
    "device_kind": jax.devices()[0].device_kind,
    "D": num_variables,
    "budget": budget,
    "rows": len(rows),
    "batch1_rows": job["batch1_rows"],
    "encode_per_s_batch1": enc1,
    "decode_per_s_batch1": dec1,
    "encode_per_s_batched": enc,
    "decode_per_s_batched": dec,
    "encode_speedup": enc / enc1,
    "decode_speedup": dec / dec1,
    "network_share_batch1": share1,
    "network_share_batched": share,
    "network_rows_per_s_batch1": net1,
    "network_rows_per_s_batched": net,
  }
  return [row]


def measure_sampler(job) -> list:
  """sampler.sample's time per network call for each budget ('D': one variable per call)."""
  exp, params, _ = network_of(job["config"])
  timer = _measure.SamplerTimer(exp, params, job["num_samples"])
  rows = []
  for budget in job["budgets"]:
    budget = exp.num_variables if budget == "D" else min(int(budget), exp.num_variables)
    timed = timer.time(budget, job["repeats"])
    rows.append(
      {
        "config": job["config"],
        "device_kind": jax.devices()[0].device_kind,
        "D": exp.num_variables,
        "budget": budget,
        "num_samples": job["num_samples"],
        **timed,
      }
    )
  return rows


def probe(job) -> list:
  del job
  devices = jax.devices()
  return [
    {
      "backend": jax.default_backend(),
      "device_kind": devices[0].device_kind,
      "num_devices": len(devices),
      "jax": jax.__version__,
      "peak": device_peak(devices[0].device_kind),
    }
  ]


MEASURES = {"train": measure_train, "codec": measure_codec, "sampler": measure_sampler, "probe": probe}


def run_job_here(job_json: str):
  job = json.loads(job_json)
  rows = MEASURES[job["kind"]](job)
  print(RESULT_PREFIX + json.dumps(rows), flush=True)


def run_job_in_process(job, timeout_s: float) -> list:
  """Runs one job in a fresh Python process; its rows, or RuntimeError with the end of its output."""
  env = dict(os.environ, XLA_PYTHON_CLIENT_MEM_FRACTION=os.environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.9"))
  try:
    proc = subprocess.run(
      [sys.executable, str(pathlib.Path(__file__).resolve()), "--job", json.dumps(job)],
      env=env,
      capture_output=True,
      text=True,
      timeout=timeout_s,
    )
  except subprocess.TimeoutExpired as e:
    raise RuntimeError(f"timed out after {timeout_s:.0f} s") from e
  results = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
  if proc.returncode or not results:
    raise RuntimeError(f"exit status {proc.returncode}:\n{(proc.stdout + proc.stderr)[-3000:]}")
  return json.loads(results[-1][len(RESULT_PREFIX) :])


# ---------------------------------------------------------------------------------------------------------------
# The run: jobs in order within the time budget, the JSON after every row.


def job_label(job) -> str:
  if job["kind"] == "train":
    return f"{job['config']} {job['dtype']}/{job['attention']}/{job['remat']}"
  return f"{job['kind']} {job['config']}"


def run_within_budget(jobs, budget_s: float, run_job, on_outcome, clock=None):
  """Runs the jobs in order, starting each only if the time so far plus its estimate stays within budget_s.

  A job's estimate is the wall time of the last job of its group (a train job's config, else its kind); a train
  job of a new config takes the slowest train job so far, anything else new 0. on_outcome(job, kind, value) is
  called after each job: ('rows', rows), ('failed', message) or ('skipped', message).
  """
  clock = clock or time.monotonic
  start = clock()
  seconds_by_group, train_groups = {}, set()
  for job in jobs:
    group = job["config"] if job["kind"] == "train" else job["kind"]
    slowest_train = max((seconds_by_group[g] for g in train_groups), default=0.0)
    estimate = seconds_by_group.get(group, slowest_train if job["kind"] == "train" else 0.0)
    elapsed = clock() - start
    if elapsed + estimate > budget_s:
      on_outcome(job, "skipped", f"budget: {elapsed:.0f} s + estimate {estimate:.0f} s > {budget_s:.0f} s")
      continue
    job_start = clock()
    try:
      outcome = ("rows", run_job(job))
    except RuntimeError as e:
      outcome = ("failed", str(e))
    seconds_by_group[group] = clock() - job_start
    if job["kind"] == "train":
      train_groups.add(group)
    on_outcome(job, *outcome)


def build_jobs(args, settings) -> list:
  """Every config's first variant, the codec and the sampler, then the other variants, config by config."""

  def train_job(config, variant):
    dtype, attention, remat = variant.split("/")
    return {
      "kind": "train",
      "config": config,
      "dtype": dtype,
      "attention": attention,
      "remat": remat,
      "dry_run": args.dry_run,
      "start_accum": 1,
      "warmup_steps": settings["warmup_steps"],
      "min_timed_steps": settings["min_timed_steps"],
      "timed_s": settings["timed_s"],
    }

  configs, variants = settings["configs"], args.variants
  firsts = [train_job(c, variants[0]) for c in configs]
  paths = [
    {
      "kind": "codec",
      "config": spec,
      "budget": args.codec_budget,
      "rows": settings["codec_rows"],
      "batch1_rows": settings["codec_batch1_rows"],
    }
    for spec in settings["codec_configs"]
  ]
  paths.append(
    {
      "kind": "sampler",
      "config": settings["sampler_config"],
      "budgets": settings["sampler_budgets"],
      "num_samples": settings["sampler_samples"],
      "repeats": settings["sampler_repeats"],
    }
  )
  rest = [train_job(c, v) for v in variants[1:] for c in configs]
  return firsts[:1] + paths + firsts[1:] + rest


# Settings whose default depends on the mode: (accelerator, CPU mode).
MODE_DEFAULTS = {
  "budget_s": (420.0, 50.0),
  "timed_s": (10.0, 0.5),
  "warmup_steps": (2, 1),
  "min_timed_steps": (3, 2),
  "codec_configs": (["quickstart", "text8"], ["quickstart"]),
  "codec_rows": (64, 8),
  "codec_batch1_rows": (8, 2),
  "sampler_budgets": (["D"], ["4"]),
  "sampler_samples": (4, 2),
  "sampler_repeats": (2, 1),
}


def mode_settings(args) -> dict:
  settings = {}
  for name, defaults in MODE_DEFAULTS.items():
    value = getattr(args, name)
    settings[name] = defaults[args.dry_run] if value is None else value
  settings["configs"] = args.configs or default_configs()
  settings["sampler_config"] = args.sampler_config + (":local" if args.dry_run else "")
  return settings


def write_json(results, out: pathlib.Path):
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(results, indent=1))


def gib(n):
  return "-" if n is None else f"{n / 2**30:.2f}"


def percent(x):
  return "-" if x is None else f"{x:.1%}"


def print_tables(results):
  header = results["header"]
  peak = header["peak"]
  print(
    f"\njax {header['jax']}, {header['num_devices']} x {header['device_kind']} ({header['backend']}), "
    f"{results['date']}; peak: "
    + (f"{peak['name']} {peak['flops_per_s'] / 1e12:.0f} TFLOP/s dense bf16 ({peak['source']})" if peak else "none")
    + (" (CPU mode: :local configs)" if results["dry_run"] else "")
    + "\n"
  )
  cols = (
    "| config | dtype | attention | remat | batch (devices x accum x per device) | compile s | steps/s "
    "| XLA TFLOP/step | MFU | XLA FLOP util | peak GiB in use | compiled peak GiB | finite |"
  )
  print(cols + "\n" + "|---" * (cols.count("|") - 1) + "|")
  for r in results["train"]:
    print(
      f"| {r['config']} | {r['dtype']} | {r['attention']} | {r['remat']} | {r['global_batch']} "
      f"({r['num_devices']} x {r['grad_accum_steps']} x {r['per_device_batch']}) | {r['compile_s']:.1f} | "
      f"{r['steps_per_s']:.2f} | {r['xla_flops'] / 1e12:.3g} | {percent(r['mfu'])} | "
      f"{percent(r['xla_flop_utilisation'])} | {gib(r['peak_bytes_in_use'])} | {gib(r['compiled_peak_bytes'])} | "
      f"{r['finite']} |"
    )
  cols = (
    "| codec network | D | budget | rows | encode / decode pts/s, batch 1 | encode / decode pts/s, batched "
    "| batched / batch 1 (enc, dec) | network share b1 / batched | bare network rows/s b1 / batched |"
  )
  print("\n" + cols + "\n" + "|---" * (cols.count("|") - 1) + "|")
  for r in results["codec"]:
    print(
      f"| {r['config']} | {r['D']} | {r['budget']} | {r['rows']} | {r['encode_per_s_batch1']:.1f} / "
      f"{r['decode_per_s_batch1']:.1f} | {r['encode_per_s_batched']:.1f} / {r['decode_per_s_batched']:.1f} | "
      f"{r['encode_speedup']:.1f}x, {r['decode_speedup']:.1f}x | {r['network_share_batch1']:.0%} / "
      f"{r['network_share_batched']:.0%} | {r['network_rows_per_s_batch1']:.0f} / "
      f"{r['network_rows_per_s_batched']:.0f} |"
    )
  cols = "| sampler network | D | budget | samples | network calls | time (s) | ms per call |"
  print("\n" + cols + "\n" + "|---" * (cols.count("|") - 1) + "|")
  for r in results["sampler"]:
    print(
      f"| {r['config']} | {r['D']} | {r['budget']} | {r['num_samples']} | {r['calls']} | {r['seconds']:.3f} | "
      f"{r['ms_per_call']:.2f} |"
    )
  if results["skipped"]:
    not_started = "; ".join(r["job"] for r in results["skipped"])
    print(f"\nnot started (time budget {results['budget_s']:.0f} s): {not_started}")
  for r in results["failed"]:
    print(f"\nfailed: {r['job']}: {r['reason'].splitlines()[-1] if r['reason'] else ''}")


def parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--budget_s", type=float, help="stop starting variants past this (default 420; CPU mode 50)")
  parser.add_argument("--configs", type=lambda s: s.split(","), help=f"config modules (default {','.join(CONFIGS)})")
  parser.add_argument("--variants", type=lambda s: s.split(","), default=list(VARIANTS), help="dtype/attention/remat")
  parser.add_argument("--dry_run", action="store_true", help="CPU mode: the :local configs, a few steps")
  parser.add_argument("--timed_s", type=float, help="seconds of timed steps per variant (default 10; CPU mode 0.5)")
  parser.add_argument("--warmup_steps", type=int, help="steps before timing (default 2; CPU mode 1)")
  parser.add_argument("--min_timed_steps", type=int, help="timed steps at least (default 3; CPU mode 2)")
  parser.add_argument(
    "--codec_configs", type=lambda s: s.split(","), help="networks coded (default quickstart,text8; CPU quickstart)"
  )
  parser.add_argument("--codec_budget", type=int, default=20, help="network calls per coded row")
  parser.add_argument("--codec_rows", type=int, help="rows coded batched, all in each call (default 64; CPU 8)")
  parser.add_argument("--codec_batch1_rows", type=int, help="rows coded one per call (default 8; CPU 2)")
  parser.add_argument("--sampler_config", default="cifar10", help="sampled network (cifar10: D = 3072)")
  parser.add_argument("--sampler_budgets", type=lambda s: s.split(","), help="calls; D: sequential (CPU mode 4)")
  parser.add_argument("--sampler_samples", type=int, help="samples per call (default 4; CPU mode 2)")
  parser.add_argument("--sampler_repeats", type=int, help="timed runs, median (default 2; CPU mode 1)")
  parser.add_argument("--job_timeout_s", type=float, default=900, help="a job process running longer is stopped")
  parser.add_argument("--out", help="JSON (default results/accelerator.json; CPU mode accelerator_dry_run.json)")
  parser.add_argument("--job", help=argparse.SUPPRESS)  # Internal: one job, run in this process.
  return parser.parse_args(argv)


def main(argv=None):
  args = parse_args(argv)
  if args.job:
    run_job_here(args.job)
    return
  started = time.monotonic()
  if args.dry_run:
    os.environ["JAX_PLATFORMS"] = "cpu"  # Here and in the job processes: CPU mode even beside an accelerator.
    (header,) = probe(None)
  else:
    (header,) = run_job_in_process({"kind": "probe"}, args.job_timeout_s)  # This process leaves the device free.
  if header["backend"] == "cpu" and not args.dry_run:
    print("jax sees no accelerator: CPU mode (--dry_run), the :local configs.")
    args.dry_run = True
  settings = mode_settings(args)
  out = pathlib.Path(args.out or RESULTS / ("accelerator_dry_run.json" if args.dry_run else "accelerator.json"))
  results = {
    "header": header,
    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    "dry_run": args.dry_run,
    "budget_s": settings["budget_s"],
    "train": [],
    "codec": [],
    "sampler": [],
    "skipped": [],
    "failed": [],
  }
  accum_found = {}  # (config, dtype, remat) -> grad_accum_steps that fitted: where the next variant starts.

  def run_job(job):
    if job["kind"] == "train":
      job = dict(job, start_accum=accum_found.get((job["config"], job["dtype"], job["remat"]), 1))
    return run_job_in_process(job, args.job_timeout_s)

  def on_outcome(job, kind, value):
    if kind == "rows":
      results[job["kind"]].extend(value)
      if job["kind"] == "train":
        accum_found[(job["config"], job["dtype"], job["remat"])] = value[0]["grad_accum_steps"]
    else:
      results[kind].append({"job": job_label(job), "reason": value})
    results["elapsed_s"] = time.monotonic() - started
    write_json(results, out)  # After every row: a run cut off keeps what it measured.
    print(f"{kind} {job_label(job)} ({results['elapsed_s']:.0f} s)", flush=True)

  remaining_s = settings["budget_s"] - (time.monotonic() - started)
  run_within_budget(build_jobs(args, settings), remaining_s, run_job, on_outcome)
  print_tables(results)
  print(f"\nwrote {out}")


if __name__ == "__main__":
  main()
