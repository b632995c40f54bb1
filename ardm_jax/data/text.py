"""Character-level text sources: text8 and the built-in `embedded_text` and `embedded_bytes` (no download): ids over
27 characters (0 = space, 1..26 = a..z) or raw UTF-8 bytes (K = 256); training rows are random `seq_len` crops of
1000-character chunks, as in the paper. Design notes: docs/design.md#text
"""

import re
import zipfile
import zlib

import numpy as np

from ardm_jax.io import paths
from ardm_jax.data import dataset

ALPHABET = " abcdefghijklmnopqrstuvwxyz"  # id i <-> ALPHABET[i]
NUM_CLASSES = len(ALPHABET)
TRAIN_CHUNK_LEN = 1000
TEXT8_URL = "http://mattmahoney.net/dc/text8.zip"
TEXT8_MEMBER = "text8"

_INVALID = 255
_BYTE_TO_ID = np.full(256, _INVALID, np.uint8)
_BYTE_TO_ID[np.frombuffer(ALPHABET.encode("ascii"), np.uint8)] = np.arange(NUM_CLASSES, dtype=np.uint8)
_DIGITS_SPELLED = str.maketrans(
  {str(digit): f" {word} " for digit, word in enumerate("zero one two three four five six seven eight nine".split())}
)


def bytes_to_ids(text_bytes: np.ndarray, source: str) -> np.ndarray:
  """Maps ASCII bytes uint8 [n] of [a-z ] to ids uint8 [n]; ValueError naming `source` on any other byte."""
  ids = _BYTE_TO_ID[text_bytes]
  invalid = np.flatnonzero(ids == _INVALID)
  if invalid.size:
    first = int(invalid[0])
    raise ValueError(
      f"{source}: {invalid.size} characters outside [a-z ], the first is {chr(text_bytes[first])!r} "
      f"(byte {text_bytes[first]}) at offset {first}; text8-style text holds only lowercase a-z and space"
    )
  return ids


def encode(text: str) -> np.ndarray:
  """Text of [a-z ] -> ids uint8 [len(text)] (space -> 0, a..z -> 1..26)."""
  try:
    text_bytes = np.frombuffer(text.encode("ascii"), np.uint8)
  except UnicodeEncodeError as error:
    raise ValueError(f"text has non-ASCII characters, outside [a-z ]: {error}") from None
  return bytes_to_ids(text_bytes, "text")


def decode(ids) -> str:
  """Ids [n] in 0..26 -> the text they stand for."""
  return "".join(ALPHABET[i] for i in np.asarray(ids).reshape(-1))


def clean_text(text: str) -> str:
  """The text8 cleaning recipe (Matt Mahoney's wikifil.pl): lowercase, digits spelled out ('1' -> ' one '),
  every other non-letter -> space, runs of spaces collapsed, no leading/trailing space."""
  spelled = text.lower().translate(_DIGITS_SPELLED)
  return re.sub(r"[^a-z]+", " ", spelled).strip()


def read_text8(path: str) -> np.ndarray:
  """Reads the 'text8' member of the zip at `path` (local, `~/...` or gs://) into ids uint8 [n].

  Raises:
    FileNotFoundError: no file at `path` (the message gives the path tried, with `~` expanded).
    ValueError: not a readable zip (truncated/corrupt), no 'text8' member, or characters outside [a-z ].
  """
  location = paths.resolve(path)  # Local (with `~` expanded) or an object store such as gs://bucket/text8.zip.
  if not location.is_file():
    tried = "" if str(location) == path else f" (looked for {str(location)!r})"
    raise paths.InputNotFoundError(
      f"text8 not found at data.path={path!r}{tried}; download it with `wget {TEXT8_URL}` (31 MB) and set "
      f"data.path to the zip (do not unzip)"
    )
  try:
    with location.open("rb") as f, zipfile.ZipFile(f) as archive:
      members = archive.namelist()
      if TEXT8_MEMBER not in members:
        raise ValueError(
          f"{path}: zip has no member {TEXT8_MEMBER!r} (members: {members}); expected the "
          f"standard text8.zip from {TEXT8_URL}"
        )
      raw = archive.read(TEXT8_MEMBER)
  except (zipfile.BadZipFile, zlib.error, EOFError) as error:
    raise ValueError(
      f"{path}: not a readable zip archive, truncated or corrupt ({error}); download it again from {TEXT8_URL}"
    ) from None
  return bytes_to_ids(np.frombuffer(raw, np.uint8), f"{path} member {TEXT8_MEMBER!r}")


def embedded_text_ids() -> np.ndarray:
  """Python's own documentation (`pydoc_data.topics`, ~465K characters) cleaned like text8: ids uint8 [n]."""
  from pydoc_data.topics import topics  # pylint: disable=import-outside-toplevel

  text = clean_text("\n".join(topics[key] for key in sorted(topics)))
  return encode(text)


def embedded_bytes() -> np.ndarray:
  """Python's own documentation (`pydoc_data.topics`) as raw UTF-8 bytes, uncleaned: uint8 [n]."""
  from pydoc_data.topics import topics  # pylint: disable=import-outside-toplevel

  return np.frombuffer("\n".join(topics[key] for key in sorted(topics)).encode("utf-8"), np.uint8)


def text8_splits(ids: np.ndarray) -> dict[str, np.ndarray]:
  """90% / 5% / 5% train / valid / test of ids [n]."""
  n = len(ids)
  train_end, valid_end = n * 90 // 100, n * 95 // 100
  return {"train": ids[:train_end], "valid": ids[train_end:valid_end], "test": ids[valid_end:]}


def embedded_text_splits(ids: np.ndarray) -> dict[str, np.ndarray]:
  """90% / 10% train / test of ids [n]."""
  train_end = len(ids) * 9 // 10
  return {"train": ids[:train_end], "test": ids[train_end:]}


def random_crops(seq_len: int) -> dataset.RowTransform:
  """Row transform: chunks uint8 [b, C], random bits uint64 [b] -> one uniform `seq_len` crop per row."""

  def crop(chunks_NxL: np.ndarray, row_bits_B: np.ndarray) -> np.ndarray:
    num_offsets = np.uint64(chunks_NxL.shape[1] - seq_len + 1)
    offsets_B = (row_bits_B % num_offsets).astype(np.int64)
    return np.take_along_axis(chunks_NxL, offsets_B[:, None] + np.arange(seq_len), axis=1)

  return crop


def text_dataset(
  name: str, splits: dict[str, np.ndarray], *, seq_len: int, eval_split: str, seed: int, num_classes: int = NUM_CLASSES
) -> dataset.Dataset:
  """Builds the step-indexed dataset from character splits (ids uint8 [n_split] each, in 0..num_classes-1)."""
  if eval_split not in splits or eval_split == "train":
    raise ValueError(
      f"data.eval_split={eval_split!r} is not a split of {name}; choose from {sorted(set(splits) - {'train'})}"
    )
  train, held_out = splits["train"], splits[eval_split]
  num_chunks, num_eval = len(train) // TRAIN_CHUNK_LEN, len(held_out) // seq_len
  if num_chunks == 0 or num_eval == 0:
    raise ValueError(
      f"{name} is too short: its train split has {len(train)} characters (needs at least "
      f"{TRAIN_CHUNK_LEN}) and its {eval_split} split {len(held_out)} (needs at least "
      f"seq_len={seq_len})"
    )
  return dataset.Dataset(
    name=name,
    event_shape=(seq_len,),
    num_classes=num_classes,
    train_examples=train[: num_chunks * TRAIN_CHUNK_LEN].reshape(num_chunks, TRAIN_CHUNK_LEN),
    eval_examples=held_out[: num_eval * seq_len].reshape(num_eval, seq_len),
    seed=seed,
    train_transform=random_crops(seq_len),
  )
