r"""Upscale ARDM on CIFAR-10 (paper, Upscale-4 with augmentation: 2.64 +- 0.002 bpd; 2.68 with 4 x 50 steps).

python main.py --config=configs/cifar10_upscale.py --workdir=$HOME/runs/cifar10_up4
python main.py --config=configs/cifar10_upscale.py --config.objective.branching=16 --workdir=...  # Upscale-16
python main.py --config=configs/cifar10_upscale.py:local --workdir=/tmp/cifar10_up_local   # tiny, CPU
"""

from configs import cifar10
from configs import common


def get_config(arg=None):
  c = cifar10.get_config(arg)
  # Branching 4: 4 stages of 4 classes; 16 gives 2 stages.
  c.objective = common.upscale_objective(c.objective, "digits", "direct", branching=4)
  c.data.augment = True
  return c
