"""Exact "networks" for tiny enumerable problems: they return the true conditionals of an explicit joint P.

The joint is a table over all K^D sequences (D <= 4, K small), correlated and strictly positive. The logits
functions follow the contract `logits_fn(x_in, known, t) -> logits` and are pure jnp (jit-able): they keep the
sequences consistent with what the input reveals and marginalise each variable.
"""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np


def all_sequences(num_variables: int, num_classes: int) -> np.ndarray:
  """int32 [K^D, D], in the row-major order of a [K] * D table (so index = np.ravel_multi_index)."""
  return np.array(list(itertools.product(range(num_classes), repeat=num_variables)), np.int32)


def random_joint(seed: int, num_variables: int, num_classes: int, scale: float = 1.0) -> np.ndarray:
  """float64 [K^D] strictly positive, correlated probabilities: exp of random unary + pairwise energies."""
  rs = np.random.RandomState(seed)
  seqs = all_sequences(num_variables, num_classes)
  unary = rs.normal(size=(num_variables, num_classes))
  pair = rs.normal(size=(num_variables, num_variables, num_classes, num_classes))
  energy = sum(unary[i, seqs[:, i]] for i in range(num_variables))
  energy = energy + sum(
    pair[i, j, seqs[:, i], seqs[:, j]] for i in range(num_variables) for j in range(i + 1, num_variables)
  )
  p = np.exp(scale * energy)
  return p / p.sum()


def _marginals(joint, seqs, consistent_BxN, num_classes):
  """[B, D, K] unnormalised marginals of each variable over the consistent sequences."""
  weights_BxN = consistent_BxN * jnp.asarray(joint, jnp.float32)
  return jnp.einsum("bn,ndk->bdk", weights_BxN, jax.nn.one_hot(seqs, num_classes))


def oa_logits_fn(joint: np.ndarray, num_classes: int):
  """True conditionals for OA-ARDM: known variables show their value, the others are unknown."""
  num_variables = round(math.log(joint.size, num_classes))
  seqs = jnp.asarray(all_sequences(num_variables, num_classes))

  def logits_fn(x_in, known, t):
    del t
    batch, event = x_in.shape[0], x_in.shape[1:]
    x_flat, known_flat = x_in.reshape(batch, -1), known.reshape(batch, -1)
    match_BxNxD = ~known_flat[:, None, :] | (seqs[None] == x_flat[:, None, :])
    marg = _marginals(joint, seqs, jnp.all(match_BxNxD, -1), num_classes)
    logits = jnp.where(known_flat[..., None], 0.0, jnp.log(marg))
    return logits.reshape(batch, *event, num_classes)

  return logits_fn


def staged_logits_fn(joint: np.ndarray, transitions, parametrisation: str):
  """True conditionals of the next-stage value for an upscale ARDM built from the joint over fine values.

  In stage s = t // D, known variables show their stage-(s+1) value and the others their stage-s value; a
  sequence is consistent if it maps to what is shown. "data" returns logits over the K fine classes, "direct"
  aggregates them over the children (the next-stage values) of each variable's current value.
  """
  num_classes = transitions.num_classes
  num_variables = round(math.log(joint.size, num_classes))
  seqs = jnp.asarray(all_sequences(num_variables, num_classes))
  state_values = jnp.asarray(transitions.state_values)
  child_index = jnp.asarray(transitions.child_index)

  def logits_fn(x_in, known, t):
    batch, event = x_in.shape[0], x_in.shape[1:]
    x_flat, known_flat = x_in.reshape(batch, -1), known.reshape(batch, -1)
    stage = (t // num_variables)[:, None, None]
    current_BxNxD = state_values[stage, seqs[None]]
    refined_BxNxD = state_values[stage + 1, seqs[None]]
    shown_BxNxD = jnp.where(known_flat[:, None, :], refined_BxNxD, current_BxNxD)
    marg_BxDxK = _marginals(joint, seqs, jnp.all(shown_BxNxD == x_flat[:, None, :], -1), num_classes)
    if parametrisation == "direct":
      child_BxK = child_index[stage[:, 0, 0]]
      to_child_BxKxC = jax.nn.one_hot(child_BxK, transitions.max_branching)
      marg_BxDxK = jnp.einsum("bdk,bkc->bdc", marg_BxDxK, to_child_BxKxC)
    logits = jnp.where(known_flat[..., None], 0.0, jnp.log(marg_BxDxK))
    return logits.reshape(batch, *event, logits.shape[-1])

  return logits_fn


def product_of_marginals(joint: np.ndarray, num_variables: int, num_classes: int) -> np.ndarray:
  """[K^D] the distribution with the same per-variable marginals as the joint, independent variables."""
  table = joint.reshape((num_classes,) * num_variables)
  marginals = [table.sum(axis=tuple(j for j in range(num_variables) if j != i)) for i in range(num_variables)]
  seqs = all_sequences(num_variables, num_classes)
  return np.prod([marginals[i][seqs[:, i]] for i in range(num_variables)], axis=0)


def count_calls(logits_fn):
  """(wrapped logits_fn, list): the list receives the t [B] of every call that runs, also under jit and loops.

  Read it after jax.effects_barrier().
  """
  seen = []

  def wrapped(x_in, known, t):
    jax.debug.callback(lambda t: seen.append(np.asarray(t)), t, ordered=True)
    return logits_fn(x_in, known, t)

  return wrapped, seen
