"""Conditional generation's files: a text with mask characters or a prompt, or a PNG with a mask or alpha, into
the core.conditional.Condition it conditions on; the samples back out as text or PNGs with a grid."""

import numpy as np

from ardm_jax.core.conditional import Condition
from ardm_jax.core.conditional import InfillError
from ardm_jax.core.conditional import nothing_known
from ardm_jax.data import kinds
from ardm_jax.data import media
from ardm_jax.data import text as text_lib
from ardm_jax.io import paths


def _read_png(raw: bytes, name: str):
  try:
    return media.read_png(raw, name)
  except media.MediaError as e:
    raise InfillError(f"{e}; give a PNG file.") from None


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


def kind_of(event_shape, num_classes: int) -> str:
  """'image', 'text' or 'bytes' (data.kinds) for a model's data points; InfillError for any other kind."""
  try:
    kind = kinds.of_points(event_shape, num_classes)
  except kinds.KindError:
    kind = None
  if kind not in ("image", "text", "bytes"):
    raise InfillError(f"conditional generation takes text or image models, not data points {tuple(event_shape)}.")
  return kind


def row_text(row, kind: str) -> str:
  """One sample row as text: the letters of a 'text' row, the bytes of a 'bytes' row (undecodable: U+FFFD)."""
  if kind == "bytes":
    return np.asarray(row).astype(np.uint8).tobytes().decode("utf-8", errors="replace")
  return text_lib.decode(row)


def _writer() -> bool:
  import jax  # pylint: disable=g-import-not-at-top

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


def condition_grid(samples_NxHxWxC: np.ndarray, condition: Condition, summary_line: str, scale: int = 0) -> np.ndarray:
  """uint8 [h, w, 3]: the input (unknown pixels as a grey checkerboard), the mask (white: unknown) and the
  samples, at most 8 per row, enlarged `scale` times (0: to about 64 pixels), with the summary below."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from PIL import ImageDraw  # pylint: disable=g-import-not-at-top

  num_samples, height, width, _ = samples_NxHxWxC.shape
  scale = scale or max(1, -(-64 // max(height, width)))
  unknown_HxW = ~condition.known_E[..., 0]
  checker_HxW = np.where(np.add.outer(np.arange(height), np.arange(width)) % 2 == 0, 96, 160)
  shown = np.where(unknown_HxW[..., None], checker_HxW[..., None], condition.x_known_E).astype(np.uint8)
  mask = np.repeat(np.where(unknown_HxW, 255, 0).astype(np.uint8)[..., None], 3, axis=-1)
  tiles = [shown, mask]
  for index, sample in enumerate(samples_NxHxWxC.astype(np.uint8)):
    if index and index % 8 == 0:  # A new row of samples: its first two columns stay blank.
      tiles += [None, None]
    tiles.append(sample)
  gap = 4
  grid = media.image_grid(tiles, cols=2 + min(num_samples, 8), gap=gap, scale=scale)
  lines, line = [], ""
  for word in f"input | mask (white: unknown) | {num_samples} samples: {summary_line}".split(" "):
    if line and 6 * len(line + " " + word) > grid.shape[1]:
      lines.append(line)
      line = word
    else:
      line = f"{line} {word}".strip()
  lines.append(line)
  canvas = np.full((grid.shape[0] + 2 * gap + 12 * len(lines) + gap, grid.shape[1] + 2 * gap, 3), 255, np.uint8)
  canvas[gap : gap + grid.shape[0], gap : gap + grid.shape[1]] = grid
  image = Image.fromarray(canvas)
  draw = ImageDraw.Draw(image)
  for i, text in enumerate(lines):
    draw.text((gap, grid.shape[0] + 2 * gap + 12 * i), text, fill=(0, 0, 0))
  return np.asarray(image)


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
  images = list(samples_NxHxWxC.astype(np.uint8)) + [condition_grid(samples_NxHxWxC, condition, summary_line)]
  source = f" (input {condition.source})" if condition.source else ""
  if _writer():
    if paths.occupied(out) and not out.is_dir():
      raise FileExistsError(f"{out} exists and is not a directory")
    files = [(out / name, media.png_bytes(image, summary_line + source)) for name, image in zip(names, images)]
    paths.write_files(files, force=force)
  return [str(out / name) for name in names]
