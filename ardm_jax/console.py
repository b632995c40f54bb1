"""The console of the command-line tools: their own progress lines, without libraries' INFO logs by default."""

import importlib.util
import logging as python_logging
import os

from absl import logging

# Libraries whose INFO logs (orbax: a dozen lines per checkpoint) are shown only with --verbosity >= 1.
QUIET_LIBRARIES = ("orbax", "jax", "jaxlib", "tensorflow", "matplotlib")


def quiet_library_logs(verbosity: int) -> None:
  """Below --verbosity=1, drops the INFO logs of QUIET_LIBRARIES; their warnings and errors still show."""
  if verbosity >= 1:
    return
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's C++ INFO lines (read when TF is imported).
  specs = [importlib.util.find_spec(name) for name in QUIET_LIBRARIES]  # Finds the packages, imports nothing.
  package_dirs = tuple(
    os.path.join(directory, "")
    for spec in specs
    if spec is not None
    for directory in spec.submodule_search_locations or ()
  )

  def keep(record: python_logging.LogRecord) -> bool:
    # orbax logs through absl.logging, so the logger name is 'absl'; the record's file says whose it is.
    return record.levelno >= python_logging.WARNING or not record.pathname.startswith(package_dirs)

  logging.get_absl_handler().addFilter(keep)
