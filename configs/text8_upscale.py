r"""Upscale ARDM on text8: 2 stages (space / vowel / consonant, then the letter).

The paper reports that it did not beat OA-ARDM on text (1.43 bpc).

  python main.py --config=configs/text8_upscale.py --config.data.path=/data/text8.zip --workdir=...
"""

from configs import common
from configs import text8


def get_config(arg=None):
  c = text8.get_config(arg)
  c.objective = common.upscale_objective(c.objective, "text8", "data")
  return c
