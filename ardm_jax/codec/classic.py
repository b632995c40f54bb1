"""The classic codecs a compressed file may use instead of the model, so that it is never bigger than theirs.

Byte methods code a file's bytes: 'stored' (the bytes as they are: a PNG's own bytes), 'zstd' (level 19),
'brotli' (quality 11) and 'xz' (preset 9, extreme). Image methods code pixels: 'webp' (lossless, level 100,
method 6) and 'jxl' (JPEG XL lossless, effort 9). The sample method codes 16-bit mono audio: 'flac' (level 8, the
highest, through soundfile's libsndfile). All come from imagecodecs, except xz (Python's lzma) and flac.
Decoders are given the exact output size, so a crafted payload cannot make them allocate more, and turn any
failure of the libraries into ValueError.
"""

import io
import lzma

import imagecodecs
import numpy as np


def encode_bytes(method: str, data: bytes) -> bytes:
  """The payload of `data` under a byte method."""
  if method == "stored":
    return data
  if method == "zstd":
    return imagecodecs.zstd_encode(data, level=19)
  if method == "brotli":
    return imagecodecs.brotli_encode(data, level=11)
  if method == "xz":
    return lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)
  raise ValueError(f"{method!r} is not a byte method")


def decode_bytes(method: str, payload: bytes, size: int) -> bytes:
  """The `size` bytes a byte method's payload restores; ValueError if it does not restore exactly that many."""
  if method == "stored":
    data = payload
  elif size == 0:
    data = b""
  else:
    try:
      if method == "xz":
        decompressor = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        data = decompressor.decompress(payload, max_length=size + 1)
      else:
        decoder = {"zstd": imagecodecs.zstd_decode, "brotli": imagecodecs.brotli_decode}[method]
        data = bytes(decoder(payload, out=size + 1))
    except Exception as e:  # pylint: disable=broad-except  # Any decoder failure is a damaged payload.
      raise ValueError(f"the {method} payload does not decode ({e})") from None
  if len(data) != size:
    raise ValueError(f"the {method} payload restores {len(data)} bytes, its header says {size}")
  return data


def encode_pixels(method: str, pixels_HxWxC: np.ndarray) -> bytes:
  """The payload of uint8 RGB [H, W, 3] or grayscale [H, W] pixels under an image method (lossless)."""
  if method == "webp":
    rgb = pixels_HxWxC if pixels_HxWxC.ndim == 3 else np.repeat(pixels_HxWxC[..., None], 3, axis=-1)
    return bytes(imagecodecs.webp_encode(rgb, lossless=True, level=100, method=6))
  if method == "jxl":
    return bytes(imagecodecs.jpegxl_encode(pixels_HxWxC, lossless=True, effort=9))
  raise ValueError(f"{method!r} is not an image method")


def decode_pixels(method: str, payload: bytes, shape: tuple[int, ...]) -> np.ndarray:
  """uint8 pixels of `shape` ([H, W, 3] or [H, W]); ValueError if the payload is not an image of that shape."""
  try:
    if method == "webp":
      rgb = imagecodecs.webp_decode(payload, out=np.empty(tuple(shape[:2]) + (3,), np.uint8))
      return rgb if len(shape) == 3 else np.ascontiguousarray(rgb[..., 0])
    if method == "jxl":
      return imagecodecs.jpegxl_decode(payload, out=np.empty(shape, np.uint8))
  except Exception as e:  # pylint: disable=broad-except  # imagecodecs raises RuntimeError too.
    raise ValueError(f"the {method} payload is not a {shape} image ({e})") from None
  raise ValueError(f"{method!r} is not an image method")


def encode_samples(method: str, pcm_int16: np.ndarray, sample_rate: int) -> bytes:
  """The payload of int16 mono samples [L] under a sample method: FLAC at its highest level (8)."""
  import soundfile  # pylint: disable=g-import-not-at-top

  if method != "flac":
    raise ValueError(f"{method!r} is not a sample method")
  out = io.BytesIO()
  soundfile.write(
    out, np.asarray(pcm_int16, np.int16), sample_rate, subtype="PCM_16", format="FLAC", compression_level=1.0
  )
  return out.getvalue()


def decode_samples(method: str, payload: bytes, num_samples: int, sample_rate: int) -> np.ndarray:
  """int16 [num_samples] of a sample method's payload; ValueError unless it is that many mono 16-bit samples at
  that rate (checked from the stream's header before its samples are read)."""
  import soundfile  # pylint: disable=g-import-not-at-top

  if method != "flac":
    raise ValueError(f"{method!r} is not a sample method")
  try:
    with soundfile.SoundFile(io.BytesIO(payload)) as f:
      found = (f.frames, f.channels, f.samplerate, f.format, f.subtype)
      if found != (num_samples, 1, sample_rate, "FLAC", "PCM_16"):
        raise ValueError(
          f"the flac payload holds {found}, its header says {num_samples} mono PCM_16 at {sample_rate} Hz"
        )
      pcm = f.read(num_samples, dtype="int16", always_2d=False)
  except ValueError:
    raise
  except Exception as e:  # pylint: disable=broad-except  # libsndfile's errors and RuntimeError.
    raise ValueError(f"the flac payload does not decode ({e})") from None
  if pcm.shape != (num_samples,):
    raise ValueError(f"the flac payload restores {pcm.shape[0]} samples, its header says {num_samples}")
  return np.ascontiguousarray(pcm)
