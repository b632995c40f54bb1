"""The launch scripts: what their --dry_run prints, what the TPU worker command and the SLURM signal handling do with
stand-ins for the cloud and cluster tools (gcloud, srun, scancel, scontrol, pip/uv), and main.py --distributed
outside any cluster. Nothing here reaches a cloud or a cluster."""

import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow  # Processes, emulators, launchers, faults or training: the full tier.

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAUNCH = os.path.join(REPO, "launch")
TPU_FLAGS = [
  "--tpu=ardm-v4",
  "--zone=us-central2-b",
  "--accelerator_type=v4-32",
  "--runtime_version=tpu-ubuntu2204-base",
  "--config=configs/cifar10.py",
  "--workdir=gs://bucket/run",
  "--repo=https://example.com/ardm_jax.git",
  "--ref=0123456789abcdef0123456789abcdef01234567",
]
SLURM_FLAGS = ["--nodes=2", "--gpus_per_node=4", "--config=configs/text8.py", "--workdir=/shared/runs/t8"]


def pinned_jax_version():
  with open(os.path.join(REPO, "requirements.txt")) as f:
    (version,) = re.findall(r"^jax==(\S+)", f.read(), flags=re.M)
  return version


def launch(script, *args, env=None, cwd="/"):
  return subprocess.run(
    ["bash", os.path.join(LAUNCH, script), *args], capture_output=True, text=True, timeout=60, env=env, cwd=cwd
  )


def commands(run):
  """The '+ ...' lines of a dry run, each split into its words as the shell would."""
  assert run.returncode == 0, run.stderr
  return [shlex.split(line[2:]) for line in run.stdout.splitlines() if line.startswith("+ ")]


def shell_steps(command):
  """The simple commands of a one-line shell command: its words, split at ';'."""
  lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|<>")
  lexer.whitespace_split = True
  steps = [[]]
  for token in lexer:
    if token == ";":
      steps.append([])
    else:
      steps[-1].append(token)
  return [step for step in steps if step]


def flag_value(words, name):
  (value,) = [w.split("=", 1)[1] for w in words if w.startswith(name + "=")]
  return value


@pytest.mark.parametrize("spot", [False, True])
def test_tpu_pod_dry_run_creates_waits_and_starts_detached_on_every_worker(spot, tmp_path):
  data = tmp_path / "text8.zip"
  data.write_bytes(b"")
  run = launch(
    "tpu_pod.sh",
    *TPU_FLAGS,
    *(["--spot", f"--copy={data}"] if spot else []),
    "--extra=--config.data.download=True --config.training.num_train_steps=7",
    "--dry_run",
  )
  describe, create, *copy, ssh = commands(run)
  assert describe == [
    "gcloud",
    "compute",
    "tpus",
    "queued-resources",
    "describe",
    "ardm-v4",
    "--zone=us-central2-b",
    "--format=value(state.state)",
  ]
  assert create[:6] == ["gcloud", "compute", "tpus", "queued-resources", "create", "ardm-v4"]
  assert sorted(create[6:]) == sorted(
    ["--node-id=ardm-v4", "--accelerator-type=v4-32", "--zone=us-central2-b", "--runtime-version=tpu-ubuntu2204-base"]
    + (["--spot"] if spot else [])
  )
  assert copy == (
    [["gcloud", "compute", "tpus", "tpu-vm", "scp", str(data), "ardm-v4:", "--zone=us-central2-b", "--worker=all"]]
    if spot
    else []
  )
  assert ssh[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "ardm-v4"]
  assert "--worker=all" in ssh and "--zone=us-central2-b" in ssh
  remote = flag_value(ssh, "--command")
  assert subprocess.run(["bash", "-n", "-c", remote]).returncode == 0  # Valid shell on the worker.
  steps = shell_steps(remote)
  assert ["git", "fetch", "-q", "https://example.com/ardm_jax.git", TPU_FLAGS[-1].split("=")[1]] in steps
  install = [s for s in steps if s[:4] == ["python3", "-m", "uv", "pip"]][0]
  assert install[-3:] == ["-r", "requirements.txt", f"jax[tpu]=={pinned_jax_version()}"]
  start = steps[-1]
  assert start[:4] == ["nohup", "setsid", "bash", "launch/tpu_worker.sh"] and remote.endswith("< /dev/null &")
  assert [
    "--workdir=gs://bucket/run",
    "--config=configs/cifar10.py",
    "--config.data.download=True",
    "--config.training.num_train_steps=7",
  ] == [w for w in start if w.startswith(("--workdir", "--config"))]


def test_tpu_pod_delete_prints_only_the_delete():
  run = launch("tpu_pod.sh", *TPU_FLAGS, "--delete", "--dry_run")
  assert commands(run) == [
    ["gcloud", "compute", "tpus", "queued-resources", "delete", "ardm-v4", "--zone=us-central2-b", "--force", "--quiet"]
  ]
  assert run.stdout.count("\n") == 1


def test_tpu_worker_dry_run_trains_distributed_and_copies_its_log_to_the_workdir():
  run = launch(
    "tpu_worker.sh",
    "--python=/venv/bin/python",
    "--workdir=gs://bucket/run",
    "--config=configs/cifar10.py",
    "--config.seed=3",
    "--dry_run",
  )
  train, copy_log = commands(run)
  assert train == [
    "/venv/bin/python",
    "main.py",
    "--workdir=gs://bucket/run",
    "--distributed",
    "--config=configs/cifar10.py",
    "--config.seed=3",
  ]
  assert copy_log[:3] == ["gcloud", "storage", "cp"]
  assert copy_log[-1] == f"gs://bucket/run/logs/worker-{os.uname().nodename}.log"


def write_tool(directory, name, body):
  path = os.path.join(directory, name)
  with open(path, "w") as f:
    f.write("#!/usr/bin/env bash\n" + body)
  os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)


def wait_for(predicate, timeout=20.0):
  deadline = time.monotonic() + timeout
  while not predicate():
    assert time.monotonic() < deadline, "timed out"
    time.sleep(0.05)


def git(*args):
  return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()


def test_tpu_worker_command_pins_the_code_starts_once_and_logs(tmp_path):
  """Runs the ssh --command on this machine as one worker would. The repository is a local git repository with
  this checkout's launch/ and requirements.txt in two commits, the first one pinned; python3 (pip/uv) and gcloud are
  replaced by tools that record their arguments, the venv's python by a stand-in for main.py that prints and, while
  the file 'hold' exists, keeps running."""
  home, tools, origin = tmp_path / "home", tmp_path / "tools", tmp_path / "origin"
  home.mkdir()
  tools.mkdir()
  shutil.copytree(LAUNCH, origin / "launch")
  shutil.copy(os.path.join(REPO, "requirements.txt"), origin)
  (origin / "version").write_text("pinned")
  git("init", "-q", str(origin))
  git("-C", str(origin), "add", "-A")
  git("-C", str(origin), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "pinned")
  ref = git("-C", str(origin), "rev-parse", "HEAD")
  (origin / "version").write_text("newer")
  git("-C", str(origin), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "newer")
  write_tool(str(tools), "gcloud", 'echo "gcloud $*" >> "$HOME/calls"\n')
  write_tool(
    str(tools),
    "python3",
    'echo "python3 $*" >> "$HOME/calls"\n'
    'if [[ "$1 $2 $3" == "-m uv venv" ]]; then mkdir -p "${@: -1}/bin"; cp "$TOOLS/train" "${@: -1}/bin/python"; fi\n',
  )
  write_tool(str(tools), "train", 'echo "main.py ran with: $*"\nwhile [ -f "$HOME/hold" ]; do sleep 0.05; done\n')
  run = launch("tpu_pod.sh", *TPU_FLAGS[:-2], f"--repo={origin}", f"--ref={ref}", "--dry_run")
  remote = flag_value(commands(run)[-1], "--command")
  env = dict(os.environ, HOME=str(home), TOOLS=str(tools), PATH=f"{tools}:{os.environ['PATH']}")
  (home / "hold").touch()
  first = subprocess.run(["bash", "-c", remote], env=env, capture_output=True, text=True, timeout=60)
  assert first.returncode == 0, first.stderr
  assert (home / "ardm_jax" / "version").read_text() == "pinned"
  wait_for(lambda: (home / "ardm_logs" / "train.pid").exists())
  again = subprocess.run(["bash", "-c", remote], env=env, capture_output=True, text=True, timeout=60)
  assert again.returncode == 0 and "training is already running" in again.stdout
  (home / "hold").unlink()
  wait_for(lambda: not (home / "ardm_logs" / "train.pid").exists())
  log = (home / "ardm_logs" / "train.log").read_text()
  assert "main.py ran with: main.py --workdir=gs://bucket/run --distributed --config=configs/cifar10.py" in log
  assert log.count("main.py ran with") == 1 and "main.py exited with status 0" in log
  calls = (home / "calls").read_text().splitlines()
  assert (
    f"python3 -m uv pip install -q --python {home}/ardm_venv/bin/python -r requirements.txt "
    f"jax[tpu]=={pinned_jax_version()}" in calls
  )
  assert (
    calls.count(
      f"python3 -m uv pip install -q --python {home}/ardm_venv/bin/python -r requirements.txt "
      f"jax[tpu]=={pinned_jax_version()}"
    )
    == 1
  )  # The second run changed nothing.
  assert calls[-1] == (
    f"gcloud storage cp --quiet {home}/ardm_logs/train.log gs://bucket/run/logs/worker-{os.uname().nodename}.log"
  )


def test_slurm_dry_run_one_process_per_gpu_and_no_cluster_flags():
  run = launch("slurm.sh", *SLURM_FLAGS, "--time=12:00:00", "--extra=--config.seed=2", "--dry_run")
  sbatch, srun = commands(run)
  assert sbatch[0] == "sbatch" and sbatch[-4:] == [
    "launch/slurm.sbatch",
    "--config=configs/text8.py",
    "--workdir=/shared/runs/t8",
    "--config.seed=2",
  ]
  assert {"--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4", "--time=12:00:00", f"--chdir={REPO}"} <= set(sbatch)
  assert not [w for w in sbatch if w.startswith("--gpus-per-task")]  # Every task sees all GPUs of its node.
  assert srun[0] == "srun" and srun[srun.index("python") :] == [
    "python",
    "main.py",
    "--distributed",
    "--config=configs/text8.py",
    "--workdir=/shared/runs/t8",
    "--config.seed=2",
  ]
  assert not re.search(r"coordinator|num_processes|process_id", run.stdout)
  with open(os.path.join(LAUNCH, "slurm.sbatch")) as f:
    directives = re.findall(r"^#SBATCH (\S+)", f.read(), flags=re.M)
  assert "--requeue" in directives and "--signal=B:USR1@180" in directives
  assert "--open-mode=append" in directives  # A requeued job appends to its output file.


@pytest.fixture(name="slurm_tools")
def fixture_slurm_tools(tmp_path):
  """srun stand-in: records its arguments, then runs until SIGTERM, when it 'checkpoints' and exits 0 like main.py;
  scancel sends the signal to it; scontrol records. All append to $EVENTS."""
  write_tool(
    str(tmp_path),
    "srun",
    'echo "srun $*" >> "$EVENTS"; echo $$ > "$EVENTS.srun_pid"\n'
    "trap 'echo checkpointed >> \"$EVENTS\"; exit 0' TERM\nwhile true; do sleep 0.05; done\n",
  )
  write_tool(str(tmp_path), "scancel", 'echo "scancel $*" >> "$EVENTS"; kill -TERM "$(cat "$EVENTS.srun_pid")"\n')
  write_tool(str(tmp_path), "scontrol", 'echo "scontrol $*" >> "$EVENTS"\n')
  events = tmp_path / "events"
  env = dict(os.environ, EVENTS=str(events), SLURM_JOB_ID="42", PATH=f"{tmp_path}:{os.environ['PATH']}")
  return env, events


def start_batch_job(env, events):
  job = subprocess.Popen(
    ["bash", "launch/slurm.sbatch", "--config=c.py", "--workdir=/w"],
    cwd=REPO,
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
  )
  wait_for(lambda: os.path.exists(f"{events}.srun_pid"))
  time.sleep(0.2)  # The batch shell sets its traps right after starting srun.
  return job


def test_slurm_batch_script_checkpoints_then_requeues_before_the_time_limit(slurm_tools):
  env, events = slurm_tools
  job = start_batch_job(env, events)
  job.send_signal(signal.SIGUSR1)  # What --signal=B:USR1@180 sends 180 s before the time limit.
  assert job.wait(timeout=20) == 0, job.stderr.read()
  assert events.read_text().splitlines() == [
    "srun --kill-on-bad-exit=1 python main.py --distributed --config=c.py --workdir=/w",
    "scancel --signal=TERM 42",
    "checkpointed",
    "scontrol requeue 42",
  ]


def test_slurm_batch_script_preempted_waits_for_the_checkpoint_and_does_not_requeue_itself(slurm_tools):
  env, events = slurm_tools
  job = start_batch_job(env, events)
  job.send_signal(signal.SIGTERM)  # Preemption signals the batch shell and every task.
  os.kill(int((events.parent / "events.srun_pid").read_text()), signal.SIGTERM)
  assert job.wait(timeout=20) == 0, job.stderr.read()
  assert events.read_text().splitlines()[1:] == ["checkpointed"]  # SLURM itself requeues a preempted job.


def test_multi_gpu_dry_run():
  single = commands(launch("multi_gpu.sh", "--config=configs/text8.py", "--workdir=/runs/t8", "--dry_run"))
  assert single == [["python", "main.py", "--config=configs/text8.py", "--workdir=/runs/t8"]]
  several = commands(
    launch(
      "multi_gpu.sh",
      "--config=configs/text8.py",
      "--workdir=/runs/t8",
      "--distributed",
      "--coordinator_address=h0:1234",
      "--num_processes=2",
      "--process_id=1",
      "--extra=--config.seed=1",
      "--dry_run",
    )
  )
  assert several == [
    [
      "python",
      "main.py",
      "--config=configs/text8.py",
      "--workdir=/runs/t8",
      "--distributed",
      "--coordinator_address=h0:1234",
      "--num_processes=2",
      "--process_id=1",
      "--config.seed=1",
    ]
  ]


@pytest.mark.parametrize(
  "script, args, message",
  [
    ("tpu_pod.sh", TPU_FLAGS[2:], "missing --tpu (e.g. --tpu=ardm-v4-32)"),
    ("tpu_pod.sh", ["--tpu=t", "--delete"], "missing --zone (e.g. --zone=us-central2-b)"),
    (
      "tpu_pod.sh",
      [f for f in TPU_FLAGS if not f.startswith("--accelerator_type")],
      "missing --accelerator_type (e.g. --accelerator_type=v4-32)",
    ),
    ("tpu_pod.sh", [f for f in TPU_FLAGS if not f.startswith("--workdir")], "missing --workdir"),
    ("tpu_pod.sh", TPU_FLAGS[:5] + ["--workdir=/tmp/run"], "--workdir=/tmp/run must be a gs:// path"),
    ("tpu_pod.sh", TPU_FLAGS + ["--zones=x"], "unknown argument '--zones=x'"),
    ("tpu_pod.sh", TPU_FLAGS + ["--copy=/nonexistent/text8.zip"], "--copy=/nonexistent/text8.zip is not a file"),
    ("slurm.sh", SLURM_FLAGS[1:], "missing --nodes (e.g. --nodes=2)"),
    ("slurm.sh", SLURM_FLAGS[:3], "missing --workdir"),
    ("slurm.sh", ["--nodes=two"] + SLURM_FLAGS[1:], "--nodes=two must be a positive integer"),
    ("multi_gpu.sh", ["--workdir=/w"], "missing --config (e.g. --config=configs/text8.py)"),
    ("tpu_worker.sh", ["--python=p"], "missing --workdir"),
  ],
)
def test_launch_mistakes_are_one_line_errors(script, args, message):
  run = launch(script, *args, "--dry_run")
  assert run.returncode == 2
  assert run.stdout == "" and len(run.stderr.splitlines()) == 1
  assert run.stderr.startswith(f"{script}: ") and message in run.stderr, run.stderr


def test_tpu_pod_without_repo_needs_an_origin_remote(tmp_path):
  """With no --repo the workers clone this checkout's origin; a checkout without one is told to pass --repo."""
  shutil.copytree(LAUNCH, tmp_path / "launch")
  shutil.copy(os.path.join(REPO, "requirements.txt"), tmp_path)
  subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
  run = subprocess.run(
    ["bash", str(tmp_path / "launch" / "tpu_pod.sh"), *TPU_FLAGS[:6], "--dry_run"],
    capture_output=True,
    text=True,
    timeout=60,
  )
  assert run.returncode == 2 and run.stdout == ""
  assert (
    run.stderr == "tpu_pod.sh: this checkout has no 'origin' remote; pass --repo=GIT_URL (a URL every TPU "
    "worker can clone)\n"
  )


@pytest.mark.skipif(shutil.which("gcloud") is None, reason="gcloud is not installed")
def test_gcloud_accepts_the_printed_commands(tmp_path):
  """gcloud parses every printed command's arguments and stops only for want of an account: an empty gcloud config,
  no metadata-server credentials and the TPU API pointed at a closed local port, so nothing can reach a cloud."""
  data = tmp_path / "text8.zip"
  data.write_bytes(b"")
  printed = commands(launch("tpu_pod.sh", *TPU_FLAGS, "--spot", f"--copy={data}", "--dry_run"))
  printed += commands(launch("tpu_pod.sh", *TPU_FLAGS, "--delete", "--dry_run"))
  (tmp_path / "gcloud").mkdir()
  env = dict(
    os.environ,
    CLOUDSDK_CONFIG=str(tmp_path / "gcloud"),
    CLOUDSDK_CORE_CHECK_GCE_METADATA="false",
    CLOUDSDK_API_ENDPOINT_OVERRIDES_TPU="http://127.0.0.1:9/",
    CLOUDSDK_CORE_DISABLE_PROMPTS="1",
  )
  for words in printed:
    run = subprocess.run(words + ["--project=ardm-launch-test"], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and "active account" in run.stderr, (words[:5], run.stderr[-500:])
  bogus = subprocess.run(
    printed[1] + ["--project=ardm-launch-test", "--bogus"], env=env, capture_output=True, text=True, timeout=60
  )
  assert "unrecognized arguments: --bogus" in bogus.stderr  # A wrong flag would have been caught.


CLUSTER_ENV = re.compile(
  r"^(SLURM_|OMPI_|PMI_|PMIX_|TPU_|KUBERNETES_|JAX_COORDINATOR|JAX_NUM_PROCESSES|"
  r"JAX_PROCESS_ID|JAX_LOCAL_DEVICE_IDS|MEGASCALE_)"
)


@pytest.mark.parametrize("flags", [["--distributed"], ["--num_processes=2"]])
def test_main_distributed_without_a_cluster_is_a_one_line_error(flags, tmp_path):
  env = {k: v for k, v in os.environ.items() if not CLUSTER_ENV.match(k)}
  workdir = tmp_path / "never_created"
  start = time.monotonic()
  run = subprocess.run(
    [
      sys.executable,
      os.path.join(REPO, "main.py"),
      "--config=" + os.path.join(REPO, "configs/quickstart.py"),
      f"--workdir={workdir}",
      *flags,
    ],
    capture_output=True,
    text=True,
    env=dict(env, JAX_PLATFORMS="cpu"),
    timeout=60,
  )
  assert time.monotonic() - start < 30
  assert run.returncode == 1 and "Traceback" not in run.stderr
  (line,) = run.stderr.strip().splitlines()
  assert line.startswith("--distributed: cannot join a cluster: ")
  assert "--coordinator_address=HOST:PORT --num_processes=N --process_id=I" in line and "drop --distributed" in line
  assert not workdir.exists()
