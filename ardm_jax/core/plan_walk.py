"""One walk over a plan, shared by sampling, the fixed-order likelihood and the coder (arXiv 2110.02037): call i of
stage s sees sigma < starts[i] at stage-(s+1) values, the others at stage-s values, refines every variable with
starts[i] <= sigma < starts[i+1], and gives the network step s * D + starts[i]. Design notes: docs/design.md#plan_walk
"""

import dataclasses
import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ardm_jax.core import distributions
from ardm_jax.core import orders
from ardm_jax.core import upscale

# The network as the ARDM math takes it: (x_in [B, *event], known [B, *event], global step [B]) -> logits.
LogitsFn = Callable[[jax.Array, jax.Array, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True, eq=False)
class Process:
  """The staged process an ARDM generates by.

  Attributes:
    transitions: the stages (state_values [S+1, K], children per value).
    parametrisation: "direct" (the network outputs one logit per child) or "data" (one per fine class).
    input_values: int32 [S+1, K], [s, v]: what the network is shown for a variable whose stage-s value is v
      (the stage-s values themselves, except the OA absorbing value at stage 0).
  """

  transitions: upscale.Transitions
  parametrisation: str
  input_values: np.ndarray
  # 0: the network's outputs are logits; M > 0: they are the 3M parameters of a discretized logistic mixture
  # over the K classes (distributions.py; arXiv 2110.02037, section 5: SC09). The objective and the likelihood
  # score it by interval probabilities (refined_log_prob), upscale walks their children likewise
  # (mixture_children_log_probs), the OA sampler draws from it and the coder codes it in byte digits; only an OA
  # walk asking for all children (children_log_probs) forms the K class log-probs (`class_logits`).
  num_mixtures: int = 0

  @property
  def num_stages(self) -> int:
    return self.transitions.num_stages

  @property
  def num_classes(self) -> int:
    return self.transitions.num_classes

  @functools.cached_property
  def description(self) -> str:
    """What a decoder must share with the encoder about the process (for settings checksums)."""
    mixture = f":logistic_mixture{self.num_mixtures}" if self.num_mixtures else ""
    return f"{self.parametrisation}:{self.input_values.tolist()}:{self.transitions.state_values.tolist()}{mixture}"

  @property
  def num_outputs(self) -> int:
    """Network outputs per variable: 3M mixture parameters, or one logit per child ("direct") / class."""
    if self.num_mixtures:
      return distributions.num_params(self.num_mixtures)
    return self.transitions.num_outputs(self.parametrisation)

  def __post_init__(self):
    if self.num_mixtures and not (self.transitions.num_stages == 1 or self.parametrisation == "data"):
      raise ValueError("a logistic mixture covers the K classes: it needs the OA-ARDM or the 'data' parametrisation.")
    if self.num_mixtures and not self.transitions.groups_contiguous:
      raise ValueError("a logistic mixture scores runs of classes: every stage's groups must be contiguous.")

  # Equal processes are one static jit argument: jitted walks compile once per process, not per instance.
  def __eq__(self, other):
    return isinstance(other, Process) and self.description == other.description

  def __hash__(self):
    return hash(self.description)


def oa_process(num_classes: int, absorbing_value: int, num_mixtures: int = 0) -> Process:
  """The OA-ARDM as a one-stage process: K children of 'nothing known', shown as absorbing_value."""
  transitions = upscale.digit_transitions(num_classes, num_classes)
  input_values = transitions.state_values.copy()
  input_values[0] = absorbing_value
  return Process(transitions, "direct", input_values, num_mixtures)


def upscale_process(transitions: upscale.Transitions, parametrisation: str, num_mixtures: int = 0) -> Process:
  """An upscale ARDM: the network is shown every variable's current stage value."""
  return Process(transitions, parametrisation, transitions.state_values.copy(), num_mixtures)


def class_logits(process: Process, outputs):
  """[B, *event, outputs]: the network's outputs as the logits the transitions take: for a logistic mixture
  its K class log-probs (memory B * D * K * M), else the outputs themselves."""
  if process.num_mixtures:
    return distributions.class_log_probs(outputs, process.num_classes)
  return outputs


def mixture_refined_log_prob(process: Process, params, x, stage):
  """[B, *event]: log p(stage-(s+1) value of x | stage-s value) under the mixture params [B, *event, 3M],
  without the K class log-probs: log P(x's stage-(s+1) group) - log P(its stage-s group), each a run of classes."""
  tr, num_classes = process.transitions, process.num_classes

  def group_log_prob(s):
    lo = upscale.class_lookup(tr.state_values, s, x)
    return distributions.interval_log_prob(params, lo, upscale.class_lookup(tr.group_last, s, x), num_classes)

  return group_log_prob(stage + 1) - group_log_prob(stage)


def plan_steps(starts, num_variables: int, num_stages: int, first_step: int | None = 0):
  """(starts, ends) int32 [S, n]: the calls of every stage (the same plan for every stage if starts is [n]).

  first_step: k, the variables given before the first call (see conditioned_stage); None: not checked.
  """
  starts, ends = orders.plan_bounds(starts, num_variables, first_step)
  if starts.ndim > 2:
    raise ValueError(f"a plan is starts [n] or [S, n], got shape {starts.shape}.")
  shape = (num_stages, starts.shape[-1])
  if starts.ndim == 2 and starts.shape[0] != num_stages:
    raise ValueError(f"a plan per stage needs {num_stages} rows of starts, got shape {starts.shape}.")
  return jnp.broadcast_to(starts, shape), jnp.broadcast_to(ends, shape)


def conditional_orders(rng: jax.Array, known_BxE: jax.Array) -> jax.Array:
  """int32 [B, *event]: random orders (ranks) that put the known variables first.

  The k known variables of an example get the steps 0..k-1 and the others k..D-1, each group in a uniform
  random order independent of the other's. With nothing known this is orders.sample_orders(rng, shape).
  """
  shape = known_BxE.shape
  batch_size, num_variables = shape[0], math.prod(shape[1:])
  sigma_BxD = orders.sample_orders(rng, shape).reshape(batch_size, num_variables)
  key_BxD = jnp.where(known_BxE.reshape(batch_size, num_variables), sigma_BxD, sigma_BxD + num_variables)
  return jnp.argsort(jnp.argsort(key_BxD, axis=1), axis=1).astype(jnp.int32).reshape(shape)


def conditioned_stage(process: Process, rng: jax.Array, coarse_BxE, known_BxE, x_known_BxE, stage):
  """The start of stage s of a walk conditioned on given variables (arXiv 2110.02037: an OA-ARDM can
  condition on any subset): generation starts at step k, the number of given variables.

  Args:
    process: the staged process.
    rng: PRNG key of the stage's order.
    coarse_BxE: int32 [B, *event], the stage-s values (the given variables' own, from the stages before).
    known_BxE: bool [B, *event], the given variables (the same number k in every example).
    x_known_BxE: int32 [B, *event], their (fine) classes; ignored elsewhere.
    stage: s.
  Returns:
    (sigma int32 [B, *event]: the stage's order, the given variables first; values int32 [B, *event]: the
    given variables at their stage-(s+1) values, the others at their stage-s values until their call).
  """
  sigma_BxE = conditional_orders(rng, known_BxE)
  return sigma_BxE, jnp.where(known_BxE, stage_values(process, x_known_BxE, stage + 1), coarse_BxE)


def stage_values(process: Process, x, stage):
  """int32 [B, *event]: the stage-s values of the classes x [B, *event]; stage an int or [B]."""
  return upscale.stage_values(process.transitions, x, stage)


def network_input(process: Process, values, coarse, known, stage):
  """[B, *event]: what the network sees: known variables at their refined values, the others as coarse.

  values: the refined (stage-(s+1)) values where known, anything elsewhere; coarse: the stage-s values.
  """
  shown_coarse = jnp.asarray(process.input_values)[orders.per_example(stage, coarse.ndim), coarse]
  return jnp.where(known, values, shown_coarse)


def run_edges(coarse, first_child, span, num_runs: int, num_children, stride, group_end):
  """int32 [..., num_runs + 1]: the class edges of runs of children of stage values coarse [...], given each
  value's number of children, child stride and group end (its last class + 1; base-b transitions: child c of v
  holds the classes v + c * stride ..). Run r holds the children first_child + r * span .. first_child +
  (r + 1) * span - 1 and the classes edges[r] .. edges[r + 1] - 1; runs past a value's last child are empty, at
  the end of its group."""
  child_edges = jnp.minimum(
    jnp.asarray(first_child)[..., None] + span * jnp.arange(num_runs + 1), num_children[..., None]
  )
  class_edges = jnp.asarray(coarse)[..., None] + child_edges * stride[..., None]
  return jnp.minimum(class_edges, group_end[..., None]).astype(jnp.int32)


def child_run_edges(process: Process, coarse, stage, first_child, span: int, num_runs: int):
  """run_edges of the stage-s values coarse [...] (stage an int or [B])."""
  tr = process.transitions
  s = orders.per_example(stage, jnp.ndim(coarse))
  num_children = jnp.asarray(tr.num_children)[s, coarse]
  stride = jnp.broadcast_to(jnp.asarray(tr.child_stride, jnp.int32)[s], jnp.shape(coarse))
  group_end = jnp.asarray(tr.group_last)[s, coarse] + 1
  return run_edges(coarse, first_child, span, num_runs, num_children, stride, group_end)


def mixture_children_log_probs(process: Process, params, coarse, stage):
  """[B, *event, C]: an upscale ARDM's log-probabilities over the children of every variable's stage-s value under
  logistic mixtures [B, *event, 3M]: each child is a run of classes (child_run_edges), so its probability is an
  interval probability, renormalised over v's children (no [B, *event, K] class log-probs)."""
  num_children = process.transitions.max_branching
  edges = child_run_edges(process, coarse, stage, jnp.zeros_like(coarse), 1, num_children)  # [B, *event, C+1]
  flat = distributions.partition_log_probs(
    params.reshape(-1, params.shape[-1]), edges.reshape(-1, num_children + 1), process.num_classes
  )
  log_p = jnp.where(edges[..., 1:] > edges[..., :-1], flat.reshape(edges.shape[:-1] + (num_children,)), -jnp.inf)
  return log_p - jax.nn.logsumexp(log_p, axis=-1, keepdims=True)


def children_log_probs(process: Process, logits, coarse, stage):
  """[B, *event, C]: log-probabilities over the children of every variable's stage-s value (-inf: none).

  logits: [B, *event, network outputs]; coarse: int32 [B, *event] stage-s values; stage an int or [B].
  """
  tr = process.transitions
  if process.num_mixtures and tr.num_stages > 1 and tr.child_stride is not None:
    return mixture_children_log_probs(process, logits, coarse, stage)
  logits = class_logits(process, logits)
  log_probs = upscale.next_state_log_probs(tr, logits, coarse, stage, process.parametrisation)
  if process.parametrisation == "data":  # a child's probability is the total of its fine classes
    child_of_class = jnp.asarray(tr.child_index)[orders.per_example(stage, coarse.ndim)]  # [B, 1.., K]
    to_child = child_of_class[..., None] == jnp.arange(tr.max_branching)  # [B, 1.., K, C]
    log_probs = jax.nn.logsumexp(jnp.where(to_child, log_probs[..., None], -jnp.inf), axis=-2)
  return log_probs


def child_number(process: Process, x, stage):
  """int32 [B, *event]: the child number of each class's stage-(s+1) value among its stage-s value's."""
  return jnp.asarray(process.transitions.child_index)[orders.per_example(stage, x.ndim), x]


def refine(process: Process, coarse, child, stage):
  """int32 [B, *event]: the stage-(s+1) values of the children `child` of the stage-s values coarse."""
  return upscale.refine_values(process.transitions, coarse, child, stage)


def call_log_probs(process: Process, logits_fn: LogitsFn, values, coarse, known, stage, start):
  """One planned call: log-probabilities [B, *event, C] over every variable's children.

  Args:
    process: the staged process.
    logits_fn: network, (x_in, known, stage * D + t) -> logits [B, *event, outputs].
    values: int32 [B, *event], refined values where known.
    coarse: int32 [B, *event], stage-s values.
    known: bool [B, *event].
    stage: s, an int or traced scalar.
    start: the call's first step t (scalar).
  """
  logits = call_network(process, logits_fn, values, coarse, known, stage, start)
  return children_log_probs(process, logits, coarse, stage)


def call_draw(process: Process, logits_fn: LogitsFn, values, coarse, known, stage, start, rng):
  """One planned call's draw: int32 [B, *event], a child number of every variable's stage-s value, each drawn
  independently from that call's distribution (arguments as call_log_probs; rng: PRNG key).

  An OA-ARDM's logistic mixture is sampled directly (its children are the K classes), without the
  [B, *event, K] log-probs; every other process draws from call_log_probs.
  """
  if process.num_mixtures and process.num_stages == 1:
    outputs = call_network(process, logits_fn, values, coarse, known, stage, start)
    return distributions.sample(rng, outputs, process.num_classes)
  return jax.random.categorical(rng, call_log_probs(process, logits_fn, values, coarse, known, stage, start))


def call_network(process: Process, logits_fn: LogitsFn, values_BxE, coarse_BxE, known_BxE, stage, start):
  """The network's outputs [B, *event, outputs] at step `start` of stage s (scalars, or [B] per example)."""
  batch_size, num_variables = coarse_BxE.shape[0], coarse_BxE[0].size
  global_step_B = jnp.broadcast_to(stage * num_variables + start, (batch_size,)).astype(jnp.int32)
  return logits_fn(network_input(process, values_BxE, coarse_BxE, known_BxE, stage), known_BxE, global_step_B)


def sum_over_event(values_BxE):
  """[B, *event] -> [B]."""
  return jnp.sum(values_BxE, axis=tuple(range(1, values_BxE.ndim)))


def refined_log_prob(process: Process, outputs_BxExO, x_BxE, coarse_BxE, stage):
  """[B, *event]: log p(stage-(s+1) value of x | stage-s values) under one call's network outputs; a logistic
  mixture by interval probabilities, without the [B, *event, K] class log-probs (K = 65,536 for 16-bit audio)."""
  if process.num_mixtures:
    return mixture_refined_log_prob(process, outputs_BxExO, x_BxE, stage)
  tr, parametrisation = process.transitions, process.parametrisation
  log_probs_BxExG = upscale.next_state_log_probs(tr, outputs_BxExO, coarse_BxE, stage, parametrisation)
  return upscale.refined_log_prob(tr, log_probs_BxExG, x_BxE, stage, parametrisation)


def step_log_px(process: Process, logits_fn: LogitsFn, x_BxE, sigma_BxE, t, stage):
  """[B]: the training objective's one call: sum over the variables with sigma >= t of the log-probability
  (nats) of their stage-(s+1) value, given every stage-s value and the stage-(s+1) values of sigma < t.

  x_BxE, sigma_BxE: int32 [B, *event]; t (local step) and stage: [B] or scalars.
  """
  known_BxE = orders.known_mask(sigma_BxE, t)
  coarse_BxE = stage_values(process, x_BxE, stage)
  refined_BxE = stage_values(process, x_BxE, stage + 1)
  outputs_BxExO = call_network(process, logits_fn, refined_BxE, coarse_BxE, known_BxE, stage, t)
  log_p_BxE = refined_log_prob(process, outputs_BxExO, x_BxE, coarse_BxE, stage)
  # where, not multiply: the log-probs of known variables may be -inf and must not leak NaN gradients.
  return sum_over_event(jnp.where(known_BxE, 0.0, log_p_BxE))
