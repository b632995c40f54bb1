r"""OA-ARDM on text8 (paper: 1.43 +- 0.001 bpc with 250 steps; 1.51 with 20 planned steps).

Get the data: wget http://mattmahoney.net/dc/text8.zip (the code reads the zip directly).

The paper's network by default (model.arch='paper': 85,098,267 parameters, 69.0 TFLOP per train step at batch
512, XLA); --config.model.arch=improved adds rotary positions and a SwiGLU MLP (85,112,091 parameters, 68.8
TFLOP analytic), which learned far faster at small scale (docs/networks.md).

  python main.py --config=configs/text8.py --config.data.path=/data/text8.zip --workdir=$HOME/runs/text8_oa
  python main.py --config=configs/text8.py:local --config.data.path=/data/text8.zip --workdir=/tmp/t8
"""

from configs import common


def get_config(arg=None):
  variant = common.parse_arg(arg)
  c = common.base_config()
  c.data = common.text_data("text8")
  c.objective.absorbing_value = 27  # Token id K: the extra absorbing token.
  c.objective.ce_weight = 0.0001
  c.model.name = "transformer"
  c.model.num_layers = 12
  c.model.width = 768
  c.model.num_heads = 12
  c.model.mlp_dim = 3072
  c.model.dropout = 0.0
  c.optimizer.name = "adamw"
  c.optimizer.learning_rate = 5e-4
  c.optimizer.warmup_steps = 5000
  c.optimizer.b1 = 0.9
  c.optimizer.b2 = 0.99
  c.optimizer.weight_decay = 0.001
  c.optimizer.grad_clip_norm = 0.25
  c.optimizer.ema_decay = 0.995
  c.training.batch_size = 512
  c.training.num_train_steps = 3_000_000
  c.eval.batch_size = 512
  c.eval.num_passes = 1
  c.sample.budget = 250  # D: sequential sampling.
  c.compress.budget = 250
  if variant == "local":
    c.data.seq_len = 32
    c.model.num_layers = 2
    c.model.width = 64
    c.model.num_heads = 2
    c.model.mlp_dim = 128
    c.optimizer.learning_rate = 1e-3
    c.optimizer.warmup_steps = 5
    c.optimizer.grad_clip_norm = 1.0
    c.optimizer.ema_decay = 0.9
    common.local_run(c, batch_size=16, num_samples=4, budget=8)
  return c
