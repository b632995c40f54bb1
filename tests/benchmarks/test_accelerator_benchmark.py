"""benchmarks/accelerator.py in CPU mode: every column of every row, the JSON after every job, the time budget,
the peak table; time_to_reproduce.py's measured against projected rows."""

import importlib
import json
import os
import pathlib
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # Processes, emulators, launchers, faults or training: the full tier.

REPO = pathlib.Path(__file__).resolve().parents[2]

# The columns and their types (None only where the CPU has no such number).
NONE = type(None)
TRAIN_COLUMNS = {
  "config": str,
  "dtype": str,
  "attention": str,
  "remat": str,
  "device_kind": str,
  "num_devices": int,
  "global_batch": int,
  "grad_accum_steps": int,
  "per_device_batch": int,
  "compile_s": float,
  "steps_per_s": float,
  "timed_steps": int,
  "xla_flops": float,
  "model_flops": float,
  "peak_flops_per_s": (float, NONE),
  "mfu": (float, NONE),
  "xla_flop_utilisation": (float, NONE),
  "peak_bytes_in_use": (int, NONE),
  "compiled_peak_bytes": int,
  "finite": bool,
}
CODEC_COLUMNS = {
  "config": str,
  "D": int,
  "budget": int,
  "rows": int,
  "encode_per_s_batch1": float,
  "decode_per_s_batch1": float,
  "encode_per_s_batched": float,
  "decode_per_s_batched": float,
  "encode_speedup": float,
  "decode_speedup": float,
  "network_share_batch1": float,
  "network_share_batched": float,
  "network_rows_per_s_batch1": float,
  "network_rows_per_s_batched": float,
}
SAMPLER_COLUMNS = {"config": str, "D": int, "budget": int, "calls": int, "seconds": float, "ms_per_call": float}
TABLE_HEADERS = ("| config | dtype | attention | remat |", "| codec network |", "| sampler network |")


def import_benchmark(name):
  """benchmarks/<name>.py as a module; the scripts edit sys.path for a run from the checkout, undone here."""
  saved = list(sys.path)
  try:
    return importlib.import_module(f"benchmarks.{name}")
  finally:
    sys.path[:] = saved


@pytest.fixture(scope="module")
def accelerator():
  return import_benchmark("accelerator")


@pytest.fixture(scope="module")
def cpu_rows(accelerator):
  """Rows of one real job of each kind, measured here on the CPU: a text8:local train step, the quickstart
  network coded, the text8:local network sampled."""
  train = accelerator.measure_train(
    {
      "config": "text8",
      "dtype": "bfloat16",
      "attention": "dot_product",
      "remat": "none",
      "dry_run": True,
      "start_accum": 1,
      "warmup_steps": 1,
      "min_timed_steps": 2,
      "timed_s": 0.0,
    }
  )
  codec = accelerator.measure_codec({"config": "quickstart", "budget": 3, "rows": 4, "batch1_rows": 1})
  sampler = accelerator.measure_sampler({"config": "text8:local", "budgets": ["D"], "num_samples": 2, "repeats": 1})
  return {"train": train, "codec": codec, "sampler": sampler}


def assert_columns(row, columns):
  for name, kind in columns.items():
    assert name in row, f"no column {name}"
    assert isinstance(row[name], kind), f"{name} = {row[name]!r} is not {kind}"


def test_cpu_mode_rows_have_every_column(cpu_rows):
  (train,) = cpu_rows["train"]
  assert_columns(train, TRAIN_COLUMNS)
  assert train["global_batch"] == train["num_devices"] * train["grad_accum_steps"] * train["per_device_batch"]
  assert train["steps_per_s"] > 0 and train["xla_flops"] > 0 and train["compiled_peak_bytes"] > 0
  # The CPU has no dense peak in the table and keeps no memory statistics: those columns are None, not 0.
  assert train["peak_flops_per_s"] is None and train["mfu"] is None and train["peak_bytes_in_use"] is None
  (codec,) = cpu_rows["codec"]
  assert_columns(codec, CODEC_COLUMNS)
  assert codec["encode_speedup"] == pytest.approx(codec["encode_per_s_batched"] / codec["encode_per_s_batch1"])
  assert [r["budget"] for r in cpu_rows["sampler"]] == [32]  # 'D': one variable per call.
  for row in cpu_rows["sampler"]:
    assert_columns(row, SAMPLER_COLUMNS)
    assert row["calls"] == row["budget"]  # Counted inside the network: one call per planned step.


def test_main_writes_the_json_after_every_job_and_prints_every_table(accelerator, cpu_rows, tmp_path, monkeypatch):
  out = tmp_path / "accelerator.json"
  seen_before = []  # (job kind, train rows on disk when the job started)

  def fake_run_job_in_process(job, timeout_s):
    del timeout_s
    if job["kind"] == "probe":
      return [{"backend": "gpu", "device_kind": "NVIDIA H200", "num_devices": 1, "jax": "x", "peak": None}]
    seen_before.append((job["kind"], len(json.loads(out.read_text())["train"]) if out.exists() else 0))
    if job["kind"] == "codec" and job["config"] == "text8":
      raise RuntimeError("exit status 1:\nout of memory")
    if job["kind"] == "train":
      return [dict(cpu_rows["train"][0], config=job["config"], dtype=job["dtype"])]
    return cpu_rows[job["kind"]]

  monkeypatch.setattr(accelerator, "run_job_in_process", fake_run_job_in_process)
  variants = "bfloat16/dot_product/none,float32/einsum/none"
  accelerator.main([f"--out={out}", "--configs=text8,cifar10", f"--variants={variants}", "--budget_s=1000"])
  # The most informative first: each config's first variant, with the codec and sampler after the first one.
  assert [kind for kind, _ in seen_before] == ["train", "codec", "codec", "sampler", "train", "train", "train"]
  assert [n for kind, n in seen_before if kind == "train"] == [0, 1, 2, 3]
  results = json.loads(out.read_text())
  assert [(r["config"], r["dtype"]) for r in results["train"]] == [
    ("text8", "bfloat16"),
    ("cifar10", "bfloat16"),
    ("text8", "float32"),
    ("cifar10", "float32"),
  ]
  assert len(results["codec"]) == 1 and len(results["sampler"]) == 1 and not results["skipped"]
  assert results["failed"] == [{"job": "codec text8", "reason": "exit status 1:\nout of memory"}]


def test_main_prints_every_table(accelerator, cpu_rows, tmp_path, monkeypatch, capsys):
  def fake_run_job_in_process(job, timeout_s):
    del timeout_s
    return cpu_rows.get(job["kind"], [])

  monkeypatch.setattr(accelerator, "run_job_in_process", fake_run_job_in_process)
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")  # What CPU mode sets, restored after the test.
  accelerator.main(["--dry_run", f"--out={tmp_path / 'a.json'}", "--configs=text8", "--variants=float32/einsum/none"])
  printed = capsys.readouterr().out
  for header in TABLE_HEADERS:
    assert header in printed
  assert "| text8:local | bfloat16 | dot_product | none |" in printed  # The train row itself.
  assert "| text8:local | 32 | 32 | 2 | 32 |" in printed  # The sampler row.
  assert json.loads((tmp_path / "a.json").read_text())["dry_run"] is True


def test_the_budget_stops_starting_jobs_that_would_exceed_it(accelerator):
  now = [0.0]
  durations = {"train a v1": 10, "codec": 1, "train b v1": 15, "train a v2": 10, "train b v2": 15, "sampler": 2}

  def job(name):
    kind, *rest = name.split()
    return {"kind": kind, "config": rest[0] if rest else kind, "name": name}

  def run_job(j):
    now[0] += durations[j["name"]]
    return [j["name"]]

  outcomes = []
  jobs = [job(n) for n in ("train a v1", "codec", "train b v1", "train a v2", "train b v2", "sampler")]
  accelerator.run_within_budget(
    jobs, 30, run_job, lambda j, kind, value: outcomes.append((j["name"], kind, value)), clock=lambda: now[0]
  )
  # b v1 has no time of its own yet: a's 10 s is its estimate (11 + 10 <= 30); after it (26 s), a v2 (10 s) and
  # b v2 (15 s) would end past 30 s; the sampler, never timed, still starts.
  assert [(name, kind) for name, kind, _ in outcomes] == [
    ("train a v1", "rows"),
    ("codec", "rows"),
    ("train b v1", "rows"),
    ("train a v2", "skipped"),
    ("train b v2", "skipped"),
    ("sampler", "rows"),
  ]
  assert outcomes[3][2] == "budget: 26 s + estimate 10 s > 30 s"


def test_dense_peaks_by_device_kind(accelerator):
  expected = {
    "NVIDIA H100 80GB HBM3": 989e12,
    "NVIDIA H100 PCIe": 756e12,
    "NVIDIA H200": 989e12,
    "NVIDIA A100-SXM4-80GB": 312e12,
    "TPU v4": 275e12,
    "TPU v5 lite": 197e12,
    "TPU v5p": 459e12,
    "TPU v6 lite": 918e12,
  }
  for kind, flops in expected.items():
    peak = accelerator.device_peak(kind)
    assert peak["flops_per_s"] == flops and peak["source"].startswith("https://"), kind
  assert accelerator.device_peak("cpu") is None


def test_a_job_runs_in_its_own_process(accelerator):
  (header,) = accelerator.run_job_in_process({"kind": "probe"}, timeout_s=300)
  assert header["backend"] == "cpu" and header["num_devices"] >= 1 and header["peak"] is None


def test_time_to_reproduce_uses_the_measured_utilisation_where_there_is_one(tmp_path):
  cost = json.loads((REPO / "benchmarks" / "results" / "train_step_cost.json").read_text())
  (cifar10_flops,) = [r["xla_flops"] for r in cost["rows"] if r["config"] == "cifar10" and r["remat"] == "none"][:1]
  measured_row = {
    "config": "cifar10",
    "dtype": "bfloat16",
    "attention": "dot_product",
    "remat": "none",
    "device_kind": "NVIDIA H200",
    "num_devices": 1,
    "grad_accum_steps": 2,
    "steps_per_s": 2.0,
    "peak_flops_per_s": 989e12,
    "finite": True,
  }
  slower = dict(measured_row, attention="einsum", steps_per_s=1.0)
  cpu_row = dict(measured_row, config="text8", peak_flops_per_s=None)  # No peak: not a measurement.
  accelerator_json = tmp_path / "accelerator.json"
  accelerator_json.write_text(json.dumps({"dry_run": False, "train": [slower, measured_row, cpu_row]}))
  out = tmp_path / "time_to_reproduce.json"
  subprocess.run(
    [
      sys.executable,
      str(REPO / "benchmarks" / "time_to_reproduce.py"),
      f"--accelerator_json={accelerator_json}",
      f"--out={out}",
      "--utilisation=0.4",
    ],
    check=True,
    capture_output=True,
    env=dict(os.environ, JAX_PLATFORMS="cpu"),
  )
  rows = {r["config"]: r for r in json.loads(out.read_text())["rows"]}
  assert rows["cifar10"]["source"].startswith("measured: 2 steps/s on 1 x NVIDIA H200 (bfloat16/dot_product/none")
  assert rows["cifar10"]["utilisation"] == pytest.approx(cifar10_flops * 2.0 / 989e12)
  assert rows["cifar10"]["measured_hours"] == pytest.approx(rows["cifar10"]["steps"] / 2.0 / 3600)
  for name in ("text8", "cifar10_upscale"):
    assert rows[name]["source"] == "projected" and rows[name]["utilisation"] == 0.4
