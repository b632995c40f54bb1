"""The `files` source: a model of your own files, all of one kind (`data.kind`), for a codec of that kind. A file is an
eval file iff a hash of its name falls below data.test_fraction, so adding or removing a file moves no other file
between the splits. Design notes: docs/design.md#files
"""

import hashlib
import os

from etils import epath
import numpy as np

from ardm_jax.io import paths
from ardm_jax.data import dataset
from ardm_jax.data import images
from ardm_jax.data import media
from ardm_jax.data import text

KINDS = ("text", "bytes", "images")
_GLOB_CHARS = "*?["
_LEAVE_OUT = "move it out of data.path or narrow data.path to a glob such as 'DIR/%s'"
_CROP_SHIFT = np.uint64(3)  # Bits 0-2 of a row's random bits pick the dihedral transform.


def _without_scheme(path: epath.Path) -> str:
  return os.fspath(path).split("://", 1)[-1]


def _relative(file: epath.Path, root: epath.Path) -> str:
  """The name of `file` below `root`, '/'-separated (the same for a local folder and its gs:// copy)."""
  return os.fspath(file)[len(os.fspath(root)) :].lstrip("/")


def _is_hidden(relative: str) -> bool:
  return any(part.startswith(".") for part in relative.split("/"))


def list_files(path: str) -> list[tuple[str, epath.Path]]:
  """(name relative to the folder or glob root, path) of every file data.path names, sorted by name.

  Raises:
    InputNotFoundError: nothing exists at `path`, or it names no (non-hidden) file.
    ValueError: the path is empty, or a glob uses `**` (name the folder instead: folders are read recursively).
  """
  wild = next((i for i, char in enumerate(path) if char in _GLOB_CHARS), None)
  if wild is None:
    root = paths.resolve(path)
    if root.is_file():
      raise ValueError(
        f"data.path={path!r} is a single file; data.name='files' splits a folder of files into train and eval "
        f"files: point data.path at their folder or at a glob such as 'DIR/*.txt'"
      )
    if not root.is_dir():
      tried = "" if str(root) == path else f" (looked for {str(root)!r})"
      raise paths.InputNotFoundError(
        f"data.path={path!r} does not exist{tried}; set --config.data.path to a folder or glob of your files"
      )
    found = []
    for folder, folders, names in root.walk():
      folders[:] = [f for f in folders if not f.startswith(".")]  # Hidden folders (.git) are not entered.
      below = _without_scheme(folder)[len(_without_scheme(root)) :].strip("/")  # fsspec's walk drops gs://.
      found += [(f"{below}/{name}".lstrip("/"), root / below / name if below else root / name) for name in names]
  else:
    if "**" in path:
      raise ValueError(
        f"data.path={path!r}: '**' globs are not supported; give the folder itself (it is read recursively)"
      )
    cut = path.rfind("/", 0, wild)
    root_text, pattern = (path[:cut] or "/", path[cut + 1 :]) if cut >= 0 else (".", path)
    root = paths.resolve(root_text)
    matches = root.glob(pattern) if root.is_dir() else []
    found = [(_relative(match, root), match) for match in matches if match.is_file()]
  files = sorted((name, file) for name, file in found if not _is_hidden(name))
  if not files:
    raise paths.InputNotFoundError(
      f"data.path={path!r} holds no files (resolved to {str(root)!r}; hidden names are skipped); put your "
      f"files there or point --config.data.path at the folder or glob that holds them"
    )
  return files


def eval_fraction(name: str) -> float:
  """u(name) in [0, 1): the first 8 bytes of SHA-256(name) / 2**64; the file is an eval file iff u < fraction."""
  return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big") / 2.0**64


def split_files(names: list[str], test_fraction: float, path: str) -> tuple[list[str], list[str]]:
  """(train names, eval names), each in the order of `names`; ValueError for fewer than two files."""
  if len(names) < 2:
    raise ValueError(
      f"data.path={path!r} holds {len(names)} file ({', '.join(names)}); data.name='files' needs at least 2, "
      f"one for training and one for eval: add files to the folder or widen the glob"
    )
  u = {name: eval_fraction(name) for name in names}
  held_out = {name for name in names if u[name] < test_fraction}
  if not held_out:
    held_out = {min(names, key=u.get)}
  elif len(held_out) == len(names):
    held_out.remove(max(names, key=u.get))
  return [n for n in names if n not in held_out], [n for n in names if n in held_out]


def read_bytes(file: epath.Path) -> bytes:
  """The content of one file; ValueError naming it when it cannot be read."""
  try:
    return file.read_bytes()
  except OSError as error:
    raise ValueError(
      f"{file}: cannot be read ({error.strerror or error}); fix its permissions or move it out of data.path"
    ) from None


def text_ids(raw: bytes, file: epath.Path) -> np.ndarray:
  """A UTF-8 text file cleaned like text8: ids uint8 [n] in 0..26; ValueError naming the file if not text."""
  try:
    decoded = raw.decode("utf-8")
    offset, reason = (raw.index(b"\x00"), "a NUL byte: binary data") if b"\x00" in raw else (None, "")
  except UnicodeDecodeError as error:
    offset, reason = error.start, f"{error.reason} in UTF-8"
  if offset is not None:
    raise ValueError(
      f"{file}: not a UTF-8 text file (byte {raw[offset]:#04x} at offset {offset}: {reason}); data.kind='text' "
      f"reads text only: {_LEAVE_OUT % '*.txt'}, or use --config.data.kind=bytes to model any file"
    )
  return text.encode(text.clean_text(decoded))


def png_pixels(raw: bytes, file: epath.Path) -> np.ndarray:
  """A PNG file's pixels uint8 [H, W, 3] (grayscale repeated to 3 channels); ValueError naming the file."""
  if not raw.startswith(media.PNG_SIGNATURE):
    raise ValueError(
      f"{file}: not a PNG file (it starts with {raw[:8]!r}); data.kind='images' reads PNG files only: "
      f"convert it to PNG, or {_LEAVE_OUT % '*.png'}"
    )
  try:
    image = media.read_png(raw, str(file))
  except media.MediaError as error:
    raise ValueError(f"{file}: not a readable PNG, truncated or corrupt ({error.why}); replace or remove it") from None
  if image.mode not in ("RGB", "L"):
    raise ValueError(
      f"{file}: PNG mode {image.mode!r} is not supported (RGB and grayscale 'L' are, as the image codec codes "
      f"them); convert it, e.g. PIL's Image.open(f).convert('RGB').save(f), or {_LEAVE_OUT % '*.png'}"
    )
  pixels = np.asarray(image, np.uint8)
  return np.repeat(pixels[:, :, None], 3, axis=2) if image.mode == "L" else pixels


def random_image_crops(train_images: list[np.ndarray], size: int, augment: bool) -> dataset.RowTransform:
  """Row transform: image ids [b], random bits uint64 [b] -> uint8 [b, size, size, 3] crops (see above)."""

  def crop(ids_B: np.ndarray, row_bits_B: np.ndarray) -> np.ndarray:
    crops_BxPxPx3 = np.empty((len(ids_B), size, size, 3), np.uint8)
    for row, (image_id, bits) in enumerate(zip(ids_B, row_bits_B >> _CROP_SHIFT)):
      image = train_images[image_id]
      num_tops, num_lefts = (np.uint64(extent - size + 1) for extent in image.shape[:2])
      top, left = int(bits % num_tops), int(bits // num_tops % num_lefts)
      crops_BxPxPx3[row] = image[top : top + size, left : left + size]
    return images.random_dihedral(crops_BxPxPx3, row_bits_B) if augment else crops_BxPxPx3

  return crop


def _image_split(files, size: int) -> list[np.ndarray]:
  pixels = []
  for _, file in files:
    image = png_pixels(read_bytes(file), file)
    if min(image.shape[:2]) < size:
      raise ValueError(
        f"{file}: image of {image.shape[1]}x{image.shape[0]} pixels is smaller than one {size}x{size} patch; "
        f"lower --config.data.image_size, or {_LEAVE_OUT % '*.png'}"
      )
    pixels.append(image)
  return pixels


def files_dataset(
  path: str,
  kind: str,
  test_fraction: float,
  *,
  seed: int,
  seq_len: int | None = None,
  image_size: int | None = None,
  augment: bool = False,
) -> dataset.Dataset:
  """The step-indexed dataset of the files at `path` (module docstring: listing, split, kinds).

  Raises:
    InputNotFoundError: `path` does not exist or holds no files.
    ValueError: fewer than two files, an unreadable file, a file not of `kind`, too little text for one
      training chunk or eval sequence, an image smaller than one patch.
  """
  if kind not in KINDS:
    raise ValueError(f"data.kind={kind!r} is not one of {list(KINDS)}")
  files = dict(list_files(path))
  train_names, eval_names = split_files(list(files), test_fraction, path)
  splits = {"train": [(n, files[n]) for n in train_names], "test": [(n, files[n]) for n in eval_names]}
  if kind == "images":
    train_images, eval_images = (_image_split(splits[split], image_size) for split in ("train", "test"))
    patch_counts = [(h // image_size) * (w // image_size) for h, w, _ in (image.shape for image in train_images)]
    return dataset.Dataset(
      name="files",
      event_shape=(image_size, image_size, 3),
      num_classes=images.NUM_CLASSES,
      train_examples=np.repeat(np.arange(len(train_images), dtype=np.int32), patch_counts),  # image ids [N]
      eval_examples=np.concatenate([images.patches(image, image_size) for image in eval_images]),
      seed=seed,
      train_transform=random_image_crops(train_images, image_size, augment),
    )
  streams = {}
  for split, named_files in splits.items():
    if kind == "text":
      pieces = []
      for _, file in named_files:
        pieces += [np.zeros(1, np.uint8)] if pieces else []  # id 0 = ' ' between files
        pieces.append(text_ids(read_bytes(file), file))
      streams[split] = np.concatenate(pieces)  # ids uint8 [n]
    else:
      streams[split] = np.frombuffer(b"".join(read_bytes(file) for _, file in named_files), np.uint8)  # [n]
  needed = {"train": text.TRAIN_CHUNK_LEN, "test": seq_len}
  for split, stream in streams.items():
    if len(stream) < needed[split]:
      names = [name for name, _ in splits[split]]
      raise ValueError(
        f"data.path={path!r}: the {'eval' if split == 'test' else 'train'} files {names} hold {len(stream)} "
        f"{'characters after cleaning' if kind == 'text' else 'bytes'}, fewer than the {needed[split]} needed "
        f"(train: one {text.TRAIN_CHUNK_LEN}-long chunk; eval: one data.seq_len sequence); add files or "
        f"change --config.data.test_fraction"
      )
  return text.text_dataset(
    "files",
    streams,
    seq_len=seq_len,
    eval_split="test",
    seed=seed,
    num_classes=text.NUM_CLASSES if kind == "text" else 256,
  )
