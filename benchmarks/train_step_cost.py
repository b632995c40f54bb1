r"""Cost of one train step of each full-size paper config: FLOPs (XLA against an analytic count) and memory.

Compiles the jitted train step at the config's global batch (lower + compile only; nothing runs) for float32
and bfloat16 compute, each without and with rematerialisation ('full': every block keeps only its inputs), and
reads XLA's cost analysis (FLOPs, hardware independent) and memory analysis (arguments + outputs + temporaries
- donated aliases: the peak of this compiler's buffer assignment; a GPU/TPU compiler fuses differently, so its
peak differs somewhat). The analytic count is written from the architecture alone (convolutions, dense layers,
attention; 2 FLOPs per multiply-add; backward = 2 x forward), independently of the Flax code, and must agree
with XLA within 10% without rematerialisation.

  python benchmarks/train_step_cost.py [--configs=cifar10,text8] [--variants=float32/none,bfloat16/full]

Prints a table and writes benchmarks/results/train_step_cost.json.
"""

import importlib
import json
import math
import pathlib
import sys
import time

# Run from a checkout, no install: the checkout replaces this folder on the path, so that compression.py here
# does not shadow the `compression` module (Python 3.14's standard library) that jax's compilation cache imports.
sys.path.pop(0)
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from absl import app
from absl import flags
import jax
import jax.numpy as jnp

from ardm_jax.training import experiment
from ardm_jax.training import train

FLAGS = flags.FLAGS
flags.DEFINE_list(
  "configs",
  ["text8", "text8_upscale", "cifar10", "cifar10_middle_attn", "cifar10_upscale", "sc09", "sc09_upscale"],
  "Config modules; cifar10_middle_attn is cifar10 with model.attn_everywhere=False.",
)
flags.DEFINE_list(
  "variants", ["float32/none", "bfloat16/none", "float32/full", "bfloat16/full"], "model.dtype/model.remat pairs."
)
flags.DEFINE_list(
  "all_variants",
  ["text8", "cifar10"],
  "Configs compiled in every variant; the others only in the first (a U-Net compile takes minutes "
  "on a small CPU, and the upscale networks differ from these only in their input/output layers).",
)
flags.DEFINE_bool(
  "merge", True, "Keep the rows of --out for the (config, dtype, remat) not compiled now (e.g. after --configs=sc09)."
)
flags.DEFINE_bool("print_only", False, "Print the table of the JSON at --out without compiling.")
flags.DEFINE_list("archs", ["paper"], "model.arch values: 'paper' (the paper's network) and/or 'improved'.")
flags.DEFINE_string("out", str(pathlib.Path(__file__).parent / "results" / "train_step_cost.json"), "JSON path.")

TEXT_CLASSES = {"text8": 27, "embedded_text": 27, "embedded_bytes": 256}


def load_config(name: str, arg=None):
  """configs/<name>.py's config (get_config(arg)); cifar10_middle_attn is cifar10 with middle attention only."""
  if name == "cifar10_middle_attn":
    config = importlib.import_module("configs.cifar10").get_config(arg)
    config.model.attn_everywhere = False
    return config
  return importlib.import_module(f"configs.{name}").get_config(arg)


def event_of(config):
  """(event shape, classes) of a config's data, without reading it."""
  if config.data.name in TEXT_CLASSES:
    return (config.data.seq_len,), TEXT_CLASSES[config.data.name]
  if config.data.name == "cifar10":
    return (32, 32, 3), 256
  if config.data.name == "sc09":
    return (16000,), 65536
  raise ValueError(f"no shape known for data.name = {config.data.name!r}")


def step_cost(compiled) -> dict:
  """XLA's FLOPs (per device) and memory of a compiled step: peak = arguments + outputs + temporaries - aliases."""
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  memory = compiled.memory_analysis()
  peak = (
    memory.argument_size_in_bytes + memory.output_size_in_bytes + memory.temp_size_in_bytes - memory.alias_size_in_bytes
  )
  return {
    "xla_flops": float(cost["flops"]),
    "peak_bytes": int(peak),
    "argument_bytes": int(memory.argument_size_in_bytes),
    "temp_bytes": int(memory.temp_size_in_bytes),
  }


def unet_forward_flops(
  ch: int,
  num_res_blocks: int,
  attn_everywhere: bool,
  height: int,
  width: int,
  channels: int,
  num_stages: int,
  outputs_per_channel: int,
) -> float:
  """Multiply-add FLOPs (x2) of one U-Net forward pass on one example (arXiv 2110.02037, appendix)."""
  pos = height * width

  def conv3x3(c_in, c_out):
    return 2 * pos * 9 * c_in * c_out

  def dense(c_in, c_out, rows=pos):
    return 2 * rows * c_in * c_out

  def res_block(c_in):
    shortcut = dense(c_in, ch) if c_in != ch else 0
    return conv3x3(c_in, ch) + dense(4 * ch, ch, rows=1) + conv3x3(ch, ch) + shortcut

  attention = 4 * dense(ch, ch) + 2 * (2 * pos * pos * ch)  # q, k, v, out projections; QK^T and AV.
  emb_ch = ch // 4
  flops = dense(ch, 4 * ch, rows=1) + dense(4 * ch, 4 * ch, rows=1)  # Step embedding MLP.
  flops += conv3x3(channels + channels + (num_stages if num_stages > 1 else 0), 3 * emb_ch)  # Input conv.
  flops += dense(channels * emb_ch, emb_ch)  # Value embeddings projected.
  flops += num_res_blocks * res_block(ch)  # Down.
  flops += 2 * res_block(ch) + attention  # Middle.
  flops += (num_res_blocks + 1) * res_block(2 * ch)  # Up, on concat(h, skip).
  flops += (2 * num_res_blocks + 1) * attention * attn_everywhere
  flops += conv3x3(ch, channels * outputs_per_channel)  # Output conv.
  return flops


def transformer_forward_flops(
  num_layers: int, width: int, mlp_dim: int, length: int, outputs: int, swiglu: bool = False
) -> float:
  """Multiply-add FLOPs (x2) of one Transformer forward pass on one sequence (arXiv 2110.02037, appendix).

  swiglu: the improved network's MLP, three matrices of 2/3 the width (models/transformer.py); its adaLN
  modulations act once per sequence (negligible) and rotary positions are elementwise.
  """
  mlp = 2 * 3 * length * width * (2 * mlp_dim // 3) if swiglu else 2 * 2 * length * width * mlp_dim
  per_layer = 2 * length * 4 * width * width + 2 * (2 * length * length * width) + mlp
  return num_layers * per_layer + 2 * length * width * outputs


def diffwave_forward_flops(
  ch: int, num_blocks: int, length: int, num_stages: int, outputs: int, temb_features: int = 128
) -> float:
  """Multiply-add FLOPs (x2) of one DiffWave forward pass on one clip (models/diffwave.py; DiffWave, arXiv
  2009.09761): per block a step projection, a 3-tap dilated conv to 2 ch and a 1x1 conv to 2 ch."""
  temb = 2 * (temb_features * 4 * temb_features + 4 * temb_features * 4 * temb_features)  # Step MLP.
  inputs = 2 + (num_stages if num_stages > 1 else 0)  # Value, known mask, stage one-hot.
  block = 2 * 4 * temb_features * ch + 2 * length * 3 * ch * 2 * ch + 2 * length * ch * 2 * ch
  return temb + 2 * length * inputs * ch + num_blocks * block + 2 * length * ch * ch + 2 * length * ch * outputs


def analytic_step_flops(config, exp: experiment.Experiment) -> float:
  """Forward + backward (2 x forward: gradients w.r.t. activations and weights) over the global batch."""
  m = config.model
  outputs = exp.model.num_classes_out
  if m.name == "unet":
    height, width, channels = exp.dataset.event_shape
    forward = unet_forward_flops(
      m.ch, m.num_res_blocks, m.attn_everywhere, height, width, channels, exp.num_stages, outputs
    )
  elif m.name == "diffwave":
    forward = diffwave_forward_flops(m.ch, m.num_blocks, exp.num_variables, exp.num_stages, outputs)
  else:
    swiglu = exp.model.option("mlp") == "swiglu"
    forward = transformer_forward_flops(m.num_layers, m.width, m.mlp_dim, exp.num_variables, outputs, swiglu)
  return 3 * forward * config.training.batch_size


def compile_step(exp: experiment.Experiment):
  trainer = train.Trainer(exp, devices=jax.devices()[:1])
  x = jax.ShapeDtypeStruct(
    (exp.config.training.batch_size,) + tuple(exp.dataset.event_shape), jnp.int32, sharding=trainer.batch_sharding
  )
  return trainer.train_step.lower(trainer.abstract_state(), x).compile()


def main(argv):
  del argv
  if FLAGS.print_only:
    print_table(json.loads(pathlib.Path(FLAGS.out).read_text())["rows"])
    return
  out = pathlib.Path(FLAGS.out)
  kept = json.loads(out.read_text())["rows"] if FLAGS.merge and out.exists() else []
  rows = []
  # Every config's first variant before the other variants, so an interrupted run has every FLOP count.
  jobs = [(name, FLAGS.variants[0], arch) for arch in FLAGS.archs for name in FLAGS.configs]
  jobs += [
    (name, v, arch)
    for arch in FLAGS.archs
    for name in FLAGS.configs
    if name in FLAGS.all_variants
    for v in FLAGS.variants[1:]
  ]
  for name, variant, arch in jobs:
    dtype, remat = variant.split("/")
    config = load_config(name)
    config.model.dtype, config.model.remat, config.model.arch = dtype, remat, arch
    exp = experiment.shape_only_experiment(config, *event_of(config))
    start = time.perf_counter()
    compiled = compile_step(exp)
    compile_s = time.perf_counter() - start
    cost = step_cost(compiled)
    num_params = sum(math.prod(s.shape) for s in jax.tree.leaves(jax.eval_shape(exp.init_params, jax.random.key(0))))
    row = {
      "config": name,
      "arch": arch,
      "dtype": dtype,
      "remat": remat,
      "batch": config.training.batch_size,
      "params": num_params,
      "xla_flops": cost["xla_flops"],
      "analytic_flops": analytic_step_flops(config, exp),
      "peak_bytes": cost["peak_bytes"],
      "argument_bytes": cost["argument_bytes"],
      "temp_bytes": cost["temp_bytes"],
      "compile_s": compile_s,
    }
    row["xla_over_analytic"] = row["xla_flops"] / row["analytic_flops"]
    rows.append(row)
    print(f"done {name} {arch} {variant} ({compile_s:.0f} s)", flush=True)
    write_json(merged(kept, rows))  # After every row: a long run interrupted keeps what it measured.
  print_table(merged(kept, rows))
  print(f"\nwrote {FLAGS.out}")


def merged(kept, rows):
  """The rows kept from before, less those measured again, then the new ones."""
  key = lambda r: (r["config"], r.get("arch", "paper"), r["dtype"], r["remat"])
  new = {key(r) for r in rows}
  return [r for r in kept if key(r) not in new] + rows


def print_table(rows):
  header = (
    "| config | arch | dtype | remat | batch | params | XLA TFLOP/step | analytic TFLOP/step | XLA/analytic "
    "| peak GiB | args GiB | temp GiB |"
  )
  print(f"\njax {jax.__version__}, {jax.devices()[0].device_kind} compiler\n\n{header}")
  print("|---" * (header.count("|") - 1) + "|")
  for r in rows:
    print(
      f"| {r['config']} | {r.get('arch', 'paper')} | {r['dtype']} | {r['remat']} | {r['batch']} | {r['params']:,} | "
      f"{r['xla_flops'] / 1e12:.1f} | {r['analytic_flops'] / 1e12:.1f} | {r['xla_over_analytic']:.3f} | "
      f"{r['peak_bytes'] / 2**30:.1f} | {r['argument_bytes'] / 2**30:.2f} | {r['temp_bytes'] / 2**30:.1f} |"
    )


def write_json(rows):
  out = pathlib.Path(FLAGS.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(
    json.dumps(
      {
        "jax": jax.__version__,
        "device": jax.devices()[0].device_kind,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "rows": rows,
      },
      indent=1,
    )
  )


if __name__ == "__main__":
  app.run(main)
