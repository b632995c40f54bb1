"""The console of the command-line tools: their own progress lines, without libraries' INFO logs by default."""

import importlib.util
import logging as python_logging
import os
import signal
import threading

from absl import logging

from ardm_jax.io import paths

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


INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, as shells report a program stopped by Ctrl-C.


def exit_promptly_on_interrupt() -> None:
  """Makes Ctrl-C stop the command within moments, even inside a long network call or coder loop.

  Python runs a signal handler only between bytecodes of the main thread, which a long native call delays. The
  signal's wakeup byte instead wakes a watcher thread at once; it waits for a commit of outputs in progress to
  finish (paths.COMMIT_LOCK), removes the temporaries of writes in progress, prints one line and exits 130.
  Call from the main thread.
  """
  read_fd, write_fd = os.pipe()
  os.set_blocking(write_fd, False)
  signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
  signal.signal(signal.SIGINT, lambda *_: None)  # The watcher acts; the main thread is never interrupted.

  def watch():
    while signal.SIGINT not in os.read(read_fd, 64):
      pass
    with paths.COMMIT_LOCK:
      for leftover in list(paths.PENDING):
        paths.remove_leftover(leftover, ignore_errors=True)
      os.write(2, b"interrupted (Ctrl-C): stopped; no partial output was left\n")
      os._exit(INTERRUPTED_EXIT_CODE)

  threading.Thread(target=watch, name="ctrl-c", daemon=True).start()
