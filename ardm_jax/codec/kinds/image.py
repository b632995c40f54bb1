"""PNG images of 8-bit RGB ('image_rgb') or grayscale ('image_l', coded as three equal channels) pixels and
nothing else, of any size, tiled into the model's patches; decoding writes a PNG of the same pixels."""

import numpy as np

from ardm_jax.codec import container
from ardm_jax.codec.errors import CodecError
from ardm_jax.codec.kinds import base
from ardm_jax.data import media

FILL = 128  # The padding of the edge patches (not coded, shown to the network as known).


class Image(base.Kind):
  model_kind = "image"
  candidates = ("ardm", "stored", "webp", "jxl")
  exact_note = "decoding gives the same pixels in a PNG of its own making, not these bytes"
  channels = 3

  def read(self, name, raw, bundle, clean):
    """Checked from its chunks before any pixel is decoded: its size against the value limit, and that it holds
    nothing but pixels (anything else goes to the byte methods, which keep the file's own bytes)."""
    if bundle.event_shape[-1] != 3:
      raise CodecError(f"{name}: the model codes {bundle.event_shape[-1]}-channel patches, PNGs are coded as RGB.")
    why_not, size = media.png_pixels_only(raw)
    if size is not None and 3 * size[0] * size[1] > container.MAX_VALUES:
      limit = container.MAX_VALUES
      raise CodecError(f"{name}: {size[1]}x{size[0]} pixels, above the model's limit of {limit} values.")
    if why_not:
      raise CodecError(f"{name}: {why_not}.")
    try:
      image = media.read_png(raw, name)
    except media.MediaError as e:
      raise CodecError(f"{e}.") from None
    if image.mode not in ("RGB", "L") or image.size != (size[1], size[0]):
      raise CodecError(f"{name}: PNG mode {image.mode!r} of size {image.size}, not the pixels its header gives.")
    pixels = np.asarray(image, np.uint8)
    kind = RGB if image.mode == "RGB" else GRAY
    return base.Item(kind.name, pixels.shape[:2], None, raw, pixels, None)

  def rows(self, values, bundle):
    """(x, fixed) [n, ph, pw, 3]: pixels [H, W(, 3)] tiled into patches, the edges padded with fixed values."""
    height, width = values.shape[:2]
    rgb = values if values.ndim == 3 else np.repeat(values[..., None], 3, axis=-1)
    patch_h, patch_w, channels = bundle.event_shape
    rows_h, rows_w = -(-height // patch_h), -(-width // patch_w)
    pad = ((0, rows_h * patch_h - height), (0, rows_w * patch_w - width), (0, 0))
    padded = np.pad(rgb, pad, constant_values=FILL)
    fixed = np.ones(padded.shape, bool)
    fixed[:height, :width] = False

    def tile(a):
      a = a.reshape(rows_h, patch_h, rows_w, patch_w, channels).transpose(0, 2, 1, 3, 4)
      return a.reshape(rows_h * rows_w, patch_h, patch_w, channels)

    return tile(padded).astype(np.int32), tile(fixed)

  def value_shape(self, shape):
    return tuple(shape) + ((3,) if self.channels == 3 else ())

  def blank(self, header):
    return np.zeros(self.value_shape(header.shape), np.uint8)

  def from_rows(self, header, x, bundle):
    """uint8 pixels [H, W(, 3)] from their patches [n, ph, pw, 3]."""
    patch_h, patch_w, channels = bundle.event_shape
    height, width = header.shape
    rows_h, rows_w = -(-height // patch_h), -(-width // patch_w)
    image = x.reshape(rows_h, rows_w, patch_h, patch_w, channels).transpose(0, 2, 1, 3, 4)
    image = image.reshape(rows_h * patch_h, rows_w * patch_w, channels)[:height, :width].astype(np.uint8)
    return image if self.channels == 3 else np.ascontiguousarray(image[..., 0])

  def restore(self, values, sample_rate=None):
    return media.png_bytes(values)


class Rgb(Image):
  name = "image_rgb"


class Gray(Image):
  name = "image_l"
  channels = 1


RGB, GRAY = Rgb(), Gray()
