"""Budget planner (arXiv 2110.02037: parallel generation): the cheapest way to generate D steps with `budget` calls,
exactly min over 0 = p_0 < ... < p_B = D of sum_i (p_{i+1} - p_i) * L[p_i], L sorted descending (sort_step_losses).
Host functions, numpy in and out; plan and plan_all share one compilation per D. Design notes: docs/design.md#planner
"""

import functools
import operator
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

# Rows solved per interval and level: q with (q + 1)^levels >= D + 2; fewer levels mean fewer dependent
# steps per layer but more (row, column) pairs per step.
_LEVELS = 4
# Above this D, the argmin table of plan() is sized by the budget's power of two instead of by D.
_MAX_TABLE_STEPS = 4096


class Plan(NamedTuple):
  """An optimal plan: call i generates steps starts[i] .. starts[i+1]-1 (the last call up to D-1)."""

  starts: np.ndarray  # int64 [budget], starts[0] == 0, strictly increasing, all < D
  cost: float  # sum_i (starts[i+1] - starts[i]) * step_losses[starts[i]], with starts[budget] = D


class _Level(NamedTuple):
  """Static schedule of one divide-and-conquer level (see the module docstring)."""

  rows: np.ndarray  # int32 [n, q] rows solved here, per interval (padded by repeating a row)
  left: np.ndarray  # int32 [n] index in the bounds array of the solved row bounding each interval below
  right: np.ndarray  # int32 [n] same, above
  chunk_width: int  # columns are scanned in contiguous chunks of this width
  num_chunks: int  # static upper bound on the chunks needed by all windows together


def sort_step_losses(tracked_losses) -> np.ndarray:
  """Per-step losses [D] (e.g. the step tracker's EMA) sorted in descending order, as float64 [D]."""
  return np.sort(np.asarray(tracked_losses, dtype=np.float64))[::-1].copy()


def plan(step_losses, budget) -> Plan:
  """The exact optimal plan with `budget` calls.

  Args:
    step_losses: [D] non-negative finite losses, sorted in descending order.
    budget: int in 1..D, the number of network calls.
  Returns:
    Plan(starts int64 [budget], cost float).
  """
  losses = _validated_losses(step_losses)
  budget = _validated_budget(budget, losses.shape[0])
  _, starts = _run_layers(losses, budget, with_starts=True)
  starts = starts[:budget]
  return Plan(starts=starts, cost=plan_cost(losses, starts))


def plan_remaining(tracked_losses, budget, num_known: int) -> Plan:
  """The optimal plan of `budget` calls over the steps k..D-1 when the first k variables are given.

  Generation conditioned on k given variables starts at step k (plan_walk.conditioned_stage); a call at step t
  costs about (its length) * L[t], whatever came before t, so the best plan of the remaining steps is the plan
  of L[k:] alone, shifted by k. With k = 0 this is plan(sort_step_losses(tracked_losses), budget).

  Args:
    tracked_losses: [D] non-negative finite per-step losses in step order (the step tracker's); the steps
      k..D-1 are sorted in descending order here.
    budget: int in 1..D-k.
    num_known: k in 0..D-1.
  Returns:
    Plan(starts int64 [budget] from k, strictly increasing, all < D; cost: bits/dim of the unknown steps).
  """
  losses = np.asarray(tracked_losses)
  if losses.ndim != 1:
    raise ValueError(f"tracked_losses must be 1-D [D], got shape {losses.shape}")
  num_known = operator.index(num_known)
  if not 0 <= num_known < losses.shape[0]:
    raise ValueError(f"num_known must be in 0..D-1 = 0..{losses.shape[0] - 1}, got {num_known}")
  num_unknown = losses.shape[0] - num_known
  if not isinstance(budget, (bool, np.bool_)) and isinstance(budget, (int, np.integer)) and budget > num_unknown:
    raise ValueError(f"budget must be in 1..D-k = 1..{num_unknown} (the unknown steps), got {budget}")
  result = plan(sort_step_losses(losses[num_known:]), budget)
  return Plan(starts=result.starts + num_known, cost=result.cost)


def even_starts(num_steps: int, budget: int) -> np.ndarray:
  """int64 [budget]: calls that start every num_steps / budget steps (floored), the schedule a discrete diffusion
  model with `budget` steps takes; the planner's optimum is never worse on the same losses."""
  budget = _validated_budget(budget, num_steps)
  return (np.arange(budget, dtype=np.int64) * num_steps) // budget


def plan_all(step_losses) -> np.ndarray:
  """Optimal costs for every budget: float64 [D], entry b-1 is plan(step_losses, b).cost (to rounding)."""
  losses = _validated_losses(step_losses)
  final_costs, _ = _run_layers(losses, losses.shape[0], with_starts=False)
  return final_costs


def plan_cost(step_losses, starts) -> float:
  """sum_i (starts[i+1] - starts[i]) * step_losses[starts[i]] with starts[budget] = D, in float64."""
  losses = np.asarray(step_losses, dtype=np.float64)
  starts = np.asarray(starts, dtype=np.int64)
  lengths = np.diff(np.append(starts, losses.shape[0]))
  return float(np.sum(lengths * losses[starts]))


def _validated_losses(step_losses) -> np.ndarray:
  losses = np.asarray(step_losses)
  if not (np.issubdtype(losses.dtype, np.floating) or np.issubdtype(losses.dtype, np.integer)):
    raise ValueError(f"step_losses must be real numbers, got dtype {losses.dtype}")
  losses = losses.astype(np.float64)
  if losses.ndim != 1:
    raise ValueError(f"step_losses must be 1-D [D], got shape {losses.shape}")
  if losses.shape[0] == 0:
    raise ValueError("step_losses is empty (D = 0)")
  if not np.all(np.isfinite(losses)):
    index = np.flatnonzero(~np.isfinite(losses))[0]
    raise ValueError(f"step_losses must be finite, got {losses[index]} at index {index}")
  if np.any(losses < 0):
    index = np.flatnonzero(losses < 0)[0]
    raise ValueError(f"step_losses must be non-negative, got {losses[index]} at index {index}")
  ascending = np.flatnonzero(np.diff(losses) > 0)
  if ascending.size:
    i = ascending[0]
    raise ValueError(
      f"step_losses must be sorted in descending order (see sort_step_losses), but "
      f"step_losses[{i}] = {losses[i]} < step_losses[{i + 1}] = {losses[i + 1]}"
    )
  return losses


def _validated_budget(budget, num_steps: int) -> int:
  if isinstance(budget, (bool, np.bool_)):
    raise ValueError(f"budget must be an integer, got {budget!r}")
  try:
    budget = operator.index(budget)
  except TypeError:
    raise ValueError(f"budget must be an integer, got {budget!r}") from None
  if not 1 <= budget <= num_steps:
    raise ValueError(f"budget must be in 1..D = 1..{num_steps}, got {budget}")
  return budget


@functools.lru_cache(maxsize=None)
def _schedule(num_steps: int) -> tuple[_Level, ...]:
  """Static divide-and-conquer schedule over the rows t = 0..D of one layer (D = num_steps).

  The bounds array has D + 3 entries: index 0 and D + 2 are sentinels (argmins 0 and D - 1), index t + 1
  holds the argmin of row t.
  """
  num_rows = num_steps + 1
  q = 1
  while (q + 1) ** _LEVELS < num_rows + 1:
    q += 1
  intervals = [(0, num_rows, -1, num_rows)]  # rows [first, end) bounded by solved rows below, above
  levels = []
  while intervals:
    rows, left, right, next_intervals = [], [], [], []
    for first, end, below, above in intervals:
      size = end - first
      solved = (
        list(range(first, end)) if size <= q else [first + ((i + 1) * (size + 1)) // (q + 1) - 1 for i in range(q)]
      )
      edges = [below] + solved + [above]
      for lo_row, hi_row in zip(edges[:-1], edges[1:]):
        if hi_row - lo_row > 1:
          next_intervals.append((lo_row + 1, hi_row, lo_row, hi_row))
      rows.append(solved + solved[-1:] * (q - len(solved)))
      left.append(below + 1)
      right.append(above + 1)
    chunk_width = max(1, min(num_steps, round(num_steps / len(rows))))
    levels.append(
      _Level(
        rows=np.array(rows, np.int32),
        left=np.array(left, np.int32),
        right=np.array(right, np.int32),
        chunk_width=chunk_width,
        num_chunks=len(rows) + (num_steps - 1) // chunk_width,
      )
    )
    intervals = next_intervals
  return tuple(levels)


def _solve_layer(prev_costs: jax.Array, step_losses: jax.Array) -> tuple[jax.Array, jax.Array]:
  """One DP layer: costs[t] = min_{s<t} prev_costs[s] + (t - s) * step_losses[s] and its leftmost argmin.

  Args:
    prev_costs: float [D + 1], C_{k-1}.
    step_losses: float [D], descending.
  Returns:
    costs float [D + 1] (C_k), argmins int32 [D + 1] (monotone; rows with no finite candidate get the left
    end of their window).
  """
  num_steps = step_losses.shape[0]
  big = jnp.iinfo(jnp.int32).max
  costs = jnp.zeros(num_steps + 1, prev_costs.dtype)
  bounds = jnp.zeros(num_steps + 3, jnp.int32).at[-1].set(num_steps - 1)
  for level in _schedule(num_steps):
    num_intervals, width = level.rows.shape[0], level.chunk_width
    lo, hi = bounds[level.left], bounds[level.right]  # [n] column windows
    if level.num_chunks == 1:  # a single interval (level 0): one chunk spans all columns
      interval = chunk_start = jnp.zeros(1, jnp.int32)
    else:
      chunks_per_interval = (hi - lo) // width + 1
      first_chunk = jnp.cumsum(chunks_per_interval) - chunks_per_interval
      chunk = jnp.arange(level.num_chunks, dtype=jnp.int32)
      interval = jnp.cumsum(jnp.zeros(level.num_chunks, jnp.int32).at[first_chunk].set(1)) - 1  # [c]
      chunk_start = lo[interval] + width * (chunk - first_chunk[interval])
    # Columns outside the window are clipped to its ends: repeated legal candidates, so the leftmost minimum
    # stays in the window (and so argmins stay monotone) even if rounding were to break the Monge order.
    cols = jnp.clip(
      chunk_start[:, None] + jnp.arange(width, dtype=jnp.int32), lo[interval][:, None], hi[interval][:, None]
    )  # [c, w]
    rows = jnp.asarray(level.rows)[interval]  # [c, q]
    steps = rows[:, :, None] - cols[:, None, :]  # [c, q, w]
    candidates = jnp.where(steps > 0, prev_costs[cols][:, None, :] + steps * step_losses[cols][:, None, :], jnp.inf)
    chunk_min = jnp.min(candidates, axis=-1)  # [c, q]
    # A float min (exact on column indices): XLA:CPU reduces floats much faster than integers.
    float_cols = cols[:, None, :].astype(candidates.dtype)
    chunk_argmin = jnp.min(jnp.where(candidates == chunk_min[..., None], float_cols, jnp.inf), axis=-1)
    chunk_argmin = chunk_argmin.astype(jnp.int32)  # [c, q]
    if level.num_chunks == 1:
      row_min, row_argmin = chunk_min, chunk_argmin
    else:
      row_min = jax.ops.segment_min(chunk_min, interval, num_intervals, indices_are_sorted=True)  # [n, q]
      row_argmin = jax.ops.segment_min(
        jnp.where(chunk_min == row_min[interval], chunk_argmin, big), interval, num_intervals, indices_are_sorted=True
      )
    # A no-op in exact arithmetic (argmins are monotone); with the clipping above it keeps later windows
    # well formed if rounding of near-ties ever broke the Monge order.
    row_argmin = jax.lax.cummax(row_argmin, axis=1)
    solved = level.rows.reshape(-1)
    costs = costs.at[solved].set(row_min.reshape(-1))
    bounds = bounds.at[solved + 1].set(row_argmin.reshape(-1))
  return costs, bounds[1:-1]


def _initial_costs(step_losses: jax.Array) -> jax.Array:
  """C_0 float [D + 1]: with zero calls only the empty prefix (cost 0) is reachable, the rest is inf."""
  return jnp.full(step_losses.shape[0] + 1, jnp.inf, step_losses.dtype).at[0].set(0)


def _run_layers(losses: np.ndarray, budget: int, with_starts: bool) -> tuple[np.ndarray, np.ndarray]:
  """DP layers 1..budget in float64.

  Returns:
    final_costs: float64 [D], entry k-1 is C_k[D] (inf for k > budget).
    starts: int64 [>= budget], the optimal budget-call plan in the first `budget` entries (if with_starts).
  """
  num_steps = losses.shape[0]
  # The budget is traced, so plan and plan_all share one compilation per D; the argmin table then has D
  # rows (int16, 19 MB at D = 3072). For larger D, plan sizes it by the budget's power of two and plan_all
  # skips it.
  if num_steps <= _MAX_TABLE_STEPS:
    table_rows = num_steps
  else:
    table_rows = min(num_steps, 1 << (budget - 1).bit_length()) if with_starts else 1
  with jax.enable_x64(True):
    final_costs, starts = _layers(jnp.asarray(losses), jnp.asarray(budget, jnp.int32), table_rows=table_rows)
    return np.asarray(final_costs, np.float64), np.asarray(starts, np.int64)


@functools.partial(jax.jit, static_argnames="table_rows")
def _layers(step_losses: jax.Array, budget: jax.Array, *, table_rows: int) -> tuple[jax.Array, jax.Array]:
  """Runs layers 1..budget (traced).

  Returns:
    final_costs: float [D], entry k-1 is C_k[D] for k <= budget, inf after.
    starts: int32 [table_rows]; if budget <= table_rows, its first `budget` entries are the optimal plan.
  """
  num_steps = step_losses.shape[0]
  table_dtype = jnp.int16 if num_steps < 2**15 else jnp.int32

  def add_layer(k, carry):
    costs, final_costs, argmins = carry
    costs, layer_argmins = _solve_layer(costs, step_losses)
    argmins = argmins.at[k].set(layer_argmins.astype(table_dtype), mode="drop")
    return costs, final_costs.at[k].set(costs[-1]), argmins

  carry = (
    _initial_costs(step_losses),
    jnp.full(num_steps, jnp.inf, step_losses.dtype),
    jnp.zeros((table_rows, num_steps + 1), table_dtype),
  )  # argmins[k, t]: last start, k + 1 calls
  _, final_costs, argmins = jax.lax.fori_loop(0, budget, add_layer, carry)

  def backtrack(i, carry):
    end, starts = carry
    start = argmins[budget - 1 - i, end].astype(jnp.int32)
    return start, starts.at[budget - 1 - i].set(start, mode="drop")

  starts = jnp.zeros(table_rows, jnp.int32)
  _, starts = jax.lax.fori_loop(0, budget, backtrack, (jnp.int32(num_steps), starts))
  return final_costs, starts
