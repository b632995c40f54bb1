"""Every benchmark script starts: its imports resolve (run as `python benchmarks/NAME.py` from a checkout)."""

import pytest
import os
import pathlib
import subprocess
import sys

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
