"""Measurements shared by the benchmark scripts (a module they import; not a script): the coder's speed at a
batch size, the bare network's rows/s, and the sampler's time per network call."""

import time

import jax
import jax.numpy as jnp
import numpy as np

from ardm_jax.codec import coder
from ardm_jax.core import planner
from ardm_jax.core import sampler


class TimedNetwork:
  """A network function, timing every call (to the end of its computation)."""

  def __init__(self, logits_fn):
    self.logits_fn, self.seconds = logits_fn, 0.0

  def __call__(self, x_in, known, t):
    start = time.perf_counter()
    logits = jax.block_until_ready(self.logits_fn(x_in, known, t))
    self.seconds += time.perf_counter() - start
    return logits


def coding_speed(logits_fn, rows, order, starts, process, batch_size: int):
  """(encode points/s, decode points/s, network share of the time) of coder.encode / decode of rows [N, *event]
  with batch_size rows per network call; the round trip is checked."""
  network = TimedNetwork(logits_fn)
  args = (order, starts, process)
  coder.encode(network, rows[:1], *args, batch_size=batch_size)  # compile
  network.seconds = 0.0
  start = time.perf_counter()
  messages = coder.encode(network, rows, *args, batch_size=batch_size)
  encode_s = time.perf_counter() - start
  start = time.perf_counter()
  decoded = coder.decode(network, messages, *args, rows.shape, batch_size=batch_size)
  decode_s = time.perf_counter() - start
  if not np.array_equal(decoded, rows):
    raise AssertionError("round trip failed")
  return len(rows) / encode_s, len(rows) / decode_s, network.seconds / (encode_s + decode_s)


def network_rows_per_s(logits_fn, rows, batch_size: int, repeats: int = 10) -> float:
  """Rows per second of the bare network (one call on batch_size rows, nothing else): how it scales with batch."""
  x = np.resize(rows, (batch_size,) + rows.shape[1:]).astype(np.int32)
  known = np.zeros(x.shape, bool)
  t = np.zeros((batch_size,), np.int32)
  jax.block_until_ready(logits_fn(x, known, t))  # compile
  start = time.perf_counter()
  for _ in range(repeats):
    jax.block_until_ready(logits_fn(x, known, t))
  return batch_size * repeats / (time.perf_counter() - start)


def decreasing_step_losses(num_variables: int) -> np.ndarray:
  """A decreasing L_t [D] as training produces (the first steps are the expensive ones), sorted for the planner."""
  return planner.sort_step_losses(np.exp(-np.arange(num_variables) / (num_variables / 4)))


class SamplerTimer:
  """Times sampler.sample of an experiment's network under the optimal plan of a budget; counts its calls."""

  def __init__(self, exp, params, num_samples: int):
    self.num_variables = exp.num_variables
    self.step_losses = decreasing_step_losses(self.num_variables)
    self.calls = 0

    def count_call():
      self.calls += 1

    def logits_fn(x_in, known, t):
      jax.debug.callback(count_call)
      return exp.model.apply({"params": params}, x_in, known, t)

    shape = (num_samples,) + tuple(exp.dataset.event_shape)
    self.sample = jax.jit(lambda rng, starts: sampler.sample(logits_fn, rng, starts, shape, exp.process))

  def time(self, budget: int, repeats: int) -> dict:
    """{'calls': network calls per run, 'seconds': median of `repeats` runs after compiling, 'ms_per_call'}."""
    starts = jnp.asarray(planner.plan(self.step_losses, budget).starts)
    compiled = self.sample.lower(jax.random.key(0), starts).compile()  # Once per number of calls.
    self.calls = 0
    times = []
    for repeat in range(repeats):
      start = time.perf_counter()
      jax.block_until_ready(compiled(jax.random.key(repeat + 1), starts))
      jax.effects_barrier()
      times.append(time.perf_counter() - start)
    seconds = float(np.median(times))
    return {"calls": self.calls // repeats, "seconds": seconds, "ms_per_call": 1e3 * seconds / budget}
