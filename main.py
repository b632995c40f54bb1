r"""ARDM entry point: train, evaluate, sample under a step budget, plan, or compress (ardm_jax/cli/main.py).

python main.py --config=configs/quickstart.py --workdir=/tmp/ardm_quickstart --mode=train,plan,sample
"""

from ardm_jax.cli import main

if __name__ == "__main__":
  main.run()
