r"""Upscale ARDM on SC09 (arXiv 2110.02037, section 5, SC09 table: 6.29 bpd; OA-ARDM 7.93, WaveNet 7.77).

  python main.py --config=configs/sc09_upscale.py --config.data.path=~/speech_commands --workdir=$HOME/runs/sc09_up
  python main.py --config=configs/sc09_upscale.py:local --workdir=/tmp/sc09_up_local   # tiny, CPU

Bit upscaling as in the authors' released code (google-research/google-research, autoregressive_diffusion/
experiments/audio): branching factor 2, so 16 stages, the most significant bit first; stage s shows every
sample with its 16 - s least significant bits zeroed (the reference's zero_least_significant transitions;
here of the offset-binary class, int16 + 32768), the "direct" parametrisation (2 logits per sample and stage)
and a categorical output; the network and optimiser are those of configs/sc09.py (the stage enters through
the step embedding and a stage one-hot input). Differences from the reference are those listed in sc09.py.
"""

from configs import common
from configs import sc09


def get_config(arg=None):
  c = sc09.get_config(arg)
  c.objective = common.upscale_objective(c.objective, "digits", "direct", branching=2)  # 16 one-bit stages
  return c
