"""A workdir lease: one training run writes to a workdir at a time (`<workdir>/lease.json`, created exclusively, on
local disks and on object stores), taken before anything in the workdir is touched; a stale lease may be taken over.
Design notes: docs/design.md#lease
"""

import json
import os
import socket
import time
import uuid

from absl import logging
from etils import epath

from ardm_jax.io import paths

LEASE_NAME = "lease.json"
HEARTBEAT_S = 60.0  # How often the holder renews its heartbeat.
STALE_AFTER_S = 600.0  # A lease whose heartbeat is older than this belongs to a dead run.


class WorkdirBusyError(RuntimeError):
  """Another live run holds the workdir's lease."""


def _process_exists(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def _read(path: epath.Path) -> dict | None:
  try:
    return json.loads(path.read_text())
  except FileNotFoundError:
    return None
  except (ValueError, OSError):
    return {}  # Unreadable (e.g. a truncated write): treated as stale below, since no heartbeat can be read.


def stale_reason(record: dict, now: float) -> str | None:
  """Why the lease `record` may be taken over, or None while its holder may still be alive."""
  heartbeat = record.get("heartbeat")
  if not isinstance(heartbeat, (int, float)):
    return "it is unreadable"
  if record.get("host") == socket.gethostname() and isinstance(record.get("pid"), int):
    if not _process_exists(record["pid"]):
      return f"its process {record['pid']} on this host no longer exists"
  if now - heartbeat > STALE_AFTER_S:
    return f"its heartbeat is {now - heartbeat:.0f} s old (> {STALE_AFTER_S:.0f} s)"
  return None


class Lease:
  """The lease of one run on `workdir`; `acquire()` before writing, `release()` when done."""

  def __init__(self, workdir: epath.Path):
    self.path = workdir / LEASE_NAME
    self.record = {"owner": uuid.uuid4().hex, "host": socket.gethostname(), "pid": os.getpid()}
    self.last_renewal = 0.0

  def _payload(self) -> bytes:
    self.last_renewal = time.time()
    return json.dumps(dict(self.record, heartbeat=self.last_renewal)).encode()

  def acquire(self) -> None:
    """Takes the lease, or raises WorkdirBusyError naming the holder and what to do."""
    self.path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
      if paths.create_exclusively(self.path, self._payload()):
        return
      holder = _read(self.path)
      if holder is None:
        continue  # Released in between: try again.
      reason = stale_reason(holder, time.time())
      if reason is None:
        age = time.time() - holder["heartbeat"]
        raise WorkdirBusyError(
          f"{self.path.parent} is in use by another run (host {holder.get('host')}, pid {holder.get('pid')}, "
          f"heartbeat {age:.0f} s ago). Stop that run or use another --workdir; if that run is dead, its lease "
          f"expires {STALE_AFTER_S:.0f} s after its last heartbeat, or delete {self.path}."
        )
      logging.warning("Taking over the lease of %s: %s.", self.path.parent, reason)
      if _read(self.path) == holder:  # Still the stale record we judged (not a newer run's lease).
        self.path.unlink(missing_ok=True)
    raise WorkdirBusyError(
      f"Could not take the lease {self.path}: another run took it first. Use another --workdir or stop that run."
    )

  def renew(self, force: bool = False) -> None:
    """Refreshes the heartbeat (at most every HEARTBEAT_S unless forced); raises if the lease was taken."""
    if not force and time.time() - self.last_renewal < HEARTBEAT_S:
      return
    holder = _read(self.path)
    if not holder or holder.get("owner") != self.record["owner"]:
      raise WorkdirBusyError(
        f"The lease {self.path} was taken by another run (host {(holder or {}).get('host')},"
        f" pid {(holder or {}).get('pid')}); stopping so that the two runs do not overwrite "
        "each other's checkpoints."
      )
    paths.write_atomically(self.path, self._payload())

  def release(self) -> None:
    holder = _read(self.path)
    if holder and holder.get("owner") == self.record["owner"]:
      self.path.unlink(missing_ok=True)
