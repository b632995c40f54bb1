"""Pieces shared by the networks: sinusoidal embeddings, attention and rematerialisation choices, and an
allocation-free parameter count."""

import inspect
import math

from absl import logging
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def sinusoidal_embedding(positions, dim: int, max_period: float = 10000.0):
  """Sine/cosine features of (possibly fractional) positions.

  Args:
    positions: float or int array [N].
    dim: even feature size; frequencies run geometrically from 1 to 1/max_period.
    max_period: longest wavelength.

  Returns:
    float32 [N, dim]: [sin(p * f_0..f_{dim/2-1}), cos(p * f_0..f_{dim/2-1})].
  """
  if dim % 2 or dim < 4:
    raise ValueError(f"sinusoidal embedding dim must be even and >= 4, got {dim}")
  half = dim // 2
  frequencies = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / (half - 1))
  angles_NxQ = jnp.asarray(positions, jnp.float32)[:, None] * frequencies[None, :]
  return jnp.concatenate([jnp.sin(angles_NxQ), jnp.cos(angles_NxQ)], axis=-1)


def count_params(module: nn.Module, event_shape) -> int:
  """Number of parameters of a network built for inputs [1, *event_shape], without allocating them.

  Args:
    module: a network with `__call__(x_in, known, t, train)` (U-Net or Transformer).
    event_shape: shape of one data point, e.g. (32, 32, 3) or (250,).

  Returns:
    The total number of scalars in the 'params' collection.
  """
  x_in = jax.ShapeDtypeStruct((1, *event_shape), jnp.int32)
  known = jax.ShapeDtypeStruct((1, *event_shape), jnp.bool_)
  t = jax.ShapeDtypeStruct((1,), jnp.int32)
  shapes = jax.eval_shape(module.init, jax.random.key(0), x_in, known, t)
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(shapes["params"]))


def _fused_attention(query, key, value, dtype=None):
  """Flax `attention_fn` through `jax.nn.dot_product_attention`: query/key/value [B, L, heads, head_dim].

  On GPUs with bf16/fp16 inputs it asks for cuDNN's fused (flash) attention and falls back to XLA when JAX
  refuses the shapes (e.g. a head size cuDNN does not support); elsewhere XLA (in jax 0.10,
  implementation=None still means XLA). The softmax is computed in float32 either way, like the einsum path
  with force_fp32_for_softmax.
  """
  if dtype is not None:
    query, key, value = (a.astype(dtype) for a in (query, key, value))
  if jax.default_backend() == "gpu" and query.dtype in (jnp.bfloat16, jnp.float16):
    try:
      return jax.nn.dot_product_attention(query, key, value, implementation="cudnn")
    except (NotImplementedError, ValueError, RuntimeError) as e:
      logging.log_first_n(logging.WARNING, "cuDNN attention unavailable (%s); using XLA.", 1, e)
  return jax.nn.dot_product_attention(query, key, value, implementation=None)


ARCH_NAMES = ("paper", "improved")  # The architectures every network offers (each model's ARCHS).

ATTENTION = {
  "einsum": nn.dot_product_attention,  # Flax's default: two einsums around a float32 softmax.
  "dot_product": _fused_attention,
}

# Rematerialisation policies of each residual block: which intermediates the backward pass keeps; the rest is
# recomputed (jax.checkpoint_policies). 'full' keeps only the block inputs.
REMAT_POLICIES = {
  "full": None,
  "dots": jax.checkpoint_policies.checkpoint_dots,
  "dots_no_batch": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def attention_fn(name: str):
  """The attention function for `nn.MultiHeadDotProductAttention` named by `model.attention`."""
  if name not in ATTENTION:
    raise ValueError(f"model.attention = {name!r} is not one of {list(ATTENTION)}")
  return ATTENTION[name]


def remat_block(block_cls, policy: str, static_argnums=()):
  """block_cls wrapped in `nn.remat` with the named policy, or unchanged for 'none' (same parameter tree).

  Args:
    block_cls: a Flax module class.
    policy: 'none' or a key of REMAT_POLICIES.
    static_argnums: positions of Python-valued call arguments (e.g. `train`), counting `self` as 0.
  """
  if policy == "none":
    return block_cls
  if policy not in REMAT_POLICIES:
    raise ValueError(f"model.remat = {policy!r} is not one of {['none', *REMAT_POLICIES]}")
  return nn.remat(block_cls, policy=REMAT_POLICIES[policy], static_argnums=static_argnums)


def rotate(x_BxLxAxF, positions_L, max_period: float = 10000.0):
  """Rotary position embedding (RoFormer, arXiv 2104.09864): feature pairs (i, i + F/2) turned by position * f_i.

  The dot product of a query rotated at position m with a key rotated at n depends on m - n only.
  """
  half = x_BxLxAxF.shape[-1] // 2
  frequencies = max_period ** (-jnp.arange(half, dtype=jnp.float32) / half)
  angles_LxQ = jnp.asarray(positions_L, jnp.float32)[:, None] * frequencies[None, :]
  cos, sin = (f(angles_LxQ)[None, :, None, :] for f in (jnp.cos, jnp.sin))
  x1, x2 = x_BxLxAxF[..., :half].astype(jnp.float32), x_BxLxAxF[..., half:].astype(jnp.float32)
  return jnp.concatenate([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1).astype(x_BxLxAxF.dtype)


def rotary_attention(query, key, value, dtype=None, force_fp32_for_softmax=True, *, inner, positions):
  """An `attention_fn` that rotates queries and keys [B, L, heads, head_dim] by position, then calls `inner`."""
  query, key = rotate(query, positions), rotate(key, positions)
  kwargs = {"dtype": dtype}
  if "force_fp32_for_softmax" in inspect.signature(inner).parameters:
    kwargs["force_fp32_for_softmax"] = force_fp32_for_softmax
  return inner(query, key, value, **kwargs)
