"""Every benchmark script starts: its imports resolve (run as `python benchmarks/NAME.py` from a checkout)."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # Processes, emulators, launchers, faults or training: the full tier.

REPO = pathlib.Path(__file__).resolve().parents[2]
# benchmarks/_*.py are modules the scripts import (shared measurements), not scripts.
SCRIPTS = sorted(p for p in (REPO / "benchmarks").glob("*.py") if not p.name.startswith("_"))


def test_every_benchmark_script_imports_and_prints_its_help():
  """Run as a script, a file's folder comes first on the path: benchmarks/compression.py must not shadow the
  `compression` module that jax's compilation cache imports, in any of the scripts."""
  assert len(SCRIPTS) >= 8 and {"compression.py", "accelerator.py"} <= {s.name for s in SCRIPTS}
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  procs = {
    script.name: subprocess.Popen(
      [sys.executable, str(script), "--help"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    for script in SCRIPTS
  }
  for name, proc in procs.items():
    out, _ = proc.communicate(timeout=300)
    # argparse exits 0 after --help, absl 1; a failed import leaves a traceback.
    assert proc.returncode in (0, 1) and "Traceback" not in out and "--" in out, f"{name}:\n{out[-3000:]}"


def test_the_paper_claims_table_on_a_few_steps(tmp_path):
  """The claims benchmark end to end on tiny runs: one row per claim compared, verdicts from its vocabulary, and a
  rerun resumes (no experiment is trained twice)."""
  out = tmp_path / "claims.json"
  command = [
    sys.executable,
    str(REPO / "benchmarks" / "paper_claims.py"),
    "--groups=text,compression",
    "--steps_scale=0.005",
    "--eval_passes=1",
    "--plan_points=8",
    "--max_crops=2",
    "--compression_budget=2",
    f"--workdir_root={tmp_path / 'work'}",
    f"--out={out}",
  ]
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
  assert first.returncode == 0, first.stderr[-3000:]
  document = json.loads(out.read_text())
  claims = [row["claim"] for row in document["rows"]]
  assert claims.count("text_upscale") == 1 and claims.count("compression") == 1 and claims.count("bits_back") == 1
  assert {row["verdict"].split(" (")[0] for row in document["rows"]} <= {
    "holds",
    "does not hold at this scale",
    "undecided within error",
    "measured",
  }
  assert document["results"]["compression"]["exact"] and out.with_suffix(".md").read_text().startswith("| claim |")
  seconds = {key: value["seconds"] for key, value in document["results"].items() if key.startswith("eval/")}
  again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
  assert again.returncode == 0, again.stderr[-3000:]
  assert {
    k: v["seconds"] for k, v in json.loads(out.read_text())["results"].items() if k.startswith("eval/")
  } == seconds
