"""Training on non-TFDS data runs where TensorFlow is not installed (accelerator images often lack it)."""

import os
import subprocess
import sys

import fake_data
import pytest

pytestmark = pytest.mark.slow  # Processes, emulators, launchers, faults or training: the full tier.

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Makes `import tensorflow` fail as on a machine without it, then runs main.py in this interpreter.
RUN_WITHOUT_TF = """
import runpy, sys
sys.modules["tensorflow"] = None
sys.path.insert(0, {repo!r})
sys.argv = ["main.py"] + {argv!r}
try:
  runpy.run_path({main!r}, run_name="__main__")
finally:
  print("TENSORFLOW_IMPORTED", any(m == "tensorflow" or m.startswith("tensorflow.") for m in sys.modules
                                   if sys.modules[m] is not None))
"""


def test_training_without_tensorflow(tmp_path):
  zip_path = tmp_path / "text8.zip"
  fake_data.write_text8_zip(zip_path, fake_data.random_text(40_000, seed=3))
  argv = [
    "--config=" + os.path.join(REPO, "configs/text8.py:local"),
    f"--workdir={tmp_path / 'work'}",
    f"--config.data.path={zip_path}",
    "--config.training.num_train_steps=4",
    "--config.training.eval_every_steps=4",
    "--config.training.checkpoint_every_steps=4",
  ]
  code = RUN_WITHOUT_TF.format(repo=REPO, argv=argv, main=os.path.join(REPO, "main.py"))
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1")
  run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
  assert run.returncode == 0, run.stderr[-3000:]
  assert "TENSORFLOW_IMPORTED False" in run.stdout
  assert "clu metric writers unavailable" in run.stderr  # Fell back to console metrics, said so.
  assert "eval_bpd=" in run.stderr
  assert os.path.isdir(tmp_path / "work" / "checkpoints" / "4")
