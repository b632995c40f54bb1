"""File-in, file-out lossless compression with a codec bundle (arXiv 2110.02037, section 6).

A compressed file is container.py's version 2: about 30 bytes of header, then the payload: the file's one rANS
message (coder.py: all rows of a file are one stream) or, where that is smaller, the output of a classic codec
(classic.py). With method 'auto' every file is coded by the model and by the classic codecs of its kind and the
smallest wins. A decoder checks the whole header before any network call and writes nothing unless the restored
data's CRC32 matches. What each kind of file is, and how it becomes values and back, is kinds/.
"""

import dataclasses
import math
import os
import re
import zlib

from etils import epath
import numpy as np

from ardm_jax.codec import bundle as bundle_lib
from ardm_jax.codec import classic
from ardm_jax.codec import coder
from ardm_jax.codec import container
from ardm_jax.codec import kinds
from ardm_jax.codec.errors import CodecError
from ardm_jax.io import paths

SUFFIX = container.SUFFIX
Bundle = bundle_lib.Bundle
Item = kinds.Item


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


def prepare(name: str, raw: bytes, bundle: Bundle, *, clean: bool = False, model_only: bool = False) -> Item:
  """An input file as the codecs see it: its kind's item, with the model's rows.

  With model_only, a file the model cannot code (or whose values would not restore it) is a CodecError naming
  why; otherwise it becomes a 'file' item for the byte methods, which keep its bytes, with the reason in its note.
  """
  try:
    item = kinds.reader(name, bundle.kind).read(name, raw, bundle, clean)
    values = container.num_values(item.kind, item.shape)  # the decoder's bound (container.unpack)
    if values > container.MAX_VALUES:
      raise CodecError(f"{name}: {values} values, above the model's limit of {container.MAX_VALUES} per file.")
    item = _check_restores(name, item, clean)
  except CodecError as e:
    if model_only:
      raise
    item = kinds.FILE.read(name, raw, bundle, clean)
    return dataclasses.replace(item, note=f"{e} Coded with the byte methods, which keep its bytes.")
  return dataclasses.replace(item, rows=kinds.KINDS[item.kind].rows(item.values, bundle))


def _check_restores(name: str, item: Item, clean: bool) -> Item:
  """The item if decoding its values gives its file back: byte for byte, or, for a kind whose files come back
  re-encoded (a PNG of pixels only), with a note saying so; else CodecError saying what would be lost."""
  if item.note and clean:
    return item  # --clean asks for the cleaned text, and its note says so.
  kind = kinds.KINDS[item.kind]
  if kind.restore(item.values, item.sample_rate) == item.file_bytes:
    return item
  if kind.exact_note:
    return dataclasses.replace(item, note=f"{name}: {kind.exact_note}")
  raise CodecError(
    f"{name}: a {item.kind} file that is not the canonical file of its values (e.g. extra chunks, "
    "another header, Fortran order): they would not restore its bytes."
  )


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
    numerics=bundle_lib.numerics_fingerprint(),
    data_crc=zlib.crc32(item.file_bytes) if byte_method else kinds.base.values_crc(item.values),
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
    shape = kinds.KINDS[item.kind].value_shape(item.shape)
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
  tried = {n: [m for m in kinds.KINDS[item.kind].candidates if method in ("auto", m)] for n, item in items.items()}
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
    best = min(blobs, key=lambda m: len(blobs[m]))  # the first of the smallest, in the kind's candidates' order
    out[name] = Encoded(blobs[best], best, {m: len(b) for m, b in blobs.items()}, item.num_dims, note)
  return out


def read_header(name: str, blob: bytes, bundle: Bundle) -> tuple[container.Header, bytes]:
  """(header, payload) of a compressed file, refused (CodecError) unless this bundle can decode it."""
  try:
    header, payload = container.unpack(name, blob)
  except container.FormatError as e:
    raise CodecError(str(e)) from None
  kind = kinds.KINDS[header.kind]
  if header.method not in (*container.BYTE_METHODS, "ardm", *kind.candidates):
    raise CodecError(f"{name}: method {header.method} does not code {header.kind} data (crafted or damaged file).")
  kind.check_header(name, header, bundle)
  if header.method != "ardm":
    return header, payload
  if header.bundle != bundle.fingerprint_bytes:
    raise CodecError(
      f"{name} was compressed with bundle {header.bundle.hex()}, not with --model (bundle "
      f"{bundle.fingerprint_bytes.hex()}); decode it with the bundle it was made with."
    )
  if header.numerics != bundle_lib.numerics_fingerprint():
    here = ", ".join(f"{k} {v!r}" for k, v in bundle_lib.numerics().items())
    raise CodecError(
      f"{name}: it was encoded under other numerics (fingerprint {header.numerics.hex()}; here "
      f"{bundle_lib.numerics_fingerprint().hex()}: {here}); the decoder needs the encoder's jax, jaxlib, backend, "
      f"device kind, x64 and XLA flags."
    )
  if kind.model_kind not in (bundle.kind, "any") or header.budget_index >= len(bundle.budgets):
    raise CodecError(f"{name}: its kind {header.kind} or budget index does not fit the bundle (damaged file).")
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
        shape = kinds.KINDS[header.kind].value_shape(header.shape)
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
    kind_of = {n: kinds.KINDS[headers[n][0].kind] for n in names}
    layouts = {n: kind_of[n].rows(kind_of[n].blank(headers[n][0]), bundle) for n in names}
    coded = [n for n in names if len(layouts[n][0])]
    for n in names:
      if not coded or n not in coded:
        restored[n] = (None, kind_of[n].from_rows(headers[n][0], layouts[n][0], bundle))
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
      restored[n] = (None, kind_of[n].from_rows(headers[n][0], x[first:last], bundle))
  out = {}
  for name, (header, _) in headers.items():
    file_bytes, values = restored[name]
    crc = zlib.crc32(file_bytes) if file_bytes is not None else kinds.base.values_crc(values)
    if crc != header.data_crc:
      raise CodecError(f"{name}: the decoded data does not match its checksum (corrupted file or other numerics).")
    if file_bytes is None:
      file_bytes = kinds.KINDS[header.kind].restore(values, header.sample_rate)
    out[name] = file_bytes
  return out


# ------------------------------------------------------------------------------------------- outputs


def output_paths(inputs, out: str, names) -> list[epath.Path]:
  """The output path of every input: OUT itself for one input (unless it is a directory), else OUT/name (the
  directory is made when the outputs are written, and removed again if they cannot all be)."""
  out = paths.resolve(out)
  if len(inputs) == 1 and not out.is_dir():
    return [out]
  if len(set(names)) < len(names):
    twice = sorted({n for n in names if names.count(n) > 1})
    raise CodecError(f"several inputs would be written to the same output name(s) in {out}: {twice}.")
  if paths.occupied(out) and not out.is_dir():
    raise CodecError(f"{out} is a file; with several inputs -o names a directory.")
  return [out / name for name in names]


def decoded_name(name: str, header: container.Header, stored_names: bool) -> str:
  """The output base name of a compressed input: its own name less .ardm, or (stored_names) the checked stored
  name; never a name read from the file otherwise."""
  if stored_names:
    stored = (header.metadata or {}).get("name")
    if stored is None:
      raise CodecError(f"{name}: --stored_names, but it has no stored name (encode with --keep_name).")
    return check_base_name(stored, name)
  base = epath.Path(name).name
  return base[: -len(SUFFIX)] if base.endswith(SUFFIX) and len(base) > len(SUFFIX) else base + ".out"


def check_outputs_free(targets, force: bool) -> None:
  """Refuses (before any work) outputs that exist, without force, and directories in their place."""
  for target in targets:
    if paths.occupied(target) and target.is_dir():
      raise CodecError(f"{target} is a directory; give another -o.")
    if paths.occupied(target) and not force:
      raise CodecError(f"{target} exists (a file or symlink); not replaced: pass --force to replace it.")


def write_outputs(targets, contents, force: bool) -> None:
  """Writes every output or none (another process creating one meanwhile takes the others back)."""
  try:
    paths.write_files(list(zip(targets, contents)), force=force)
  except FileExistsError as e:
    raise CodecError(f"{e} (a file or symlink); nothing written: pass --force to replace it.") from None
  except IsADirectoryError as e:
    raise CodecError(f"{e}; give another -o.") from None


def describe(bundle: Bundle, blobs: dict[str, bytes], budget: int, clean: bool = False) -> list[str]:
  """Lines of `compress info`: the bundle, the header of each compressed file, and for any other file what
  every candidate method would make of it."""

  def bpd(size_bytes: int, num_dims: int) -> str:
    return f"{8 * size_bytes / num_dims:.3f}" if num_dims else "-"

  lines = [
    f"bundle {bundle.fingerprint}: {bundle.kind} model, data points {bundle.event_shape}, "
    f"{bundle.num_classes} classes, trained {bundle.meta['train_step']} steps, {bundle.batch_size} rows per call",
    bundle_lib.plan_report(bundle),
  ]
  originals = {name: blob for name, blob in blobs.items() if not blob.startswith(container.MAGIC)}
  for name, blob in blobs.items():
    if name in originals:
      continue
    header, payload = read_header(name, blob, bundle)
    calls = f", budget {bundle.budgets[header.budget_index]}" if header.method == "ardm" else ""
    lines.append(
      f"{name}: {header.method}{calls}, {header.kind} {header.shape}, {len(blob)} bytes = "
      f"{len(blob) - len(payload)} header + {len(payload)} payload, {bpd(len(blob), header.num_dims)} bpd"
      + (f", metadata {header.metadata}" if header.metadata else "")
    )
  if originals:
    for name, encoded in encode_files(bundle, originals, budget, clean=clean).items():
      sizes = ", ".join(f"{m} {n} B = {bpd(n, encoded.num_dims)} bpd" for m, n in encoded.sizes.items())
      lines.append(
        f"{name} ({len(originals[name])} bytes, {encoded.num_dims} dims): {sizes}; auto keeps {encoded.method}"
      )
  return lines
