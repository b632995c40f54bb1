"""Conditional generation under a budget: infill text, inpaint images, continue a prompt (arXiv 2110.02037).

An order-agnostic ARDM conditions on any subset of its variables: the k given variables come first in the
order, generation starts at step k (plan_walk.conditioned_stage), and the budget planner plans only the D - k
remaining steps with the tracked losses L_k .. L_{D-1} (planner.plan_remaining; an upscale model plans each
stage so, a variable given at full resolution being given in every stage). The sampling walk itself is
sampler.sample; this module turns inputs (a text with mask characters, a prompt, a PNG with a mask or alpha)
into what it conditions on, plans, and writes the outputs that `python -m ardm_jax.generate` and
`main.py --mode=sample` (config keys sample.prompt, sample.mask, sample.mask_char) produce.
"""

import dataclasses
import io
import math

from etils import epath
import jax
import numpy as np

from ardm_jax.training import config_schema
from ardm_jax.io import paths
from ardm_jax.core import planner
from ardm_jax.core import plan_walk
from ardm_jax.core import sampler
from ardm_jax.data import text as text_lib


class InfillError(config_schema.ConfigError):
  """An input, mask or budget that conditional generation cannot use; one line naming the problem and fix."""


@dataclasses.dataclass(frozen=True)
class Condition:
  """What generation conditions on: known_E bool [*event] (True: given), x_known_E int32 [*event]."""

  known_E: np.ndarray
  x_known_E: np.ndarray
  source: str  # the input's name, for messages ('' when nothing is given)

  @property
  def num_known(self) -> int:
    return int(self.known_E.sum())

  @property
  def num_unknown(self) -> int:
    return int(self.known_E.size - self.known_E.sum())


def kind_of(event_shape, num_classes: int) -> str:
  """'image', 'text' (27 letters) or 'bytes' (K = 256) for a model's data points."""
  if len(event_shape) == 3:
    return "image"
  if len(event_shape) == 1 and num_classes in (text_lib.NUM_CLASSES, 256):
    return "text" if num_classes == text_lib.NUM_CLASSES else "bytes"
  raise InfillError(f"conditional generation takes text or image models, not data points {tuple(event_shape)}.")


def nothing_known(event_shape) -> Condition:
  """Sampling from nothing: every variable unknown."""
  return Condition(np.zeros(event_shape, bool), np.zeros(event_shape, np.int32), "")


def text_condition(raw: bytes, name: str, event_shape, kind: str, mask_char: str = "_") -> Condition:
  """A text: every mask_char is unknown; a text shorter than the model's row is continued to its length.

  Args:
    raw: the file's bytes (a 27-letter 'text' model: one trailing newline is dropped; 'bytes': kept).
    name: for messages.
    event_shape: (L,), the row length.
    kind: 'text' (a-z and space) or 'bytes'.
    mask_char: one ASCII character.
  """
  (row_length,) = event_shape
  if len(mask_char) != 1 or not mask_char.isascii():
    raise InfillError(f"--mask_char={mask_char!r} must be one ASCII character (default '_').")
  if kind == "text" and raw.endswith(b"\n"):
    raw = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1]
  chars = np.frombuffer(raw, np.uint8)
  if chars.size > row_length:
    raise InfillError(
      f"{name}: {chars.size} characters, but the model's rows have {row_length}; give at most {row_length} "
      f"(a shorter text is continued to {row_length})."
    )
  masked = chars == ord(mask_char)
  x_known = np.zeros(row_length, np.int32)
  known = np.zeros(row_length, bool)
  known[: chars.size] = ~masked
  if kind == "text":
    valid = np.zeros(256, bool)
    valid[np.frombuffer(text_lib.ALPHABET.encode(), np.uint8)] = True
    bad = np.flatnonzero(~masked & ~valid[chars])
    if bad.size:
      shown = ", ".join(f"{bytes([chars[i]])!r}"[1:] + f" at {i}" for i in bad[:8])
      raise InfillError(
        f"{name}: {bad.size} known character{'s' if bad.size > 1 else ''} outside the model's alphabet [a-z ]: {shown}"
        f"{', ...' if bad.size > 8 else ''}; mark unknown positions with {mask_char!r} (--mask_char)."
      )
    x_known[known] = text_lib.bytes_to_ids(chars[~masked], name)
  else:
    x_known[known] = chars[~masked]
  if known.all():
    raise InfillError(
      f"{name}: nothing unknown: no {mask_char!r} in its {row_length} characters; mark the positions to "
      f"generate with {mask_char!r} (--mask_char), or give a shorter prompt to continue."
    )
  return Condition(known, x_known, name)


def _read_png(raw: bytes, name: str):
  from PIL import Image  # pylint: disable=g-import-not-at-top

  try:
    image = Image.open(io.BytesIO(raw))
    image.load()
  except Exception as e:  # pylint: disable=broad-except
    raise InfillError(f"{name}: not a readable image ({e}); give a PNG file.") from None
  return image


def image_condition(
  raw: bytes, name: str, event_shape, mask_raw: bytes | None = None, mask_name: str = ""
) -> Condition:
  """A PNG of the model's size; unknown: the nonzero pixels of the mask PNG, or else the transparent ones.

  Args:
    raw: PNG bytes, RGB, grayscale (given as three equal channels), or with alpha (alpha 0 = unknown).
    name: for messages.
    event_shape: (H, W, 3).
    mask_raw: optional PNG bytes of H x W: nonzero (in grayscale) = unknown; the image's alpha is then unused.
    mask_name: for messages.
  """
  height, width, channels = event_shape
  image = _read_png(raw, name)
  if channels != 3:
    raise InfillError(f"{name}: the model generates {channels}-channel images; PNGs are RGB.")
  if image.mode not in ("RGB", "L", "RGBA", "LA", "P"):
    raise InfillError(f"{name}: PNG mode {image.mode!r} is not supported (RGB, grayscale, with or without alpha).")
  if image.size != (width, height):
    raise InfillError(
      f"{name}: the image is {image.size[0]}x{image.size[1]} pixels, the model generates {width}x{height} "
      "(width x height); crop or resize it to that."
    )
  has_alpha = image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info)
  rgba = np.asarray(image.convert("RGBA"), np.uint8)
  if mask_raw is not None:
    mask = _read_png(mask_raw, mask_name)
    if mask.size != image.size:
      raise InfillError(
        f"{mask_name}: the mask is {mask.size[0]}x{mask.size[1]} pixels, the image {name} is "
        f"{image.size[0]}x{image.size[1]}; give a mask of the image's size (nonzero = unknown)."
      )
    unknown_HxW = np.asarray(mask.convert("L")) > 0
  elif has_alpha:
    unknown_HxW = rgba[..., 3] == 0
  else:
    raise InfillError(
      f"{name}: nothing unknown: give --mask=MASK.png (nonzero = unknown) or a PNG whose unknown pixels "
      "are transparent."
    )
  if not unknown_HxW.any():
    raise InfillError(f"{mask_name or name}: nothing unknown: the mask marks no pixel (nonzero or transparent).")
  known = np.repeat(~unknown_HxW[..., None], 3, axis=-1)
  return Condition(known, np.where(known, rgba[..., :3], 0).astype(np.int32), name)


def load_condition(prompt: str, mask: str, kind: str, event_shape, mask_char: str = "_") -> Condition:
  """The condition of the files `prompt` (text, or an image) and `mask` (images only); '' = not given."""
  if not prompt:
    if mask:
      raise InfillError(f"a mask ({mask}) needs the image it masks (INPUT, or config sample.prompt).")
    return nothing_known(event_shape)
  raw = _read(prompt)
  if kind == "image":
    return image_condition(raw, prompt, event_shape, _read(mask) if mask else None, mask)
  if mask:
    raise InfillError(f"--mask={mask} is for image models; a text marks its unknown positions with {mask_char!r}.")
  return text_condition(raw, prompt, event_shape, kind, mask_char)


def _read(name: str) -> bytes:
  path = paths.resolve(name)
  if not path.is_file():
    raise InfillError(f"{name}: no such file.")
  return path.read_bytes()


def plan_unknown(step_losses_SxD, budget: int, num_known: int) -> tuple[np.ndarray, float]:
  """(starts int64 [S, budget] from k, planned bits/dim of the unknown part summed over stages, per all D).

  Args:
    step_losses_SxD: the tracked L_t of every stage in step order (unseen steps interpolated).
    budget: network calls per stage, 1..D-k.
    num_known: k.
  """
  losses = np.asarray(step_losses_SxD, np.float64)
  num_unknown = losses.shape[1] - num_known
  if num_unknown < 1:
    raise InfillError("nothing unknown: every variable is given, there is nothing to generate.")
  if budget < 1 or budget > num_unknown:
    raise InfillError(
      f"a budget of {budget} network calls, but there are {num_unknown} unknown steps; use 1..{num_unknown} "
      f"({num_unknown}: one call per unknown variable)."
    )
  plans = [planner.plan_remaining(stage, budget, num_known) for stage in losses]
  return np.stack([p.starts for p in plans]), float(sum(p.cost for p in plans))


def summary(budget: int, num_stages: int, planned: float, condition: Condition, unit: str) -> str:
  """The sentence every output carries: calls used and the planned bits per unknown variable."""
  num_variables, unknown = condition.known_E.size, condition.num_unknown
  bits = planned * num_variables
  calls = f"{budget} network calls" + (f" per stage ({budget * num_stages} in all)" if num_stages > 1 else "")
  given = f"{condition.num_known} of {num_variables} given" if condition.num_known else "nothing given"
  return f"{calls}, planned {bits / unknown:.4f} bpd over the {unknown} unknown {unit} ({bits:.1f} bits; {given})"


def generate(
  logits_fn: plan_walk.LogitsFn, process: plan_walk.Process, seed: int, condition: Condition, starts, num_samples
) -> np.ndarray:
  """int32 [N, *event]: num_samples draws of p(x_unknown | x_known) under the plan starts [S, n] from k."""
  shape = (num_samples,) + condition.known_E.shape
  known_E, x_known_E = condition.known_E, condition.x_known_E
  sample_fn = jax.jit(lambda r: sampler.sample(logits_fn, r, starts, shape, process, known=known_E, x_known=x_known_E))
  samples = np.asarray(sample_fn(jax.random.key_data(jax.random.key(seed))))
  if not np.array_equal(samples[:, known_E], np.broadcast_to(x_known_E[known_E], (num_samples, condition.num_known))):
    raise RuntimeError("a given variable changed during generation")  # guards the walk, never expected
  return samples


def _writer() -> bool:
  return jax.process_index() == 0


def text_outputs(samples_NxL: np.ndarray, kind: str, condition: Condition, summary_line: str) -> bytes:
  """The text output: a '# ' line with the summary, then one sample per line."""
  rows = [
    row.astype(np.uint8).tobytes() if kind == "bytes" else text_lib.decode(row).encode("ascii") for row in samples_NxL
  ]
  source = f" (input {condition.source})" if condition.source else ""
  return f"# {summary_line}{source}\n".encode() + b"\n".join(rows) + b"\n"


def write_text(
  path: str, samples_NxL: np.ndarray, kind: str, condition: Condition, summary_line: str, *, force: bool = True
) -> str:
  """Writes the samples as text; an existing file is replaced only with force (FileExistsError)."""
  if _writer():
    content = text_outputs(samples_NxL, kind, condition, summary_line)
    paths.write_files([(paths.resolve(path), content)], force=force)
  return str(path)


def _png(image_HxWxC: np.ndarray, comment: str) -> bytes:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from PIL import PngImagePlugin  # pylint: disable=g-import-not-at-top

  info = PngImagePlugin.PngInfo()
  info.add_text("Comment", comment)
  out = io.BytesIO()
  Image.fromarray(image_HxWxC).save(out, format="PNG", pnginfo=info)
  return out.getvalue()


def image_grid(samples_NxHxWxC: np.ndarray, condition: Condition, summary_line: str, scale: int = 0) -> np.ndarray:
  """uint8 [h, w, 3]: the input (unknown pixels as a grey checkerboard), the mask (white: unknown) and the
  samples, at most 8 per row, enlarged `scale` times (0: to about 64 pixels), with the summary below."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from PIL import ImageDraw  # pylint: disable=g-import-not-at-top

  num_samples, height, width, _ = samples_NxHxWxC.shape
  scale = scale or max(1, math.ceil(64 / max(height, width)))
  unknown_HxW = ~condition.known_E[..., 0]
  checker_HxW = np.where(np.add.outer(np.arange(height), np.arange(width)) % 2 == 0, 96, 160)
  shown = np.where(unknown_HxW[..., None], checker_HxW[..., None], condition.x_known_E).astype(np.uint8)
  mask = np.repeat(np.where(unknown_HxW, 255, 0).astype(np.uint8)[..., None], 3, axis=-1)
  tiles = [shown, mask] + list(samples_NxHxWxC.astype(np.uint8))
  cols = 2 + min(num_samples, 8)
  rows = 1 + (num_samples - 1) // 8
  th, tw, gap = height * scale, width * scale, 4
  grid_w = cols * (tw + gap) + gap
  lines, line = [], ""
  for word in f"input | mask (white: unknown) | {num_samples} samples: {summary_line}".split(" "):
    if line and 6 * len(line + " " + word) > grid_w - 2 * gap:
      lines.append(line)
      line = word
    else:
      line = f"{line} {word}".strip()
  lines.append(line)
  grid = np.full((rows * (th + gap) + gap + 12 * len(lines) + gap, grid_w, 3), 255, np.uint8)
  for index, tile in enumerate(tiles):
    r, c = (0, index) if index < 2 else divmod(index - 2, 8)
    c = c if index < 2 else c + 2
    y, x = gap + r * (th + gap), gap + c * (tw + gap)
    grid[y : y + th, x : x + tw] = np.kron(tile, np.ones((scale, scale, 1), np.uint8))
  canvas = Image.fromarray(grid)
  draw = ImageDraw.Draw(canvas)
  for i, text in enumerate(lines):
    draw.text((gap, rows * (th + gap) + gap + 12 * i), text, fill=(0, 0, 0))
  return np.asarray(canvas)


def write_images(
  out_dir: str, samples_NxHxWxC: np.ndarray, condition: Condition, summary_line: str, *, force: bool = True
) -> list[str]:
  """Writes out_dir/sample_XX.png (one per sample) and out_dir/grid.png, all or none; every PNG's Comment is the
  summary. Existing files are replaced only with force (FileExistsError).

  Returns:
    The paths written, the grid last.
  """
  out = paths.resolve(out_dir)
  names = [f"sample_{i:02d}.png" for i in range(len(samples_NxHxWxC))] + ["grid.png"]
  images = list(samples_NxHxWxC.astype(np.uint8)) + [image_grid(samples_NxHxWxC, condition, summary_line)]
  source = f" (input {condition.source})" if condition.source else ""
  if _writer():
    if paths.occupied(out) and not out.is_dir():
      raise FileExistsError(f"{out} exists and is not a directory")
    files = [(out / name, _png(image, summary_line + source)) for name, image in zip(names, images)]
    paths.write_files(files, force=force)
  return [str(epath.Path(out) / name) for name in names]


def unit_of(kind: str) -> str:
  return "subpixels" if kind == "image" else "characters" if kind == "text" else "bytes"
