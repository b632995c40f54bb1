"""NumPy .npy files of integers in 0..K-1 shaped like one data point or [n, *event] ('array'), in C order
with the canonical header (anything else goes to the byte methods), for any model."""

import io
import math

import numpy as np

from ardm_jax.codec import container
from ardm_jax.codec.errors import CodecError
from ardm_jax.codec.kinds import base


class Array(base.Kind):
  name = "array"
  model_kind = "any"
  candidates = ("ardm", "stored", "zstd")

  def read(self, name, raw, bundle, clean):
    """Its header is checked against the file's size before the array is read."""
    stream = io.BytesIO(raw)
    try:
      version = np.lib.format.read_magic(stream)
      read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
      if version not in read_header:
        raise ValueError(f"npy format version {version}")
      shape, _, dtype = read_header[version](stream)
      size = len(raw) - stream.tell()
      if dtype.hasobject or size != math.prod(shape) * dtype.itemsize:
        raise ValueError(f"its header gives {shape} of {dtype}, which is not the {size} data bytes")
      array = np.load(io.BytesIO(raw), allow_pickle=False)
    except Exception as e:  # pylint: disable=broad-except
      raise CodecError(f"{name}: not a readable .npy file ({e}).") from None
    event = bundle.event_shape
    if array.shape[-len(event) :] != event or array.ndim > len(event) + 1:
      raise CodecError(f"{name}: shape {array.shape} is neither the model's data point {event} nor [n, *{event}].")
    dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
    if (
      dtype.str not in container.DTYPES
      or dtype != array.dtype
      or (array.size and (array.min() < 0 or array.max() >= bundle.num_classes))
    ):
      raise CodecError(
        f"{name}: the model codes little-endian integers in 0..{bundle.num_classes - 1}, got dtype "
        f"{array.dtype}{'' if not array.size else f' with values {array.min()}..{array.max()}'}."
      )
    return base.Item(self.name, array.shape, array.dtype.str, raw, np.ascontiguousarray(array), None)

  def rows(self, values, bundle):
    x = np.asarray(values).reshape((-1,) + bundle.event_shape).astype(np.int32)
    return x, np.zeros(x.shape, bool)

  def blank(self, header):
    return np.zeros(header.shape, np.dtype(header.dtype))

  def from_rows(self, header, x, bundle):
    return x.reshape(header.shape).astype(np.dtype(header.dtype))

  def restore(self, values, sample_rate=None):
    out = io.BytesIO()
    np.save(out, values, allow_pickle=False)
    return out.getvalue()

  def check_header(self, name, header, bundle):
    event = bundle.event_shape
    if header.shape[-len(event) :] != event or len(header.shape) > len(event) + 1:
      raise CodecError(f"{name}: its array shape {header.shape} does not fit the bundle (damaged file).")


ARRAY = Array()
