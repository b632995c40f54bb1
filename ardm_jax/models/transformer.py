"""The text network: a non-causal pre-norm Transformer in two architectures (`arch`).

'paper' (arXiv 2110.02037, section 5; 12 layers, width 768, 12 heads, MLP 3072): token embeddings (unit
variance) + sinusoidal positions, GELU MLP; the OA model sees neither t nor the mask (the absorbing token says
it). 'improved' (docs/networks.md): rotary positions (RoFormer, arXiv 2104.09864) and a SwiGLU MLP (arXiv
2002.05202) of the same parameters. Each design choice is a field (None: the arch's value), for the ablation in
benchmarks/network_ablation.py, which also measures adaLN-Zero (DiT, arXiv 2212.09748) and zero-initialised
branches.
"""

import functools

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from ardm_jax.models import layers

ARCHS = {
  # The paper's public code feeds the OA model no mask: the absorbing token says it. A learned known embedding on
  # top (earlier versions of this network; legacy configs without model.arch still build it) slowed learning.
  "paper": dict(
    positions="sinusoidal",
    conditioning="none",
    mlp="gelu",
    zero_init=False,
    known_embed=False,
    embed_scale=1.0,
    kernel_init="lecun",
  ),
  # The measured winners (benchmarks/network_ablation.py): adaLN-Zero and zero-initialised branches slowed
  # learning at this scale; the known embedding, the embedding scale and the initialiser made no difference.
  "improved": dict(
    positions="rotary",
    conditioning="none",
    mlp="swiglu",
    zero_init=False,
    known_embed=True,
    embed_scale=1.0,
    kernel_init="lecun",
  ),
}
_KERNEL_INITS = {"lecun": nn.initializers.lecun_normal(), "xavier": nn.initializers.xavier_uniform()}
_TIME_SCALE = 1000.0  # The step embedding sees t rescaled to [0, 1000), as in the U-Net.
_zeros = nn.initializers.zeros


def _modulate(h_BxDxF, shift_BxF, scale_BxF):
  return h_BxDxF * (1.0 + scale_BxF[:, None, :]) + shift_BxF[:, None, :]


class TransformerBlock(nn.Module):
  """Pre-norm block: x + attention(norm(x)), then x + MLP(norm(x)); every position attends to every other.

  With a conditioning vector cond_BxF (adaLN-Zero) the norms lose their own scale and bias, take a shift and
  scale from cond, and each branch is multiplied by a gate from cond; all three start at zero.
  """

  num_heads: int
  mlp_dim: int
  dropout: float
  dtype: jnp.dtype
  attention: str = "einsum"
  positions: str = "sinusoidal"
  mlp: str = "gelu"
  zero_init: bool = False
  kernel_init: str = "lecun"

  @nn.compact
  def __call__(self, x_BxDxF, cond_BxF, positions_D, train: bool):
    width = x_BxDxF.shape[-1]
    adaptive = cond_BxF is not None
    dense = functools.partial(nn.Dense, kernel_init=_KERNEL_INITS[self.kernel_init], dtype=self.dtype)
    # adaLN-Zero's gates already start the branches at zero (a zero output layer too would stop both learning).
    branch_init = _zeros if self.zero_init and not adaptive else _KERNEL_INITS[self.kernel_init]
    if adaptive:
      mod_BxF = jnp.split(nn.Dense(6 * width, kernel_init=_zeros, dtype=self.dtype, name="modulation")(cond_BxF), 6, -1)
    norm = functools.partial(nn.LayerNorm, dtype=self.dtype, use_scale=not adaptive, use_bias=not adaptive)

    h = norm(name="attn_norm")(x_BxDxF)
    if adaptive:
      h = _modulate(h, mod_BxF[0], mod_BxF[1])
    attention_fn = layers.attention_fn(self.attention)
    if self.positions == "rotary":
      attention_fn = functools.partial(layers.rotary_attention, inner=attention_fn, positions=positions_D)
    h = nn.MultiHeadDotProductAttention(
      num_heads=self.num_heads,
      dtype=self.dtype,
      force_fp32_for_softmax=True,
      attention_fn=attention_fn,
      kernel_init=_KERNEL_INITS[self.kernel_init],
      out_kernel_init=branch_init,
      name="attention",
    )(h)
    if adaptive:
      h = h * mod_BxF[2][:, None, :]
    x_BxDxF = x_BxDxF + nn.Dropout(self.dropout)(h, deterministic=not train)

    h = norm(name="mlp_norm")(x_BxDxF)
    if adaptive:
      h = _modulate(h, mod_BxF[3], mod_BxF[4])
    if self.mlp == "swiglu":  # Two thirds of the width in each of three matrices: the GELU MLP's parameters.
      hidden = 2 * self.mlp_dim // 3
      gate, value = jnp.split(dense(2 * hidden, name="mlp_in")(h), 2, -1)
      h = nn.silu(gate) * value
    else:
      h = nn.gelu(dense(self.mlp_dim, name="mlp_in")(h))
    h = dense(width, kernel_init=branch_init, name="mlp_out")(h)
    if adaptive:
      h = h * mod_BxF[5][:, None, :]
    return x_BxDxF + nn.Dropout(self.dropout)(h, deterministic=not train)


class Transformer(nn.Module):
  """Maps (x_in, known, t) to per-variable logits for sequences [B, L] (any event shape is flattened).

  Attributes:
    num_classes: K (27 for text8); x_in takes values in 0..K, K being the absorbing token.
    num_classes_out: C, logits per variable (K for OA / upscale "data", the branching for upscale "direct").
    num_layers, width, num_heads, mlp_dim: sizes (paper 12, 768, 12, 3072).
    num_stages: upscale stages S (1 = OA-ARDM); t is the global step stage * D + t_local.
    dropout: rate after the embeddings and each residual branch (train=True only; needs a 'dropout' rng).
    dtype: compute dtype, 'float32' or 'bfloat16'; parameters stay float32 and logits are returned as float32.
    attention: 'einsum' (Flax's default) or 'dot_product' (jax.nn.dot_product_attention: cuDNN where it applies).
    remat: 'none' or a rematerialisation policy of every block (layers.REMAT_POLICIES).
    arch: 'paper' or 'improved': the defaults of the five fields below (ARCHS).
    positions: 'sinusoidal' (added to the input) or 'rotary' (queries and keys rotated by position).
    conditioning: 'none' (the OA model does not see t; upscale models add a stage embedding) or 'adaln_zero'
      (the global step t, scaled to [0, 1000), modulates every norm and gates every branch).
    mlp: 'gelu' or 'swiglu'.
    zero_init: the logits and the last layer of every residual branch start at zero (with adaLN-Zero the
      branches' gates start at zero instead).
    known_embed: add a learned embedding of the known bit (always on for upscale models, which need it).
    embed_scale: standard deviation of the initial embeddings (1: the scale of the sinusoids).
    kernel_init: 'lecun' (normal, Flax's default) or 'xavier' (uniform, the paper's public code) dense kernels.
    cond_dim: width of the conditioning vector of adaLN-Zero (0: width // 4).
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
  arch: str = "paper"
  positions: str | None = None
  conditioning: str | None = None
  mlp: str | None = None
  zero_init: bool | None = None
  known_embed: bool | None = None
  embed_scale: float | None = None
  kernel_init: str | None = None
  cond_dim: int = 0

  def option(self, name: str):
    """The value of one architecture field: its own if set, else the arch's."""
    if self.arch not in ARCHS:
      raise ValueError(f"model.arch = {self.arch!r} is not one of {list(ARCHS)}")
    value = getattr(self, name)
    return ARCHS[self.arch][name] if value is None else value

  @nn.compact
  def __call__(self, x_in, known, t, train: bool = False, positions=None):
    """Args: x_in int32 [B, *event]; known bool [B, *event]; t int32 [B] global step; positions: int [L] of the
    flattened event (default 0..L-1).

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
    positions_D = jnp.arange(num_variables) if positions is None else jnp.asarray(positions)
    zero_init, kernel_init = self.option("zero_init"), self.option("kernel_init")
    embed_init = nn.initializers.normal(stddev=self.option("embed_scale"))

    h = nn.Embed(self.num_classes + 1, self.width, embedding_init=embed_init, name="token_embed")(tokens_BxD)
    if self.option("known_embed") or self.num_stages > 1:
      h = h + nn.Embed(2, self.width, embedding_init=embed_init, name="known_embed")(
        known.reshape(batch, num_variables).astype(jnp.int32)
      )
    if self.option("positions") == "sinusoidal":
      h = h + layers.sinusoidal_embedding(positions_D, self.width)[None]
    cond_BxF = None
    if self.option("conditioning") == "adaln_zero":
      cond_dim = self.cond_dim or max(self.width // 4, 8)
      cond_BxF = layers.sinusoidal_embedding(t * (_TIME_SCALE / (self.num_stages * num_variables)), cond_dim)
      cond_BxF = nn.Dense(cond_dim, dtype=dtype, name="cond_dense0")(cond_BxF)
      cond_BxF = nn.silu(nn.Dense(cond_dim, dtype=dtype, name="cond_dense1")(nn.silu(cond_BxF)))
    elif self.num_stages > 1:
      stage_B = t // num_variables
      h = h + nn.Embed(self.num_stages, self.width, embedding_init=embed_init, name="stage_embed")(stage_B)[:, None, :]
    h = nn.Dropout(self.dropout)(h.astype(dtype), deterministic=not train)

    block = layers.remat_block(TransformerBlock, self.remat, static_argnums=(4,))  # (self, x, cond, pos, train)
    for i in range(self.num_layers):
      h = block(
        self.num_heads,
        self.mlp_dim,
        self.dropout,
        dtype,
        self.attention,
        self.option("positions"),
        self.option("mlp"),
        zero_init,
        kernel_init,
        name=f"block_{i}",
      )(h, cond_BxF, positions_D, train)

    if cond_BxF is None:
      h = nn.LayerNorm(dtype=dtype, name="final_norm")(h)
    else:
      shift_BxF, scale_BxF = jnp.split(
        nn.Dense(2 * self.width, kernel_init=_zeros, dtype=dtype, name="final_modulation")(cond_BxF), 2, -1
      )
      h = _modulate(
        nn.LayerNorm(use_scale=False, use_bias=False, dtype=dtype, name="final_norm")(h), shift_BxF, scale_BxF
      )
    logits_init = _zeros if zero_init else _KERNEL_INITS[kernel_init]
    logits = nn.Dense(self.num_classes_out, kernel_init=logits_init, dtype=dtype, name="logits")(h)
    return logits.astype(jnp.float32).reshape(batch, *event_shape, self.num_classes_out)


def analytic_num_params(model: Transformer, num_variables: int) -> int:
  """The parameter count of `model`, summed by hand from the layer shapes (checks count_params in the tests)."""
  w, m, k = model.width, model.mlp_dim, model.num_classes_out
  count = (model.num_classes + 1) * w  # Token embedding.
  if model.option("known_embed") or model.num_stages > 1:
    count += 2 * w
  adaptive = model.option("conditioning") == "adaln_zero"
  c = model.cond_dim or max(w // 4, 8)
  if adaptive:
    count += 2 * (c * c + c)  # The conditioning MLP.
  elif model.num_stages > 1:
    count += model.num_stages * w
  attention = 4 * (w * w + w)  # q, k, v, out with biases.
  if model.option("mlp") == "swiglu":
    hidden = 2 * m // 3
    mlp = 3 * w * hidden + 2 * hidden + w
  else:
    mlp = 2 * w * m + m + w
  norms = 0 if adaptive else 4 * w
  modulation = 6 * w * (c + 1) if adaptive else 0
  count += model.num_layers * (attention + mlp + norms + modulation)
  count += 2 * w * (c + 1) if adaptive else 2 * w  # Final modulation or final norm.
  count += w * k + k  # Logits.
  del num_variables  # Sinusoids and rotations have no parameters.
  return count
