"""Test bits/dim (arXiv 2110.02037, section 6): the unbiased one-step ELBO estimate, averaged over the test set, with
its standard error. Used by training (periodic eval) and by `--mode=eval`. Design notes: docs/design.md#evaluation
"""

import time

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

PROGRESS_EVERY_S = 30.0


def eval_sums(exp, params, x_BxE: jax.Array, weight_B: jax.Array, rng: jax.Array) -> dict[str, jax.Array]:
  """Sums of the per-example nelbo estimate (bits/dim), its square and the weights over one batch (jit-able).

  exp: experiment.Experiment; weight_B: 1 for real examples, 0 for the padding of the last batch.
  """
  _, terms = exp.loss(params, x_BxE, rng)
  nelbo_B = terms.per_example["nelbo_bpd"]
  return {"sum": jnp.sum(weight_B * nelbo_B), "sum_sq": jnp.sum(weight_B * nelbo_B**2), "count": jnp.sum(weight_B)}


def evaluate(exp, devices, params, rng: jax.Array, should_stop=lambda: False) -> dict[str, float] | None:
  """Test bits/dim with one (t, order) per example per pass; mean and standard error over all estimates.

  Args:
    exp: experiment.Experiment (its dataset's eval batches and config.eval).
    devices: the run's device wiring, train.Trainer: `eval_sums` (jitted and sharded), `global_array` (this
      host's rows into the global batch) and `any_process` (a flag agreed by every host).
    params: the parameters to evaluate (the EMA ones).
    rng: base key; batch b of pass p folds in (p, b), so the estimate does not depend on the device count.
    should_stop: polled before every batch.
  Returns:
    {'eval_bpd', 'eval_bpd_stderr', 'eval_count'}, or None, on every host alike, once `should_stop()` is true on
    any host (a preemption: checkpointing comes first).
  """
  cfg = exp.config.eval
  total = np.zeros(3)
  last_report = time.monotonic()
  for pass_index in range(cfg.num_passes):
    batches = exp.dataset.eval_batches(  # eval.batch_size is global, like training.batch_size.
      cfg.batch_size // jax.process_count(), jax.process_index(), jax.process_count()
    )
    for batch_index, (x, weight) in enumerate(batches):
      if cfg.max_batches and batch_index >= cfg.max_batches:
        break
      if bool(devices.any_process(should_stop())):
        logging.warning("Evaluation aborted in pass %d/%d (stop requested).", pass_index + 1, cfg.num_passes)
        return None
      batch_rng = jax.random.fold_in(jax.random.fold_in(rng, pass_index), batch_index)
      out = devices.eval_sums(params, devices.global_array(x), devices.global_array(weight), batch_rng)
      total += np.array([out["sum"], out["sum_sq"], out["count"]], dtype=np.float64)
      if time.monotonic() - last_report > PROGRESS_EVERY_S:
        last_report = time.monotonic()
        logging.info(
          "eval: pass %d/%d, batch %d, running bpd %.4f",
          pass_index + 1,
          cfg.num_passes,
          batch_index + 1,
          total[0] / max(total[2], 1),
        )
  mean = total[0] / total[2]
  var = max(total[1] / total[2] - mean**2, 0.0)
  return {"eval_bpd": float(mean), "eval_bpd_stderr": float(np.sqrt(var / total[2])), "eval_count": float(total[2])}
