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
import math
import string

import jax
import jax.numpy as jnp
import numpy as np

from ardm_jax import objective
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


def stage_values(transitions: Transitions, x: jax.Array, stage) -> jax.Array:
  """int32 [B, *event]: the stage-s value of every variable of x [B, *event]; stage is an int or [B]."""
  table = jnp.asarray(transitions.state_values)
  return table[orders.per_example(stage, x.ndim), x]


def stage_input(transitions: Transitions, x: jax.Array, sigma: jax.Array, t: jax.Array, stage):
  """Network input at local step t [B] of stage s: (x_in [B, *event], known [B, *event] bool).

  Variables with sigma < t show their stage-(s+1) value, the others their stage-s value.
  """
  known = orders.known_mask(sigma, t)
  x_in = jnp.where(known, stage_values(transitions, x, stage + 1), stage_values(transitions, x, stage))
  return x_in, known


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
  table = transitions.valid_children if parametrisation == "direct" else transitions.consistent_classes
  allowed = jnp.asarray(table)[orders.per_example(stage, coarse.ndim), coarse]
  return jax.nn.log_softmax(jnp.where(allowed, logits, -jnp.inf), axis=-1)


def refined_log_prob(
  transitions: Transitions, log_probs: jax.Array, x: jax.Array, stage, parametrisation: str
) -> jax.Array:
  """[B, *event]: log-probability of the stage-(s+1) value of x [B, *event] under log_probs [B, *event, C]."""
  s = orders.per_example(stage, x.ndim)
  if parametrisation == "direct":
    child = jnp.asarray(transitions.child_index)[s, x]
    return jnp.take_along_axis(log_probs, child[..., None], axis=-1)[..., 0]
  refined_table = jnp.asarray(transitions.state_values)[s + 1]  # [B, 1, ..., 1, K]
  same_refined = refined_table == stage_values(transitions, x, stage + 1)[..., None]
  return jax.nn.logsumexp(jnp.where(same_refined, log_probs, -jnp.inf), axis=-1)


def sample_refined(
  transitions: Transitions, rng: jax.Array, log_probs: jax.Array, coarse: jax.Array, stage, parametrisation: str
) -> jax.Array:
  """int32 [B, *event]: stage-(s+1) values drawn independently from log_probs [B, *event, C]."""
  choice = jax.random.categorical(rng, log_probs)
  s = orders.per_example(stage, coarse.ndim)
  if parametrisation == "direct":
    return jnp.asarray(transitions.child_state)[s, coarse, choice]
  return jnp.asarray(transitions.state_values)[s + 1, choice]


def stage_log_px(
  logits_fn: objective.LogitsFn,
  x: jax.Array,
  sigma: jax.Array,
  t: jax.Array,
  stage,
  *,
  transitions: Transitions,
  parametrisation: str,
) -> jax.Array:
  """[B]: sum over the variables with sigma >= t of log p(stage-(s+1) value | input), in nats.

  x, sigma: [B, *event]; t: [B] local step; stage: [B] or int. The network gets the global step s * D + t.
  """
  num_variables = sigma[0].size
  x_in, known = stage_input(transitions, x, sigma, t, stage)
  logits = logits_fn(x_in, known, stage * num_variables + t)
  log_probs = next_state_log_probs(transitions, logits, stage_values(transitions, x, stage), stage, parametrisation)
  log_p = refined_log_prob(transitions, log_probs, x, stage, parametrisation)
  return objective.sum_over_event(jnp.where(known, 0.0, log_p))


def upscale_loss_at(
  logits_fn: objective.LogitsFn,
  x: jax.Array,
  sigma: jax.Array,
  t_global: jax.Array,
  transitions: Transitions,
  *,
  parametrisation: str,
  ce_weight: float = 0.0,
  per_stage: bool = False,
):
  """Upscale loss for given orders sigma [B, *event] and global steps t_global [B] (stage * D + t).

  per_stage=False: the stage is taken as one uniform draw out of S, so its ELBO is multiplied by S (an
  unbiased estimate of the total). per_stage=True: the terms are that stage's own ELBO (sum over stages for
  the total). Returns (loss, Terms) as objective.loss_terms, with per_example['t'] the global step.
  """
  num_variables = sigma[0].size
  stage, t = t_global // num_variables, t_global % num_variables
  log_px = stage_log_px(logits_fn, x, sigma, t, stage, transitions=transitions, parametrisation=parametrisation)
  scale = 1.0 if per_stage else float(transitions.num_stages)
  return objective.loss_terms(log_px, t, t_global, num_variables, ce_weight=ce_weight, elbo_scale=scale)


def upscale_loss(
  logits_fn: objective.LogitsFn,
  x: jax.Array,
  rng: jax.Array,
  transitions: Transitions,
  *,
  parametrisation: str,
  ce_weight: float = 0.0,
  antithetic: bool = False,
):
  """Upscale-ARDM training loss in bits/dim: one uniform (stage, step) and order per example.

  The global step stage * D + t is drawn uniformly from 0..S*D-1 (stratified over the batch if antithetic).
  Returns (loss, Terms) as objective.loss_terms.
  """
  num_steps = transitions.num_stages * math.prod(x.shape[1:])
  sigma, t_global = objective.sample_orders_and_steps(rng, x.shape, num_steps, antithetic)
  return upscale_loss_at(
    logits_fn, x, sigma, t_global, transitions, parametrisation=parametrisation, ce_weight=ce_weight
  )
