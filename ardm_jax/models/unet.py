"""The CIFAR-10 network: a VDM-style U-Net that stays at the input resolution (paper section 5).
Design notes: docs/design.md#unet
"""

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from ardm_jax.models import layers

# Step embeddings see t rescaled to [0, 1000) whatever the number of steps, as in the reference code.
_TIME_SCALE = 1000.0
# Scale-shift conditioning (adaGN) learned no faster on the image quickstart (docs/networks.md): both archs add.
ARCHS = {"paper": dict(conditioning="add"), "improved": dict(conditioning="add")}


def _group_norm(channels: int, dtype, name=None) -> nn.GroupNorm:
  """GroupNorm with 32 groups for widths >= 128 and groups of >= 4 channels below.

  Groups of one channel would subtract the per-channel step-embedding shift again right after it is added.
  """
  return nn.GroupNorm(num_groups=math.gcd(32, channels // 4), dtype=dtype, name=name)


class ResBlock(nn.Module):
  """Pre-activation residual block with the step embedding between its two 3x3 convs: added ('add'), or as a
  scale and shift of the second norm from a zero-initialised projection ('scale_shift', adaGN)."""

  out_ch: int
  dropout: float
  dtype: jnp.dtype
  conditioning: str = "add"

  @nn.compact
  def __call__(self, x_BxHxWxC, temb_BxF, train: bool):
    h = nn.swish(_group_norm(x_BxHxWxC.shape[-1], self.dtype)(x_BxHxWxC))
    h = nn.Conv(self.out_ch, (3, 3), dtype=self.dtype, name="conv1")(h)
    if self.conditioning == "scale_shift":
      scale_shift = nn.Dense(2 * self.out_ch, kernel_init=nn.initializers.zeros, dtype=self.dtype, name="temb_proj")
      scale, shift = jnp.split(scale_shift(nn.swish(temb_BxF))[:, None, None, :], 2, axis=-1)
      h = nn.swish(_group_norm(self.out_ch, self.dtype)(h) * (1.0 + scale) + shift)
    else:
      h = h + nn.Dense(self.out_ch, dtype=self.dtype, name="temb_proj")(nn.swish(temb_BxF))[:, None, None, :]
      h = nn.swish(_group_norm(self.out_ch, self.dtype)(h))
    h = nn.Dropout(self.dropout)(h, deterministic=not train)
    # Zero-initialised so every block starts as the identity (VDM).
    h = nn.Conv(self.out_ch, (3, 3), kernel_init=nn.initializers.zeros, dtype=self.dtype, name="conv2")(h)
    skip = x_BxHxWxC
    if skip.shape[-1] != self.out_ch:
      skip = nn.Dense(self.out_ch, dtype=self.dtype, name="nin_shortcut")(skip)
    return skip + h


class AttnBlock(nn.Module):
  """Residual full self-attention over all H*W positions."""

  num_heads: int
  dtype: jnp.dtype
  attention: str = "einsum"

  @nn.compact
  def __call__(self, x_BxHxWxC):
    batch, height, width, channels = x_BxHxWxC.shape
    h = _group_norm(channels, self.dtype)(x_BxHxWxC).reshape(batch, height * width, channels)
    h = nn.MultiHeadDotProductAttention(
      num_heads=self.num_heads,
      dtype=self.dtype,
      out_kernel_init=nn.initializers.zeros,
      force_fp32_for_softmax=True,
      attention_fn=layers.attention_fn(self.attention),
      name="attention",
    )(h)
    return x_BxHxWxC + h.reshape(x_BxHxWxC.shape)


class UNet(nn.Module):
  """Maps (x_in, known, t) to per-variable logits for images [B, H, W, channels].

  Attributes:
    num_classes: K, the number of input values (256); x_in takes values in 0..K-1 (absorbing 128 included).
    num_classes_out: C, logits per variable (K for OA / upscale "data", the branching b for upscale "direct").
    ch: width of every block (paper 256); a multiple of 4.
    num_res_blocks: ResBlocks on the down path (paper 32); the up path has one more.
    num_stages: upscale stages S (1 = OA-ARDM, no stage channels); t is the global step stage * D + t_local.
    attn_everywhere: attention after every down/up ResBlock (reference code) besides the middle one.
    num_heads: attention heads.
    dropout: dropout rate inside ResBlocks (used only when train=True; needs a 'dropout' rng).
    dtype: compute dtype, 'float32' or 'bfloat16'; parameters stay float32 and logits are returned as float32.
    attention: 'einsum' (Flax's default) or 'dot_product' (jax.nn.dot_product_attention: cuDNN where it applies).
    remat: 'none' or a rematerialisation policy of every ResBlock and attention block (layers.REMAT_POLICIES).
    arch: 'paper' or 'improved' (ARCHS): the default of conditioning.
    conditioning: how the step enters every ResBlock, 'add' or 'scale_shift' (None: the arch's value).
  """

  num_classes: int = 256
  num_classes_out: int = 256
  ch: int = 256
  num_res_blocks: int = 32
  num_stages: int = 1
  attn_everywhere: bool = False
  num_heads: int = 1
  dropout: float = 0.0
  dtype: str = "float32"
  attention: str = "einsum"
  remat: str = "none"
  arch: str = "paper"
  conditioning: str | None = None

  @nn.compact
  def __call__(self, x_in, known, t, train: bool = False):
    """Args: x_in int32 [B, H, W, Ch]; known bool [B, H, W, Ch]; t int32 [B] global step.

    Returns: float32 logits [B, H, W, Ch, num_classes_out].
    """
    if self.ch % 4:
      raise ValueError(f"model.ch must be a multiple of 4, got {self.ch}")
    if x_in.ndim != 4 or known.shape != x_in.shape or t.shape != x_in.shape[:1]:
      raise ValueError(f"UNet expects x_in, known [B, H, W, Ch] and t [B]; got {x_in.shape}, {known.shape}, {t.shape}")
    if self.arch not in ARCHS:
      raise ValueError(f"model.arch = {self.arch!r} is not one of {list(ARCHS)}")
    conditioning = ARCHS[self.arch]["conditioning"] if self.conditioning is None else self.conditioning
    dtype = jnp.dtype(self.dtype)
    batch, height, width, channels = x_in.shape
    num_variables = height * width * channels
    num_steps = self.num_stages * num_variables

    # Step embedding: sinusoids of t scaled to [0, 1000), then an MLP, shared by every ResBlock.
    temb = layers.sinusoidal_embedding(t * (_TIME_SCALE / num_steps), self.ch)
    temb = nn.Dense(4 * self.ch, dtype=dtype, name="temb_dense0")(temb)
    temb = nn.Dense(4 * self.ch, dtype=dtype, name="temb_dense1")(nn.swish(temb))

    # 3/4 of the channels: a conv of the values scaled to [-1, 1) (absorbing 128 -> 0), the known mask and,
    # for upscale models, the stage one-hot.
    features = [x_in * (2.0 / self.num_classes) - 1.0, known.astype(jnp.float32)]
    if self.num_stages > 1:
      stage_BxS = jax.nn.one_hot(t // num_variables, self.num_stages)
      features.append(jnp.broadcast_to(stage_BxS[:, None, None, :], (batch, height, width, self.num_stages)))
    h_conv = nn.Conv(3 * self.ch // 4, (3, 3), dtype=dtype, name="conv_in")(jnp.concatenate(features, -1))
    # 1/4: a learned embedding of each channel's raw value, the Ch embeddings concatenated and projected.
    emb_ch = self.ch // 4
    value_emb = nn.Embed(self.num_classes, emb_ch, dtype=dtype, name="value_embed")(x_in)
    value_emb = value_emb.reshape(batch, height, width, channels * emb_ch)
    h_emb = nn.Dense(emb_ch, dtype=dtype, name="value_proj")(value_emb)
    h = jnp.concatenate([h_conv.astype(dtype), h_emb], axis=-1)

    res_block = functools.partial(
      layers.remat_block(ResBlock, self.remat, static_argnums=(3,)), conditioning=conditioning
    )  # (self, x, temb, train)
    attn_block = functools.partial(layers.remat_block(AttnBlock, self.remat), attention=self.attention)
    skips = [h]
    for i in range(self.num_res_blocks):
      h = res_block(self.ch, self.dropout, dtype, name=f"down_block_{i}")(h, temb, train)
      if self.attn_everywhere:
        h = attn_block(self.num_heads, dtype, name=f"down_attn_{i}")(h)
      skips.append(h)

    h = res_block(self.ch, self.dropout, dtype, name="mid_block_1")(h, temb, train)
    h = attn_block(self.num_heads, dtype, name="mid_attn")(h)
    h = res_block(self.ch, self.dropout, dtype, name="mid_block_2")(h, temb, train)

    for i in range(self.num_res_blocks + 1):
      h = res_block(self.ch, self.dropout, dtype, name=f"up_block_{i}")(
        jnp.concatenate([h, skips.pop()], axis=-1), temb, train
      )
      if self.attn_everywhere:
        h = attn_block(self.num_heads, dtype, name=f"up_attn_{i}")(h)

    h = nn.swish(_group_norm(self.ch, dtype, name="norm_out")(h))
    # Zero-initialised: training starts from uniform predictions (VDM).
    logits = nn.Conv(
      channels * self.num_classes_out, (3, 3), kernel_init=nn.initializers.zeros, dtype=dtype, name="conv_out"
    )(h)
    return logits.astype(jnp.float32).reshape(batch, height, width, channels, self.num_classes_out)
