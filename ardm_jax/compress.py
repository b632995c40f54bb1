r"""Compress your own files with a trained ARDM (codec.py has the formats).

  python -m ardm_jax.compress export --workdir=W -o MODEL [--budgets=20,100]  # the workdir's own config
  python -m ardm_jax.compress encode --model=MODEL [--budget=B] INPUT... -o OUT
  python -m ardm_jax.compress decode --model=MODEL INPUT.ardm... -o OUT
  python -m ardm_jax.compress info --model=MODEL [INPUT.ardm...]

With one input, OUT is the output file; with several, a directory (created if missing) that receives
INPUT.ardm (encode) or the original file names (decode).
"""

import sys
import time

from absl import app
from absl import flags
from etils import epath
import jax
import jax.numpy as jnp
from ml_collections import config_flags
import numpy as np

from ardm_jax import codec
from ardm_jax import console
from ardm_jax import likelihood
from ardm_jax import orders
from ardm_jax import paths
from ardm_jax import planner
from ardm_jax import step_tracker
from ardm_jax import workdir as workdir_lib

config_flags.DEFINE_config_file(
  "config", None, "export: optional; by default the config the workdir was trained with.", lock_config=False
)
flags.DEFINE_string("workdir", None, "export: the trained workdir.")
flags.DEFINE_string("model", None, "encode/decode/info: the codec bundle.")
flags.DEFINE_string("output", None, "Output file (one input) or directory.", short_name="o")
flags.DEFINE_list("budgets", ["20", "100", "D"], "export: network calls per stage to plan for ('D': one per variable).")
flags.DEFINE_integer("budget", None, "encode: network calls per stage (one of the bundle's; default its smallest).")
flags.DEFINE_integer("batch_size", 64, "encode: rows per network call (decoding uses the encoder's).")
flags.DEFINE_bool(
  "clean",
  False,
  "encode with a 27-letter text model: apply the training cleaner (lowercase, "
  "digits spelled out, other characters -> space) instead of refusing other characters; the "
  "decoded file is then the cleaned text.",
)
flags.DEFINE_integer("num_orders", 4, "export: random orders tried; the best on training rows is kept.")
flags.DEFINE_integer("order_rows", 64, "export: training rows that score the orders.")
FLAGS = flags.FLAGS
COMMANDS = ("export", "encode", "decode", "info")


def _restore(config, workdir):
  """(experiment, state) of the workdir's latest good checkpoint: the one call that reads a workdir."""
  exp, _, state = workdir_lib.restore(config, workdir)
  return exp, state


def export(
  config, workdir: str, out: str, budgets, *, num_orders: int = 4, order_rows: int = 64, seed: int = 0
) -> codec.Bundle:
  """Writes the codec bundle of a trained workdir: EMA parameters, config, order and plans."""
  exp, state = _restore(config, workdir)
  config = exp.config
  num_variables, num_stages = exp.num_variables, exp.num_stages
  asked = [num_variables if b == "D" else int(b) for b in budgets]
  if not asked or min(asked) < 1:
    raise codec.CodecError(f"--budgets must be >= 1 (or 'D', one call per variable), got {budgets}.")
  if max(asked) > num_variables:
    print(f"budgets above D = {num_variables} ({[b for b in asked if b > num_variables]}) are planned as D")
  budgets = sorted({min(b, num_variables) for b in asked})
  losses, unseen = step_tracker.seen_stage_losses(state.tracker, num_stages)
  sorted_losses = [planner.sort_step_losses(stage_losses) for stage_losses in losses]
  plans = {}
  for budget in budgets:
    stage_plans = [planner.plan(stage_losses, budget) for stage_losses in sorted_losses]
    plans[str(budget)] = {
      "starts": np.stack([p.starts for p in stage_plans]).tolist(),
      "planned_bpd": float(sum(p.cost for p in stage_plans)),
    }
  process = exp.process
  logits_fn = exp.logits_fn(state.ema_params)
  rows = jnp.asarray(exp.dataset.train_batch(0, order_rows))
  scoring_starts = jnp.asarray(plans[str(budgets[-1])]["starts"])
  score = jax.jit(
    lambda sigma: likelihood.log_likelihood(logits_fn, rows, sigma[:, None], scoring_starts, process)[0].mean()
  )
  event_shape = tuple(exp.dataset.event_shape)
  candidates = [
    np.asarray(orders.sample_orders(jax.random.key(seed + i), (num_stages,) + event_shape)) for i in range(num_orders)
  ]
  bpd = [-float(score(jnp.asarray(sigma))) / (np.log(2) * num_variables) for sigma in candidates]
  best = int(np.argmin(bpd))
  meta = {
    "bundle_version": 1,
    "kind": codec.KINDS[config.data.name],
    "event_shape": list(event_shape),
    "num_classes": exp.dataset.num_classes,
    "order": candidates[best].reshape(num_stages, -1).tolist(),
    "order_bpd": bpd,
    "plans": plans,
    "unseen_steps": unseen,
    "train_step": int(state.step),
  }
  bundle = codec.write_bundle(out, config, state.ema_params, meta)
  print(f"bundle {bundle.fingerprint} of {workdir} (step {int(state.step)}) written to {out}")
  print(
    f"order: best of {num_orders} random orders on {order_rows} training rows at budget {budgets[-1]}: "
    + ", ".join(f"{b:.4f}" for b in bpd)
    + " bpd"
  )
  print(_plan_report(bundle))
  return bundle


def _plan_report(bundle: codec.Bundle) -> str:
  meta = bundle.meta
  total = len(meta["order"]) * len(meta["order"][0])
  lines = [f"{'budget':>8} {'planned bpd':>12}"]
  lines += [f"{b:>8} {meta['plans'][str(b)]['planned_bpd']:>12.4f}" for b in bundle.budgets]
  note = step_tracker.unseen_note(meta["unseen_steps"], total)
  return "\n".join(lines + ([note] if note else []))


def _outputs(inputs, out: str, names) -> list[epath.Path]:
  out = paths.resolve(out)
  if len(inputs) == 1 and not out.is_dir():
    return [out]
  out.mkdir(parents=True, exist_ok=True)
  return [out / name for name in names]


def main(argv):
  console.quiet_library_logs(FLAGS.verbosity)
  if len(argv) < 2 or argv[1] not in COMMANDS:
    raise app.UsageError(f"give a command: one of {', '.join(COMMANDS)} (see python -m ardm_jax.compress --help).")
  command, inputs = argv[1], argv[2:]
  if command == "export":
    if not FLAGS.workdir or not FLAGS.output:
      raise app.UsageError("export needs --workdir and -o MODEL (and --config if the workdir records none).")
    export(
      FLAGS.config, FLAGS.workdir, FLAGS.output, FLAGS.budgets, num_orders=FLAGS.num_orders, order_rows=FLAGS.order_rows
    )
    return
  if not FLAGS.model:
    raise app.UsageError(f"{command} needs --model=MODEL (a bundle from `export`).")
  bundle = codec.load_bundle(FLAGS.model)
  if command == "info":
    print(
      f"bundle {bundle.fingerprint}: {bundle.kind} model, data points {bundle.event_shape}, "
      f"{bundle.num_classes} classes, trained {bundle.meta['train_step']} steps"
    )
    print(_plan_report(bundle))
    for name in inputs:
      header, message = codec.unpack(name, epath.Path(name).read_bytes())
      shown = {k: v for k, v in header.items() if k not in ("order", "plan")}
      print(f"{name}: {32 * message.size} payload bits, {shown}")
    return
  if not inputs or not FLAGS.output:
    raise app.UsageError(f"{command} needs INPUT... and -o OUT.")
  blobs = {}
  for name in inputs:
    if not paths.resolve(name).is_file():
      raise codec.CodecError(f"{name}: no such file.")
    blobs[name] = paths.resolve(name).read_bytes()
  start = time.perf_counter()
  if command == "encode":
    budget = FLAGS.budget or bundle.budgets[0]
    results = codec.encode_files(bundle, blobs, budget, batch_size=FLAGS.batch_size, clean=FLAGS.clean)
    targets = _outputs(inputs, FLAGS.output, [epath.Path(n).name + codec.SUFFIX for n in inputs])
    for name, path in zip(inputs, targets):
      paths.write_atomically(path, results[name])
      print(f"{name}: {len(blobs[name])} -> {len(results[name])} bytes ({path})")
  else:
    results = codec.decode_files(bundle, blobs)
    targets = _outputs(inputs, FLAGS.output, [results[n][0] for n in inputs])
    for name, path in zip(inputs, targets):
      paths.write_atomically(path, results[name][1])  # only reached once the data checksum matched
      print(f"{name}: restored {len(results[name][1])} bytes ({path})")
  print(f"{command}d {len(inputs)} file(s) in {time.perf_counter() - start:.1f} s")


def run():
  try:
    app.run(main)
  except codec.CodecError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  run()
