"""Defaults shared by every run config; each config file overrides what differs.

The allowed values of every key, and which keys each data source, model and objective kind has, are in
ardm_jax/training/config_schema.py, which checks a config before a run starts.
"""

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  """Returns the fields every run has, with neutral defaults."""
  c = ml_collections.ConfigDict()
  c.seed = 0  # Seed of parameter init and of the training/eval rngs.

  c.data = ml_collections.ConfigDict()  # Fields per source: see image_data / text_data / files_data below.
  # 'cifar10' | 'text8' | 'embedded_text' | 'embedded_bytes' | 'embedded_images' | 'embedded_photos' | 'files'.
  c.data.name = ""
  c.data.seed = 0  # Seed of the data order, crops and augmentation.

  c.model = ml_collections.ConfigDict()
  c.model.name = ""  # 'unet' | 'transformer' | 'diffwave'; the remaining keys are that module's fields.
  # 'paper' (the paper's network, for fidelity) | 'improved' (learns faster at equal size: docs/networks.md).
  c.model.arch = "paper"
  c.model.dtype = "float32"  # Compute dtype 'float32' | 'bfloat16' (params, optimizer state, logits stay float32).
  c.model.attention = "einsum"  # 'einsum' (Flax default) or 'dot_product' (cuDNN): models/layers.py ATTENTION.
  c.model.remat = "none"  # Rematerialise every block: 'none' or a policy of models/layers.py REMAT_POLICIES.
  c.model.dropout = 0.0  # Dropout rate in [0, 1).

  c.objective = oa_objective(absorbing_value=128)

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "adam"  # 'adam' | 'adamw'.
  c.optimizer.learning_rate = 1e-4  # Peak learning rate.
  c.optimizer.warmup_steps = 0  # Linear warmup from 0 to the peak.
  c.optimizer.b1 = 0.9
  c.optimizer.b2 = 0.999
  c.optimizer.weight_decay = 0.0  # adamw only.
  c.optimizer.grad_clip_norm = 100.0  # Global-norm clipping.
  c.optimizer.ema_decay = 0.9999  # EMA of parameters used for eval and sampling.

  c.training = ml_collections.ConfigDict()
  c.training.batch_size = 128  # Global batch, split over all devices and hosts.
  c.training.num_train_steps = 1_000_000
  c.training.log_every_steps = 100
  c.training.eval_every_steps = 10_000
  c.training.checkpoint_every_steps = 5_000
  c.training.max_checkpoints_to_keep = 3
  c.training.tracker_momentum = 0.95  # EMA momentum of the per-step losses L_t.
  c.training.on_nonfinite = "stop"  # 'stop' (raise, naming the step) | 'skip' (drop the update, count it).
  c.training.grad_accum_steps = 1  # Micro-batches per update (same update as the full batch, less memory).
  c.training.compilation_cache_dir = ""  # Persistent XLA compilation cache directory; '' = off.
  c.training.profile_steps = 0  # > 0: jax.profiler trace of that many steps from step 10, hourly (workdir).

  c.eval = ml_collections.ConfigDict()
  c.eval.batch_size = 128
  c.eval.num_passes = 4  # Passes over the test set, one (t, order) per example per pass.
  c.eval.max_batches = 0  # 0 = the whole split; > 0 caps batches per pass (quick checks).
  c.eval.plan_budgets = "1,5,10,20,D"  # --mode=plan measures the test bpd under these budgets' plans ('D': all).
  c.eval.plan_points = 64  # Test points of that measurement (one random order each).

  c.sample = ml_collections.ConfigDict()
  # Network calls per stage, 1..D (D = sequential sampling); required, each config sets it.
  c.sample.budget = ml_collections.config_dict.placeholder(int)
  c.sample.num_samples = 16
  c.sample.seed = 0
  # Conditional generation: a text in which mask_char marks the unknown positions (shorter than a row: a prompt
  # to continue), or a PNG whose unknown pixels `mask` (a PNG, nonzero) or its transparency marks; '' = none.
  c.sample.prompt = ""
  c.sample.mask = ""
  c.sample.mask_char = "_"

  c.compress = ml_collections.ConfigDict()
  # Network calls per stage used to code each data point, 1..D; required, each config sets it.
  c.compress.budget = ml_collections.config_dict.placeholder(int)
  c.compress.num_examples = 8  # Test points coded (and decoded back) one message each.
  c.compress.order_seed = 0  # Seed of the one fixed order shared by every message.
  return c


def oa_objective(absorbing_value: int) -> ml_collections.ConfigDict:
  """Objective section of an order-agnostic ARDM."""
  o = ml_collections.ConfigDict()
  o.kind = "oa"
  o.absorbing_value = absorbing_value  # Input value of unknown variables (images 128, text K).
  o.ce_weight = 0.001  # Weight of the auxiliary cross-entropy term.
  o.antithetic = True  # Stratified steps t across the batch.
  return o


def upscale_objective(
  oa: ml_collections.ConfigDict, transitions: str, parametrisation: str, branching: int = 4
) -> ml_collections.ConfigDict:
  """Objective section of an upscale ARDM with the loss settings (ce_weight, antithetic) of the OA section `oa`."""
  o = ml_collections.ConfigDict()
  o.kind = "upscale"
  o.transitions = transitions  # 'digits' (base-b) | 'text8' (space/vowel/consonant, then the letter).
  if transitions == "digits":
    o.branching = branching  # Branching factor b >= 2; S = ceil(log_b K) stages.
  o.parametrisation = parametrisation  # 'direct' (b logits) | 'data' (K logits renormalised).
  o.ce_weight = oa.ce_weight
  o.antithetic = oa.antithetic
  return o


def image_data(name: str) -> ml_collections.ConfigDict:
  """Data section of an image source ('cifar10', 'embedded_images' or 'embedded_photos')."""
  d = ml_collections.ConfigDict()
  d.name = name
  d.seed = 0  # Seed of the data order and augmentation.
  d.augment = False  # Random flips + 90-degree rotations of training images.
  d.eval_split = "test"  # The only held-out split of image sources.
  if name == "cifar10":
    d.tfds_data_dir = ""  # tfds data_dir; '' = tfds's default ($TFDS_DATA_DIR or ~/tensorflow_datasets).
    d.download = False  # Let tfds download and prepare CIFAR-10 if it is missing.
  elif name == "embedded_photos":
    d.image_size = 32  # Patch size cut from scikit-image's photos (test: the held-out cat photo's grid).
  else:
    d.image_size = 32  # Patch size cut from the embedded photos.
    d.downscale = 1  # Integer downscale of the photos before cutting.
  return d


def text_data(name: str) -> ml_collections.ConfigDict:
  """Data section of a text source ('text8', 'embedded_text' or 'embedded_bytes')."""
  d = ml_collections.ConfigDict()
  d.name = name
  d.seed = 0  # Seed of the data order and crops.
  d.seq_len = 250  # Characters per example (D).
  d.eval_split = "test"  # 'test' or 'valid' (text8 only).
  if name == "text8":
    # The standard text8.zip (http://mattmahoney.net/dc/text8.zip), not unzipped; required (local, ~ or gs://).
    d.path = ml_collections.config_dict.placeholder(str)
  return d


def audio_data(name: str) -> ml_collections.ConfigDict:
  """Data section of an audio source ('sc09' or 'embedded_audio'): 16-bit mono clips, K = 65536."""
  d = ml_collections.ConfigDict()
  d.name = name
  d.seed = 0  # Seed of the data order.
  d.eval_split = "test"  # 'test' or 'valid' (sc09 only).
  if name == "sc09":
    # The extracted Speech Commands archive (folders zero/ .. nine/, testing_list.txt, validation_list.txt).
    d.path = ml_collections.config_dict.placeholder(str)
  else:
    d.clip_len = 64  # Samples per synthesised clip (D), at 16 kHz.
  return d


def files_data(kind: str) -> ml_collections.ConfigDict:
  """Data section of the 'files' source: your own files, all of one kind ('text', 'bytes' or 'images')."""
  d = ml_collections.ConfigDict()
  d.name = "files"
  d.seed = 0  # Seed of the data order and crops (and augmentation).
  # A folder (read recursively) or glob of the files, local, ~/... or gs://...; required.
  d.path = ml_collections.config_dict.placeholder(str)
  d.kind = kind  # 'text' (cleaned to a-z and space, K = 27) | 'bytes' (any file, K = 256) | 'images' (PNG).
  d.test_fraction = 0.1  # Share of the files held out for eval, chosen by a hash of each file's name.
  d.eval_split = "test"  # The held-out files.
  if kind == "images":
    d.image_size = 16  # Patch size: random crops for training, the non-overlapping grid for eval.
    d.augment = False  # Random flips + 90-degree rotations of training crops.
  else:
    d.seq_len = 64  # Characters (bytes) per example (D).
  return d


def local_run(c: ml_collections.ConfigDict, *, batch_size: int, num_samples: int, budget: int) -> None:
  """The run settings of a `:local` variant: 20 steps on a CPU in seconds, a short eval, few samples."""
  c.training.batch_size = batch_size
  c.training.num_train_steps = 20
  c.training.log_every_steps = 5
  c.training.eval_every_steps = 20
  c.training.checkpoint_every_steps = 10
  c.eval.batch_size = batch_size
  c.eval.num_passes = 1
  c.eval.max_batches = 2
  c.eval.plan_budgets = f"1,{budget}"
  c.eval.plan_points = 8
  c.sample.num_samples = num_samples
  c.sample.budget = budget
  c.compress.budget = budget
  c.compress.num_examples = 2


def parse_arg(arg, allowed=("", "local")) -> str:
  """Validates the `--config=file.py:ARG` variant name."""
  arg = arg or ""
  if arg not in allowed:
    raise ValueError(f"Unknown config variant {arg!r}; choose one of {list(allowed)}.")
  return arg
