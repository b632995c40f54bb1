r"""OA-ARDM on SC09, 16 kHz 16-bit spoken digits (arXiv 2110.02037, section 5, SC09 table: OA-ARDM 7.93 bpd,
Upscale ARDM 6.29, WaveNet 7.77; D = 16000 samples per clip, K = 65,536).

  python main.py --config=configs/sc09.py --config.data.path=~/speech_commands --workdir=$HOME/runs/sc09_oa
  python main.py --config=configs/sc09.py:local --workdir=/tmp/sc09_local   # tiny, CPU, synthesised audio

Settings of the authors' released code (google-research/google-research, autoregressive_diffusion/
experiments/audio): a non-causal DiffWave-style network (36 residual blocks, 256 channels, dilation cycle 12),
a discretized logistic mixture of 30 components over the 65,536 values, batch 256, 1M steps, Adam lr 1e-4
constant after 15k warmup steps, b2 0.999, no weight decay, gradient clipping at 1000, EMA 0.995, ce term
1e-4 and 32 eval passes. Where this config differs: the data is read from the extracted Speech Commands
archive (tensorflow-datasets' speech_commands labels the digits '_unknown_', see ardm_jax/data/audio.py),
samples are classes in offset binary (int16 + 32768) and unknown samples are shown as silence (absorbing value
32768: 0 after scaling to [-1, 1]), beside the mask channel; the steps are stratified across the batch
(objective.antithetic), and the network's step embedding is this repository's (models/diffwave.py).

Train step at batch 256 (XLA cost analysis; analytic count in brackets; benchmarks/train_step_cost.py): 469.0
(466.1) TFLOP, 24,057,434 parameters; sc09_upscale.py: 468.5 (465.6) TFLOP, 24,040,962 parameters. Without
rematerialisation one step holds ~850 GiB of activations: a single accelerator needs model.remat=full and a
smaller batch (or training.grad_accum_steps).
model.arch: 'paper' and 'improved' are the same network here (24,057,434 parameters, 469.0 TFLOP per train step,
XLA): no change measured on the small DiffWave stack learned faster (docs/networks.md).
"""

from configs import common


def get_config(arg=None):
  variant = common.parse_arg(arg)
  c = common.base_config()
  c.data = common.audio_data("sc09")
  c.objective.absorbing_value = 32768  # Silence: a masked sample is shown as 0 in [-1, 1].
  c.objective.ce_weight = 1e-4
  c.objective.num_mixtures = 30  # Discretized logistic mixture over the 65,536 classes.
  c.model.name = "diffwave"
  del c.model.attention  # Convolutions only.
  c.model.ch = 256
  c.model.num_blocks = 36
  c.model.dilation_cycle = 12  # Dilations 1, 2, ..., 2048, three times.
  c.model.dropout = 0.0
  c.model.use_step = True  # The step t embedded in every block (reference); False: the stage only.
  c.optimizer.learning_rate = 1e-4
  c.optimizer.warmup_steps = 15_000
  c.optimizer.b2 = 0.999
  c.optimizer.weight_decay = 0.0
  c.optimizer.grad_clip_norm = 1000.0
  c.optimizer.ema_decay = 0.995
  c.training.batch_size = 256
  c.training.num_train_steps = 1_000_000
  c.eval.batch_size = 64
  c.eval.num_passes = 32
  c.sample.budget = 16000  # D: sequential sampling.
  c.sample.num_samples = 8
  c.compress.budget = 500
  if variant == "local":
    c.data = common.audio_data("embedded_audio")
    c.data.clip_len = 64  # 4 ms clips of synthesised vowels.
    c.objective.num_mixtures = 4
    c.model.ch = 16
    c.model.num_blocks = 4
    c.model.dilation_cycle = 3
    c.optimizer.learning_rate = 1e-3
    c.optimizer.warmup_steps = 0
    c.optimizer.ema_decay = 0.9
    common.local_run(c, batch_size=8, num_samples=2, budget=4)
  return c
