"""The interface of a data kind: how a file becomes the values the codecs code, and back."""

import dataclasses
import zlib

import numpy as np

from ardm_jax.codec import container


@dataclasses.dataclass
class Item:
  """One input prepared for coding.

  Attributes:
    kind: the container kind (container.KINDS), the name of the Kind that read it.
    shape, dtype: the container's shape fields (dtype: arrays only).
    file_bytes: what the byte methods code and restore.
    values: what the model and the image and sample methods code and restore: text bytes, uint8 pixels
      [H, W(, 3)], int16 audio samples [L], or the array; None for 'file'.
    sample_rate: audio only.
    rows: (x int32 [n, *event], fixed bool [n, *event]) for the model, or None if the model cannot code it.
    note: what the user should know (a cleaned text, why the model does not code the file).
  """

  kind: str
  shape: tuple[int, ...]
  dtype: str | None
  file_bytes: bytes
  values: bytes | np.ndarray | None
  rows: tuple[np.ndarray, np.ndarray] | None
  note: str = ""
  sample_rate: int | None = None

  @property
  def num_dims(self) -> int:
    """Dimensions for bits per dimension (container.num_dims)."""
    return container.num_dims(self.kind, self.shape)


def values_crc(values) -> int:
  """CRC32 of values (bytes, or an array's C-order bytes): what a value method's header records."""
  raw = values if isinstance(values, bytes) else np.ascontiguousarray(values).tobytes()
  return zlib.crc32(raw)


class Kind:
  """One kind of data in a compressed file. Subclasses set the attributes and implement the methods.

  Attributes:
    name: the container kind (container.KINDS).
    model_kind: the bundle kind whose model codes it ('any': every model, as for arrays; None: no model).
    candidates: the methods of --method=auto, the model first where it codes this kind.
    exact_note: '' if decoding gives back the file's own bytes; else what it gives (a note shown at encode).
  """

  name: str = ""
  model_kind: str | None = None
  candidates: tuple[str, ...] = ()
  exact_note: str = ""

  def read(self, name: str, raw: bytes, bundle, clean: bool) -> Item:
    """The item of a file for this bundle; CodecError (naming the file) if this kind cannot take it."""
    raise NotImplementedError

  def rows(self, values, bundle) -> tuple[np.ndarray, np.ndarray]:
    """The model's rows (x int32 [n, *event], fixed bool [n, *event]) of the values: one layout for both sides."""
    raise NotImplementedError

  def blank(self, header: container.Header):
    """Values of the header's kind and shape, to lay out the rows the decoder fills."""
    raise NotImplementedError

  def from_rows(self, header: container.Header, x: np.ndarray, bundle):
    """The values (as `rows` takes them) of the decoded rows x [n, *event]."""
    raise NotImplementedError

  def restore(self, values, sample_rate: int | None = None) -> bytes:
    """The file that decoding writes for the values."""
    raise NotImplementedError

  def value_shape(self, shape) -> tuple[int, ...]:
    """The shape of the values of a header's shape (what the image and sample methods decode)."""
    return tuple(shape)

  def check_header(self, name: str, header: container.Header, bundle) -> None:
    """Refuses (CodecError) a header this kind cannot restore under this bundle, before any decoding."""
    del name, header, bundle
