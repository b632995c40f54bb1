r"""Quickstart on embedded data (no download): a small OA-ARDM on cleaned Python-docs text.

  python main.py --config=configs/quickstart.py --workdir=/tmp/ardm_quickstart
  python main.py --config=configs/quickstart.py:images --workdir=/tmp/ardm_quickstart_img
  python main.py --config=configs/quickstart.py:bytes --workdir=/tmp/ardm_quickstart_bytes
  python main.py --config=configs/quickstart.py:audio --workdir=/tmp/ardm_quickstart_audio --mode=train,sample

`audio` is an OA-ARDM with the SC09 network and output head (DiffWave stack, logistic mixture over the 65,536
16-bit values) on 8 ms clips of synthesised vowels (data.name=embedded_audio; nothing recorded ships with the
packages or the OS image); --mode=sample writes 16 kHz 16-bit WAVs and a waveform/spectrogram PNG. Expected
(1500 steps, 1.5-5 minutes on a 2-core CPU): held-out 10.7-11.0 bpd against the uniform 16 (11.04 +- 0.08 with
16 eval passes in the latest run).

`bytes` models the same documentation as raw bytes (K = 256, uncleaned), so it can code any file
(python -m ardm_jax.compress).

Expected (2-core CPU, about 3 minutes): held-out 2.61 +- 0.02 bpc (uniform: log2(27) = 4.75) with the improved
Transformer (model.arch='improved': rotary positions, SwiGLU; the paper's network reached 2.93 +- 0.02 here).
"""

from configs import common
from configs import sc09
from configs import text8


def get_config(arg=None):
  variant = common.parse_arg(arg, allowed=("", "images", "bytes", "audio"))
  if variant == "audio":
    c = sc09.get_config("local")
    c.data.clip_len = 128  # 8 ms at 16 kHz.
    c.objective.num_mixtures = 10
    c.model.ch = 32
    c.model.num_blocks = 6
    c.model.dilation_cycle = 3  # Dilations 1, 2, 4 twice: each output sees 14 samples on either side.
    c.model.use_step = False  # With t, a short run saturates the gated units on it (models/diffwave.py).
    c.optimizer.learning_rate = 1e-3
    c.optimizer.warmup_steps = 100
    c.optimizer.grad_clip_norm = 100.0
  elif variant == "images":
    c = common.base_config()
    c.data = common.image_data("embedded_images")
    c.data.image_size = 8
    c.data.downscale = 4
    c.data.augment = True
    c.objective.absorbing_value = 128
    c.model.name = "unet"
    c.model.ch = 32
    c.model.num_res_blocks = 2
    c.model.attn_everywhere = False
    c.model.num_heads = 1
    c.model.dropout = 0.0
    c.optimizer.learning_rate = 1e-3
    c.optimizer.grad_clip_norm = 100.0
  else:
    c = text8.get_config("local")
    c.data = common.text_data("embedded_bytes" if variant == "bytes" else "embedded_text")
    c.data.seq_len = 32
    if variant == "bytes":
      c.objective.absorbing_value = 256  # Token id K: the extra absorbing token.
    c.model.arch = "improved"  # Rotary positions and a SwiGLU MLP: learns faster (docs/networks.md).
    c.model.num_layers = 2
    c.model.width = 128
    c.model.num_heads = 4
    c.model.mlp_dim = 512
    c.optimizer.learning_rate = 2e-3
    c.optimizer.warmup_steps = 100
  c.optimizer.ema_decay = 0.99
  c.training.batch_size = 32 if variant == "audio" else 64
  c.training.num_train_steps = 1500 if variant == "audio" else 2000
  c.training.log_every_steps = 100
  c.training.eval_every_steps = 1000
  c.training.checkpoint_every_steps = 500
  c.eval.batch_size = 64
  c.eval.num_passes = 2
  c.eval.max_batches = 0
  c.eval.plan_budgets = "1,5,10,20,D"  # --mode=plan measures these plans' test bpd, and evenly spaced ones.
  c.eval.plan_points = 64
  c.sample.num_samples = 4 if variant == "audio" else 8
  c.sample.budget = 16
  c.compress.budget = 16
  c.compress.num_examples = 8
  return c
