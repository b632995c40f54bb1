"""Command-line mistakes and library errors into one line and an exit status, for every command."""

import os
import sys
import sysconfig
import traceback

from absl import app
from absl import flags
from absl import logging

from ardm_jax.cli.flags import FLAGS
from ardm_jax.codec.errors import CodecError
from ardm_jax.core.conditional import InfillError
from ardm_jax.io import console
from ardm_jax.training import train

# Errors whose message says all a user needs (a bad config, input file, bundle or checkpoint; a diverged run).
USER_ERRORS = (*train.RUN_ERRORS, CodecError, InfillError)


def _config_code_frame(error: BaseException):
  """The innermost frame of `error`'s traceback in code outside Python and its packages (a config file)."""
  library_dirs = tuple(sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib"))
  here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  frames = [
    frame
    for frame in traceback.extract_tb(error.__traceback__)
    if not frame.filename.startswith(library_dirs + ("<", here))
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
      else "see `--helpfull`"
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
  console.quiet_library_logs(FLAGS.verbosity)
  return argv


def fail(error: BaseException, *, name_the_type: bool = False):
  """Prints the error in one line and leaves at once with status 1 (background writer threads of a failed save
  must neither add tracebacks at interpreter shutdown nor keep the process alive)."""
  logging.debug("Traceback of the error below:", exc_info=True)
  line = f"Error ({type(error).__name__}): {error}" if name_the_type else f"error: {error}"
  sys.stdout.flush()
  print(line, file=sys.stderr, flush=True)
  os._exit(1)  # pylint: disable=protected-access


def run(main, *, name_the_type: bool = False) -> None:
  """app.run(main) with one-line errors for what users get wrong and a prompt Ctrl-C (exit 130)."""
  console.exit_promptly_on_interrupt()
  try:
    app.run(main, flags_parser=parse_flags)
  except USER_ERRORS as e:
    fail(e, name_the_type=name_the_type)
