"""Planner speed: ardm_jax.core.planner against the paper's O(D^3) layered DP, measured in the same run.

The reference is a jitted lax.fori_loop over layers, each a vectorised (D+1) x D min (arXiv 2110.02037:
parallel generation); both run in float64 (scoped jax.enable_x64) so their optimal costs can be compared
exactly. Times are medians over a few runs after compilation; compile time is reported apart (once per D for
both: the budget is a traced value). The reference for all budgets at D = 3072 (~1-2 minutes) is measured once.

Usage: python benchmarks/planner.py [--quick]
"""

import argparse
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

from ardm_jax.core import planner

BUDGETS = (20, 50, 100, "all")


@jax.jit
def reference_final_costs(step_losses, num_layers):
  """C_k[D] for k = 1..num_layers (traced), inf after: float [D]. O(num_layers * D^2)."""
  num_steps = step_losses.shape[0]
  t = jnp.arange(num_steps + 1)[:, None]
  s = jnp.arange(num_steps)[None, :]

  def add_layer(k, carry):
    costs, final_costs = carry
    candidates = jnp.where(s < t, costs[None, :num_steps] + (t - s) * step_losses[None, :], jnp.inf)
    costs = jnp.min(candidates, axis=1)
    return costs, final_costs.at[k].set(costs[-1])

  costs = jnp.full(num_steps + 1, jnp.inf, step_losses.dtype).at[0].set(0)
  _, final_costs = jax.lax.fori_loop(0, num_layers, add_layer, (costs, jnp.full(num_steps, jnp.inf, step_losses.dtype)))
  return final_costs


def run_reference(losses, num_layers):
  with jax.enable_x64(True):
    return np.asarray(reference_final_costs(jnp.asarray(losses), jnp.asarray(num_layers, jnp.int32)))


def example_step_losses(num_steps, seed=0):
  """A CIFAR-like descending per-step loss curve (bits), float32 values as the tracker would give."""
  t = np.arange(num_steps) / num_steps
  noisy = 1 + 6 * np.exp(-4 * t) + 0.1 * np.random.default_rng(seed).standard_normal(num_steps)
  return planner.sort_step_losses(np.maximum(noisy, 0).astype(np.float32))


def timed(fn, repeats):
  """(median seconds over `repeats` calls, last result)."""
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    result = fn()
    times.append(time.perf_counter() - start)
  return float(np.median(times)), result


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="D in (256, 1024) and fewer repeats")
  args = parser.parse_args()
  sizes = (256, 1024) if args.quick else (1024, 3072)
  repeats = 3 if args.quick else 5
  print(
    f"jax {jax.__version__} on {jax.devices()[0].platform}; median of {repeats} runs "
    f"(reference: 3, or 1 for all budgets at D = 3072)"
  )
  header = (
    f"{'D':>5} {'budget':>6} | {'planner run':>11} {'compile':>8} | {'reference run':>13} "
    f"{'compile':>8} | {'speed-up':>8} | max rel cost diff"
  )
  print(header)
  print("-" * len(header))
  for num_steps in sizes:
    losses = example_step_losses(num_steps)
    start = time.perf_counter()
    planner.plan(losses, 1)
    planner_compile = time.perf_counter() - start - timed(lambda: planner.plan(losses, 1), 3)[0]
    start = time.perf_counter()
    run_reference(losses, 1)
    reference_compile = time.perf_counter() - start - timed(lambda: run_reference(losses, 1), 3)[0]
    for budget in BUDGETS:
      num_layers = num_steps if budget == "all" else budget
      if budget == "all":
        ours_time, ours = timed(lambda: planner.plan_all(losses), repeats)
      else:
        ours_time, result = timed(lambda: planner.plan(losses, budget), repeats)
        ours = np.array([result.cost])
      reference_repeats = 1 if num_layers * num_steps**2 > 1e10 else 3
      reference_time, reference = timed(lambda: run_reference(losses, num_layers), reference_repeats)
      reference = reference if budget == "all" else reference[budget - 1 : budget]
      rel_diff = float(np.max(np.abs(ours - reference) / reference))
      print(
        f"{num_steps:>5} {budget:>6} | {ours_time * 1e3:>9.1f}ms {planner_compile:>7.2f}s |"
        f" {reference_time:>12.3f}s {reference_compile:>7.2f}s | {reference_time / ours_time:>7.0f}x |"
        f" {rel_diff:.1e}",
        flush=True,
      )


if __name__ == "__main__":
  main()
