"""The quickstart demo learns: a shortened run on the embedded text ends far below the uniform bound."""

import pytest
import glob
import io
import json
import importlib
import math
import os

import numpy as np

from ardm_jax import codec
from ardm_jax.codec import container
from ardm_jax.codec import test_points
from ardm_jax.training import inference
from ardm_jax.training import train

pytestmark = pytest.mark.slow  # Processes, emulators, launchers, faults or training: the full tier.

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

  result = test_points.compress(config, workdir)
  num_variables = config.data.seq_len
  # rANS codes within the model's -log2 q plus the 32-bit checksum and < 64 bits of flush per message.
  assert result["model_bpd"] <= result["compressed_bpd"] <= result["model_bpd"] + 96 / num_variables, result
  files = sorted(glob.glob(os.path.join(workdir, "compressed", "*.ardm")))
  assert len(files) == config.compress.num_examples
  # The files are the container the codec's command line decodes, with the workdir's bundle.
  bundle = codec.load_bundle(os.path.join(workdir, "compressed", "bundle"))
  decoded = codec.decode_files(bundle, {f: open(f, "rb").read() for f in files})
  for f in files:
    point = np.load(io.BytesIO(decoded[f]))
    assert point.shape == (num_variables,) and point.max() <= 26
    payload = container.unpack(f, open(f, "rb").read())[1]
    assert len(payload) * 8 <= (HELDOUT_BOUND + 3.5) * num_variables


def test_a_short_run_plans_with_the_seen_steps_and_says_so(tmp_path):
  config = importlib.import_module("configs.quickstart").get_config()
  config.training.num_train_steps, config.training.batch_size = 2, 4  # At most 8 of the 32 steps are seen.
  config.eval.num_passes, config.eval.max_batches = 1, 1
  config.model.num_layers, config.model.width, config.model.mlp_dim = 1, 32, 64  # Compiles in seconds.
  state = train.train_and_evaluate(config, str(tmp_path))
  count = np.asarray(state.tracker.count)
  num_unseen, num_steps = int((count == 0).sum()), count.size
  assert 0 < num_unseen < num_steps

  table = inference.plan_report(config, str(tmp_path))
  report = (tmp_path / "plan.txt").read_text()
  assert f"{num_unseen} of {num_steps} steps were never seen" in report
  # Budget D pays every step's loss, and an unseen step costs what the seen ones around it cost, never 0.
  seen_ema = np.asarray(state.tracker.ema)[count > 0]
  assert table[num_steps] >= seen_ema.sum() + num_unseen * seen_ema.min() - 1e-6
  # The bpd measured under the plans: at budget 1 and D both schedules are the same calls, so along the same
  # orders they measure the same bits exactly. (In between, the plan is optimal for the tracked training losses,
  # which two steps hardly estimate: evenly spaced calls may measure better here.)
  measured = {r["budget"]: r for r in json.loads((tmp_path / "plan.json").read_text())["measured"]}
  assert sorted(measured) == [1, 5, 10, 20, num_steps]
  for budget in (1, num_steps):
    assert measured[budget]["measured"] == measured[budget]["even"] and measured[budget]["even_minus_optimal"] == 0
  for row in measured.values():
    assert 0 < row["measured"] < 2 * UNIFORM_BPC and row["measured_stderr"] > 0
