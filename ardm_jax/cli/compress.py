r"""Compress your own files with a trained ARDM (the library: ardm_jax/codec).

  python -m ardm_jax.compress export --workdir=W -o MODEL [--budgets=20,100]  # the workdir's own config
  python -m ardm_jax.compress encode --model=MODEL [--budget=B] [--method=auto] INPUT... -o OUT
  python -m ardm_jax.compress decode --model=MODEL INPUT.ardm... -o OUT
  python -m ardm_jax.compress info --model=MODEL [INPUT...]

With one input, OUT is the output file; with several, a directory that receives INPUT.ardm (encode) or, for
decode, each input's own file name without `.ardm` (a stored name only with --stored_names, if it is a plain
base name). Nothing is replaced without --force, and a run writes all its outputs or none.
"""

import time

from absl import app
from absl import flags
from etils import epath

from ardm_jax import codec
from ardm_jax.cli import errors
from ardm_jax.cli.flags import FLAGS
from ardm_jax.codec import container
from ardm_jax.codec import files
from ardm_jax.io import paths

flags.DEFINE_list("budgets", ["20", "100", "D"], "export: network calls per stage to plan for ('D': one per variable).")
flags.DEFINE_integer("batch_size", codec.DEFAULT_BATCH_SIZE, "export: rows per network call (kept in the bundle).")
flags.DEFINE_integer("num_orders", 4, "export: random orders tried; the best on training rows is kept.")
flags.DEFINE_integer("order_rows", 64, "export: training rows that score the orders.")
flags.DEFINE_enum("method", "auto", ("auto",) + container.METHODS, "encode: auto (the smallest), ardm, or one codec.")
flags.DEFINE_bool("keep_name", False, "encode: store each input's base name in the file (a few bytes).")
flags.DEFINE_bool("stored_names", False, "decode into a directory: name outputs by their stored base names.")
flags.DEFINE_bool("clean", False, "encode with a 27-letter model: apply the training cleaner to other characters.")
COMMANDS = ("export", "encode", "decode", "info")


def export() -> None:
  if not FLAGS.workdir or not FLAGS.output:
    raise app.UsageError("export needs --workdir and -o MODEL (and --config if the workdir records none).")
  bundle = codec.export(
    FLAGS.config,
    FLAGS.workdir,
    FLAGS.output,
    FLAGS.budgets,
    num_orders=FLAGS.num_orders,
    order_rows=FLAGS.order_rows,
    batch_size=FLAGS.batch_size,
    force=FLAGS.force,
  )
  meta = bundle.meta
  print(f"bundle {bundle.fingerprint} of {FLAGS.workdir} (step {meta['train_step']}) written to {FLAGS.output}")
  scores = ", ".join(f"{b:.4f}" for b in meta["order_bpd"])
  print(f"order: best of {FLAGS.num_orders} random orders on {FLAGS.order_rows} training rows: {scores} bpd")
  print(codec.plan_report(bundle))


def code(command: str, bundle: codec.Bundle, inputs: list[str]) -> None:
  """encode or decode every input with one set of network calls; all outputs or none."""
  blobs = {name: paths.resolve(name).read_bytes() for name in inputs}
  if command == "encode":
    targets = files.output_paths(inputs, FLAGS.output, [epath.Path(n).name + codec.SUFFIX for n in inputs])
    files.check_outputs_free(targets, FLAGS.force)  # Before any network call.
    budget = bundle.budgets[0] if FLAGS.budget is None else FLAGS.budget
    results = codec.encode_files(
      bundle, blobs, budget, method=FLAGS.method, clean=FLAGS.clean, keep_names=FLAGS.keep_name
    )
    files.write_outputs(targets, [results[n].blob for n in inputs], FLAGS.force)
    for name, path in zip(inputs, targets):
      encoded = results[name]
      others = ", ".join(f"{m} {n}" for m, n in encoded.sizes.items() if m != encoded.method)
      print(
        (encoded.note + "\n" if encoded.note else "") + f"{name}: {len(blobs[name])} -> {len(encoded.blob)} bytes, "
        f"{encoded.method}{f' (also tried: {others})' if others else ''} ({path})"
      )
  else:
    headers = {name: codec.read_header(name, blob, bundle)[0] for name, blob in blobs.items()}
    names = [files.decoded_name(n, headers[n], FLAGS.stored_names) for n in inputs]
    targets = files.output_paths(inputs, FLAGS.output, names)
    files.check_outputs_free(targets, FLAGS.force)  # Before any network call.
    results = codec.decode_files(bundle, blobs)  # Returns only once every data checksum matched.
    files.write_outputs(targets, [results[n] for n in inputs], FLAGS.force)
    for name, path in zip(inputs, targets):
      print(f"{name}: restored {len(results[name])} bytes ({path})")


def main(argv):
  if len(argv) < 2 or argv[1] not in COMMANDS:
    raise app.UsageError(f"give a command: one of {', '.join(COMMANDS)} (see python -m ardm_jax.compress --help).")
  command, inputs = argv[1], argv[2:]
  if command == "export":
    return export()
  if not FLAGS.model:
    raise app.UsageError(f"{command} needs --model=MODEL (a bundle from `export`).")
  bundle = codec.load_bundle(FLAGS.model)
  missing = [name for name in inputs if not paths.resolve(name).is_file()]
  if missing:
    raise codec.CodecError(f"{missing[0]}: no such file.")
  if command == "info":
    blobs = {name: paths.resolve(name).read_bytes() for name in inputs}
    budget = bundle.budgets[0] if FLAGS.budget is None else FLAGS.budget
    print("\n".join(files.describe(bundle, blobs, budget, FLAGS.clean)))
    return None
  if not inputs or not FLAGS.output:
    raise app.UsageError(f"{command} needs INPUT... and -o OUT.")
  start = time.perf_counter()
  code(command, bundle, inputs)
  print(f"{command}d {len(inputs)} file(s) in {time.perf_counter() - start:.1f} s")
  return None


def run():
  errors.run(main)
