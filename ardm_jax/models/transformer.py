"""The text8 network: a non-causal pre-LayerNorm Transformer (paper section 5: 12 layers, width 768, 12 heads,
MLP 3072, sinusoidal positions, no dropout).

Input per position: embedding of the token (vocabulary K + 1, the last id being the absorbing token)
+ a learned embedding of the known bit + sinusoidal position features, and for upscale models
(num_stages > 1) a learned embedding of the stage t // D. The OA model does not see t (as in the paper); its
known bit repeats what the absorbing token already says, but the upscale model needs it and it costs 2 * width
parameters, so both variants have it.
"""

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from ardm_jax.models import layers

# Unit-variance embeddings, the same scale as the sinusoidal position features they are added to.
_embed_init = nn.initializers.normal(stddev=1.0)


class TransformerBlock(nn.Module):
  """Pre-LayerNorm block: x + attention(LN(x)), then x + MLP(LN(x)); every position attends to every other."""

  num_heads: int
  mlp_dim: int
  dropout: float
  dtype: jnp.dtype
  attention: str = "einsum"

  @nn.compact
  def __call__(self, x_BxDxW, train: bool):
    width = x_BxDxW.shape[-1]
    h = nn.LayerNorm(dtype=self.dtype, name="attn_norm")(x_BxDxW)
    h = nn.MultiHeadDotProductAttention(
      num_heads=self.num_heads,
      dtype=self.dtype,
      force_fp32_for_softmax=True,
      attention_fn=layers.attention_fn(self.attention),
      name="attention",
    )(h)
    x_BxDxW = x_BxDxW + nn.Dropout(self.dropout)(h, deterministic=not train)
    h = nn.LayerNorm(dtype=self.dtype, name="mlp_norm")(x_BxDxW)
    h = nn.Dense(self.mlp_dim, dtype=self.dtype, name="mlp_in")(h)
    h = nn.Dense(width, dtype=self.dtype, name="mlp_out")(nn.gelu(h))
    return x_BxDxW + nn.Dropout(self.dropout)(h, deterministic=not train)


class Transformer(nn.Module):
  """Maps (x_in, known, t) to per-variable logits for sequences [B, L] (any event shape is flattened).

  Attributes:
    num_classes: K (27 for text8); x_in takes values in 0..K, K being the absorbing token.
    num_classes_out: C, logits per variable (K for OA / upscale "data", the branching for upscale "direct").
    num_layers, width, num_heads, mlp_dim: sizes (paper 12, 768, 12, 3072).
    num_stages: upscale stages S (1 = OA-ARDM, t unused); t is the global step stage * D + t_local.
    dropout: rate after the embeddings and each residual branch (train=True only; needs a 'dropout' rng).
    dtype: compute dtype, 'float32' or 'bfloat16'; parameters stay float32 and logits are returned as float32.
    attention: 'einsum' (Flax's default) or 'dot_product' (jax.nn.dot_product_attention: cuDNN where it applies).
    remat: 'none' or a rematerialisation policy of every block (layers.REMAT_POLICIES).
  """

  num_classes: int = 27
  num_classes_out: int = 27
  num_layers: int = 12
  width: int = 768
  num_heads: int = 12
  mlp_dim: int = 3072
  num_stages: int = 1
  dropout: float = 0.0
  dtype: str = "float32"
  attention: str = "einsum"
  remat: str = "none"

  @nn.compact
  def __call__(self, x_in, known, t, train: bool = False):
    """Args: x_in int32 [B, *event]; known bool [B, *event]; t int32 [B] global step.

    Returns: float32 logits [B, *event, num_classes_out].
    """
    if self.width % self.num_heads:
      raise ValueError(f"model.width ({self.width}) must be a multiple of model.num_heads ({self.num_heads})")
    if known.shape != x_in.shape or t.shape != x_in.shape[:1]:
      raise ValueError(
        f"Transformer expects x_in, known [B, *event] and t [B]; got {x_in.shape}, {known.shape}, {t.shape}"
      )
    dtype = jnp.dtype(self.dtype)
    batch, event_shape = x_in.shape[0], x_in.shape[1:]
    num_variables = int(np.prod(event_shape))
    tokens_BxD = x_in.reshape(batch, num_variables)

    h = nn.Embed(self.num_classes + 1, self.width, embedding_init=_embed_init, name="token_embed")(tokens_BxD)
    h = h + nn.Embed(2, self.width, embedding_init=_embed_init, name="known_embed")(
      known.reshape(batch, num_variables).astype(jnp.int32)
    )
    h = h + layers.sinusoidal_embedding(jnp.arange(num_variables), self.width)[None]
    if self.num_stages > 1:
      stage_B = t // num_variables
      h = h + nn.Embed(self.num_stages, self.width, embedding_init=_embed_init, name="stage_embed")(stage_B)[:, None, :]
    h = nn.Dropout(self.dropout)(h.astype(dtype), deterministic=not train)

    block = layers.remat_block(TransformerBlock, self.remat, static_argnums=(2,))  # (self, x, train)
    for i in range(self.num_layers):
      h = block(self.num_heads, self.mlp_dim, self.dropout, dtype, self.attention, name=f"block_{i}")(h, train)

    h = nn.LayerNorm(dtype=dtype, name="final_norm")(h)
    logits = nn.Dense(self.num_classes_out, dtype=dtype, name="logits")(h)
    return logits.astype(jnp.float32).reshape(batch, *event_shape, self.num_classes_out)
