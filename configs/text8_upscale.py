r"""Upscale ARDM on text8: 2 stages (space / vowel / consonant, then the letter).

The paper reports that it did not beat OA-ARDM on text (1.43 bpc).
model.arch='paper' (85,101,339 parameters, 69.0 TFLOP per train step, XLA) or 'improved' (85,113,627 parameters,
68.8 TFLOP analytic): docs/networks.md.

  python main.py --config=configs/text8_upscale.py --config.data.path=/data/text8.zip --workdir=...
"""

from configs import common
from configs import text8


def get_config(arg=None):
  c = text8.get_config(arg)
  c.objective = common.upscale_objective(c.objective, "text8", "data")
  return c
