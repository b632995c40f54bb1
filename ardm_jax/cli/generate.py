r"""Fill in the blanks with a codec bundle: infill text, inpaint images, continue a prompt, under a budget.

  python -m ardm_jax.generate --model=MODEL --budget=B [--num_samples=N] [--seed=S] [INPUT] -o OUT

Text models: INPUT is a text file in which --mask_char (default '_') marks the unknown positions; a file shorter
than the model's row is continued to the row length (a prompt); without INPUT the samples start from nothing.
OUT is a text file: a '# ' line with the calls used and the planned bits per unknown character, then one sample
per line. Image models: INPUT is a PNG of the model's size with --mask=MASK.png (nonzero = unknown) or with
alpha (transparent = unknown); OUT is a directory that receives sample_XX.png per sample and grid.png (the
input, the mask and the samples); each PNG's Comment says the calls used and the planned bpd.

The planner plans only the unknown steps, from the tracked step losses the bundle carries (infill.py).
"""

import argparse
import sys

import numpy as np

from ardm_jax import codec
from ardm_jax.io import console
from ardm_jax.core import conditional as infill
from ardm_jax.io import paths

MAX_SAMPLES = 4096  # Samples per run: each is a row of every network call.


def bundle_step_losses(bundle: codec.Bundle) -> np.ndarray:
  """float64 [S, D]: the tracked L_t of every stage in step order, from meta['step_losses']."""
  losses = bundle.meta.get("step_losses")
  num_stages, num_variables = np.asarray(bundle.meta["order"]).reshape(len(bundle.meta["order"]), -1).shape
  if losses is None:
    raise infill.InfillError(
      "the bundle has no tracked step losses (meta 'step_losses'), which planning the unknown steps needs; "
      "export it again with `python -m ardm_jax.compress export --workdir=... -o MODEL`."
    )
  try:
    losses = np.asarray(losses, np.float64)
  except (ValueError, TypeError):  # Ragged or not numbers: refused below by its shape.
    losses = np.zeros((0,))
  if losses.shape != (num_stages, num_variables) or not np.all(np.isfinite(losses)) or np.any(losses < 0):
    raise infill.InfillError(
      f"the bundle's step_losses must be {num_stages} x {num_variables} finite non-negative numbers, got shape "
      f"{losses.shape}; export it again."
    )
  return losses


def generate(
  bundle: codec.Bundle,
  input_path: str,
  out: str,
  budget: int,
  *,
  mask: str = "",
  mask_char: str = "_",
  num_samples: int = 4,
  seed: int = 0,
  force: bool = False,
) -> tuple[np.ndarray, str, list[str]]:
  """Draws num_samples completions of the input and writes them.

  Returns:
    (samples int32 [N, *event], the summary line, the paths written).
  """
  if bundle.kind not in ("text", "bytes", "image"):
    raise infill.InfillError(f"generate takes text and image models; this bundle is a {bundle.kind!r} model.")
  if not 1 <= num_samples <= MAX_SAMPLES:
    raise infill.InfillError(f"--num_samples={num_samples} must be in 1..{MAX_SAMPLES}.")
  out_path = paths.resolve(out)
  if paths.occupied(out_path) and not force and (bundle.kind != "image" or not out_path.is_dir()):
    raise infill.InfillError(f"{out_path} exists: not replaced; pass --force to replace it, or give another -o.")
  condition = infill.load_condition(input_path, mask, bundle.kind, bundle.event_shape, mask_char)
  starts, planned = infill.plan_unknown(bundle_step_losses(bundle), budget, condition.num_known)
  process = bundle.process
  samples = infill.generate(bundle.logits_fn, process, seed, condition, starts, num_samples)
  line = infill.summary(budget, process.num_stages, planned, condition, infill.unit_of(bundle.kind))
  try:
    if bundle.kind == "image":
      written = infill.write_images(out, samples, condition, line, force=force)
    else:
      written = [infill.write_text(out, samples, bundle.kind, condition, line, force=force)]
  except (FileExistsError, IsADirectoryError) as e:
    raise infill.InfillError(f"{e}: nothing written; pass --force to replace files, or give another -o.") from None
  return samples, line, written


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(
    prog="python -m ardm_jax.generate",
    description="Infill text, inpaint images or continue a prompt with a codec bundle, under a budget.",
  )
  parser.add_argument("input", nargs="?", default="", help="text with mask characters, or a PNG; none: from nothing")
  parser.add_argument("--model", required=True, help="the codec bundle (python -m ardm_jax.compress export)")
  parser.add_argument("--budget", type=int, required=True, help="network calls per stage, 1..unknown steps")
  parser.add_argument("--num_samples", type=int, default=4)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--mask", default="", help="images: PNG of the image's size, nonzero = unknown")
  parser.add_argument("--mask_char", default="_", help="text: the character that marks unknown positions")
  parser.add_argument("-o", "--output", required=True, help="text: output file; images: output directory")
  parser.add_argument("--force", action="store_true", help="replace existing output files")
  args = parser.parse_args(argv)
  console.quiet_library_logs(0)
  bundle = codec.load_bundle(args.model)
  samples, line, written = generate(
    bundle,
    args.input,
    args.output,
    args.budget,
    mask=args.mask,
    mask_char=args.mask_char,
    num_samples=args.num_samples,
    seed=args.seed,
    force=args.force,
  )
  if bundle.kind != "image":
    print(paths.resolve(written[0]).read_bytes().decode(errors="replace"), end="")
  print(f"{len(samples)} samples, {line}: {', '.join(written) if len(written) < 4 else written[-1]}")


def run():
  console.exit_promptly_on_interrupt()
  try:
    main()
  except (infill.InfillError, codec.CodecError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  run()
