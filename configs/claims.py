r"""The CPU-scale experiments of benchmarks/paper_claims.py: small versions of the paper's, on embedded data.

  python benchmarks/paper_claims.py                  # every experiment (resumes from its workdirs)
  python main.py --config=configs/claims.py:images_upscale4 --workdir=/tmp/claims_up4   # one of them alone

Variants (the experiments of one group train for the same number of steps):
  text, text_upscale: the 27-letter embedded text, D = 32, the improved Transformer; OA-ARDM against the 2-stage
    upscale (space / vowel / consonant, then the letter).
  images, images_upscale4, images_upscale16: 8x8 patches of the embedded photos (held-out photo for test), a
    small U-Net; OA-ARDM against Upscale-4 and Upscale-16 ('direct'), with augmentation (as the paper's upscale
    runs).
  audio, audio_upscale: the embedded 8 ms clips, a small DiffWave stack; OA with a logistic mixture against
    16-stage bit upscaling (categorical, 'direct').
"""

from configs import common
from configs import quickstart

VARIANTS = ("text", "text_upscale", "images", "images_upscale4", "images_upscale16", "audio", "audio_upscale")
STEPS = {"text": 2000, "images": 2000, "audio": 1500}  # Per group: equal steps within it.


def get_config(arg=None):
  variant = common.parse_arg(arg, allowed=VARIANTS)
  group = variant.split("_")[0]
  if group == "text":
    c = quickstart.get_config()
    if variant == "text_upscale":
      c.objective = common.upscale_objective(c.objective, "text8", "data")
  elif group == "images":
    c = quickstart.get_config("images")
    c.data = common.image_data("embedded_photos")
    c.data.image_size = 8
    c.data.augment = True
    c.model.arch = "paper"  # For the U-Net both archs are the paper network (docs/networks.md).
    if variant != "images":
      branching = 4 if variant == "images_upscale4" else 16
      c.objective = common.upscale_objective(c.objective, "digits", "direct", branching=branching)
  else:
    c = quickstart.get_config("audio")
    if variant == "audio_upscale":
      c.objective.num_mixtures = 0
      c.objective = common.upscale_objective(c.objective, "digits", "direct", branching=2)
  c.training.num_train_steps = STEPS[group]
  c.training.eval_every_steps = STEPS[group]
  c.training.checkpoint_every_steps = 250
  c.eval.num_passes = 8
  c.eval.max_batches = 0
  c.eval.plan_points = 128
  if group == "images":
    c.eval.plan_budgets = "1,5,10,20,50,D"
  return c
