r"""A codec of your own files: a small OA-ARDM on a folder (or glob) of files of one kind, then export and encode.

  python main.py --config=configs/files.py:text --config.data.path=~/notes --workdir=/tmp/ardm_files
  python main.py --config=configs/files.py:bytes --config.data.path='~/src/*.py' --workdir=/tmp/ardm_files
  python main.py --config=configs/files.py:images --config.data.path=~/photos --workdir=/tmp/ardm_files
  python -m ardm_jax.compress export --workdir=/tmp/ardm_files -o /tmp/ardm_files_model
  python -m ardm_jax.compress encode --model=/tmp/ardm_files_model FILE -o FILE.ardm
  python -m ardm_jax.compress decode --model=/tmp/ardm_files_model FILE.ardm -o FILE.restored

Variants (data.kind): `text` models UTF-8 text cleaned to a-z and space (K = 27; encode other text with
--clean); `bytes` models the raw bytes of any files (K = 256); `images` models 8x8 patches of PNG files
(RGB or grayscale; encode takes PNGs of any size). data.path is local, ~/... or gs://...; a folder is read
recursively. About 10% of the files, chosen by a hash of their names (ardm_jax/data/files.py), are held out
for eval. Each variant trains for 300 steps, a minute or two on a 2-core CPU (measured: 500 steps of `bytes`
took 4 minutes on a 2-core CPU shared with other jobs); raise --config.training.num_train_steps (and the
model size) for a better codec.
"""

from configs import common


def get_config(arg=None):
  variant = common.parse_arg(arg, allowed=("text", "bytes", "images"))
  c = common.base_config()
  c.data = common.files_data(variant)
  if variant == "images":
    c.data.image_size = 8
    c.objective.absorbing_value = 128
    c.model.name = "unet"
    c.model.ch = 32
    c.model.num_res_blocks = 1
    c.model.attn_everywhere = False
    c.model.num_heads = 1
    c.optimizer.learning_rate = 1e-3
    c.training.batch_size = 32
    c.sample.budget = 16
    c.compress.budget = 16
  else:
    c.data.seq_len = 64
    c.objective.absorbing_value = 27 if variant == "text" else 256  # Token id K: the extra absorbing token.
    c.objective.ce_weight = 0.0001
    c.model.name = "transformer"
    c.model.arch = "improved"  # Rotary positions and a SwiGLU MLP: learns faster (docs/networks.md).
    c.model.num_layers = 2
    c.model.width = 128
    c.model.num_heads = 4
    c.model.mlp_dim = 512
    c.optimizer.name = "adamw"
    c.optimizer.learning_rate = 2e-3
    c.optimizer.warmup_steps = 50
    c.optimizer.b2 = 0.99
    c.optimizer.grad_clip_norm = 1.0
    c.training.batch_size = 32
    c.sample.budget = 16
    c.compress.budget = 16
  c.model.dropout = 0.0
  c.optimizer.ema_decay = 0.99
  c.training.num_train_steps = 300
  c.training.log_every_steps = 50
  c.training.eval_every_steps = 300
  c.training.checkpoint_every_steps = 100
  c.eval.batch_size = 32
  c.eval.num_passes = 1
  c.eval.max_batches = 8
  c.sample.num_samples = 4
  c.compress.num_examples = 4
  return c
