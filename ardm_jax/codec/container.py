"""The compressed file format, version 2: a compact binary header, the payload, a CRC32 (no model knowledge).

Every size in a header is bounded before anything is allocated. Layout: docs/design.md#container.
"""

import dataclasses
import json
import math
import struct
import zlib

MAGIC = b"ARDM"
MAGIC_V1 = b"ARDMzip\x00"
VERSION = 2
SUFFIX = ".ardm"

# Method codes (one byte). 'ardm' is the model; the byte methods code the restored file's bytes; the image
# methods code the pixels; the sample methods the audio samples.
METHODS = ("ardm", "stored", "zstd", "brotli", "xz", "webp", "jxl", "flac")
BYTE_METHODS = ("stored", "zstd", "brotli", "xz")
IMAGE_METHODS = ("webp", "jxl")
SAMPLE_METHODS = ("flac",)
_METADATA_FLAG = 0x80

# Data kinds (one byte): what the restored file is and which shape fields follow.
#   text, bytes, file: (length,) in bytes ('file': any bytes the model does not code, e.g. an RGBA PNG);
#   image_rgb, image_l: (height, width) of an RGB or grayscale PNG; array: (dtype code, ndim, *dims) of a .npy;
#   audio: (samples,) of a mono 16-bit PCM WAV, then its sample rate.
KINDS = ("text", "bytes", "image_rgb", "image_l", "array", "file", "audio")
# Kinds whose data CRC covers decoded values (pixels, entries, samples), not the file: a byte method on them
# records the file's size.
VALUE_KINDS = ("image_rgb", "image_l", "array", "audio")
MAX_SAMPLE_RATE = 2**31 - 1  # A canonical WAV header holds the rate and its byte rate (2 x rate) as u32s.
DTYPES = ("|u1", "|i1", "<u2", "<i2", "<u4", "<i4", "<u8", "<i8")  # .npy integer dtypes (little-endian)

MAX_VALUES = 2**24  # data values (text characters, pixel channels, array entries) the model codes per file
MAX_FILE_BYTES = 2**30  # size of a file restored by a byte method
MAX_NDIM = 8
MAX_METADATA_BYTES = 2**16
_FIXED = struct.Struct("<4sBB8s4sI")
_CRC = struct.Struct("<I")


def num_values(kind: str, shape) -> int:
  """The data values the model codes: bytes of text and files, pixels x 3 for images (also grayscale), entries."""
  return math.prod(shape) * (3 if kind in ("image_rgb", "image_l") else 1)


def num_dims(kind: str, shape) -> int:
  """Dimensions for bits per dimension: characters, bytes, pixels x channels (1 for grayscale), entries."""
  return math.prod(shape) * (3 if kind == "image_rgb" else 1)


class FormatError(ValueError):
  """Not a readable version-2 file: the message names the file and what is wrong."""


@dataclasses.dataclass(frozen=True)
class Header:
  """The fields of a compressed file's header.

  Attributes:
    method: one of METHODS.
    bundle: the first 8 bytes of the bundle fingerprint.
    numerics: 4 bytes identifying the software and device the network ran on (only 'ardm' depends on them).
    data_crc: CRC32 of the restored data (text and file bytes; image pixels; array entries).
    kind: one of KINDS.
    shape: text/bytes/file: (length,); images: (height, width); arrays: the array's shape; audio: (samples,).
    dtype: arrays only: one of DTYPES.
    sample_rate: audio only: the WAV's frames per second.
    budget_index: 'ardm' only: the index of the budget among the bundle's sorted budgets.
    file_size: byte methods on images, arrays and audio: the restored file's size in bytes.
    metadata: what the user asked to keep (e.g. {"name": ...}), or None.
  """

  method: str
  bundle: bytes
  numerics: bytes
  data_crc: int
  kind: str
  shape: tuple[int, ...]
  dtype: str | None = None
  budget_index: int | None = None
  file_size: int | None = None
  sample_rate: int | None = None
  metadata: dict | None = None

  @property
  def num_values(self) -> int:
    return num_values(self.kind, self.shape)

  @property
  def num_dims(self) -> int:
    return num_dims(self.kind, self.shape)

  @property
  def restored_size(self) -> int | None:
    """Byte methods: how many bytes the payload must decompress to."""
    if self.method not in BYTE_METHODS:
      return None
    return self.file_size if self.kind in VALUE_KINDS else self.shape[0]


def _varint(value: int) -> bytes:
  if value < 0:
    raise ValueError(f"a varint is non-negative, got {value}")
  out = bytearray()
  while True:
    byte, value = value & 0x7F, value >> 7
    out.append(byte | (0x80 if value else 0))
    if not value:
      return bytes(out)


class _Reader:
  """Reads fields from a header; every failure is a FormatError naming the file."""

  def __init__(self, name: str, blob: bytes, position: int):
    self.name, self.blob, self.position = name, blob, position

  def fail(self, what: str):
    raise FormatError(f"{self.name}: {what}")

  def byte(self) -> int:
    if self.position >= len(self.blob):
      self.fail("truncated header.")
    self.position += 1
    return self.blob[self.position - 1]

  def varint(self, what: str, limit: int) -> int:
    value = 0
    for shift in range(0, 70, 7):
      byte = self.byte()
      value |= (byte & 0x7F) << shift
      if not byte & 0x80:
        if value > limit:
          self.fail(f"its header gives {what} = {value}, above the limit of {limit} (crafted or damaged file).")
        return value
    self.fail(f"its header's {what} is not a valid number (crafted or damaged file).")

  def take(self, size: int) -> bytes:
    if self.position + size > len(self.blob):
      self.fail("truncated header.")
    self.position += size
    return self.blob[self.position - size : self.position]


def pack(header: Header, payload: bytes) -> bytes:
  """The bytes of a compressed file."""
  if header.method not in METHODS or header.kind not in KINDS:
    raise ValueError(f"unknown method {header.method!r} or kind {header.kind!r}")
  method_byte = METHODS.index(header.method) | (_METADATA_FLAG if header.metadata else 0)
  out = bytearray(
    _FIXED.pack(MAGIC, VERSION, method_byte, header.bundle, header.numerics, header.data_crc & 0xFFFFFFFF)
  )
  out.append(KINDS.index(header.kind))
  if header.kind == "array":
    out += bytes([DTYPES.index(header.dtype), len(header.shape)])
  for size in header.shape:
    out += _varint(size)
  if header.kind == "audio":
    out += _varint(header.sample_rate)
  if header.method == "ardm":
    out += _varint(header.budget_index)
  if header.method in BYTE_METHODS and header.kind in VALUE_KINDS:
    out += _varint(header.file_size)
  if header.metadata:
    meta = json.dumps(header.metadata, sort_keys=True, separators=(",", ":")).encode()
    out += _varint(len(meta)) + meta
  out += payload
  return bytes(out + _CRC.pack(zlib.crc32(out)))


def unpack(name: str, blob: bytes) -> tuple[Header, bytes]:
  """(header, payload) of a compressed file; FormatError if it is not one, is damaged or claims too much."""
  if blob.startswith(MAGIC_V1):
    version = struct.unpack_from("<H", blob, len(MAGIC_V1))[0] if len(blob) >= len(MAGIC_V1) + 2 else "?"
    raise FormatError(
      f"{name}: format version {version} (the zlib-JSON container of earlier releases), which this decoder no "
      f"longer reads (it reads version {VERSION}); decode it with the release that made it and encode it again."
    )
  if len(blob) < _FIXED.size + _CRC.size or not blob.startswith(MAGIC):
    raise FormatError(f"{name}: not an ardm compressed file (no {MAGIC!r} at its start, or too short).")
  _, version, method_byte, bundle, numerics, data_crc = _FIXED.unpack_from(blob)
  if version != VERSION:
    raise FormatError(f"{name}: format version {version}, this decoder reads version {VERSION}.")
  body = blob[: -_CRC.size]
  if zlib.crc32(body) != _CRC.unpack_from(blob, len(body))[0]:
    raise FormatError(f"{name}: checksum mismatch: the file is truncated or corrupted.")
  reader = _Reader(name, body, _FIXED.size)
  method_code = method_byte & ~_METADATA_FLAG
  if method_code >= len(METHODS):
    reader.fail(f"unknown coding method {method_code} (made by a newer release?).")
  method = METHODS[method_code]
  kind_code = reader.byte()
  if kind_code >= len(KINDS):
    reader.fail(f"unknown data kind {kind_code} (made by a newer release?).")
  kind = KINDS[kind_code]
  dtype = None
  if kind == "array":
    dtype_code, ndim = reader.byte(), reader.byte()
    if dtype_code >= len(DTYPES) or not 1 <= ndim <= MAX_NDIM:
      reader.fail(f"invalid array dtype {dtype_code} or rank {ndim} (crafted or damaged file).")
    dtype = DTYPES[dtype_code]
  ndim = {"image_rgb": 2, "image_l": 2}.get(kind, 1) if kind != "array" else ndim
  limit = MAX_FILE_BYTES if kind in ("text", "bytes", "file") else MAX_VALUES
  shape = tuple(reader.varint("a dimension", limit) for _ in range(ndim))
  header = Header(method, bundle, numerics, data_crc, kind, shape, dtype)
  if (method == "ardm" or kind in VALUE_KINDS) and header.num_values > MAX_VALUES:
    reader.fail(f"its header claims {header.num_values} data values, above the limit of {MAX_VALUES}.")
  fields = {}
  if kind == "audio":
    fields["sample_rate"] = reader.varint("the sample rate", MAX_SAMPLE_RATE)
  if method == "ardm":
    fields["budget_index"] = reader.varint("the budget index", 2**16)
  if method in BYTE_METHODS and kind in VALUE_KINDS:
    fields["file_size"] = reader.varint("the file size", MAX_FILE_BYTES)
  if method_byte & _METADATA_FLAG:
    length = reader.varint("the metadata length", MAX_METADATA_BYTES)
    try:
      metadata = json.loads(reader.take(length).decode("utf-8"))
    except ValueError:
      reader.fail("its metadata field is not UTF-8 JSON (crafted or damaged file).")
    if not isinstance(metadata, dict):
      reader.fail("its metadata field is not a JSON object (crafted or damaged file).")
    fields["metadata"] = metadata
  return dataclasses.replace(header, **fields), body[reader.position :]


def header_size(blob: bytes) -> int:
  """Bytes of a file that are not payload (header and trailing CRC)."""
  header, payload = unpack("file", blob)
  del header
  return len(blob) - len(payload)
