r"""ARDM entry point: train, evaluate, sample under a step budget, or print the budget plan.

  python main.py --config=configs/cifar10.py --workdir=DIR                 # train (resumes from DIR)
  python main.py --config=configs/cifar10.py --workdir=DIR --mode=eval     # test bpd of the latest checkpoint
  python main.py --config=configs/cifar10.py --workdir=DIR --mode=sample --config.sample.budget=50
  python main.py --config=configs/cifar10.py --workdir=DIR --mode=plan     # budget vs bpd table + plot
  python main.py --config=configs/cifar10.py --workdir=DIR --mode=compress # rANS-code test points, bpd

Multi-process: --distributed joins the cluster that jax.distributed.initialize() detects (a Cloud TPU pod slice,
a SLURM job, Open MPI); elsewhere name it with --coordinator_address, --num_processes and --process_id.
"""

import os
import sys
import sysconfig
import traceback

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from ardm_jax.io import console
from ardm_jax.training import inference
from ardm_jax.training import train
from ardm_jax.training import workdir as workdir_lib

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a config file, optionally with ':variant'.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and outputs.")
flags.DEFINE_list(
  "mode", ["train"], "What to run, in order: any of train, eval, sample, plan, compress (e.g. train,plan)."
)
flags.DEFINE_bool(
  "distributed",
  False,
  "Join a multi-process cluster with jax.distributed.initialize(), which "
  "detects Cloud TPU pod slices, SLURM jobs and Open MPI.",
)
flags.DEFINE_string(
  "coordinator_address",
  None,
  "Optional override (implies --distributed): host:port of process "
  "0, the same on every process; needed with the next two where no cluster is detected.",
)
flags.DEFINE_integer("num_processes", None, "Optional override (implies --distributed): number of processes.")
flags.DEFINE_integer("process_id", None, "Optional override (implies --distributed): this process's index.")
flags.mark_flags_as_required(["workdir"])

MODES = {
  "train": train.train_and_evaluate,
  "eval": inference.evaluate,
  "sample": inference.sample,
  "plan": inference.plan_report,
  "compress": inference.compress,
}


def _config_code_frame(error: BaseException):
  """The innermost frame of `error`'s traceback in code outside Python and its packages (a config file)."""
  library_dirs = tuple(sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib"))
  frames = [
    frame
    for frame in traceback.extract_tb(error.__traceback__)
    if not frame.filename.startswith(library_dirs + ("<",)) and frame.filename != __file__
  ]
  return frames[-1] if frames else None


def _bad_config_file(filename: str, line, problem: str) -> SystemExit:
  hint = "" if filename.endswith(".py") else f" {filename} is not a Python config file."
  return SystemExit(
    f"Bad config file {filename}, line {line}: {problem}.{hint} --config takes a .py file whose "
    "get_config() returns the config, e.g. --config=configs/quickstart.py."
  )


def parse_flags(argv):
  """absl flag parsing that turns command-line mistakes (unknown `--config.a.b=v` key, a value of the wrong
  type, a config file that is missing, does not run or rejects its ':variant', an unknown or empty flag) into a
  one-line error; then quiets library logs unless --verbosity asks for them."""
  config_file = next((a.split("=", 1)[1].split(":")[0] for a in argv if a.startswith("--config=")), "")
  try:
    argv = FLAGS(argv)
    if FLAGS.config is not None:
      FLAGS.config.keys()  # A config file that failed to load reports it only when first read.
  except SyntaxError as e:
    raise _bad_config_file(e.filename, e.lineno, f"SyntaxError: {e.msg}") from None
  except (flags.Error, OSError) as e:
    if config_file and "--config must have a value other than None" in str(e):
      raise SystemExit(
        f"Bad config file {config_file}: get_config() returned None; it must return the config "
        "(an ml_collections.ConfigDict), as configs/quickstart.py does."
      ) from None
    lines = str(e).strip().splitlines()  # Config file errors carry their traceback: keep its last line.
    detail = lines[0] if len(lines) == 1 else f"{lines[0].split(': ')[0]}: {lines[-1].strip()}"
    hint = (
      "config overrides take the type of the field in the config file"
      if detail.startswith("flag --config.")
      else "see `python main.py --helpfull`"
    )
    raise SystemExit(f"Bad command line: {detail.rstrip('.')}. Fix the flag ({hint}).") from None
  except Exception as e:  # pylint: disable=broad-except
    frame = _config_code_frame(e)
    if frame is not None:  # The config file's code raised (NameError, ImportError, ...).
      raise _bad_config_file(frame.filename, frame.lineno, f"{type(e).__name__}: {e}") from None
    if isinstance(e, AttributeError) and "get_config" in str(e):
      raise SystemExit(
        f"Bad config file {config_file}: it has no get_config() function; a config file defines "
        "get_config() returning the config, e.g. configs/quickstart.py."
      ) from None
    if not isinstance(e, (AttributeError, KeyError)):
      raise
    missing = str(e).strip("\"'")
    culprits = [a for a in argv if a.startswith("--config.") and missing in a.split("=", 1)[0].split(".")]
    raise SystemExit(
      f"Unknown config key {missing!r} in {' '.join(culprits) or 'the --config overrides'}: "
      "the config has no such field (see the config file for the keys)."
    ) from None
  if not FLAGS.workdir.strip():
    raise SystemExit("Bad command line: --workdir is empty; give the run's directory, e.g. --workdir=/tmp/ardm_run.")
  unknown = [m for m in FLAGS.mode if m not in MODES]
  if not FLAGS.mode or unknown:
    raise SystemExit(
      f"Bad command line: {f'unknown --mode {unknown}' if unknown else '--mode is empty'}; choose "
      f"from {list(MODES)}, e.g. --mode=train,plan."
    )
  console.quiet_library_logs(FLAGS.verbosity)
  return argv


def join_cluster():
  """jax.distributed.initialize() with what it detects, overridden by the flags that are given; a cluster it cannot
  set up is a one-line error. (A coordinator that never answers still ends in XLA's own fatal error.)"""
  try:
    jax.distributed.initialize(
      coordinator_address=FLAGS.coordinator_address, num_processes=FLAGS.num_processes, process_id=FLAGS.process_id
    )
  except (ValueError, TypeError, RuntimeError) as e:
    detail = " ".join(str(e).split()).rstrip(".")
    raise SystemExit(
      f"--distributed: cannot join a cluster: {detail}. A Cloud TPU pod slice, a SLURM job or an "
      "Open MPI job is detected by itself; elsewhere pass --coordinator_address=HOST:PORT "
      "--num_processes=N --process_id=I to every process, or drop --distributed to use only this "
      "machine's devices."
    ) from None


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if FLAGS.config is None and "train" in FLAGS.mode:
    raise SystemExit(
      "--config is required to train (e.g. --config=configs/quickstart.py); eval, sample, plan "
      "and compress can leave it out and use the config the workdir was trained with."
    )
  if FLAGS.distributed or any(FLAGS[name].present for name in ("coordinator_address", "num_processes", "process_id")):
    join_cluster()
  logging.info("process %d/%d, devices: %s", jax.process_index(), jax.process_count(), jax.devices())
  for index, mode in enumerate(FLAGS.mode):
    try:
      config = FLAGS.config
      if mode != "train":  # A trained workdir's own config, with this command's --config.a.b=v overrides.
        overrides = config_flags.get_override_values(FLAGS["config"]) if config is not None else {}
        config = workdir_lib.effective_config(config, FLAGS.workdir, overrides)
      result = MODES[mode](config, FLAGS.workdir)
    except train.RUN_ERRORS as e:
      logging.debug("Traceback of the error below:", exc_info=True)
      # One line, then out at once: background writer threads of a failed save must neither add tracebacks at
      # interpreter shutdown nor keep the process alive.
      print(f"Error ({type(e).__name__}): {e}", file=sys.stderr, flush=True)
      os._exit(1)  # pylint: disable=protected-access
    if mode == "train" and int(result.step) < FLAGS.config.training.num_train_steps:
      logging.warning(
        "Training stopped early at step %d (SIGTERM); not running %s.", int(result.step), FLAGS.mode[index + 1 :]
      )
      return


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
