"""The SC09 network: a non-causal DiffWave-style stack of dilated convolutions (arXiv 2110.02037, section 5;
DiffWave, Kong et al. 2021, arXiv 2009.09761). Design notes: docs/design.md#diffwave
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from ardm_jax.models import layers

# Step embeddings see t rescaled to [0, 1000) whatever the number of steps (as in the U-Net).
_TIME_SCALE = 1000.0
_TEMB_FEATURES = 128  # Sinusoid features of the step (DiffWave: 128), then two dense layers of 4 * that.


# Zero-initialised step and residual projections learned no faster on the audio quickstart (docs/networks.md).
ARCHS = {"paper": dict(zero_init=False), "improved": dict(zero_init=False)}


def _zero_columns(init, num_columns: int):
  """`init` with its first num_columns output columns set to zero."""

  def zero_first(key, shape, dtype=jnp.float32):
    return init(key, shape, dtype).at[..., :num_columns].set(0)

  return zero_first


class ResidualBlock(nn.Module):
  """One gated dilated-conv block: returns (the block output [B, L, ch], its skip [B, L, ch]).

  zero_init: the step projection and the residual half of the output projection start at zero: each block
  starts as the identity on h (its skip is live: the network's output sees only skips), and the step enters
  once the block has learnt something to modulate.
  """

  ch: int
  dilation: int
  dropout: float
  dtype: jnp.dtype
  zero_init: bool = False

  @nn.compact
  def __call__(self, h_BxLxC, temb_BxF, train: bool):
    lecun = nn.initializers.lecun_normal()
    init = nn.initializers.zeros if self.zero_init else lecun
    out_init = _zero_columns(lecun, self.ch) if self.zero_init else lecun
    y = h_BxLxC
    if temb_BxF is not None:
      y = y + nn.Dense(self.ch, kernel_init=init, dtype=self.dtype, name="temb_proj")(temb_BxF)[:, None, :]
    y = nn.Conv(2 * self.ch, (3,), kernel_dilation=(self.dilation,), padding="SAME", dtype=self.dtype, name="conv")(y)
    gate, filt = jnp.split(y, 2, axis=-1)
    y = jnp.tanh(filt) * nn.sigmoid(gate)
    y = nn.Dropout(self.dropout)(y, deterministic=not train)
    y = nn.Dense(2 * self.ch, kernel_init=out_init, dtype=self.dtype, name="out_proj")(y)
    residual, skip = jnp.split(y, 2, axis=-1)
    return (h_BxLxC + residual) * (1.0 / math.sqrt(2.0)), skip


class DiffWave(nn.Module):
  """Maps (x_in, known, t) to per-sample outputs for waveforms [B, L] (any event shape is flattened).

  Attributes:
    num_classes: K (65,536 for 16-bit audio); x_in takes values in 0..K-1 (shown scaled to [-1, 1]).
    num_classes_out: C, outputs per sample (K or 3M mixture parameters for OA, the branching for upscale
      "direct").
    ch: residual channels (paper 256).
    num_blocks: residual blocks (paper 36).
    dilation_cycle: block i has dilation 2^(i % cycle) (paper 12: 1, 2, ..., 2048).
    num_stages: upscale stages S (1 = OA-ARDM); t is the global step stage * D + t_local.
    dropout: rate after the gated unit (train=True only; needs a 'dropout' rng).
    dtype: compute dtype, 'float32' or 'bfloat16'; parameters stay float32 and outputs are returned as float32.
    remat: 'none' or a rematerialisation policy of every residual block (layers.REMAT_POLICIES).
    use_step: embed the step t (the reference); False: only the stage (upscaling) or nothing (OA), as the
      Transformer's OA model, which does not see t. In a short run at lr 1e-3 or 3e-4
      (configs/quickstart.py:audio) the embedding path (two 512-wide layers into every block) grows until it
      saturates every gated unit and the network stops using its input (15.0 bpd after 600 steps with it,
      12.3 without).
    arch: 'paper' or 'improved' (ARCHS): the default of zero_init.
    zero_init: every block's step projection and residual output start at zero (None: the arch's value).
  """

  num_classes: int = 65536
  num_classes_out: int = 65536
  ch: int = 256
  num_blocks: int = 36
  dilation_cycle: int = 12
  num_stages: int = 1
  dropout: float = 0.0
  dtype: str = "float32"
  remat: str = "none"
  use_step: bool = True
  arch: str = "paper"
  zero_init: bool | None = None

  @nn.compact
  def __call__(self, x_in, known, t, train: bool = False):
    """Args: x_in int32 [B, *event]; known bool [B, *event]; t int32 [B] global step.

    Returns: float32 outputs [B, *event, num_classes_out].
    """
    if known.shape != x_in.shape or t.shape != x_in.shape[:1]:
      raise ValueError(
        f"DiffWave expects x_in, known [B, *event] and t [B]; got {x_in.shape}, {known.shape}, {t.shape}"
      )
    if self.arch not in ARCHS:
      raise ValueError(f"model.arch = {self.arch!r} is not one of {list(ARCHS)}")
    zero_init = ARCHS[self.arch]["zero_init"] if self.zero_init is None else self.zero_init
    dtype = jnp.dtype(self.dtype)
    batch, event_shape = x_in.shape[0], x_in.shape[1:]
    num_variables = math.prod(event_shape)
    num_steps = self.num_stages * num_variables

    temb = None  # An OA model without the step has no embedding at all (no constant path to grow).
    if self.use_step:
      temb = layers.sinusoidal_embedding(t * (_TIME_SCALE / num_steps), _TEMB_FEATURES)
    if self.num_stages > 1:
      stage_embed = nn.Embed(self.num_stages, _TEMB_FEATURES, name="stage_embed")(t // num_variables)
      temb = stage_embed if temb is None else temb + stage_embed
    if temb is not None:
      temb = nn.swish(nn.Dense(4 * _TEMB_FEATURES, dtype=dtype, name="temb_dense0")(temb))
      temb = nn.swish(nn.Dense(4 * _TEMB_FEATURES, dtype=dtype, name="temb_dense1")(temb))

    x_BxL = x_in.reshape(batch, num_variables)
    features = [x_BxL * (2.0 / (self.num_classes - 1)) - 1.0, known.reshape(batch, num_variables)]
    features = [f.astype(jnp.float32)[..., None] for f in features]
    if self.num_stages > 1:
      stage_BxS = jax.nn.one_hot(t // num_variables, self.num_stages)
      features.append(jnp.broadcast_to(stage_BxS[:, None, :], (batch, num_variables, self.num_stages)))
    h = nn.relu(nn.Dense(self.ch, dtype=dtype, name="input_proj")(jnp.concatenate(features, -1)))

    block = layers.remat_block(ResidualBlock, self.remat, static_argnums=(3,))  # (self, h, temb, train)
    skip_sum = jnp.zeros_like(h)
    for i in range(self.num_blocks):
      dilation = 2 ** (i % self.dilation_cycle)
      h, skip = block(self.ch, dilation, self.dropout, dtype, zero_init, name=f"block_{i}")(h, temb, train)
      skip_sum = skip_sum + skip

    h = skip_sum * (1.0 / math.sqrt(self.num_blocks))
    h = nn.relu(nn.Dense(self.ch, dtype=dtype, name="skip_proj")(h))
    # Zero-initialised: training starts from uniform (or broad mixture) predictions.
    out = nn.Dense(self.num_classes_out, kernel_init=nn.initializers.zeros, dtype=dtype, name="output_proj")(h)
    return out.astype(jnp.float32).reshape(batch, *event_shape, self.num_classes_out)
