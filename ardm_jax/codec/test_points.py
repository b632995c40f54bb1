"""`main.py --mode=compress`: a workdir's first test points coded as compressed files, decoded back, in bits/dim."""

import io
import math

from absl import logging
import jax
import ml_collections
import numpy as np

from ardm_jax.codec import bundle as bundle_lib
from ardm_jax.codec import container
from ardm_jax.codec import files as files_lib
from ardm_jax.core import likelihood
from ardm_jax.io import paths
from ardm_jax.training.workdir import restore


def compress(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
  """Codes the first compress.num_examples test points as compressed files and decodes them back.

  The workdir's codec bundle (workdir/compressed/bundle: the order of compress.order_seed and the optimal plan of
  compress.budget calls per stage) codes each point as its own file, workdir/compressed/test_NNNNN.npy.ardm, the
  format `python -m ardm_jax.compress decode --model=workdir/compressed/bundle` reads; all points share each
  network call. Every file must decode to its point exactly. Returns the mean bits/dim of the rANS payloads and of
  the whole files next to the model's -log2 q(x)/D under the same order and plan.
  """
  exp, _, state = restore(config, workdir)
  config = exp.config
  cfg = config.compress
  xs = np.concatenate([batch[weight > 0] for batch, weight in exp.dataset.eval_batches(config.eval.batch_size)])[
    : cfg.num_examples
  ]
  out_dir = paths.resolve(workdir) / "compressed"
  bundle = bundle_lib.export(
    config,
    workdir,
    out_dir / "bundle",
    [str(cfg.budget)],
    num_orders=1,
    seed=cfg.order_seed,
    batch_size=min(len(xs), config.eval.batch_size),
    force=True,
    report=logging.info,
  )
  points = {f"test_{index:05d}.npy": _npy_bytes(x) for index, x in enumerate(xs)}
  encoded = files_lib.encode_files(bundle, points, min(cfg.budget, exp.num_variables), method="ardm")
  files = {name + container.SUFFIX: e.blob for name, e in encoded.items()}
  if files_lib.decode_files(bundle, files) != {name + container.SUFFIX: raw for name, raw in points.items()}:
    raise RuntimeError("The test points did not decode to themselves: the network is not deterministic here.")
  if jax.process_index() == 0:
    paths.write_files([(out_dir / name, blob) for name, blob in files.items()], force=True)
  starts = bundle.plan(min(cfg.budget, exp.num_variables))
  sigma = bundle.order.reshape((exp.num_stages, 1) + tuple(exp.dataset.event_shape))
  log_q = jax.jit(lambda x: likelihood.log_likelihood(bundle.logits_fn, x, sigma, starts, exp.process)[0])(xs)
  num_variables = exp.num_variables
  payload_bits = [8 * len(container.unpack(name, blob)[1]) for name, blob in files.items()]
  result = {
    "compressed_bpd": float(np.mean(payload_bits)) / num_variables,
    "file_bpd": float(np.mean([8 * len(blob) for blob in files.values()])) / num_variables,
    "model_bpd": float(np.mean(-np.asarray(log_q, np.float64))) / math.log(2.0) / num_variables,
    "num_examples": len(payload_bits),
  }
  print(
    f"compressed {len(payload_bits)} test points with {cfg.budget} calls per stage: {result['compressed_bpd']:.4f} "
    f"bpd of rANS payload, {result['file_bpd']:.4f} bpd as files (model -log2 q: {result['model_bpd']:.4f} bpd); "
    f"files in {out_dir}, decode them with --model={out_dir / 'bundle'}"
  )
  return result


def _npy_bytes(x: np.ndarray) -> bytes:
  out = io.BytesIO()
  np.save(out, np.asarray(x), allow_pickle=False)
  return out.getvalue()
