"""File-in, file-out lossless compression with a trained ARDM (arXiv 2110.02037, section 6: lossless compression).

A codec bundle (a directory, local or gs://) is all that decoding needs and outlives the training checkpoints:
  config.json     the training config (it rebuilds the network; read as JSON data, validated by the schema);
  params.msgpack  the EMA parameters (flax msgpack: arrays of numeric dtypes only, no pickle);
  codec.json      the data kind, event shape and classes, the coding order of every stage (the best of a few
                  random orders on training data), the optimal plan of every budget, the rows per network call,
                  how many tracker steps were never seen, and the bundle's fingerprint (a SHA-256 of the three
                  files' content).

A compressed file is container.py's version 2: about 30 bytes of header, then the payload. The payload is the
file's one rANS message (coder.py: all rows of a file are one stream) or, where that is smaller, the output of a
classic codec (classic.py): with method 'auto' every file is coded by the model and by the classic codecs of its
kind, and the smallest wins, so a file is never bigger than the best classic codec's output plus the header.
A decoder checks the whole header before any network call and writes nothing unless the restored data's CRC32
matches.

Data kinds: 'text' (a 27-letter model: a-z and space), 'bytes' (a K = 256 text model: any file), images (PNG,
RGB or grayscale, any size, tiled into the model's patches), 'audio' (mono 16-bit PCM WAV of any length and
sample rate, cut into the model's clips; decoding writes the canonical WAV of the same samples and rate),
'array' (.npy of integers in 0..K-1 shaped like one or several data points) and, for the classic codecs only,
'file' (anything the model cannot code).
"""

import dataclasses
import functools
import hashlib
import io
import json
import math
import os
import re
import shutil
import struct
import uuid
import zlib

from etils import epath
import flax.serialization
import jax
import jax.numpy as jnp
import jaxlib
import ml_collections
import numpy as np

from ardm_jax.codec import classic
from ardm_jax.codec import coder
from ardm_jax.training import config_schema
from ardm_jax.codec import container
from ardm_jax.training import experiment
from ardm_jax.io import outputs
from ardm_jax.io import paths
from ardm_jax.core import plan_walk
from ardm_jax.data import audio as audio_lib
from ardm_jax.data import text as text_lib

SUFFIX = container.SUFFIX
KINDS = {
  "text8": "text",
  "embedded_text": "text",
  "embedded_bytes": "bytes",
  "cifar10": "image",
  "embedded_images": "image",
  "sc09": "audio",
  "embedded_audio": "audio",
}
# XLA flags that change no numerics (how many host devices to fake, where to dump): left out of the fingerprint.
_IGNORED_XLA_FLAGS = ("--xla_force_host_platform_device_count", "--xla_dump")
DEFAULT_BATCH_SIZE = 64
# Candidates of method 'auto' per data kind (the order breaks ties).
CANDIDATES = {
  "text": ("ardm", "stored", "zstd", "brotli", "xz"),
  "bytes": ("ardm", "stored", "zstd", "brotli", "xz"),
  "image_rgb": ("ardm", "stored", "webp", "jxl"),
  "image_l": ("ardm", "stored", "webp", "jxl"),
  "audio": ("ardm", "stored", "flac", "zstd", "xz"),
  "array": ("ardm", "stored", "zstd"),
  "file": ("stored", "zstd", "brotli", "xz"),
}


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


def numerics_fingerprint() -> bytes:
  """4 bytes of the SHA-256 of numerics()."""
  return hashlib.sha256(json.dumps(numerics(), sort_keys=True).encode()).digest()[:4]


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
  def batch_size(self) -> int:
    """Rows per network call: part of the bundle, since the network's outputs may depend on the batch shape."""
    return int(self.meta.get("batch_size", DEFAULT_BATCH_SIZE))

  @property
  def fingerprint_bytes(self) -> bytes:
    """The 8 bytes of the fingerprint that a compressed file records."""
    return bytes.fromhex(self.fingerprint[:16])

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


BUNDLE_FILES = ("config.json", "params.msgpack", "codec.json")


def write_bundle(out, config: ml_collections.ConfigDict, params, meta: dict, *, force: bool = False) -> Bundle:
  """Writes a bundle directory (local or gs://) and returns it as loaded.

  An existing bundle is replaced only with force (the files encoded with it decode only with it); an empty
  directory is filled. Locally the bundle is written complete into a temporary sibling and renamed into place,
  so no reader ever sees half a bundle; on gs:// its three objects are written one by one.
  """
  out = epath.Path(out)
  check_bundle_target(out, force)
  config_json = config.to_json(sort_keys=True).encode()
  params = jax.tree.map(np.asarray, params)
  params_bytes = flax.serialization.msgpack_serialize(params)
  meta = dict(meta, fingerprint=_bundle_fingerprint(config_json, params_bytes, meta))
  contents = dict(zip(BUNDLE_FILES, (config_json, params_bytes, json.dumps(meta, sort_keys=True).encode())))
  if paths.is_url(out):
    out.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
      (out / name).write_bytes(data)
  else:
    _write_bundle_dir(os.fspath(out), contents)
  return Bundle(config=config, params=params, meta=meta, fingerprint=meta["fingerprint"])


def check_bundle_target(out: epath.Path, force: bool) -> None:
  """Refuses to write a bundle over anything but an empty directory, without force."""
  if paths.occupied(out) and not force and not (out.is_dir() and not any(out.iterdir())):
    raise CodecError(
      f"{out} exists and is not an empty directory: not replaced (files encoded with a bundle decode only with "
      "it); pass --force to replace it, or give another -o."
    )


def _write_bundle_dir(out: str, contents: dict[str, bytes]) -> None:
  """Writes the files into a temporary sibling directory, then swaps it in for `out` (kept on any failure)."""
  parent, name = os.path.dirname(out), os.path.basename(out)
  os.makedirs(parent, exist_ok=True)
  staging = os.path.join(parent, f".{name}.{uuid.uuid4().hex}.tmp")
  backup = os.path.join(parent, f".{name}.{uuid.uuid4().hex}.bak")
  paths.PENDING.update((staging, backup))
  try:
    os.mkdir(staging)
    for file_name, data in contents.items():
      with open(os.path.join(staging, file_name), "wb") as f:
        f.write(data)
    with paths.COMMIT_LOCK:
      if os.path.lexists(out):
        os.rename(out, backup)
      try:
        os.rename(staging, out)
      except OSError:
        if os.path.lexists(backup):
          os.rename(backup, out)
        raise
  finally:
    for leftover in (staging, backup):
      if os.path.isdir(leftover) and not os.path.islink(leftover):
        shutil.rmtree(leftover)
      elif os.path.lexists(leftover):
        os.unlink(leftover)
    paths.PENDING.difference_update((staging, backup))


def load_bundle(path) -> Bundle:
  """Reads and verifies a bundle directory written by write_bundle; its config is validated data."""
  path = epath.Path(path)
  files = {name: path / name for name in BUNDLE_FILES}
  missing = [name for name, f in files.items() if not f.exists()]
  if missing:
    raise CodecError(
      f"--model={path} is not a codec bundle: {', '.join(missing)} missing (make one with "
      f"`python -m ardm_jax.compress export --config=... --workdir=... -o {path}`)."
    )
  config_json, params_bytes = files["config.json"].read_bytes(), files["params.msgpack"].read_bytes()
  try:
    meta = json.loads(files["codec.json"].read_text())
  except ValueError:
    meta = None
  if meta is not None and not isinstance(meta, dict):
    raise CodecError(
      f"--model={path}: codec.json is a JSON {type(meta).__name__}, not an object (crafted or damaged bundle); "
      "export it again."
    )
  fingerprint_ok = meta is not None and meta.get("fingerprint") == _bundle_fingerprint(config_json, params_bytes, meta)
  if not fingerprint_ok:
    raise CodecError(
      f"--model={path}: the bundle's files do not match its fingerprint (corrupted or altered); export it again."
    )
  return checked_bundle(path, config_json, params_bytes, meta)


# What a bundle may ask for: D variables per data point, rows per call, and float32s of network outputs per call.
MAX_BUNDLE_VARIABLES = 2**16
MAX_BUNDLE_BATCH = 4096
MAX_CALL_OUTPUTS = 2**28
NUM_CLASSES = {"text": 27, "bytes": 256, "image": 256, "audio": 65536}  # The classes of each bundle kind.
_LAYER_COUNTS = ("num_layers", "num_res_blocks", "num_blocks")


def checked_bundle(path, config_json: bytes, params_bytes: bytes, meta) -> Bundle:
  """The bundle of these file contents, each field checked before it is used to size anything.

  A bundle is shared like a checkpoint and its fingerprint is a plain hash, so it is validated as untrusted data:
  codec.json field by field (kind, classes, shape, order a permutation per stage, strictly increasing plans, rows
  per call) with limits that bound memory, then the parameters against the network the config builds (tree,
  shapes and dtypes, traced without allocating). CodecError names the field.
  """

  def refuse(field: str, what: str):
    raise CodecError(f"--model={path}: {field} {what} (crafted or damaged bundle); export it again.")

  try:
    config = ml_collections.ConfigDict(json.loads(config_json))
    config_schema.validate_network(config)
  except (ValueError, TypeError, AttributeError, config_schema.ConfigError) as e:
    refuse("config.json", f"is not a valid config: {e}")
  if not isinstance(meta, dict):
    refuse("codec.json", f"is a JSON {type(meta).__name__}, not an object")
  missing = [k for k in ("kind", "event_shape", "num_classes", "order", "plans") if k not in meta]
  if missing:
    refuse("codec.json", f"lacks {', '.join(missing)}")
  kind = meta["kind"]
  if kind not in NUM_CLASSES:
    refuse("codec.json 'kind'", f"= {kind!r} is not one of {list(NUM_CLASSES)}")
  if "data" in config and data_kind_or_none(config) not in (None, kind):
    refuse("codec.json 'kind'", f"= {kind!r} is not the kind of the config's data ({data_kind_or_none(config)})")
  if meta["num_classes"] != NUM_CLASSES[kind] or isinstance(meta["num_classes"], bool):
    refuse("codec.json 'num_classes'", f"= {meta['num_classes']!r}; a {kind} model has {NUM_CLASSES[kind]} classes")
  shape = meta["event_shape"]
  rank = 3 if kind == "image" else 1
  if (
    not isinstance(shape, list)
    or len(shape) != rank
    or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)
    or (kind == "image" and shape[-1] != 3)
    or math.prod(shape) > MAX_BUNDLE_VARIABLES
  ):
    limits = f"{rank} positive sizes{' ending in 3' if kind == 'image' else ''}, at most {MAX_BUNDLE_VARIABLES} in all"
    refuse("codec.json 'event_shape'", f"= {str(shape)[:80]} is not {limits}")
  num_variables = math.prod(shape)
  try:
    process = experiment.build_process(config, NUM_CLASSES[kind])
    transitions = process.transitions if config.objective.kind == "upscale" else None
    model = experiment.build_model(config, NUM_CLASSES[kind], transitions)
  except (ValueError, TypeError, KeyError) as e:
    refuse("config.json", f"does not build a network for {kind} data ({e})")
  num_stages = process.num_stages
  order = _int_array(meta["order"], (num_stages, num_variables))
  if order is None or not np.array_equal(
    np.sort(order, axis=1), np.broadcast_to(np.arange(num_variables), order.shape)
  ):
    refuse("codec.json 'order'", f"is not {num_stages} permutation(s) of 0..{num_variables - 1}")
  plans = meta["plans"]
  if not isinstance(plans, dict) or not plans:
    refuse("codec.json 'plans'", "is not an object of one plan per budget")
  for budget, plan in plans.items():
    if not budget.isdigit() or not 1 <= int(budget) <= num_variables or not isinstance(plan, dict):
      refuse("codec.json 'plans'", f"has budget {budget[:20]!r}, not a number of calls in 1..{num_variables}")
    starts = _int_array(plan.get("starts"), (num_stages, int(budget)))
    if (
      starts is None
      or np.any(starts[:, 0] != 0)
      or np.any(np.diff(starts, axis=1) <= 0)
      or starts.max() >= num_variables
    ):
      refuse(f"codec.json 'plans'[{budget}]", f"is not {num_stages} row(s) of starts 0 < ... < {num_variables}")
  batch_size = meta.get("batch_size", DEFAULT_BATCH_SIZE)
  outputs_per_call = num_variables * model.num_classes_out * (batch_size if isinstance(batch_size, int) else 1)
  if not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BUNDLE_BATCH or outputs_per_call > MAX_CALL_OUTPUTS:
    refuse(
      "codec.json 'batch_size'",
      f"= {batch_size!r} is not in 1..{MAX_BUNDLE_BATCH} within {MAX_CALL_OUTPUTS} outputs per call",
    )
  for field in ("unseen_steps", "train_step"):
    if not isinstance(meta.get(field, 0), int) or meta.get(field, 0) < 0:
      refuse(f"codec.json {field!r}", f"= {meta[field]!r} is not a count")
  try:
    params = flax.serialization.msgpack_restore(params_bytes)
  except Exception as e:  # pylint: disable=broad-except  # msgpack's errors (nesting, truncation) and others.
    refuse("params.msgpack", f"is not a parameter file ({type(e).__name__}: {e})")
  _check_params(refuse, params, model, tuple(shape), config)
  return Bundle(config=config, params=params, meta=meta, fingerprint=meta["fingerprint"])


def _int_array(value, shape) -> np.ndarray | None:
  """int64 array of a JSON list of lists if it has exactly `shape`, else None (no allocation past its size)."""
  if not isinstance(value, list) or len(value) != shape[0]:
    return None
  if not all(isinstance(row, list) and len(row) == shape[1] for row in value):
    return None
  if not all(isinstance(v, int) and not isinstance(v, bool) for row in value for v in row):
    return None
  return np.asarray(value, np.int64).reshape(shape)


def _check_params(refuse, params, model, event_shape, config) -> None:
  """Refuses parameters that are not the tree of arrays (names, shapes, float32) the config's network has."""
  if not isinstance(params, dict):
    refuse("params.msgpack", "is not a tree of parameters")
  for key in _LAYER_COUNTS:  # Tracing the network costs time per layer: bounded by what the file holds.
    if config.model.get(key, 0) > len(params):
      refuse(f"config.json model.{key}", f"= {config.model[key]} is more than the parameter file's {len(params)} parts")
  x = jax.ShapeDtypeStruct((1, *event_shape), jnp.int32)
  try:
    expected = jax.eval_shape(model.init, jax.random.key(0), x, x, jax.ShapeDtypeStruct((1,), jnp.int32))["params"]
  except Exception as e:  # pylint: disable=broad-except  # The config's sizes do not make a network.
    refuse("config.json", f"does not make a network ({type(e).__name__}: {str(e)[:200]})")
  expected_leaves = jax.tree_util.tree_leaves_with_path(expected)
  try:
    leaves = jax.tree_util.tree_leaves_with_path(params)
  except Exception:  # pylint: disable=broad-except
    leaves = []
  found = {jax.tree_util.keystr(p): v for p, v in leaves}
  for path, spec in expected_leaves:
    name = jax.tree_util.keystr(path)
    value = found.pop(name, None)
    if not isinstance(value, np.ndarray) or value.shape != spec.shape or value.dtype != spec.dtype:
      what = "missing" if value is None else f"{getattr(value, 'dtype', type(value).__name__)} {np.shape(value)}"
      refuse("params.msgpack", f"does not fit the config's network: {name} is {what}, not {spec.dtype} {spec.shape}")
  if found:
    refuse("params.msgpack", f"has parameters the config's network does not: {', '.join(list(found)[:3])}")


# ---------------------------------------------------------------------------------------------- data kinds


@dataclasses.dataclass
class Item:
  """One input prepared for coding.

  Attributes:
    kind: the container kind (container.KINDS).
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


# The value of the padding positions (not coded, shown to the network as known): both sides know it.
FILL = {"text": 0, "bytes": ord(" "), "image": 128, "audio": audio_lib.SILENCE}


def _values_crc(values) -> int:
  raw = values if isinstance(values, bytes) else np.ascontiguousarray(values).tobytes()
  return zlib.crc32(raw)


def _text_layout(ids: np.ndarray, bundle: Bundle) -> tuple[np.ndarray, np.ndarray]:
  """(x [n, L], fixed [n, L]): ids [m] cut into rows of L, the last one padded with fixed values."""
  (row_length,) = bundle.event_shape
  num_rows = -(-len(ids) // row_length)
  x = np.full(num_rows * row_length, FILL[bundle.kind], np.int32)
  x[: len(ids)] = ids
  fixed = np.arange(num_rows * row_length) >= len(ids)
  return x.reshape(num_rows, row_length), fixed.reshape(num_rows, row_length)


def _image_layout(pixels: np.ndarray, bundle: Bundle) -> tuple[np.ndarray, np.ndarray]:
  """(x, fixed) [n, ph, pw, 3]: uint8 pixels [H, W(, 3)] tiled into patches, the edges padded with fixed values."""
  height, width = pixels.shape[:2]
  rgb = pixels if pixels.ndim == 3 else np.repeat(pixels[..., None], 3, axis=-1)
  patch_h, patch_w, channels = bundle.event_shape
  rows_h, rows_w = -(-height // patch_h), -(-width // patch_w)
  pad = ((0, rows_h * patch_h - height), (0, rows_w * patch_w - width), (0, 0))
  padded = np.pad(rgb, pad, constant_values=FILL["image"])
  fixed = np.ones(padded.shape, bool)
  fixed[:height, :width] = False
  tile = lambda a: (
    a.reshape(rows_h, patch_h, rows_w, patch_w, channels)
    .transpose(0, 2, 1, 3, 4)
    .reshape(rows_h * rows_w, patch_h, patch_w, channels)
  )
  return tile(padded).astype(np.int32), tile(fixed)


def _untile(x: np.ndarray, shape: tuple[int, int], grayscale: bool, bundle: Bundle) -> np.ndarray:
  """uint8 pixels [H, W(, 3)] from their patches [n, ph, pw, 3]."""
  patch_h, patch_w, channels = bundle.event_shape
  height, width = shape
  rows_h, rows_w = -(-height // patch_h), -(-width // patch_w)
  image = (
    x.reshape(rows_h, rows_w, patch_h, patch_w, channels)
    .transpose(0, 2, 1, 3, 4)
    .reshape(rows_h * patch_h, rows_w * patch_w, channels)[:height, :width]
    .astype(np.uint8)
  )
  return np.ascontiguousarray(image[..., 0]) if grayscale else image


def _layout(kind: str, values, bundle: Bundle) -> tuple[np.ndarray, np.ndarray]:
  """The model's rows (x, fixed) of an item's values: the one layout that encoder and decoder share."""
  if kind == "text":
    return _text_layout(text_lib.bytes_to_ids(np.frombuffer(values, np.uint8), "text"), bundle)
  if kind == "bytes":
    return _text_layout(np.frombuffer(values, np.uint8), bundle)
  if kind in ("image_rgb", "image_l"):
    return _image_layout(values, bundle)
  if kind == "audio":
    return _text_layout(audio_lib.to_classes(values), bundle)
  x = np.asarray(values).reshape((-1,) + bundle.event_shape).astype(np.int32)
  return x, np.zeros(x.shape, bool)


def _text_item(name: str, raw: bytes, bundle: Bundle, clean: bool) -> Item:
  """A file for a text (a-z and space) or bytes model."""
  note = ""
  if bundle.kind == "text":
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
  return Item(bundle.kind, (len(raw),), None, raw, raw, None, note)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_PIXEL_CHUNKS = (b"IHDR", b"IDAT", b"IEND")


def png_pixels_only(raw: bytes) -> tuple[str, tuple[int, int] | None]:
  """(why not, (height, width)) of a PNG file, read from its chunks without decoding any pixel.

  why not is '' for a PNG whose content is 8-bit RGB or grayscale pixels and nothing else (chunks IHDR, IDAT and
  IEND only): a PNG of the same pixels restores all it holds. Otherwise it says what the model's PNG would lose
  (other bit depths or colour types, transparency, colour profiles, animation frames, text, trailing bytes).
  """
  if not raw.startswith(_PNG_SIGNATURE):
    return "not a PNG file", None
  position, others, ihdr = len(_PNG_SIGNATURE), [], b""
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


def _image_item(name: str, raw: bytes, bundle: Bundle) -> Item:
  """A PNG of 8-bit RGB or grayscale pixels only (grayscale coded as three equal channels), tiled into patches.

  Checked from its chunks before any pixel is decoded: its size against the value limit, and that nothing but
  pixels is in it (anything else goes to the byte methods, which keep the file's own bytes).
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top

  if bundle.event_shape[-1] != 3:
    raise CodecError(f"{name}: the model codes {bundle.event_shape[-1]}-channel patches, PNGs are coded as RGB.")
  why_not, size = png_pixels_only(raw)
  if size is not None and 3 * size[0] * size[1] > container.MAX_VALUES:
    raise CodecError(f"{name}: {size[1]}x{size[0]} pixels, above the model's limit of {container.MAX_VALUES} values.")
  if why_not:
    raise CodecError(f"{name}: {why_not}.")
  try:
    image = Image.open(io.BytesIO(raw))
    image.load()
  except Exception as e:  # pylint: disable=broad-except
    raise CodecError(f"{name}: not a readable PNG ({e}).") from None
  if image.mode not in ("RGB", "L") or image.size != (size[1], size[0]):
    raise CodecError(f"{name}: PNG mode {image.mode!r} of size {image.size}, not the 8-bit pixels its header gives.")
  pixels = np.asarray(image, np.uint8)
  return Item("image_rgb" if image.mode == "RGB" else "image_l", pixels.shape[:2], None, raw, pixels, None)


def _audio_item(name: str, raw: bytes, bundle: Bundle) -> Item:
  """A mono 16-bit PCM WAV file of any length and sample rate (the model was trained at its data's rate)."""
  del bundle
  try:
    channels, width, rate, frames = audio_lib.read_wav(raw, name)
  except ValueError as e:
    raise CodecError(f"{e}; the audio model takes mono 16-bit WAV.") from None
  if not 1 <= rate <= container.MAX_SAMPLE_RATE:
    raise CodecError(
      f"{name}: a WAV with a sample rate of {rate} Hz (the model's files take 1..{container.MAX_SAMPLE_RATE})."
    )
  if (channels, width) != (1, 2):
    raise CodecError(f"{name}: a {channels}-channel {8 * width}-bit WAV; the audio model codes mono 16-bit PCM.")
  pcm = np.frombuffer(frames, "<i2").astype(np.int16)
  return Item("audio", (len(pcm),), None, raw, pcm, None, sample_rate=rate)


def _array_item(name: str, raw: bytes, bundle: Bundle) -> Item:
  """A .npy array of integers in 0..K-1, shaped like one data point or [n, *event]; its header is checked
  against the file's size before the array is read."""
  stream = io.BytesIO(raw)
  try:
    version = np.lib.format.read_magic(stream)
    read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in read_header:
      raise ValueError(f"npy format version {version}")
    shape, fortran_order, dtype = read_header[version](stream)
    if dtype.hasobject or len(raw) - stream.tell() != math.prod(shape) * dtype.itemsize:
      raise ValueError(f"its header gives {shape} of {dtype}, which is not the {len(raw) - stream.tell()} data bytes")
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
  del fortran_order  # A Fortran-ordered file is not what decoding writes: prepare() sends it to the byte methods.
  return Item("array", array.shape, array.dtype.str, raw, np.ascontiguousarray(array), None)


def prepare(name: str, raw: bytes, bundle: Bundle, *, clean: bool = False, model_only: bool = False) -> Item:
  """An input file as the codecs see it.

  With model_only, a file the model cannot code is a CodecError naming why; otherwise it becomes a 'file' item
  for the classic codecs, with the reason in its note.
  """
  try:
    if name.endswith(".npy"):
      item = _array_item(name, raw, bundle)
    elif bundle.kind == "image":
      item = _image_item(name, raw, bundle)
    elif bundle.kind == "audio":
      item = _audio_item(name, raw, bundle)
    else:
      item = _text_item(name, raw, bundle, clean)
    values = container.num_values(item.kind, item.shape)  # the decoder's bound (container.unpack)
    if values > container.MAX_VALUES:
      raise CodecError(f"{name}: {values} values, above the model's limit of {container.MAX_VALUES} per file.")
    item = _check_restores(name, item, clean)
  except CodecError as e:
    if model_only:
      raise
    return Item("file", (len(raw),), None, raw, None, None, f"{e} Coded with the byte methods, which keep its bytes.")
  return dataclasses.replace(item, rows=_layout(item.kind, item.values, bundle))


def _check_restores(name: str, item: Item, clean: bool) -> Item:
  """The item if decoding its values gives its file back: byte for byte, or for a PNG of pixels only (IHDR, IDAT,
  IEND) the same pixels in a PNG of our own, said in its note; else CodecError saying what would be lost."""
  if item.kind == "text" and clean:
    return item  # --clean asks for the cleaned text, and its note says so.
  restored = restore_file(item.kind, item.values, None, item.sample_rate)
  if restored == item.file_bytes:
    return item
  if item.kind in ("image_rgb", "image_l"):
    note = f"{name}: decoding gives the same pixels in a PNG of its own making ({len(restored)} bytes), not these bytes"
    return dataclasses.replace(item, note=note)
  what = {
    "audio": "a WAV with more than the samples and rate (extra chunks, or a header other than the canonical 44 bytes)",
    "array": "a .npy file other than the canonical one of its array (Fortran order, or a padded header)",
  }.get(item.kind, f"a {item.kind} file that its values do not restore")
  raise CodecError(f"{name}: {what}: its values would not restore its bytes.")


def restore_file(kind: str, values, bundle: Bundle, sample_rate: int | None = None) -> bytes:
  """The file that decoding writes for an item's values (text bytes, a PNG, a WAV, a .npy)."""
  if kind in ("text", "bytes"):
    return values
  if kind == "audio":
    return outputs.wav_bytes(values, sample_rate)
  if kind in ("image_rgb", "image_l"):
    from PIL import Image  # pylint: disable=g-import-not-at-top

    out = io.BytesIO()
    Image.fromarray(values, mode="RGB" if kind == "image_rgb" else "L").save(out, format="PNG")
    return out.getvalue()
  out = io.BytesIO()
  np.save(out, values, allow_pickle=False)
  return out.getvalue()


# ------------------------------------------------------------------------------------------------ names


# C0 and C1 control characters (C1 \x9b is a terminal's CSI), DEL, and path separators.
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f-\x9f/\\]")


def _utf8_length(name: str) -> int | None:
  try:
    return len(name.encode("utf-8"))
  except UnicodeEncodeError:  # A lone surrogate: no file system name.
    return None


def check_base_name(name: str, what: str) -> str:
  """`name` if it is a safe base name (no separators, not '.' or '..', no control characters, valid UTF-8 of at
  most 255 bytes); else CodecError."""
  if (
    not isinstance(name, str)
    or not name
    or name in (".", "..")
    or _BAD_NAME.search(name)
    or os.path.isabs(name)
    or not 0 < (_utf8_length(name) or 256) <= 255
  ):
    raise CodecError(f"{what}: the stored name {name!r} is not a plain file name (crafted file?); not used.")
  return name


# ------------------------------------------------------------------------------------------- encode/decode


@dataclasses.dataclass
class Encoded:
  """A compressed file and what every candidate method would have cost."""

  blob: bytes
  method: str
  sizes: dict[str, int]  # method -> bytes of its compressed file
  num_dims: int
  note: str = ""


def _header(bundle: Bundle, item: Item, method: str, budget: int, metadata) -> container.Header:
  byte_method = method in container.BYTE_METHODS
  return container.Header(
    method=method,
    bundle=bundle.fingerprint_bytes,
    numerics=numerics_fingerprint(),
    data_crc=zlib.crc32(item.file_bytes) if byte_method else _values_crc(item.values),
    kind=item.kind,
    shape=tuple(item.shape),
    dtype=item.dtype,
    budget_index=bundle.budgets.index(budget) if method == "ardm" else None,
    file_size=len(item.file_bytes) if byte_method and item.kind in container.VALUE_KINDS else None,
    sample_rate=item.sample_rate,
    metadata=metadata,
  )


def _classic_payload(method: str, item: Item) -> bytes:
  """The payload of a classic method, decoded again here: a method whose output does not restore the item
  exactly (a library's corner case, e.g. FLAC on zero samples) is not a candidate (ValueError)."""
  if method in container.BYTE_METHODS:
    payload = classic.encode_bytes(method, item.file_bytes)
    restores = classic.decode_bytes(method, payload, len(item.file_bytes)) == item.file_bytes
  elif method in container.SAMPLE_METHODS:
    payload = classic.encode_samples(method, item.values, item.sample_rate)
    decoded = classic.decode_samples(method, payload, len(item.values), item.sample_rate)
    restores = np.array_equal(decoded, item.values)
  else:
    payload = classic.encode_pixels(method, item.values)
    shape = tuple(item.shape) + ((3,) if item.kind == "image_rgb" else ())
    restores = np.array_equal(classic.decode_pixels(method, payload, shape), item.values)
  if not restores:
    raise ValueError("its output does not restore the input exactly")
  return payload


def encode_files(
  bundle: Bundle,
  inputs: dict[str, bytes],
  budget: int,
  *,
  method: str = "auto",
  clean: bool = False,
  keep_names: bool = False,
) -> dict[str, Encoded]:
  """Compresses every input (name -> content) into one file each.

  Args:
    method: 'auto' (the smallest of the model and the classic codecs of the file's kind), 'ardm' (the model
      only), or one classic method (container.METHODS).
    keep_names: store each input's base name in the file's metadata field.
  Returns:
    name -> Encoded. The model's rows of all inputs share each network call.
  """
  if method not in ("auto",) + container.METHODS:
    raise CodecError(f"--method={method}: choose auto or one of {', '.join(container.METHODS)}.")
  starts = bundle.plan(budget)
  items = {name: prepare(name, raw, bundle, clean=clean, model_only=method == "ardm") for name, raw in inputs.items()}
  tried = {name: [m for m in CANDIDATES[item.kind] if method in ("auto", m)] for name, item in items.items()}
  for name, methods in tried.items():
    if not methods:
      raise CodecError(f"{name}: method {method} does not code {items[name].kind} data; use --method=auto.")
  coded = [n for n, m in tried.items() if "ardm" in m and len(items[n].rows[0])]
  ardm_payloads = {n: b"" for n, m in tried.items() if "ardm" in m}
  if coded:
    event = bundle.event_shape
    x = np.concatenate([items[n].rows[0].reshape((-1,) + event) for n in coded])
    fixed = np.concatenate([items[n].rows[1].reshape((-1,) + event) for n in coded])
    streams = np.repeat(np.arange(len(coded)), [len(items[n].rows[0]) for n in coded])
    messages = coder.encode(
      bundle.logits_fn,
      x,
      bundle.order,
      starts,
      bundle.process,
      streams=streams,
      fixed=fixed,
      batch_size=bundle.batch_size,
      checksum=False,
    )
    ardm_payloads.update({n: m.astype("<u4").tobytes() for n, m in zip(coded, messages)})
  out = {}
  for name, item in items.items():
    metadata = {"name": check_base_name(epath.Path(name).name, name)} if keep_names else None
    blobs, failed = {}, []
    for m in tried[name]:
      try:
        payload = ardm_payloads[name] if m == "ardm" else _classic_payload(m, item)
      except Exception as e:  # pylint: disable=broad-except  # A library refusing this input (e.g. FLAC's rates).
        failed.append(f"{m} ({str(e).splitlines()[0] if str(e) else type(e).__name__})")
        continue
      blobs[m] = container.pack(_header(bundle, item, m, budget, metadata), payload)
    if not blobs:
      raise CodecError(f"{name}: {', '.join(failed)} could not code it; use --method=auto.")
    note = "; ".join(filter(None, [item.note, f"{name}: not coded by {', '.join(failed)}" if failed else ""]))
    best = min(blobs, key=lambda m: len(blobs[m]))  # the first of the smallest, in CANDIDATES order
    out[name] = Encoded(blobs[best], best, {m: len(b) for m, b in blobs.items()}, item.num_dims, note)
  return out


def read_header(name: str, blob: bytes, bundle: Bundle) -> tuple[container.Header, bytes]:
  """(header, payload) of a compressed file, refused (CodecError) unless this bundle can decode it."""
  try:
    header, payload = container.unpack(name, blob)
  except container.FormatError as e:
    raise CodecError(str(e)) from None
  if header.method in container.IMAGE_METHODS + container.SAMPLE_METHODS:
    wanted = ("image_rgb", "image_l") if header.method in container.IMAGE_METHODS else ("audio",)
    if header.kind not in wanted:
      raise CodecError(f"{name}: method {header.method} does not code {header.kind} data (crafted or damaged file).")
  if header.kind == "audio" and not header.sample_rate:
    raise CodecError(f"{name}: its header gives a sample rate of 0 Hz (crafted or damaged file).")
  if header.method != "ardm":
    return header, payload
  if header.bundle != bundle.fingerprint_bytes:
    raise CodecError(
      f"{name} was compressed with bundle {header.bundle.hex()}, not with --model (bundle "
      f"{bundle.fingerprint_bytes.hex()}); decode it with the bundle it was made with."
    )
  if header.numerics != numerics_fingerprint():
    here = ", ".join(f"{k} {v!r}" for k, v in numerics().items())
    raise CodecError(
      f"{name}: it was encoded under other numerics (fingerprint {header.numerics.hex()}; here "
      f"{numerics_fingerprint().hex()}: {here}); the decoder needs the encoder's jax, jaxlib, backend, device "
      f"kind, x64 and XLA flags."
    )
  model_kind = {
    "text": "text",
    "bytes": "bytes",
    "image_rgb": "image",
    "image_l": "image",
    "audio": "audio",
    "array": "array",
  }
  if model_kind.get(header.kind) not in (bundle.kind, "array") or header.budget_index >= len(bundle.budgets):
    raise CodecError(f"{name}: its kind {header.kind} or budget index does not fit the bundle (damaged file).")
  if header.kind == "array" and (
    header.shape[-len(bundle.event_shape) :] != bundle.event_shape or len(header.shape) > len(bundle.event_shape) + 1
  ):
    raise CodecError(f"{name}: its array shape {header.shape} does not fit the bundle (damaged file).")
  if len(payload) % 4:
    raise CodecError(f"{name}: truncated or corrupted (its payload is not whole 32-bit words).")
  needed = min_payload_bits(bundle, header.kind, header.shape)
  if 8 * len(payload) < needed / 2 - 64:  # Half the bound and 64 bits of coder overhead: never a real file.
    raise CodecError(
      f"{name}: its {len(payload)}-byte payload cannot hold the {header.num_values} values its header claims "
      f"(the model needs at least {needed / 8:.0f} bytes for them; crafted or damaged file)."
    )
  return header, payload


def min_payload_bits(bundle: Bundle, kind: str, shape) -> float:
  """A lower bound on the bits of any model-coded payload of `shape` values of `kind` under this bundle.

  The coder smooths every categorical with eps per allowed class (coder.quantized_probabilities), so no coded
  value is certain: a categorical over n allowed classes gives any one at most 1 - (n - 1) * f / 2^24, f the
  smallest frequency an allowed class gets. Every coded value pays -log2 of that in every stage, with n the
  fewest children any value of that stage has (for a logistic mixture, the runs of its first digit).
  """
  transitions = bundle.process.transitions
  bits_per_value = 0.0
  for stage in range(transitions.num_stages):
    values = np.unique(transitions.state_values[stage])
    fewest = int(transitions.num_children[stage][values].min())
    num_outputs = transitions.max_branching
    if bundle.process.num_mixtures:
      levels, base = coder._digits(transitions.max_branching)
      fewest, num_outputs = -(-fewest // base ** (levels - 1)), base
    smallest = (math.floor(coder.EPS * (2**coder.PRECISION - num_outputs)) + 1) / 2**coder.PRECISION
    if fewest > 1:
      bits_per_value -= math.log2(1.0 - (fewest - 1) * smallest)
  return container.num_values(kind, shape) * bits_per_value


def _template(header: container.Header, bundle: Bundle):
  """Zero values of the header's kind and shape, to lay out the rows the decoder fills."""
  if header.kind in ("text", "bytes"):
    return bytes(header.shape[0]) if header.kind == "bytes" else b" " * header.shape[0]
  if header.kind in ("image_rgb", "image_l"):
    return np.zeros(tuple(header.shape) + ((3,) if header.kind == "image_rgb" else ()), np.uint8)
  if header.kind == "audio":
    return np.zeros(header.shape, np.int16)
  return np.zeros(header.shape, np.dtype(header.dtype))


def _values_of(header: container.Header, x: np.ndarray, bundle: Bundle):
  """The values (as _layout takes them) of the decoded rows x [n, *event]."""
  if header.kind == "text":
    return text_lib.decode(x.reshape(-1)[: header.shape[0]]).encode("ascii")
  if header.kind == "bytes":
    return x.reshape(-1)[: header.shape[0]].astype(np.uint8).tobytes()
  if header.kind in ("image_rgb", "image_l"):
    return _untile(x, header.shape, header.kind == "image_l", bundle)
  if header.kind == "audio":
    return audio_lib.to_pcm16(x.reshape(-1)[: header.shape[0]])
  return x.reshape(header.shape).astype(np.dtype(header.dtype))


def decode_files(bundle: Bundle, inputs: dict[str, bytes]) -> dict[str, bytes]:
  """Decompresses files (name -> content) into name -> restored content.

  Every header is checked before any network call; files coded with the same budget share each network call.
  CodecError, and nothing returned, if any restored data does not match its CRC32.
  """
  headers = {name: read_header(name, blob, bundle) for name, blob in inputs.items()}
  restored = {}
  for name, (header, payload) in headers.items():
    try:
      if header.method in container.BYTE_METHODS:
        restored[name] = (classic.decode_bytes(header.method, payload, header.restored_size), None)
      elif header.method in container.IMAGE_METHODS:
        shape = tuple(header.shape) + ((3,) if header.kind == "image_rgb" else ())
        restored[name] = (None, classic.decode_pixels(header.method, payload, shape))
      elif header.method in container.SAMPLE_METHODS:
        pcm = classic.decode_samples(header.method, payload, header.shape[0], header.sample_rate)
        restored[name] = (None, pcm)
    except ValueError as e:
      raise CodecError(f"{name}: corrupted: {e}.") from None
  by_budget = {}
  for name, (header, _) in headers.items():
    if header.method == "ardm":
      by_budget.setdefault(header.budget_index, []).append(name)
  for budget_index, names in by_budget.items():
    layouts = {n: _layout(headers[n][0].kind, _template(headers[n][0], bundle), bundle) for n in names}
    coded = [n for n in names if len(layouts[n][0])]
    for n in names:
      if not coded or n not in coded:
        restored[n] = (None, _values_of(headers[n][0], layouts[n][0], bundle))
      elif not headers[n][1]:
        raise CodecError(f"{n}: truncated (no payload).")
    if not coded:
      continue
    num_rows = [len(layouts[n][0]) for n in coded]
    try:
      x = coder.decode(
        bundle.logits_fn,
        [np.frombuffer(headers[n][1], "<u4").astype(np.uint32) for n in coded],
        bundle.order,
        bundle.plan(bundle.budgets[budget_index]),
        bundle.process,
        (sum(num_rows),) + bundle.event_shape,
        streams=np.repeat(np.arange(len(coded)), num_rows),
        fixed=np.concatenate([layouts[n][1] for n in coded]),
        fill=np.concatenate([layouts[n][0] for n in coded]),
        batch_size=bundle.batch_size,
        checksum=False,
      )
    except ValueError as e:
      raise CodecError(f"{', '.join(coded)}: corrupted: {e}") from None
    offsets = np.cumsum([0] + num_rows)
    for n, first, last in zip(coded, offsets[:-1], offsets[1:]):
      restored[n] = (None, _values_of(headers[n][0], x[first:last], bundle))
  out = {}
  for name, (header, _) in headers.items():
    file_bytes, values = restored[name]
    crc = zlib.crc32(file_bytes) if file_bytes is not None else _values_crc(values)
    if crc != header.data_crc:
      raise CodecError(f"{name}: the decoded data does not match its checksum (corrupted file or other numerics).")
    out[name] = file_bytes if file_bytes is not None else restore_file(header.kind, values, bundle, header.sample_rate)
  return out


FILES_KINDS = {"text": "text", "bytes": "bytes", "images": "image"}  # data.kind of data.name='files'


def data_kind(config: ml_collections.ConfigDict) -> str:
  """The codec kind ('text', 'bytes' or 'image') of a training config's data."""
  if config.data.name == "files":
    return FILES_KINDS[config.data.kind]
  return KINDS[config.data.name]


def data_kind_or_none(config) -> str | None:
  """data_kind, or None for a data section it does not know (checked, not trusted: a bundle's config)."""
  try:
    return data_kind(config)
  except (KeyError, AttributeError, TypeError):
    return None
