r"""Train, evaluate, sample under a step budget, plan, or compress test points: the modes of `main.py`.

  python main.py --config=configs/cifar10.py --workdir=DIR                 # train (resumes from DIR)
  python main.py --config=configs/cifar10.py --workdir=DIR --mode=eval     # test bpd of the latest checkpoint
  python main.py --config=configs/cifar10.py --workdir=DIR --mode=sample --config.sample.budget=50
  python main.py --config=configs/cifar10.py --workdir=DIR --mode=plan     # budget vs bpd table + plot
  python main.py --config=configs/cifar10.py --workdir=DIR --mode=compress # test points as .ardm files, bpd

Multi-process: --distributed joins the cluster that jax.distributed.initialize() detects (a Cloud TPU pod slice,
a SLURM job, Open MPI); elsewhere name it with --coordinator_address, --num_processes and --process_id.
"""

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from ardm_jax.cli import errors
from ardm_jax.cli.flags import FLAGS
from ardm_jax.codec import test_points
from ardm_jax.training import inference
from ardm_jax.training import train
from ardm_jax.training import workdir as workdir_lib

flags.DEFINE_list("mode", ["train"], "What to run, in order: any of train, eval, sample, plan, compress.")
flags.DEFINE_bool("distributed", False, "Join the cluster jax.distributed.initialize() detects (TPU pod, SLURM, MPI).")
flags.DEFINE_string("coordinator_address", None, "Optional (implies --distributed): host:port of process 0.")
flags.DEFINE_integer("num_processes", None, "Optional override (implies --distributed): number of processes.")
flags.DEFINE_integer("process_id", None, "Optional override (implies --distributed): this process's index.")
MODES = {
  "train": train.train_and_evaluate,
  "eval": inference.evaluate,
  "sample": inference.sample,
  "plan": inference.plan_report,
  "compress": test_points.compress,
}
CLUSTER_FLAGS = ("coordinator_address", "num_processes", "process_id")


def parse_flags(argv):
  """The shared one-line flag errors, then this command's: a workdir and known modes."""
  argv = errors.parse_flags(argv)
  if FLAGS.workdir is None or not FLAGS.workdir.strip():
    what = "--workdir is empty" if FLAGS.workdir is not None else "--workdir is required"
    raise SystemExit(f"Bad command line: {what}; give the run's directory, e.g. --workdir=/tmp/ardm_run.")
  unknown = [m for m in FLAGS.mode if m not in MODES]
  if not FLAGS.mode or unknown:
    raise SystemExit(
      f"Bad command line: {f'unknown --mode {unknown}' if unknown else '--mode is empty'}; choose "
      f"from {list(MODES)}, e.g. --mode=train,plan."
    )
  return argv


def join_cluster():
  """jax.distributed.initialize() with what it detects, overridden by the flags given; one line if it fails."""
  try:
    jax.distributed.initialize(
      coordinator_address=FLAGS.coordinator_address, num_processes=FLAGS.num_processes, process_id=FLAGS.process_id
    )
  except (ValueError, TypeError, RuntimeError) as e:
    raise SystemExit(
      f"--distributed: cannot join a cluster: {' '.join(str(e).split()).rstrip('.')}. A Cloud TPU pod slice, a "
      "SLURM job or an Open MPI job is detected by itself; elsewhere pass --coordinator_address=HOST:PORT "
      "--num_processes=N --process_id=I to every process, or drop --distributed to use only this machine's devices."
    ) from None


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if FLAGS.config is None and "train" in FLAGS.mode:
    raise SystemExit(
      "--config is required to train (e.g. --config=configs/quickstart.py); eval, sample, plan "
      "and compress can leave it out and use the config the workdir was trained with."
    )
  if FLAGS.distributed or any(FLAGS[name].present for name in CLUSTER_FLAGS):
    join_cluster()
  logging.info("process %d/%d, devices: %s", jax.process_index(), jax.process_count(), jax.devices())
  for index, mode in enumerate(FLAGS.mode):
    config = FLAGS.config
    if mode != "train":  # A trained workdir's own config, with this command's --config.a.b=v overrides.
      overrides = config_flags.get_override_values(FLAGS["config"]) if config is not None else {}
      try:
        config = workdir_lib.effective_config(config, FLAGS.workdir, overrides)
      except errors.USER_ERRORS as e:
        errors.fail(e, name_the_type=True)
    try:
      result = MODES[mode](config, FLAGS.workdir)
    except errors.USER_ERRORS as e:
      errors.fail(e, name_the_type=True)
    if mode == "train" and int(result.step) < FLAGS.config.training.num_train_steps:
      logging.warning(
        "Training stopped early at step %d (SIGTERM); not running %s.", int(result.step), FLAGS.mode[index + 1 :]
      )
      return


def run():
  app.run(main, flags_parser=parse_flags)
