"""ardm_jax: Autoregressive Diffusion Models (Hoogeboom et al., ICLR 2022) in JAX/Flax."""
