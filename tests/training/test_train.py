"""The training system: smoke runs per config family, resume equality, sharding and multi-host equality."""

import importlib
import math
import os
import socket
import subprocess

import jax
import numpy as np
import pytest

import fake_data
from ardm_jax.training import checkpointing
from ardm_jax.training import evaluation
from ardm_jax.training import experiment
from ardm_jax.training import train

pytestmark = pytest.mark.slow  # Processes, emulators, launchers, faults or training: the full tier.


def load_config(name: str, arg: str = "local"):
  return importlib.import_module(f"configs.{name}").get_config(arg)


@pytest.fixture(name="text8_zip")
def fixture_text8_zip(tmp_path):
  path = tmp_path / "text8.zip"
  fake_data.write_text8_zip(path, fake_data.random_text(40_000, seed=1))
  return str(path)


def text8_config(text8_zip, name="text8", **training):
  config = load_config(name)
  config.data.path = text8_zip
  config.training.update(training)
  return config


def heldout_bpd(exp, params, num_rngs=4):
  """Mean nelbo (bits/dim) of the first eval batch over a few fixed (t, order) draws."""
  x, _ = next(iter(exp.dataset.eval_batches(exp.config.eval.batch_size)))
  nelbo = jax.jit(lambda p, i: exp.loss(p, x, jax.random.key_data(jax.random.key(i)))[1].scalars["nelbo_bpd"])
  return np.mean([float(nelbo(params, i)) for i in range(num_rngs)])


@pytest.mark.parametrize("family", ["text8", "text8_upscale", "cifar10", "cifar10_upscale"])
def test_local_config_learns(family, text8_zip, tmp_path):
  if family.startswith("cifar10"):
    config = load_config(family)
    with fake_data.mock_cifar10(num_examples=64):
      exp = experiment.build_experiment(config)
  else:
    config = text8_config(text8_zip, family)
    exp = experiment.build_experiment(config)
  trainer = train.Trainer(exp)
  state0 = trainer.init(jax.random.key_data(jax.random.key(config.seed)))
  before = heldout_bpd(exp, state0.params)
  state = train.run(exp, trainer, str(tmp_path / "work"))
  after = heldout_bpd(exp, state.params)
  assert after < before - 0.05, (before, after)
  bound = math.log2(exp.dataset.num_classes)
  result = evaluation.evaluate(trainer.exp, trainer, state.ema_params, jax.random.key_data(jax.random.key(7)))
  assert np.isfinite(result["eval_bpd"]) and result["eval_bpd"] < bound, (result, bound)
  assert result["eval_bpd_stderr"] > 0


def _tree_equal(a, b):
  leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(leaves_a) == len(leaves_b)
  return all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(leaves_a, leaves_b))


def test_resume_is_exact(text8_zip, tmp_path):
  straight = train.train_and_evaluate(
    text8_config(text8_zip, num_train_steps=8, checkpoint_every_steps=4, eval_every_steps=100),
    str(tmp_path / "straight"),
  )
  resumed_dir = str(tmp_path / "resumed")
  half = train.train_and_evaluate(
    text8_config(text8_zip, num_train_steps=4, checkpoint_every_steps=4, eval_every_steps=100), resumed_dir
  )
  assert int(half.step) == 4
  resumed = train.train_and_evaluate(
    text8_config(text8_zip, num_train_steps=8, checkpoint_every_steps=4, eval_every_steps=100), resumed_dir
  )
  assert int(resumed.step) == int(straight.step) == 8
  assert _tree_equal(straight, resumed)
  assert not _tree_equal(half.params, resumed.params)  # The second half did train.


def test_two_devices_match_one(text8_zip):
  assert jax.device_count() == 2  # tests/conftest.py forces two CPU devices.
  exp = experiment.build_experiment(text8_config(text8_zip))
  results = []
  for devices in (jax.devices()[:1], jax.devices()):
    trainer = train.Trainer(exp, devices)
    state = trainer.init(jax.random.key_data(jax.random.key(0)))
    state, metrics = trainer.train_step(state, trainer.train_batch(0))
    results.append((jax.device_get(state.params), float(metrics["loss"])))
  (params1, loss1), (params2, loss2) = results
  assert loss1 == pytest.approx(loss2, rel=1e-5)
  for a, b in zip(jax.tree.leaves(params1), jax.tree.leaves(params2)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _main_cmd(workdir, text8_zip, *extra):
  return fake_data.text8_local_command(
    workdir,
    text8_zip,
    3,
    "--config.training.checkpoint_every_steps=3",
    "--config.training.eval_every_steps=100",
    *extra,
  )


def _env(num_devices: int):
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={num_devices}"
  return env


def _restore_params(config, workdir):
  exp = experiment.build_experiment(config)
  trainer = train.Trainer(exp)
  return checkpointing.Checkpointer(workdir, config).restore_latest(trainer.abstract_state()).params


def test_two_processes_match_one(text8_zip, tmp_path):
  port = _free_port()
  multi = str(tmp_path / "multi")
  procs = [
    subprocess.Popen(
      _main_cmd(multi, text8_zip, "--num_processes=2", f"--process_id={i}", f"--coordinator_address=localhost:{port}"),
      env=_env(1),
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
    )
    for i in range(2)
  ]
  outputs = [p.communicate(timeout=300)[0] for p in procs]
  for p, out in zip(procs, outputs):
    assert p.returncode == 0, out[-3000:]
  assert "process 1/2" in outputs[1] or "process 1/2" in outputs[0]
  single = str(tmp_path / "single")
  run = subprocess.run(_main_cmd(single, text8_zip), env=_env(2), capture_output=True, text=True, timeout=300)
  assert run.returncode == 0, run.stderr[-3000:]
  config = text8_config(text8_zip, num_train_steps=3)
  for a, b in zip(jax.tree.leaves(_restore_params(config, multi)), jax.tree.leaves(_restore_params(config, single))):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
