"""Depth-upscaling ARDMs (arXiv 2110.02037): S coarse-to-fine stages, each an OA-ARDM over all D variables. The
stage-s value of class k is the smallest class of its stage-s group, so all values stay in 0..K-1; parametrisations
"direct" (one logit per child) and "data" (K logits renormalised over the group). Design notes: docs/design.md#upscale
"""

import dataclasses
import functools
import string

import jax
import jax.numpy as jnp
import numpy as np

from ardm_jax.core import orders

PARAMETRISATIONS = ("direct", "data")


@dataclasses.dataclass(frozen=True, eq=False)
class Transitions:
  """Lookup tables of a coarse-to-fine refinement of K classes in S stages (numpy, built by make_transitions).

  Attributes:
    state_values: int32 [S+1, K], value of class k at stage s.
    child_index: int32 [S, K], the "direct" target: index of class k's stage-(s+1) value among the
      children of its stage-s value.
    num_children: int32 [S, K], [s, v]: how many children the stage-s value v has (0 if v is not one).
    child_stride: optional int64 [S]: the children of v at stage s are v + c * child_stride[s] (base-b digits),
      so the walks refine and mask by arithmetic instead of the [S, K, C] tables (K = 65,536, C = K for OA).
  Derived on first use (cached; [S, K, K] or [S, K, C], so not built for a 16-bit model unless asked for):
    consistent_classes: bool [S, K, K], [s, v, k]: class k has stage-s value v.
    valid_children: bool [S, K, C], [s, v, c]: the stage-s value v has a child number c.
    child_state: int32 [S, K, C], [s, v, c]: the stage-(s+1) value of that child (0 where invalid).
  """

  state_values: np.ndarray
  child_index: np.ndarray
  num_children: np.ndarray
  child_stride: np.ndarray | None = None

  @functools.cached_property
  def consistent_classes(self) -> np.ndarray:
    return self.state_values[:-1, None, :] == np.arange(self.num_classes)[None, :, None]

  @functools.cached_property
  def valid_children(self) -> np.ndarray:
    return self.num_children[:, :, None] > np.arange(self.max_branching)

  @functools.cached_property
  def child_state(self) -> np.ndarray:
    table = np.zeros((self.num_stages, self.num_classes, self.max_branching), np.int32)
    stages = np.arange(self.num_stages)[:, None]
    table[stages, self.state_values[:-1], self.child_index] = self.state_values[1:]
    return table

  @functools.cached_property
  def group_last(self) -> np.ndarray:
    """int32 [S+1, K], [s, k]: the largest class whose stage-s value is that of k (the group is
    state_values[s, k]..group_last[s, k] when groups are runs of classes: `groups_contiguous`)."""
    last = np.zeros_like(self.state_values)
    for s, values in enumerate(self.state_values):
      np.maximum.at(last[s], values, np.arange(self.num_classes, dtype=np.int32))
    return np.take_along_axis(last, self.state_values, 1)

  @functools.cached_property
  def groups_contiguous(self) -> bool:
    """Whether every group of every stage is a run of consecutive classes (base-b digits; not text8)."""
    sizes = np.stack([np.bincount(v, minlength=self.num_classes)[v] for v in self.state_values])
    return bool(np.all(self.group_last - self.state_values + 1 == sizes))

  @property
  def num_stages(self) -> int:
    return self.state_values.shape[0] - 1

  @property
  def num_classes(self) -> int:
    return self.state_values.shape[1]

  @functools.cached_property
  def max_branching(self) -> int:
    """C: logits per variable of the "direct" parametrisation."""
    return int(self.num_children.max())

  def all_allowed(self, parametrisation: str) -> bool:
    """Whether every output is possible for every value a stage can show (e.g. the OA-ARDM's one stage), so
    that next_state_log_probs needs no mask."""
    if parametrisation == "direct":
      return bool(np.all(np.take_along_axis(self.num_children, self.state_values[:-1], 1) == self.max_branching))
    return bool(np.all(self.state_values[:-1] == self.state_values[:-1, :1]))  # one group per stage: nothing known

  def num_outputs(self, parametrisation: str) -> int:
    """Logits per variable the network must output for this parametrisation."""
    _check_parametrisation(parametrisation)
    return self.max_branching if parametrisation == "direct" else self.num_classes


def make_transitions(state_values, child_stride=None) -> Transitions:
  """Validates state_values (int [S+1, K], see the module docstring) and derives the lookup tables.

  child_stride: int [S] if the children of every stage-s value v are v + c * stride (c = 0, 1, ...), else None.
  """
  state_values = np.asarray(state_values, np.int32)
  if state_values.ndim != 2 or state_values.shape[0] < 2:
    raise ValueError(f"state_values must have shape [S+1, K] with S >= 1, got {state_values.shape}.")
  num_stages, num_classes = state_values.shape[0] - 1, state_values.shape[1]
  classes = np.arange(num_classes)
  if np.any(state_values[0] != state_values[0, 0]):
    raise ValueError("stage 0 must show one constant value (nothing known).")
  if np.any(state_values[-1] != classes):
    raise ValueError("the last stage must show the classes themselves.")
  for s, values in enumerate(state_values):
    # v is its group's smallest class iff v belongs to its group and no member lies below it.
    if np.any(values < 0) or np.any(values > classes) or np.any(values[values] != values):
      raise ValueError(f"stage {s}: a value must be the smallest class of its group.")
  for s in range(num_stages):
    # Every stage-(s+1) group holds its own value u, so it lies in one stage-s group iff all agree with u's.
    if np.any(state_values[s] != state_values[s][state_values[s + 1]]):
      raise ValueError(f"stage {s + 1} does not refine stage {s}: a value spans several stage-{s} groups.")

  child_index = np.zeros((num_stages, num_classes), np.int32)
  num_children = np.zeros((num_stages, num_classes), np.int32)
  for s in range(num_stages):
    # The (value, child) pairs of stage s sorted by value then child; a child's number is its rank in its value.
    pairs = np.unique(state_values[s].astype(np.int64) * num_classes + state_values[s + 1])
    parents = pairs // num_classes
    first = np.searchsorted(parents, parents)  # position of the parent's first child
    child_index[s] = (np.arange(len(pairs)) - first)[
      np.searchsorted(pairs, state_values[s].astype(np.int64) * num_classes + state_values[s + 1])
    ]
    num_children[s] = np.bincount(parents, minlength=num_classes)
  if child_stride is not None:
    child_stride = np.asarray(child_stride, np.int64)
    values = state_values[:-1]
    expected = values + child_index.astype(np.int64) * child_stride[:, None]
    if child_stride.shape != (num_stages,) or np.any(expected != state_values[1:]):
      raise ValueError("child_stride does not give the children of the table.")
  return Transitions(state_values, child_index, num_children, child_stride)


def digit_transitions(num_classes: int, branching: int) -> Transitions:
  """Base-b digits, most significant first: S = ceil(log_b K) stages (K=256: b=4 -> 4, b=16 -> 2)."""
  if branching < 2 or num_classes < 2:
    raise ValueError(f"need branching >= 2 and num_classes >= 2, got {branching} and {num_classes}.")
  num_stages = 1
  while branching**num_stages < num_classes:
    num_stages += 1
  classes = np.arange(num_classes, dtype=np.int64)
  scales = branching ** (num_stages - np.arange(num_stages + 1, dtype=np.int64))  # b^(S-s)
  return make_transitions((classes[None, :] // scales[:, None]) * scales[:, None], child_stride=scales[1:])


TEXT8_VOWELS = "aeiou"


def text8_transitions() -> Transitions:
  """text8 (0 = space, 1..26 = a..z) in 2 stages: space / vowel / consonant, then the letter."""
  groups = [0] + [1 if c in TEXT8_VOWELS else 2 for c in string.ascii_lowercase]  # 1 = 'a', 2 = 'b'
  return make_transitions([np.zeros(27), groups, np.arange(27)])


def _check_parametrisation(parametrisation: str) -> None:
  if parametrisation not in PARAMETRISATIONS:
    raise ValueError(f"parametrisation must be one of {PARAMETRISATIONS}, got {parametrisation!r}.")


# What a lookup gives for a class outside 0..K-1: out of range for every table and embedding after it, so that
# invalid data ends in a NaN loss (which training reports) and is never silently clamped to a valid class.
INVALID = np.iinfo(np.int32).max


def class_lookup(table, stage, x: jax.Array) -> jax.Array:
  """table[s, x] for a per-class table [S', K] (s an int or [B]) and classes x [B, *event]; INVALID if x is not
  a class."""
  return jnp.asarray(table).at[orders.per_example(stage, x.ndim), x].get(mode="fill", fill_value=INVALID)


def stage_values(transitions: Transitions, x: jax.Array, stage) -> jax.Array:
  """int32 [B, *event]: the stage-s value of every variable of x [B, *event]; stage is an int or [B]."""
  return class_lookup(transitions.state_values, stage, x)


def next_state_log_probs(
  transitions: Transitions, logits: jax.Array, coarse: jax.Array, stage, parametrisation: str
) -> jax.Array:
  """Log-probabilities over the network outputs, -inf on those impossible given the current values.

  Args:
    logits: [B, *event, C], C = transitions.num_outputs(parametrisation).
    coarse: int32 [B, *event], the stage-s value of every variable.
    stage: s, an int or [B].
  Returns:
    [B, *event, C]: log-softmax over the children ("direct") or the classes of the current group ("data").
  """
  _check_parametrisation(parametrisation)
  if logits.shape[-1] != transitions.num_outputs(parametrisation):
    raise ValueError(
      f"the {parametrisation!r} parametrisation needs "
      f"{transitions.num_outputs(parametrisation)} logits per variable, got {logits.shape[-1]}."
    )
  if transitions.all_allowed(parametrisation):
    return jax.nn.log_softmax(logits, axis=-1)
  s = orders.per_example(stage, coarse.ndim)
  if parametrisation == "direct":  # valid_children[s, coarse], without the [S, K, C] table
    allowed = jnp.asarray(transitions.num_children)[s, coarse][..., None] > jnp.arange(logits.shape[-1])
  else:  # consistent_classes[s, coarse], without the [S, K, K] table
    allowed = jnp.asarray(transitions.state_values)[s] == coarse[..., None]
  return jax.nn.log_softmax(jnp.where(allowed, logits, -jnp.inf), axis=-1)


def refine_values(transitions: Transitions, coarse: jax.Array, child: jax.Array, stage) -> jax.Array:
  """int32 [B, *event]: the stage-(s+1) values of the children `child` of the stage-s values coarse (stage an
  int or [B]); by arithmetic for base-b digits, else from child_state."""
  s = orders.per_example(stage, coarse.ndim)
  if transitions.child_stride is not None:
    return (coarse + child * jnp.asarray(transitions.child_stride, jnp.int32)[s]).astype(jnp.int32)
  return jnp.asarray(transitions.child_state)[s, coarse, child]


def refined_log_prob(
  transitions: Transitions, log_probs: jax.Array, x: jax.Array, stage, parametrisation: str
) -> jax.Array:
  """[B, *event]: log-probability of the stage-(s+1) value of x [B, *event] under log_probs [B, *event, C]."""
  s = orders.per_example(stage, x.ndim)
  if parametrisation == "direct":
    child = class_lookup(transitions.child_index, stage, x)
    return jnp.take_along_axis(log_probs, child[..., None], axis=-1, mode="fill")[..., 0]
  refined_table = jnp.asarray(transitions.state_values)[s + 1]  # [B, 1, ..., 1, K]
  same_refined = refined_table == stage_values(transitions, x, stage + 1)[..., None]
  return jax.nn.logsumexp(jnp.where(same_refined, log_probs, -jnp.inf), axis=-1)
