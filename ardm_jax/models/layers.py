"""Pieces shared by the networks: sinusoidal embeddings and an allocation-free parameter count."""
import math

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
  angles_NxH = jnp.asarray(positions, jnp.float32)[:, None] * frequencies[None, :]
  return jnp.concatenate([jnp.sin(angles_NxH), jnp.cos(angles_NxH)], axis=-1)


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
