"""Depth-upscaling ARDMs (arXiv 2110.02037): S coarse-to-fine stages, each an OA-ARDM over all D variables.

A `Transitions` says what every class looks like at every stage. The stage-s value of class k is the smallest
class of its stage-s group, so all values stay in 0..K-1 (the network input vocabulary is the data's):
  - stage 0: one group, every variable shows 0 ("nothing known");
  - stage S: every class is its own group, the value is the class itself;
  - every stage-(s+1) group lies inside one stage-s group (each stage refines the previous one).
Base-b digits: the stage-s value is (x // b^(S-s)) * b^(S-s), so stage s reveals the s-th most significant
digit. text8: stage 1 shows space (0) / vowel (1 = 'a') / consonant (2 = 'b'), stage 2 the letter.

Stage s predicts each variable's stage-(s+1) value given every variable's stage-s value and the stage-(s+1)
values of the variables with sigma < t. Two parametrisations of that prediction:
  - "direct": C = max_branching logits, one per child of the variable's current group (children ordered by
    value); children that do not exist (e.g. stage 0 of text8 has 3 of 21) get probability 0.
  - "data": K logits over the fine classes, renormalised over the classes inside the current group; the
    probability of a stage-(s+1) value is the total over its classes.
"""

import dataclasses
import string

import jax
import jax.numpy as jnp
import numpy as np

from ardm_jax import orders

PARAMETRISATIONS = ("direct", "data")


@dataclasses.dataclass(frozen=True, eq=False)
class Transitions:
  """Lookup tables of a coarse-to-fine refinement of K classes in S stages (numpy, built by make_transitions).

  Attributes:
    state_values: int32 [S+1, K], value of class k at stage s.
    child_index: int32 [S, K], the "direct" target: index of class k's stage-(s+1) value among the
      children of its stage-s value.
    consistent_classes: bool [S, K, K], [s, v, k]: class k has stage-s value v.
    valid_children: bool [S, K, C], [s, v, c]: the stage-s value v has a child number c.
    child_state: int32 [S, K, C], [s, v, c]: the stage-(s+1) value of that child (0 where invalid).
  """

  state_values: np.ndarray
  child_index: np.ndarray
  consistent_classes: np.ndarray
  valid_children: np.ndarray
  child_state: np.ndarray

  @property
  def num_stages(self) -> int:
    return self.state_values.shape[0] - 1

  @property
  def num_classes(self) -> int:
    return self.state_values.shape[1]

  @property
  def max_branching(self) -> int:
    """C: logits per variable of the "direct" parametrisation."""
    return self.valid_children.shape[2]

  def all_allowed(self, parametrisation: str) -> bool:
    """Whether every output is possible for every value a stage can show (e.g. the OA-ARDM's one stage), so
    that next_state_log_probs needs no mask."""
    table = self.valid_children if parametrisation == "direct" else self.consistent_classes
    return all(bool(table[s, v].all()) for s in range(self.num_stages) for v in np.unique(self.state_values[s]))

  def num_outputs(self, parametrisation: str) -> int:
    """Logits per variable the network must output for this parametrisation."""
    _check_parametrisation(parametrisation)
    return self.max_branching if parametrisation == "direct" else self.num_classes


def make_transitions(state_values) -> Transitions:
  """Validates state_values (int [S+1, K], see the module docstring) and derives the lookup tables."""
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
    group_min = {v: classes[values == v].min() for v in np.unique(values)}
    if any(v != group_min[v] for v in values):
      raise ValueError(f"stage {s}: a value must be the smallest class of its group.")
  for s in range(num_stages):
    for v in np.unique(state_values[s + 1]):
      if len(np.unique(state_values[s][state_values[s + 1] == v])) != 1:
        raise ValueError(f"stage {s + 1} does not refine stage {s}: value {v} spans several stage-{s} groups.")

  children = [
    {v: np.unique(state_values[s + 1][state_values[s] == v]) for v in np.unique(state_values[s])}
    for s in range(num_stages)
  ]
  max_branching = max(len(c) for stage in children for c in stage.values())
  child_index = np.zeros((num_stages, num_classes), np.int32)
  valid_children = np.zeros((num_stages, num_classes, max_branching), bool)
  child_state = np.zeros((num_stages, num_classes, max_branching), np.int32)
  for s in range(num_stages):
    for v, kids in children[s].items():
      valid_children[s, v, : len(kids)] = True
      child_state[s, v, : len(kids)] = kids
    child_index[s] = [np.searchsorted(children[s][state_values[s, k]], state_values[s + 1, k]) for k in classes]
  consistent_classes = state_values[:-1, None, :] == classes[None, :, None]
  return Transitions(
    state_values=state_values,
    child_index=child_index,
    consistent_classes=consistent_classes,
    valid_children=valid_children,
    child_state=child_state,
  )


def digit_transitions(num_classes: int, branching: int) -> Transitions:
  """Base-b digits, most significant first: S = ceil(log_b K) stages (K=256: b=4 -> 4, b=16 -> 2)."""
  if branching < 2 or num_classes < 2:
    raise ValueError(f"need branching >= 2 and num_classes >= 2, got {branching} and {num_classes}.")
  num_stages = 1
  while branching**num_stages < num_classes:
    num_stages += 1
  classes = np.arange(num_classes)
  scales = branching ** (num_stages - np.arange(num_stages + 1))  # b^(S-s)
  return make_transitions((classes[None, :] // scales[:, None]) * scales[:, None])


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
  table = transitions.valid_children if parametrisation == "direct" else transitions.consistent_classes
  allowed = jnp.asarray(table)[orders.per_example(stage, coarse.ndim), coarse]
  return jax.nn.log_softmax(jnp.where(allowed, logits, -jnp.inf), axis=-1)


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
