"""Lossless compression with ardm_jax.codec.coder: bits used against -log2 q(x) of the plan, and coding time.

Nothing is trained: the network is a randomly initialised small text Transformer (the text8 `local` sizes: 2
layers, width 64), the data uniform random tokens (K = 27), one fixed random order. For each plan (evenly spaced
starts with the given number of calls) it encodes and decodes every point, checks the round trip, and reports
per point: the message length, -log2 q(x) under the same plan (likelihood.py), their difference (the overhead:
32 header bits, the ANS flush, smoothing and quantisation) and the encode / decode wall time (after a warm-up
point that compiles the network). The upscale rows use the text8 space / vowel / consonant stages ("direct").

Usage: python benchmarks/lossless_compression.py [--seq_len=64] [--num_points=8]
"""

import argparse
import functools
import math
import pathlib
import sys
import time

# Run from a checkout, no install: the checkout replaces this folder on the path, so that compression.py here
# does not shadow the `compression` module (Python 3.14's standard library) that jax's compilation cache imports.
sys.path.pop(0)
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import numpy as np

# pylint: disable=wrong-import-position
from ardm_jax.codec import coder
from ardm_jax.core import likelihood
from ardm_jax.core import plan_walk
from ardm_jax.core import upscale
from ardm_jax.models import transformer

NUM_CLASSES = 27
SIZES = dict(num_layers=2, width=64, num_heads=2, mlp_dim=128)  # configs/text8.py:local


def random_network(seq_len, num_classes_out, num_stages):
  """(apply, params): a jitted apply(params, x_in, known, t) of a randomly initialised Transformer."""
  model = transformer.Transformer(
    num_classes=NUM_CLASSES, num_classes_out=num_classes_out, num_stages=num_stages, **SIZES
  )
  x = jnp.zeros((1, seq_len), jnp.int32)
  params = model.init(jax.random.key(0), x, x > 0, jnp.zeros((1,), jnp.int32))
  return jax.jit(model.apply), params


def evenly_spaced_plan(num_variables, num_calls):
  return np.unique(np.linspace(0, num_variables, num_calls, endpoint=False).astype(np.int64))


def timed(fn):
  start = time.perf_counter()
  result = fn()
  return result, time.perf_counter() - start


def report(name, num_calls, bits, minus_log2_q, encode_times, decode_times, num_variables):
  overhead = bits - minus_log2_q
  print(
    f"{name:>8} {num_calls:>5} | {bits.mean() / num_variables:>9.4f} {minus_log2_q.mean() / num_variables:>9.4f} |"
    f" {overhead.mean():>7.1f} {overhead.min():>6.1f} {overhead.max():>6.1f} |"
    f" {np.mean(encode_times) * 1e3:>9.1f} {np.mean(decode_times) * 1e3:>9.1f}",
    flush=True,
  )


def run(name, process, xs, sigma, num_calls_list):
  num_variables = xs.shape[1]
  apply, params = random_network(
    num_variables, process.transitions.num_outputs(process.parametrisation), process.num_stages
  )
  logits_fn = functools.partial(apply, params)
  log_q_fn = jax.jit(
    lambda p, x, s, starts: likelihood.log_likelihood(functools.partial(apply, p), x, s, starts, process)[0]
  )
  for num_calls in num_calls_list:
    starts = evenly_spaced_plan(num_variables, num_calls)
    minus_log2_q = -np.asarray(
      log_q_fn(params, jnp.asarray(xs), jnp.asarray(sigma), jnp.asarray(starts)), np.float64
    ) / math.log(2)
    encode = lambda x: coder.encode(logits_fn, x[None], sigma, starts, process, batch_size=1)[0]
    encode(xs[0])  # warm-up
    bits, encode_times, decode_times = [], [], []
    for x in xs:
      message, encode_time = timed(lambda: encode(x))
      decoded, decode_time = timed(
        lambda: coder.decode(logits_fn, [message], sigma, starts, process, (1,) + x.shape, batch_size=1)[0]
      )
      if not np.array_equal(decoded, x):
        raise AssertionError(f"{name} round trip failed")
      bits.append(coder.compressed_bits(message))
      encode_times.append(encode_time)
      decode_times.append(decode_time)
    report(
      name, process.num_stages * len(starts), np.array(bits), minus_log2_q, encode_times, decode_times, num_variables
    )


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seq_len", type=int, default=64, help="D")
  parser.add_argument("--num_points", type=int, default=8, help="data points per plan")
  args = parser.parse_args()
  rs = np.random.RandomState(0)
  xs = rs.randint(0, NUM_CLASSES, size=(args.num_points, args.seq_len)).astype(np.int32)
  sigma = rs.permutation(args.seq_len)
  print(
    f"jax {jax.__version__} on {jax.devices()[0].platform}; D = {args.seq_len}, K = {NUM_CLASSES}, "
    f"{args.num_points} points per plan, uniform data (log2 K = {math.log2(NUM_CLASSES):.4f} bits/dim)"
  )
  header = (
    f"{'model':>8} {'calls':>5} | {'bits/dim':>9} {'-log2q/dim':>9} | {'overhead bits/point':>21} |"
    f" {'encode':>9} {'decode':>9}"
  )
  print(header)
  print(f"{'':>8} {'':>5} | {'':>9} {'':>9} | {'mean':>7} {'min':>6} {'max':>6} | {'ms/point':>9} {'ms/point':>9}")
  print("-" * len(header))
  budgets = (args.seq_len, 16, 4, 1)
  run("OA", plan_walk.oa_process(NUM_CLASSES, NUM_CLASSES), xs, sigma, budgets)
  run("upscale", plan_walk.upscale_process(upscale.text8_transitions(), "direct"), xs, sigma, budgets)


if __name__ == "__main__":
  main()
