"""File-in, file-out lossless compression with a trained ARDM (arXiv 2110.02037: lossless compression).

A codec bundle (a directory, local or gs://) is all that decoding needs and outlives the training checkpoints:
  config.json     the training config (it rebuilds the network);
  params.msgpack  the EMA parameters (flax msgpack);
  codec.json      the data kind, event shape and classes, the coding order of every stage (the best of a few
                  random orders on training data, as in arXiv 2110.02037 section 4), the optimal plan of every
                  budget, how many tracker steps were never seen, and the bundle's fingerprint (a SHA-256 of
                  the three files' content).

A compressed file (container) is self-describing:
  MAGIC (8 bytes) | format version (uint16) | header length (uint32) | header (zlib JSON) | payload | CRC32
The header records the bundle fingerprint, the numerics fingerprint (jax/jaxlib versions, backend, device
kind, x64, XLA flags), the data kind and shape, the budget, plan and order, the network batch size, the number of
rows and the SHA-256 of the original data; the payload is the file's one rANS message (coder.py: all rows of a
file are one stream). The trailing CRC32 covers everything before it. A decoder checks all of it before any
network call, and writes its output under a temporary name that it renames only once the data's SHA-256 matches.

Data kinds: 'text' (a 27-letter model: a-z and space), 'bytes' (a K = 256 text model: any file), 'image' (PNG,
RGB or grayscale, any size, tiled into the model's patches) and 'array' (.npy of integers in 0..K-1 shaped like
one or several data points).
"""

import dataclasses
import functools
import hashlib
import io
import json
import math
import os
import struct
import zlib

from etils import epath
import flax.serialization
import jax
import jaxlib
import ml_collections
import numpy as np

from ardm_jax import coder
from ardm_jax import experiment
from ardm_jax import plan_walk
from ardm_jax.data import text as text_lib

MAGIC = b"ARDMzip\x00"
FORMAT_VERSION = 1
SUFFIX = ".ardm"
_PREFIX = struct.Struct("<8sHI")
KINDS = {
  "text8": "text",
  "embedded_text": "text",
  "embedded_bytes": "bytes",
  "cifar10": "image",
  "embedded_images": "image",
}
# XLA flags that change no numerics (how many host devices to fake, where to dump): left out of the fingerprint.
_IGNORED_XLA_FLAGS = ("--xla_force_host_platform_device_count", "--xla_dump")


class CodecError(ValueError):
  """An input, bundle or compressed file that cannot be used; the message names the file and the fix."""


def _sha256(*chunks: bytes) -> str:
  digest = hashlib.sha256()
  for chunk in chunks:
    digest.update(chunk)
  return digest.hexdigest()


def numerics() -> dict:
  """What the network's outputs depend on besides the bundle: decoding needs the encoder's values."""
  flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(_IGNORED_XLA_FLAGS)]
  return {
    "jax": jax.__version__,
    "jaxlib": jaxlib.__version__,
    "backend": jax.default_backend(),
    "device": jax.devices()[0].device_kind,
    "x64": bool(jax.config.jax_enable_x64),
    "xla_flags": " ".join(sorted(flags)),
  }


# ---------------------------------------------------------------------------------------------------- bundle


@dataclasses.dataclass(frozen=True, eq=False)
class Bundle:
  """A loaded codec bundle."""

  config: ml_collections.ConfigDict
  params: dict
  meta: dict
  fingerprint: str

  @property
  def kind(self) -> str:
    return self.meta["kind"]

  @property
  def event_shape(self) -> tuple[int, ...]:
    return tuple(self.meta["event_shape"])

  @property
  def num_classes(self) -> int:
    return self.meta["num_classes"]

  @property
  def budgets(self) -> list[int]:
    return sorted(int(b) for b in self.meta["plans"])

  @property
  def order(self) -> np.ndarray:
    """int64 [S, *event]: the coding order of every stage."""
    return np.asarray(self.meta["order"], np.int64).reshape((-1,) + self.event_shape)

  def plan(self, budget: int) -> np.ndarray:
    """int64 [S, budget]: the starts of every stage's calls."""
    if str(budget) not in self.meta["plans"]:
      raise CodecError(
        f"the bundle has no plan for --budget={budget}; it has {self.budgets} (export it with --budgets=...,{budget})."
      )
    return np.asarray(self.meta["plans"][str(budget)]["starts"], np.int64)

  @functools.cached_property
  def process(self) -> plan_walk.Process:
    return experiment.build_process(self.config, self.num_classes)

  @functools.cached_property
  def logits_fn(self):
    """The network with the parameters as a jit argument, so that they are not compiled in as constants."""
    transitions = self.process.transitions if self.config.objective.kind == "upscale" else None
    model = experiment.build_model(self.config, self.num_classes, transitions)
    return functools.partial(jax.jit(model.apply), {"params": self.params})


def _bundle_fingerprint(config_json: bytes, params_bytes: bytes, meta: dict) -> str:
  meta_json = json.dumps({k: v for k, v in meta.items() if k != "fingerprint"}, sort_keys=True).encode()
  return _sha256(config_json, b"\0", params_bytes, b"\0", meta_json)[:32]


def write_bundle(out, config: ml_collections.ConfigDict, params, meta: dict) -> Bundle:
  """Writes a bundle directory (local or gs://) and returns it as loaded."""
  out = epath.Path(out)
  config_json = config.to_json(sort_keys=True).encode()
  params = jax.tree.map(np.asarray, params)
  params_bytes = flax.serialization.msgpack_serialize(params)
  meta = dict(meta, fingerprint=_bundle_fingerprint(config_json, params_bytes, meta))
  out.mkdir(parents=True, exist_ok=True)
  (out / "config.json").write_bytes(config_json)
  (out / "params.msgpack").write_bytes(params_bytes)
  (out / "codec.json").write_text(json.dumps(meta, sort_keys=True))
  return Bundle(config=config, params=params, meta=meta, fingerprint=meta["fingerprint"])


def load_bundle(path) -> Bundle:
  """Reads and verifies a bundle directory written by write_bundle."""
  path = epath.Path(path)
  files = {name: path / name for name in ("config.json", "params.msgpack", "codec.json")}
  missing = [name for name, f in files.items() if not f.exists()]
  if missing:
    raise CodecError(
      f"--model={path} is not a codec bundle: {', '.join(missing)} missing (make one with "
      f"`python -m ardm_jax.compress export --config=... --workdir=... -o {path}`)."
    )
  config_json, params_bytes = files["config.json"].read_bytes(), files["params.msgpack"].read_bytes()
  try:
    meta = json.loads(files["codec.json"].read_text())
    fingerprint_ok = meta.get("fingerprint") == _bundle_fingerprint(config_json, params_bytes, meta)
  except ValueError:
    fingerprint_ok = False
  if not fingerprint_ok:
    raise CodecError(
      f"--model={path}: the bundle's files do not match its fingerprint (corrupted or altered); export it again."
    )
  config = ml_collections.ConfigDict(json.loads(config_json))
  params = flax.serialization.msgpack_restore(params_bytes)
  return Bundle(config=config, params=params, meta=meta, fingerprint=meta["fingerprint"])


# ---------------------------------------------------------------------------------------------- data kinds


@dataclasses.dataclass
class Rows:
  """One input as rows of the model's data points: x and fill int32 [n, *event], fixed bool [n, *event]."""

  x: np.ndarray
  fixed: np.ndarray
  shape: dict  # what restores the original from the rows (kind-specific)
  sha256: str  # of the original data
  note: str = ""


# The value of the padding positions (not coded, shown to the network as known): both sides know it.
FILL = {"text": 0, "bytes": ord(" "), "image": 128, "array": 0}


def _chunk(ids: np.ndarray, row_length: int, fill: int) -> tuple[np.ndarray, np.ndarray]:
  """(x [n, L], fixed [n, L]): ids [m] cut into rows of L, the last one padded with fixed `fill` values."""
  num_rows = -(-len(ids) // row_length)
  x = np.full(num_rows * row_length, fill, np.int32)
  x[: len(ids)] = ids
  fixed = np.arange(num_rows * row_length) >= len(ids)
  return x.reshape(num_rows, row_length), fixed.reshape(num_rows, row_length)


def text_rows(name: str, raw: bytes, bundle: Bundle, clean: bool = False) -> Rows:
  """A text file for a text (a-z and space) or bytes model."""
  (row_length,) = bundle.event_shape
  note = ""
  if bundle.kind == "bytes":
    ids = np.frombuffer(raw, np.uint8)
  else:
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
        f"decoded file is then the cleaned text), or use a bytes model "
        f"(configs/quickstart.py:bytes)."
      )
    ids = text_lib.bytes_to_ids(as_bytes, name)
  x, fixed = _chunk(ids, row_length, FILL[bundle.kind])
  return Rows(x=x, fixed=fixed, shape={"length": len(ids)}, sha256=_sha256(raw), note=note)


def text_output(x: np.ndarray, shape: dict, kind: str) -> bytes:
  ids = x.reshape(-1)[: shape["length"]]
  if kind == "bytes":
    return ids.astype(np.uint8).tobytes()
  return text_lib.decode(ids).encode("ascii")


def image_rows(name: str, raw: bytes, bundle: Bundle) -> Rows:
  """A PNG image: RGB, or grayscale coded as three equal channels; tiled into the model's patches."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  try:
    image = Image.open(io.BytesIO(raw))
    image.load()
  except Exception as e:  # pylint: disable=broad-except
    raise CodecError(f"{name}: not a readable image ({e}); the image model takes PNG files.") from None
  if image.mode not in ("RGB", "L"):
    raise CodecError(
      f"{name}: PNG mode {image.mode!r} is not supported (RGB and grayscale 'L' are); convert it, "
      f"e.g. with PIL: Image.open(f).convert('RGB').save(f)."
    )
  pixels = np.asarray(image, np.uint8)
  height, width = pixels.shape[:2]
  rgb = pixels if pixels.ndim == 3 else np.repeat(pixels[..., None], 3, axis=-1)
  patch_h, patch_w, channels = bundle.event_shape
  if channels != 3:
    raise CodecError(f"{name}: the model codes {channels}-channel patches, PNGs are coded as RGB.")
  rows_h, rows_w = -(-height // patch_h), -(-width // patch_w)
  padded = np.pad(
    rgb, ((0, rows_h * patch_h - height), (0, rows_w * patch_w - width), (0, 0)), constant_values=FILL["image"]
  )
  fixed = np.ones(padded.shape, bool)
  fixed[:height, :width] = False
  tile = lambda a: (
    a.reshape(rows_h, patch_h, rows_w, patch_w, channels)
    .transpose(0, 2, 1, 3, 4)
    .reshape(rows_h * rows_w, patch_h, patch_w, channels)
  )
  shape = {"height": height, "width": width, "mode": image.mode}
  return Rows(x=tile(padded).astype(np.int32), fixed=tile(fixed), shape=shape, sha256=_pixel_sha256(pixels))


def _pixel_sha256(pixels: np.ndarray) -> str:
  return _sha256(str(pixels.shape).encode(), np.ascontiguousarray(pixels, np.uint8).tobytes())


def image_output(x: np.ndarray, shape: dict, event_shape) -> tuple[bytes, str]:
  """(PNG bytes, SHA-256 of the pixels)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top

  patch_h, patch_w, channels = event_shape
  height, width = shape["height"], shape["width"]
  rows_h, rows_w = -(-height // patch_h), -(-width // patch_w)
  image = (
    x.reshape(rows_h, rows_w, patch_h, patch_w, channels)
    .transpose(0, 2, 1, 3, 4)
    .reshape(rows_h * patch_h, rows_w * patch_w, channels)[:height, :width]
    .astype(np.uint8)
  )
  if shape["mode"] == "L":
    image = image[..., 0]
  out = io.BytesIO()
  Image.fromarray(image, mode=shape["mode"]).save(out, format="PNG")
  return out.getvalue(), _pixel_sha256(image)


def array_rows(name: str, raw: bytes, bundle: Bundle) -> Rows:
  """A .npy array of integers in 0..K-1, shaped like one data point or [n, *event]."""
  try:
    array = np.load(io.BytesIO(raw), allow_pickle=False)
  except ValueError as e:
    raise CodecError(f"{name}: not a readable .npy file ({e}).") from None
  event = bundle.event_shape
  if array.shape[-len(event) :] != event or array.ndim > len(event) + 1:
    raise CodecError(f"{name}: shape {array.shape} is neither the model's data point {event} nor [n, *{event}].")
  if not np.issubdtype(array.dtype, np.integer) or (
    array.size and (array.min() < 0 or array.max() >= bundle.num_classes)
  ):
    raise CodecError(
      f"{name}: the model codes integers in 0..{bundle.num_classes - 1}, got dtype {array.dtype}"
      f"{'' if not array.size else f' with values {array.min()}..{array.max()}'}."
    )
  x = array.reshape((-1,) + event).astype(np.int32)
  shape = {"dtype": array.dtype.str, "shape": list(array.shape)}
  return Rows(x=x, fixed=np.zeros(x.shape, bool), shape=shape, sha256=_array_sha256(array))


def _array_sha256(array: np.ndarray) -> str:
  return _sha256(f"{array.dtype.str}{array.shape}".encode(), np.ascontiguousarray(array).tobytes())


def array_output(x: np.ndarray, shape: dict) -> tuple[bytes, str]:
  array = x.reshape(shape["shape"]).astype(np.dtype(shape["dtype"]))
  out = io.BytesIO()
  np.save(out, array, allow_pickle=False)
  return out.getvalue(), _array_sha256(array)


def input_rows(name: str, raw: bytes, bundle: Bundle, clean: bool = False) -> tuple[str, Rows]:
  """(data kind, rows) of one input file for this bundle."""
  if name.endswith(".npy"):
    return "array", array_rows(name, raw, bundle)
  if bundle.kind == "image":
    return "image", image_rows(name, raw, bundle)
  return bundle.kind, text_rows(name, raw, bundle, clean)


def output_bytes(kind: str, x: np.ndarray, shape: dict, bundle: Bundle) -> tuple[bytes, str]:
  """(the restored file, its data SHA-256 as input_rows computes it)."""
  if kind == "image":
    return image_output(x, shape, bundle.event_shape)
  if kind == "array":
    return array_output(x, shape)
  data = text_output(x, shape, kind)
  return data, _sha256(data)


# ----------------------------------------------------------------------------------------------- container


def pack(header: dict, message: np.ndarray) -> bytes:
  """The container of one file: MAGIC, version, header length, header JSON, payload, CRC32."""
  header_json = zlib.compress(json.dumps(header, sort_keys=True).encode(), 9)
  body = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header_json)) + header_json + message.astype("<u4").tobytes()
  return body + struct.pack("<I", zlib.crc32(body))


def unpack(name: str, blob: bytes) -> tuple[dict, np.ndarray]:
  """(header, message) of a container; CodecError if it is not one, has another version, or is damaged."""
  if len(blob) < _PREFIX.size or blob[: len(MAGIC)] != MAGIC:
    raise CodecError(f"{name}: not an ardm compressed file (no {MAGIC!r} at its start).")
  _, version, header_length = _PREFIX.unpack_from(blob)
  if version != FORMAT_VERSION:
    raise CodecError(f"{name}: format version {version}, this decoder reads version {FORMAT_VERSION}.")
  payload_end = len(blob) - 4
  if payload_end < _PREFIX.size + header_length or (payload_end - _PREFIX.size - header_length) % 4:
    raise CodecError(f"{name}: truncated or corrupted ({len(blob)} bytes do not fit its header length).")
  if zlib.crc32(blob[:payload_end]) != struct.unpack_from("<I", blob, payload_end)[0]:
    raise CodecError(f"{name}: checksum mismatch: the file is truncated or corrupted.")
  header = json.loads(zlib.decompress(blob[_PREFIX.size : _PREFIX.size + header_length]))
  message = np.frombuffer(blob[_PREFIX.size + header_length : payload_end], "<u4").astype(np.uint32)
  return header, message


def check_compatible(name: str, header: dict, bundle: Bundle) -> None:
  """Refuses (naming what differs) a file made with another bundle or under other numerics."""
  if header["bundle"] != bundle.fingerprint:
    raise CodecError(
      f"{name} was compressed with bundle {header['bundle']}, not with --model (bundle "
      f"{bundle.fingerprint}); decode it with the bundle it was made with."
    )
  here = numerics()
  diffs = [
    f"{k}: {header['numerics'].get(k)!r} when encoded, {here[k]!r} here"
    for k in sorted(here)
    if header["numerics"].get(k) != here[k]
  ]
  if diffs:
    raise CodecError(f"{name}: decoding needs the encoder's numerics, which differ: {'; '.join(diffs)}.")
  if header["plan"] != bundle.plan(header["budget"]).tolist() or header["order"] != bundle.meta["order"]:
    raise CodecError(f"{name}: its plan or order differs from the bundle's (damaged file).")


# ------------------------------------------------------------------------------------------- encode/decode


def encode_files(
  bundle: Bundle, inputs: dict[str, bytes], budget: int, *, batch_size: int = 64, clean: bool = False
) -> dict[str, bytes]:
  """Compresses every input (name -> content) into one container each; all rows share each network call."""
  starts = bundle.plan(budget)
  kinds_rows = {name: input_rows(name, raw, bundle, clean) for name, raw in inputs.items()}
  for _, rows in kinds_rows.values():
    if rows.note:
      print(rows.note)
  names = list(kinds_rows)
  all_rows = [kinds_rows[n][1] for n in names]
  x, fixed, streams = _stack(bundle, all_rows)
  messages = (
    coder.encode(
      bundle.logits_fn, x, bundle.order, starts, bundle.process, streams=streams, fixed=fixed, batch_size=batch_size
    )
    if len(x)
    else []
  )
  message_of = dict(zip([n for n, r in zip(names, all_rows) if len(r.x)], messages))
  out = {}
  for name, (kind, rows) in kinds_rows.items():
    header = {
      "bundle": bundle.fingerprint,
      "numerics": numerics(),
      "kind": kind,
      "name": epath.Path(name).name,  # also for gs:// inputs
      "shape": rows.shape,
      "rows": len(rows.x),
      "budget": budget,
      "plan": starts.tolist(),
      "order": bundle.meta["order"],
      "batch_size": batch_size,
      "sha256": rows.sha256,
    }
    out[name] = pack(header, message_of.get(name, np.zeros(0, np.uint32)))
  return out


def _stack(bundle: Bundle, all_rows: list[Rows]):
  event = bundle.event_shape
  x = np.concatenate([r.x.reshape((-1,) + event) for r in all_rows] + [np.zeros((0,) + event, np.int32)])
  fixed = np.concatenate([r.fixed.reshape((-1,) + event) for r in all_rows] + [np.zeros((0,) + event, bool)])
  nonempty = [r for r in all_rows if len(r.x)]
  streams = np.repeat(np.arange(len(nonempty)), [len(r.x) for r in nonempty])
  return x, fixed, streams


def decode_files(bundle: Bundle, inputs: dict[str, bytes]) -> dict[str, tuple[str, bytes]]:
  """Decompresses containers (name -> content): name -> (original base name, restored content).

  Every header is checked before any network call; files coded with the same budget and batch size share
  each network call.
  """
  headers = {}
  for name, blob in inputs.items():
    header, message = unpack(name, blob)
    check_compatible(name, header, bundle)
    if header["rows"] and message.size == 0:
      raise CodecError(f"{name}: truncated (no payload).")
    headers[name] = (header, message)
  out = {}
  groups = {}
  for name, (header, _) in headers.items():
    groups.setdefault((header["budget"], header["batch_size"]), []).append(name)
  for (budget, batch_size), names in groups.items():
    coded = [n for n in names if headers[n][0]["rows"]]
    num_rows = [headers[n][0]["rows"] for n in coded]
    shape = (sum(num_rows),) + bundle.event_shape
    fixed, fill = np.zeros(shape, bool), np.zeros(shape, np.int32)
    offsets = np.cumsum([0] + num_rows)
    for n, first, last in zip(coded, offsets[:-1], offsets[1:]):
      fixed[first:last] = _fixed_positions(headers[n][0], bundle)
      fill[first:last] = FILL[headers[n][0]["kind"]]
    x = (
      coder.decode(
        bundle.logits_fn,
        [headers[n][1] for n in coded],
        bundle.order,
        bundle.plan(budget),
        bundle.process,
        shape,
        streams=np.repeat(np.arange(len(coded)), num_rows),
        fixed=fixed,
        fill=fill,
        batch_size=batch_size,
      )
      if coded
      else None
    )
    for n in names:
      header = headers[n][0]
      rows = (
        x[offsets[coded.index(n)] : offsets[coded.index(n) + 1]]
        if n in coded
        else np.zeros((0,) + bundle.event_shape, np.int32)
      )
      data, sha256 = output_bytes(header["kind"], rows, header["shape"], bundle)
      if sha256 != header["sha256"]:
        raise CodecError(f"{n}: the decoded data does not match its checksum (corrupted file or other numerics).")
      out[n] = (header["name"], data)
  return out


def _fixed_positions(header: dict, bundle: Bundle) -> np.ndarray:
  """bool [rows, *event]: the padding positions the encoder did not code (their values are FILL[kind])."""
  kind, shape, num_rows = header["kind"], header["shape"], header["rows"]
  event = bundle.event_shape
  if kind in ("text", "bytes"):
    return (np.arange(num_rows * math.prod(event)) >= shape["length"]).reshape((num_rows,) + event)
  if kind == "image":
    patch_h, patch_w, channels = event
    rows_h, rows_w = -(-shape["height"] // patch_h), -(-shape["width"] // patch_w)
    fixed = np.ones((rows_h * patch_h, rows_w * patch_w, channels), bool)
    fixed[: shape["height"], : shape["width"]] = False
    return (
      fixed.reshape(rows_h, patch_h, rows_w, patch_w, channels).transpose(0, 2, 1, 3, 4).reshape((num_rows,) + event)
    )
  return np.zeros((num_rows,) + event, bool)


def data_kind(config: ml_collections.ConfigDict) -> str:
  return KINDS[config.data.name]
