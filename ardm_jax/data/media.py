"""PNG and WAV bytes in and out, and image grids: the one place every caller reads and writes media."""

import io
import math
import struct
import wave

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_PIXEL_CHUNKS = (b"IHDR", b"IDAT", b"IEND")


class MediaError(ValueError):
  """A file that is not the PNG or WAV it should be; the message names it, `why` is the reader's own reason."""

  def __init__(self, message: str, why: str = ""):
    super().__init__(message)
    self.why = why


def read_png(raw: bytes, name: str):
  """The decoded PIL image of PNG (or other image) bytes; MediaError naming `name` if it does not decode."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  try:
    image = Image.open(io.BytesIO(raw))
    image.load()
  except Exception as e:  # pylint: disable=broad-except  # PIL raises many kinds for damaged files.
    raise MediaError(f"{name}: not a readable image ({e})", str(e)) from None
  return image


def png_bytes(image_HxWxC: np.ndarray, comment: str = "", *, optimize: bool = False) -> bytes:
  """A PNG of uint8 pixels [H, W, 3] (RGB) or [H, W] (grayscale), with a Comment text chunk if given; optimize:
  PIL's smallest encoding (the PNG a codec comparison should be measured against)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from PIL import PngImagePlugin  # pylint: disable=g-import-not-at-top

  info = None
  if comment:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", comment)
  out = io.BytesIO()
  Image.fromarray(np.asarray(image_HxWxC, np.uint8)).save(out, format="PNG", pnginfo=info, optimize=optimize)
  return out.getvalue()


def png_pixels_only(raw: bytes) -> tuple[str, tuple[int, int] | None]:
  """(why not, (height, width)) of a PNG file, read from its chunks without decoding any pixel.

  why not is '' for a PNG whose content is 8-bit RGB or grayscale pixels and nothing else (chunks IHDR, IDAT and
  IEND only): a PNG of the same pixels restores all it holds. Otherwise it says what a PNG of its pixels would
  lose (other bit depths or colour types, transparency, colour profiles, animation frames, text, trailing bytes).
  """
  if not raw.startswith(PNG_SIGNATURE):
    return "not a PNG file", None
  position, others, ihdr = len(PNG_SIGNATURE), [], b""
  while position + 8 <= len(raw):
    length, chunk_type = struct.unpack_from(">I4s", raw, position)
    end = position + 12 + length
    if end > len(raw):
      return "a PNG chunk runs past the end of the file", None
    if chunk_type == b"IHDR" and not ihdr:
      ihdr = raw[position + 8 : position + 8 + length]
    elif chunk_type not in _PNG_PIXEL_CHUNKS:
      others.append(chunk_type.decode("latin-1"))
    position = end
    if chunk_type == b"IEND":
      break
  if len(ihdr) != 13:
    return "a PNG without a valid IHDR chunk", None
  width, height, depth, colour_type = struct.unpack_from(">IIBB", ihdr)
  if position != len(raw):
    return f"a PNG with {len(raw) - position} bytes after its end (or no IEND chunk)", (height, width)
  if depth != 8 or colour_type not in (0, 2):
    kind = {0: "grayscale", 2: "RGB", 3: "palette", 4: "grayscale+alpha", 6: "RGBA"}.get(colour_type, "unknown")
    return f"a {depth}-bit {kind} PNG (the model codes 8-bit RGB or grayscale pixels)", (height, width)
  if others:
    listed = ", ".join(dict.fromkeys(others))
    return f"a PNG with chunks the model's PNG would not keep ({listed})", (height, width)
  return "", (height, width)


def read_wav(raw: bytes, name: str) -> tuple[int, int, int, bytes]:
  """(channels, bytes per sample, sample rate, frames) of a PCM WAV file's bytes; MediaError naming `name` if
  Python's wave module cannot read it."""
  try:
    with wave.open(io.BytesIO(raw), "rb") as w:
      return w.getnchannels(), w.getsampwidth(), w.getframerate(), w.readframes(w.getnframes())
  except (wave.Error, EOFError, RuntimeError) as error:  # RuntimeError: a chunk size past the end
    why = error or "a chunk runs past the end of the file"
    raise MediaError(f"{name}: not a readable PCM WAV file ({why})") from None


def wav_bytes(pcm_int16: np.ndarray, sample_rate: int = 16000) -> bytes:
  """The canonical mono 16-bit PCM WAV file (a 44-byte header) of int16 samples [L]."""
  buffer = io.BytesIO()
  with wave.open(buffer, "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(sample_rate)
    w.writeframes(np.asarray(pcm_int16, "<i2").tobytes())
  return buffer.getvalue()


def image_grid(tiles_NxHxWxC, cols: int = 0, gap: int = 1, scale: int = 1) -> np.ndarray:
  """uint8 [rows * (H*scale + gap) - gap, ...]: tiles row-major, `cols` per row (0: as square as possible),
  enlarged `scale` times, on white with `gap` pixels between; a None tile is left blank."""
  shape = next(np.shape(t) for t in tiles_NxHxWxC if t is not None)
  height, width, channels = shape[0] * scale, shape[1] * scale, shape[2]
  cols = cols or math.ceil(math.sqrt(len(tiles_NxHxWxC)))
  rows = math.ceil(len(tiles_NxHxWxC) / cols)
  grid = np.full((rows * (height + gap) - gap, cols * (width + gap) - gap, channels), 255, np.uint8)
  for index, tile in enumerate(tiles_NxHxWxC):
    if tile is None:
      continue
    r, c = divmod(index, cols)
    y, x = r * (height + gap), c * (width + gap)
    grid[y : y + height, x : x + width] = np.kron(np.asarray(tile, np.uint8), np.ones((scale, scale, 1), np.uint8))
  return grid
