"""`python -m ardm_jax.compress`: the codec's command line (ardm_jax/cli/compress.py)."""

from ardm_jax.cli.compress import run

if __name__ == "__main__":
  run()
