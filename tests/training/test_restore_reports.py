"""A failed restore's abandoned reads report nothing the one-line fallback message does not."""

import logging

from ardm_jax.training import checkpointing


def _record(message: str) -> logging.LogRecord:
  return logging.LogRecord("asyncio", logging.ERROR, "base_events.py", 1, message, None, None)


def test_unretrieved_orbax_read_failures_are_dropped_and_other_asyncio_errors_kept():
  checkpointing._silence_closed_event_loop_reports()  # pylint: disable=protected-access
  asyncio_logger = logging.getLogger("asyncio")
  abandoned = _record(
    "Task exception was never retrieved\nfuture: <Task finished name='Task-306' coro=<async_deserialize() done, "
    "defined at .../orbax/checkpoint/_src/serialization/serialization.py:394> exception=ValueError('NOT_FOUND')>"
  )
  other_task = _record("Task exception was never retrieved\nfuture: <Task finished coro=<my_own_task() done>>")
  other_error = _record("Exception in callback async_deserialize")
  assert not asyncio_logger.filter(abandoned)
  assert asyncio_logger.filter(other_task) and asyncio_logger.filter(other_error)
