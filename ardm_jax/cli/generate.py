r"""Fill in the blanks with a codec bundle: infill text, inpaint images, continue a prompt, under a budget.

  python -m ardm_jax.generate --model=MODEL --budget=B [--num_samples=N] [--seed=S] [INPUT] -o OUT

Text models: INPUT is a text file in which --mask_char (default '_') marks the unknown positions; a file shorter
than the model's row is continued to the row length (a prompt); without INPUT the samples start from nothing.
OUT is a text file: a '# ' line with the calls used and the planned bits per unknown character, then one sample
per line. Image models: INPUT is a PNG of the model's size with --mask=MASK.png (nonzero = unknown) or with
alpha (transparent = unknown); OUT is a directory that receives sample_XX.png per sample and grid.png (the
input, the mask and the samples); each PNG's Comment says the calls used and the planned bpd. The planner plans
only the unknown steps, from the tracked step losses the bundle carries.
"""

from absl import app
from absl import flags
import numpy as np

from ardm_jax import codec
from ardm_jax.cli import errors
from ardm_jax.cli.flags import FLAGS
from ardm_jax.core import conditional
from ardm_jax.data import conditions
from ardm_jax.data import kinds
from ardm_jax.io import paths

flags.DEFINE_integer("num_samples", 4, "generate: samples to draw.")
flags.DEFINE_integer("seed", 0, "generate: seed of the samples.")
flags.DEFINE_string("mask", "", "generate, images: a PNG of the image's size, nonzero = unknown.")
flags.DEFINE_string("mask_char", "_", "generate, text: the character that marks unknown positions.")
MAX_SAMPLES = 4096  # Samples per run: each is a row of every network call.


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
  """Draws num_samples completions of the input and writes them; returns (samples, the summary, the paths)."""
  if bundle.kind not in ("text", "bytes", "image"):
    raise conditional.InfillError(f"generate takes text and image models; this bundle is a {bundle.kind!r} model.")
  if not 1 <= num_samples <= MAX_SAMPLES:
    raise conditional.InfillError(f"--num_samples={num_samples} must be in 1..{MAX_SAMPLES}.")
  out_path = paths.resolve(out)
  if paths.occupied(out_path) and not force and (bundle.kind != "image" or not out_path.is_dir()):
    raise conditional.InfillError(f"{out_path} exists: not replaced; pass --force to replace it, or give another -o.")
  condition = conditions.load_condition(input_path, mask, bundle.kind, bundle.event_shape, mask_char)
  starts, planned = conditional.plan_unknown(bundle.step_losses(), budget, condition.num_known)
  samples = conditional.generate(bundle.logits_fn, bundle.process, seed, condition, starts, num_samples)
  line = conditional.summary(budget, bundle.process.num_stages, planned, condition, kinds.UNITS[bundle.kind])
  try:
    if bundle.kind == "image":
      written = conditions.write_images(out, samples, condition, line, force=force)
    else:
      written = [conditions.write_text(out, samples, bundle.kind, condition, line, force=force)]
  except (FileExistsError, IsADirectoryError) as e:
    raise conditional.InfillError(f"{e}: nothing written; pass --force to replace files, or give another -o.") from None
  return samples, line, written


def main(argv):
  if len(argv) > 2:
    raise app.UsageError(f"give at most one INPUT, got {argv[1:]}")
  if not FLAGS.model or FLAGS.budget is None or not FLAGS.output:
    raise app.UsageError("generate needs --model=MODEL, --budget=B and -o OUT.")
  bundle = codec.load_bundle(FLAGS.model)
  samples, line, written = generate(
    bundle,
    argv[1] if len(argv) == 2 else "",
    FLAGS.output,
    FLAGS.budget,
    mask=FLAGS.mask,
    mask_char=FLAGS.mask_char,
    num_samples=FLAGS.num_samples,
    seed=FLAGS.seed,
    force=FLAGS.force,
  )
  if bundle.kind != "image":
    print(paths.resolve(written[0]).read_bytes().decode(errors="replace"), end="")
  print(f"{len(samples)} samples, {line}: {', '.join(written) if len(written) < 4 else written[-1]}")


def run():
  errors.run(main)
