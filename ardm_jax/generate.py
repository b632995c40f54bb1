"""`python -m ardm_jax.generate`: fill in the blanks with a codec bundle (ardm_jax/cli/generate.py)."""

from ardm_jax.cli.generate import run

if __name__ == "__main__":
  run()
