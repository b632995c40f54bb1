"""The console of a run: progress and metrics, without the INFO logs of libraries unless --verbosity asks."""

import pytest
import os
import pathlib
import re
import subprocess
import sys

import clu
import orbax.checkpoint

import fake_data

pytestmark = pytest.mark.slow  # Processes, emulators, launchers, faults or training: the full tier.

REPO = pathlib.Path(__file__).resolve().parents[2]
# absl's line prefix: level letter, date, time, thread id, then the file's basename and line.
LOG_LINE = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ (\S+\.py):\d+\] ")


def python_files(directory) -> set[str]:
  return {path.name for path in pathlib.Path(directory).rglob("*.py")}


def orbax_files() -> set[str]:
  """Basenames of orbax's files that neither this repository nor clu (whose progress lines stay) has: absl logs
  only the basename."""
  return (
    python_files(os.path.dirname(orbax.checkpoint.__file__))
    - python_files(REPO)
    - python_files(os.path.dirname(clu.__file__))
  )


def run_main(*flags, program=("main.py",)):
  env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1")
  program = [str(REPO / program[0])] if program == ("main.py",) else list(program)
  run = subprocess.run(
    [sys.executable, *program, *flags], env=env, capture_output=True, text=True, timeout=300, cwd=REPO
  )
  assert run.returncode == 0, run.stderr[-3000:]
  return run.stderr.splitlines()


def info_sources(lines) -> list[str]:
  return [match.group(2) for match in map(LOG_LINE.match, lines) if match and match.group(1) == "I"]


def test_library_info_logs_only_with_verbosity(tmp_path):
  zip_path = tmp_path / "text8.zip"
  fake_data.write_text8_zip(zip_path, fake_data.random_text(40_000, seed=3))
  config = [
    f"--config={REPO / 'configs/text8.py'}:local",
    f"--workdir={tmp_path / 'work'}",
    f"--config.data.path={zip_path}",
  ]
  lines = run_main(
    *config,
    "--config.training.num_train_steps=4",
    "--config.training.log_every_steps=2",
    "--config.training.eval_every_steps=4",
    "--config.training.checkpoint_every_steps=4",
  )
  assert os.path.isdir(tmp_path / "work" / "checkpoints" / "4")  # orbax did write, silently.
  assert not set(info_sources(lines)) & orbax_files(), "\n".join(lines)
  assert "Starting from scratch in" in "\n".join(lines)
  assert [line for line in lines if "] [2] " in line and "loss=" in line]  # Training metrics at step 2.
  assert [line for line in lines if "] [4] " in line and "eval_bpd=" in line]
  assert not [line for line in lines if "xla_bridge.py" in line]  # jax's internals ("Unable to initialize...").

  verbose = run_main(*config, "--mode=plan", "--verbosity=1")
  assert set(info_sources(verbose)) & orbax_files(), "\n".join(verbose[-50:])  # The restore, told by orbax.

  # The codec command line restores the same checkpoint just as quietly, unless told otherwise.
  export = ["-m", "ardm_jax.compress", "export", f"--workdir={tmp_path / 'work'}", "--budgets=2", "--num_orders=1"]
  lines = run_main(f"-o={tmp_path / 'model'}", "--order_rows=4", program=export)
  assert (tmp_path / "model").is_dir() and not set(info_sources(lines)) & orbax_files(), "\n".join(lines)
  verbose = run_main(f"-o={tmp_path / 'model2'}", "--order_rows=4", "--verbosity=1", program=export)
  assert set(info_sources(verbose)) & orbax_files(), "\n".join(verbose[-50:])
