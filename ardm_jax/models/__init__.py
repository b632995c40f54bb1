"""Flax networks: they map (x_in, known, t) to logits and know nothing of the objective."""

from ardm_jax.models.diffwave import DiffWave
from ardm_jax.models.layers import count_params
from ardm_jax.models.transformer import Transformer
from ardm_jax.models.unet import UNet

__all__ = ["UNet", "Transformer", "DiffWave", "count_params"]
