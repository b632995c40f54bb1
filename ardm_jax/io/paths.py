"""One path layer for everything the program reads or writes: local paths and object stores (gs://...), through
`etils.epath`. Writers never rely on directories or an atomic rename (`write_atomically`, `move_tree`).
Design notes: docs/design.md#paths
"""

import os
import shutil
import re
import threading
import uuid

from etils import epath


class InputNotFoundError(FileNotFoundError):
  """A file or directory the user named as input (a dataset, a prepared tfds copy) does not exist."""


def is_url(path: str | os.PathLike) -> bool:
  """True for object-store URLs such as gs://bucket/x (anything with a scheme), False for local paths."""
  return "://" in os.fspath(path)


def resolve(path: str | os.PathLike) -> epath.Path:
  """The epath.Path a user-given path names: `~` expanded and made absolute when local, URLs unchanged.

  Raises:
    ValueError: the path is empty.
  """
  text = os.fspath(path).strip() if path is not None else ""
  if not text:
    raise ValueError("an empty path was given")
  if is_url(text):
    return epath.Path(text)
  return epath.Path(os.path.abspath(os.path.expanduser(text)))


def write_atomically(path: epath.Path, data: bytes | str) -> None:
  """Writes `data` so that a reader sees the old content or the new one, never a half-written file.

  Object stores publish an object only when its upload completes; on a local disk the data goes to a temporary
  sibling first and is renamed over `path`.
  """
  raw = data.encode() if isinstance(data, str) else data
  if is_url(path):
    path.write_bytes(raw)
    return
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
  tmp.write_bytes(raw)
  os.replace(tmp, path)


def occupied(path: epath.Path) -> bool:
  """Whether anything is at `path`: an object, a file, a directory, or a symlink (even a dangling one)."""
  return path.exists() if is_url(path) else os.path.lexists(path)


def write_new_file(path: epath.Path, data: bytes, *, force: bool = False) -> None:
  """Writes a whole file that a reader sees complete or not at all, never through a symlink.

  Without force, an existing file (or symlink, or anything else) at `path` is kept and FileExistsError raised;
  with force, a file or symlink there is replaced (the link itself, never its target). Locally the data goes to
  a new temporary sibling (O_EXCL | O_NOFOLLOW), which is then hard-linked (no replace) or renamed into place.
  """
  if is_url(path):
    if force:
      path.write_bytes(data)
    elif not create_exclusively(path, data):
      raise FileExistsError(f"{path} exists")
    return
  local = os.fspath(path)
  if os.path.isdir(local) and not os.path.islink(local):
    raise IsADirectoryError(f"{path} is a directory")
  if not force and occupied(path):
    raise FileExistsError(f"{path} exists")
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = os.path.join(os.path.dirname(local), f".{os.path.basename(local)}.{uuid.uuid4().hex}.tmp")
  fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    if force:
      os.replace(tmp, local)
    else:
      os.link(tmp, local, follow_symlinks=False)  # atomic, and fails if anything appeared there meanwhile
  finally:
    if os.path.lexists(tmp):
      os.unlink(tmp)


def create_exclusively(path: epath.Path, data: bytes) -> bool:
  """Creates `path` with `data` only if nothing exists there (local O_EXCL; GCS ifGenerationMatch=0).

  Returns:
    True if this call created the object, False if it already existed.
  """
  if not is_url(path):
    try:
      fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
      return False
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    return True
  import fsspec  # pylint: disable=import-outside-toplevel

  fs, object_path = fsspec.core.url_to_fs(os.fspath(path))
  try:
    fs.pipe_file(object_path, data, mode="create")  # gcsfs: an upload with ifGenerationMatch=0.
  except FileExistsError:
    return False
  return True


def move_tree(source: epath.Path, destination: epath.Path) -> None:
  """Moves a directory tree: a rename on local disks, copy-then-delete on object stores (no rename there)."""
  if not is_url(source):
    destination.parent.mkdir(parents=True, exist_ok=True)
    source.rename(destination)
    return
  for child in source.iterdir():
    if child.is_dir():
      move_tree(child, destination / child.name)
    else:
      destination.mkdir(parents=True, exist_ok=True)
      child.copy(destination / child.name)
  source.rmtree(missing_ok=True)


# Temporary files of writes in progress (removed on every exit path, and by console's Ctrl-C handler), and the
# lock the handler takes so that it never stops a commit halfway.
PENDING: set[str] = set()
COMMIT_LOCK = threading.Lock()
_TEMP = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{32}\.(tmp|bak)$")


def remove_leftover(local: str, *, ignore_errors: bool = False) -> None:
  """Removes a local temporary file or directory of a write in progress, if there (a symlink itself, never its
  target)."""
  if os.path.isdir(local) and not os.path.islink(local):
    shutil.rmtree(local, ignore_errors=ignore_errors)
  elif os.path.lexists(local):
    os.unlink(local)


def remove_stale_temporaries(path: epath.Path) -> list[str]:
  """Removes the temporary siblings of `path` that a killed run of write_files/write_new_file left behind."""
  if is_url(path):
    return []
  directory, name = os.path.dirname(os.fspath(path)), os.path.basename(os.fspath(path))
  removed = []
  try:
    entries = os.listdir(directory)
  except OSError:
    return []
  for entry in entries:
    match = _TEMP.match(entry)
    if match and match.group("name") == name:
      full = os.path.join(directory, entry)
      if full not in PENDING and os.path.isfile(full) and not os.path.islink(full):
        os.unlink(full)
        removed.append(full)
  return removed


def _made_dirs(directory: str) -> list[str]:
  """Creates `directory` and its missing parents; returns those it created, deepest first."""
  missing = []
  while directory and not os.path.lexists(directory):
    missing.append(directory)
    directory = os.path.dirname(directory)
  for d in reversed(missing):
    os.mkdir(d)
  return missing


def write_files(files: list[tuple[epath.Path, bytes]], *, force: bool = False) -> None:
  """Writes every (path, data), or none of them: what a multi-file command writes.

  Without force, FileExistsError (naming the path) if anything is at any path, before anything is written; with
  force, files and symlinks there are replaced (never a directory: IsADirectoryError). Locally every file is
  staged as a temporary sibling, then linked (no force) or renamed (force) into place; if any step fails, or the
  run is interrupted, what was put in place is taken back (replaced files restored), the temporaries and the
  directories this call created are removed. Stale temporaries of the same targets from a killed run go first.
  Object stores (gs://): objects are created one by one and deleted again if a later one fails.
  """
  for path, _ in files:
    if not is_url(path) and os.path.isdir(os.fspath(path)) and not os.path.islink(os.fspath(path)):
      raise IsADirectoryError(f"{path} is a directory")
    if not force and occupied(path):
      raise FileExistsError(f"{path} exists")
  if any(is_url(path) for path, _ in files):
    _write_objects(files, force)
    return
  created_dirs, staged, placed, backups = [], [], [], []
  done = False
  try:
    for path, data in files:
      local = os.fspath(path)
      remove_stale_temporaries(path)
      created_dirs += _made_dirs(os.path.dirname(local))
      tmp = os.path.join(os.path.dirname(local), f".{os.path.basename(local)}.{uuid.uuid4().hex}.tmp")
      PENDING.add(tmp)
      fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
      with os.fdopen(fd, "wb") as f:
        f.write(data)
      staged.append((tmp, local))
    with COMMIT_LOCK:
      for tmp, local in staged:
        if force and os.path.lexists(local):
          backup = os.path.join(os.path.dirname(local), f".{os.path.basename(local)}.{uuid.uuid4().hex}.bak")
          PENDING.add(backup)
          os.rename(local, backup)
          backups.append((backup, local))
        if force:
          os.replace(tmp, local)
        else:
          os.link(tmp, local, follow_symlinks=False)  # Fails if anything appeared there meanwhile.
        placed.append(local)
      done = True
  finally:
    with COMMIT_LOCK:
      if not done:
        for local in placed:
          if os.path.lexists(local):
            os.unlink(local)
        for backup, local in backups:
          os.rename(backup, local)
      else:
        for backup, _ in backups:
          os.unlink(backup)
      for tmp, _ in staged:
        if os.path.lexists(tmp):
          os.unlink(tmp)
      PENDING.difference_update([tmp for tmp, _ in staged] + [b for b, _ in backups])
      if not done:
        for d in sorted(created_dirs, key=len, reverse=True):
          try:
            os.rmdir(d)
          except OSError:
            pass


def _write_objects(files: list[tuple[epath.Path, bytes]], force: bool) -> None:
  created = []
  try:
    for path, data in files:
      if force:
        existed = path.exists()
        path.write_bytes(data)
        if not existed:
          created.append(path)
      elif create_exclusively(path, data):
        created.append(path)
      else:
        raise FileExistsError(f"{path} exists")
    created = []
  finally:
    for path in created:  # A failure part way: the objects this call created go again.
      path.unlink(missing_ok=True)
