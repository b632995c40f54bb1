"""Text files: 'text' for the 27-letter model (a-z and space, optionally cleaned) and 'bytes' for a K = 256
model (any file's bytes); files are cut into rows of the model's length, the last one padded."""

import numpy as np

from ardm_jax.codec.errors import CodecError
from ardm_jax.codec.kinds import base
from ardm_jax.data import text as text_lib


def layout(ids: np.ndarray, bundle, fill: int) -> tuple[np.ndarray, np.ndarray]:
  """(x [n, L], fixed [n, L]): values [m] cut into rows of L, the last one padded with fixed `fill` values."""
  (row_length,) = bundle.event_shape
  num_rows = -(-len(ids) // row_length)
  x = np.full(num_rows * row_length, fill, np.int32)
  x[: len(ids)] = ids
  fixed = np.arange(num_rows * row_length) >= len(ids)
  return x.reshape(num_rows, row_length), fixed.reshape(num_rows, row_length)


class Text(base.Kind):
  name = model_kind = "text"
  candidates = ("ardm", "stored", "zstd", "brotli", "xz")
  fill = 0  # The padding positions' value (not coded, shown to the network as known): both sides know it.

  def read(self, name, raw, bundle, clean):
    note = ""
    if clean:
      raw = text_lib.clean_text(raw.decode("utf-8", errors="replace")).encode("ascii")
      note = (
        f"{name}: applied the training cleaner (lowercase, digits spelled out, other characters -> "
        f"space): decoding gives the cleaned text, {len(raw)} characters"
      )
    as_bytes = np.frombuffer(raw, np.uint8)
    valid = np.zeros(256, bool)
    valid[np.frombuffer(text_lib.ALPHABET.encode(), np.uint8)] = True
    bad = np.flatnonzero(~valid[as_bytes])
    if bad.size:
      shown = ", ".join(f"{bytes([as_bytes[i]])!r}"[1:] + f" at {i}" for i in bad[:8])
      raise CodecError(
        f"{name}: {bad.size} characters outside the model's alphabet [a-z ]: {shown}"
        f"{', ...' if bad.size > 8 else ''}; pass --clean to apply the training cleaner (the "
        f"decoded file is then the cleaned text), or use a bytes model (configs/quickstart.py:bytes)."
      )
    return base.Item(self.name, (len(raw),), None, raw, raw, None, note)

  def ids(self, values) -> np.ndarray:
    return text_lib.bytes_to_ids(np.frombuffer(values, np.uint8), "text")

  def rows(self, values, bundle):
    return layout(self.ids(values), bundle, self.fill)

  def blank(self, header):
    return b" " * header.shape[0]

  def from_rows(self, header, x, bundle):
    return text_lib.decode(x.reshape(-1)[: header.shape[0]]).encode("ascii")

  def restore(self, values, sample_rate=None):
    return values


class Bytes(Text):
  name = model_kind = "bytes"
  fill = ord(" ")

  def read(self, name, raw, bundle, clean):
    return base.Item(self.name, (len(raw),), None, raw, raw, None)

  def ids(self, values):
    return np.frombuffer(values, np.uint8)

  def blank(self, header):
    return bytes(header.shape[0])

  def from_rows(self, header, x, bundle):
    return x.reshape(-1)[: header.shape[0]].astype(np.uint8).tobytes()


TEXT, BYTES = Text(), Bytes()
