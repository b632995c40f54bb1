r"""Compress your own files with a trained ARDM (codec.py and container.py have the formats).

  python -m ardm_jax.compress export --workdir=W -o MODEL [--budgets=20,100]  # the workdir's own config
  python -m ardm_jax.compress encode --model=MODEL [--budget=B] [--method=auto] INPUT... -o OUT
  python -m ardm_jax.compress decode --model=MODEL INPUT.ardm... -o OUT
  python -m ardm_jax.compress info --model=MODEL [INPUT...]

With one input, OUT is the output file; with several, a directory (created if missing) that receives
INPUT.ardm (encode) or, for decode, each input's own file name without `.ardm` (never a name read from the
compressed file, unless --stored_names is given and the stored name is a plain base name). Nothing is written
over an existing file or symlink unless --force is given. `info` shows a compressed file's header, or for any
other file what every candidate method would make of it.
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
from ardm_jax.io import console
from ardm_jax.core import likelihood
from ardm_jax.core import orders
from ardm_jax.io import paths
from ardm_jax.core import planner
from ardm_jax.core import step_tracker
from ardm_jax.training import train
from ardm_jax.training import workdir as workdir_lib

config_flags.DEFINE_config_file(
  "config", None, "export: optional; by default the config the workdir was trained with.", lock_config=False
)
flags.DEFINE_string("workdir", None, "export: the trained workdir.")
flags.DEFINE_string("model", None, "encode/decode/info: the codec bundle.")
flags.DEFINE_string("output", None, "Output file (one input) or directory.", short_name="o")
flags.DEFINE_list("budgets", ["20", "100", "D"], "export: network calls per stage to plan for ('D': one per variable).")
flags.DEFINE_integer("budget", None, "encode: network calls per stage (one of the bundle's; default its smallest).")
flags.DEFINE_integer("batch_size", codec.DEFAULT_BATCH_SIZE, "export: rows per network call (kept in the bundle).")
flags.DEFINE_enum(
  "method",
  "auto",
  ("auto",) + codec.container.METHODS,
  "encode: 'auto' keeps the smallest of the model and the classic codecs of the file's kind; 'ardm' forces the "
  "model; or one classic codec.",
)
flags.DEFINE_bool("keep_name", False, "encode: store each input's base name in the file (a few bytes).")
flags.DEFINE_bool("stored_names", False, "decode into a directory: name outputs by their stored base names.")
flags.DEFINE_bool("force", False, "encode/decode: replace existing output files; export: an existing bundle.")
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
  config,
  workdir: str,
  out: str,
  budgets,
  *,
  num_orders: int = 4,
  order_rows: int = 64,
  seed: int = 0,
  batch_size: int = codec.DEFAULT_BATCH_SIZE,
  force: bool = False,
) -> codec.Bundle:
  """Writes the codec bundle of a trained workdir: EMA parameters, config, order and plans."""
  if not all(b == "D" or str(b).isdigit() for b in budgets) or not budgets:
    raise codec.CodecError(f"--budgets must be numbers of calls >= 1 (or 'D', one call per variable), got {budgets}.")
  if not 1 <= batch_size <= codec.MAX_BUNDLE_BATCH:
    raise codec.CodecError(f"--batch_size={batch_size} must be in 1..{codec.MAX_BUNDLE_BATCH}.")
  out_path = paths.resolve(out)
  codec.check_bundle_target(out_path, force)  # Before the workdir is read.
  exp, state = _restore(config, workdir)
  config = exp.config
  num_variables, num_stages = exp.num_variables, exp.num_stages
  asked = [num_variables if b == "D" else int(b) for b in budgets]
  if min(asked) < 1:
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
    "kind": codec.data_kind(config),
    "event_shape": list(event_shape),
    "num_classes": exp.dataset.num_classes,
    "order": candidates[best].reshape(num_stages, -1).tolist(),
    "order_bpd": bpd,
    "plans": plans,
    "step_losses": [np.asarray(stage_losses, np.float64).tolist() for stage_losses in losses],
    "batch_size": int(batch_size),
    "unseen_steps": unseen,
    "train_step": int(state.step),
  }
  bundle = codec.write_bundle(out_path, config, state.ema_params, meta, force=force)
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


def _targets(inputs, out: str, names) -> list[epath.Path]:
  """The output path of every input: OUT itself for one input (unless it is a directory), else OUT/name (the
  directory is made when the outputs are written, and removed again if they cannot all be)."""
  out = paths.resolve(out)
  if len(inputs) == 1 and not out.is_dir():
    return [out]
  if len(set(names)) < len(names):
    twice = sorted({n for n in names if names.count(n) > 1})
    raise codec.CodecError(f"several inputs would be written to the same output name(s) in {out}: {twice}.")
  if paths.occupied(out) and not out.is_dir():
    raise codec.CodecError(f"{out} is a file; with several inputs -o names a directory.")
  return [out / name for name in names]


def _decoded_name(name: str, header) -> str:
  """The output base name of a compressed input: its own name less .ardm, or the checked stored name."""
  if FLAGS.stored_names:
    stored = (header.metadata or {}).get("name")
    if stored is None:
      raise codec.CodecError(f"{name}: --stored_names, but it has no stored name (encode with --keep_name).")
    return codec.check_base_name(stored, name)
  base = epath.Path(name).name
  return base[: -len(codec.SUFFIX)] if base.endswith(codec.SUFFIX) and len(base) > len(codec.SUFFIX) else base + ".out"


def _exists(target) -> codec.CodecError:
  return codec.CodecError(f"{target} exists (a file or symlink); not replaced: pass --force to replace it.")


def _check_free(targets) -> None:
  """Refuses (before any work) outputs that exist, without --force, and directories in their place."""
  for target in targets:
    if paths.occupied(target) and (not FLAGS.force or target.is_dir()):
      raise _exists(target) if not target.is_dir() else codec.CodecError(f"{target} is a directory; give another -o.")


def _write_all(targets, contents) -> None:
  """Writes every output or none (another process creating one meanwhile takes the others back)."""
  try:
    paths.write_files(list(zip(targets, contents)), force=FLAGS.force)
  except FileExistsError as e:
    raise codec.CodecError(f"{e} (a file or symlink); nothing written: pass --force to replace it.") from None
  except IsADirectoryError as e:
    raise codec.CodecError(f"{e}; give another -o.") from None


def _bpd(size_bytes: int, num_dims: int) -> str:
  return f"{8 * size_bytes / num_dims:.3f}" if num_dims else "-"


def _info(bundle: codec.Bundle, inputs) -> None:
  print(
    f"bundle {bundle.fingerprint}: {bundle.kind} model, data points {bundle.event_shape}, "
    f"{bundle.num_classes} classes, trained {bundle.meta['train_step']} steps, {bundle.batch_size} rows per call"
  )
  print(_plan_report(bundle))
  originals = {}
  for name in inputs:
    blob = paths.resolve(name).read_bytes()
    if not blob.startswith(codec.container.MAGIC):
      originals[name] = blob
      continue
    header, payload = codec.read_header(name, blob, bundle)
    dims = header.num_dims
    budget = f", budget {bundle.budgets[header.budget_index]}" if header.method == "ardm" else ""
    print(
      f"{name}: {header.method}{budget}, {header.kind} {header.shape}, {len(blob)} bytes = "
      f"{len(blob) - len(payload)} header + {len(payload)} payload, {_bpd(len(blob), dims)} bpd"
      + (f", metadata {header.metadata}" if header.metadata else "")
    )
  if originals:
    budget = bundle.budgets[0] if FLAGS.budget is None else FLAGS.budget
    for name, encoded in codec.encode_files(bundle, originals, budget, clean=FLAGS.clean).items():
      sizes = ", ".join(f"{m} {n} B = {_bpd(n, encoded.num_dims)} bpd" for m, n in encoded.sizes.items())
      print(f"{name} ({len(originals[name])} bytes, {encoded.num_dims} dims): {sizes}; auto keeps {encoded.method}")


def main(argv):
  console.quiet_library_logs(FLAGS.verbosity)
  if len(argv) < 2 or argv[1] not in COMMANDS:
    raise app.UsageError(f"give a command: one of {', '.join(COMMANDS)} (see python -m ardm_jax.compress --help).")
  command, inputs = argv[1], argv[2:]
  if command == "export":
    if not FLAGS.workdir or not FLAGS.output:
      raise app.UsageError("export needs --workdir and -o MODEL (and --config if the workdir records none).")
    export(
      FLAGS.config,
      FLAGS.workdir,
      FLAGS.output,
      FLAGS.budgets,
      num_orders=FLAGS.num_orders,
      order_rows=FLAGS.order_rows,
      batch_size=FLAGS.batch_size,
      force=FLAGS.force,
    )
    return
  if not FLAGS.model:
    raise app.UsageError(f"{command} needs --model=MODEL (a bundle from `export`).")
  bundle = codec.load_bundle(FLAGS.model)
  for name in inputs:
    if not paths.resolve(name).is_file():
      raise codec.CodecError(f"{name}: no such file.")
  if command == "info":
    _info(bundle, inputs)
    return
  if not inputs or not FLAGS.output:
    raise app.UsageError(f"{command} needs INPUT... and -o OUT.")
  blobs = {name: paths.resolve(name).read_bytes() for name in inputs}
  start = time.perf_counter()
  if command == "encode":
    budget = bundle.budgets[0] if FLAGS.budget is None else FLAGS.budget
    targets = _targets(inputs, FLAGS.output, [epath.Path(n).name + codec.SUFFIX for n in inputs])
    _check_free(targets)  # Before any network call.
    results = codec.encode_files(
      bundle, blobs, budget, method=FLAGS.method, clean=FLAGS.clean, keep_names=FLAGS.keep_name
    )
    _write_all(targets, [results[name].blob for name in inputs])
    for name, path in zip(inputs, targets):
      encoded = results[name]
      if encoded.note:
        print(encoded.note)
      others = ", ".join(f"{m} {n}" for m, n in encoded.sizes.items() if m != encoded.method)
      print(
        f"{name}: {len(blobs[name])} -> {len(encoded.blob)} bytes, {encoded.method}"
        f"{f' (also tried: {others})' if others else ''} ({path})"
      )
  else:
    headers = {name: codec.read_header(name, blob, bundle)[0] for name, blob in blobs.items()}
    targets = _targets(inputs, FLAGS.output, [_decoded_name(n, headers[n]) for n in inputs])
    _check_free(targets)  # Before any network call.
    results = codec.decode_files(bundle, blobs)
    _write_all(targets, [results[name] for name in inputs])  # only reached once every data checksum matched
    for name, path in zip(inputs, targets):
      print(f"{name}: restored {len(results[name])} bytes ({path})")
  print(f"{command}d {len(inputs)} file(s) in {time.perf_counter() - start:.1f} s")


def run():
  console.exit_promptly_on_interrupt()
  try:
    app.run(main)
  except (codec.CodecError, *train.RUN_ERRORS) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  run()
