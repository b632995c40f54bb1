"""The quickstart demo learns: a shortened run on the embedded text ends far below the uniform bound."""

import glob
import importlib
import math
import os

from ardm_jax import inference
from ardm_jax import train

UNIFORM_BPC = math.log2(27)  # 4.75 bits per character.
# English letters alone (no context) carry about 4.1 bits; staying under 4.0 needs the model to use context.
HELDOUT_BOUND = 4.0


def test_quickstart_learns_plans_and_samples(tmp_path):
  config = importlib.import_module("configs.quickstart").get_config()
  config.training.num_train_steps = 600
  config.training.eval_every_steps = 600
  config.training.checkpoint_every_steps = 600
  workdir = str(tmp_path)
  train.train_and_evaluate(config, workdir)

  result = inference.evaluate(config, workdir)
  assert result["eval_bpd"] < HELDOUT_BOUND < UNIFORM_BPC, result
  assert result["eval_bpd_stderr"] < 0.05

  table = inference.plan_report(config, workdir)
  costs = [table[b] for b in sorted(table)]
  assert all(a >= b for a, b in zip(costs, costs[1:]))  # More calls never cost more bits.
  assert costs[-1] < HELDOUT_BOUND + 0.2  # Budget D: the tracked per-step losses sum to about the bpd.

  samples = inference.sample(config, workdir)
  assert samples.shape == (config.sample.num_samples, config.data.seq_len)
  assert samples.min() >= 0 and samples.max() <= 26  # No absorbing token (27) is left in a finished sample.

  result = inference.compress(config, workdir)
  num_variables = config.data.seq_len
  # rANS codes within the model's -log2 q plus the 32-bit checksum and < 64 bits of flush per message.
  assert result["model_bpd"] <= result["compressed_bpd"] <= result["model_bpd"] + 96 / num_variables, result
  messages = sorted(glob.glob(os.path.join(workdir, "compressed", "*.ardm")))
  assert len(messages) == config.compress.num_examples
  assert all(os.path.getsize(m) * 8 <= (HELDOUT_BOUND + 3.5) * num_variables for m in messages)
