"""The flags the command lines share, defined once (absl keeps one registry per process)."""

from absl import flags
from ml_collections import config_flags

config_flags.DEFINE_config_file(
  "config", None, "A config file, optionally with ':variant'; train needs it, the others default to the workdir's."
)
flags.DEFINE_string("workdir", None, "The run's directory: checkpoints, metrics and outputs.")
flags.DEFINE_string("model", None, "The codec bundle (python -m ardm_jax.compress export).")
flags.DEFINE_string("output", None, "Output file (one input) or directory.", short_name="o")
flags.DEFINE_integer("budget", None, "Network calls per stage.")
flags.DEFINE_bool("force", False, "Replace existing outputs (files, symlinks, an existing bundle).")
FLAGS = flags.FLAGS
