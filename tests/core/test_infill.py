"""Conditional generation: given variables never change, the others follow p(x_unknown | x_known) (chi-square
against exact models, fixed seeds, p > 1e-3 to pass), the planner of the unknown steps is optimal, bad inputs
are one-line errors, and the command line writes what it says."""

import io
import itertools
import json

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest
from scipy import stats

from ardm_jax.training import checkpointing
from ardm_jax import codec
from ardm_jax.data import kinds as data_kinds
from ardm_jax.training import experiment
from ardm_jax.cli import generate
from ardm_jax.training import inference
from ardm_jax.core import conditional as infill
from ardm_jax.data import conditions
from ardm_jax.data.conditions import image_condition, text_condition
from ardm_jax.core import likelihood
from ardm_jax.core import orders
from ardm_jax.core import plan_walk
from ardm_jax.core import planner
from ardm_jax.core import sampler
from ardm_jax.core import step_tracker
from ardm_jax.training import train
from ardm_jax.core import upscale
from configs import quickstart
from tests import exact_model

K, N = 3, 20000
P_VALUE = 1e-3


def _conditional(joint, num_variables, known, x_known):
  """float64 [K^U]: p(x_unknown | x_known) over the unknown variables' cells (row-major, in variable order)."""
  seqs = exact_model.all_sequences(num_variables, K)
  consistent = np.all(seqs[:, known] == np.asarray(x_known)[known], axis=1)
  return joint[consistent] / joint[consistent].sum()


def _chi_square(samples, known, probs):
  """The p-value of the unknown variables' cell counts against probs [K^U]."""
  unknown_cols = np.asarray(samples)[:, ~known]
  cells = np.ravel_multi_index(unknown_cols.T, (K,) * unknown_cols.shape[1])
  observed = np.bincount(cells, minlength=len(probs))
  return stats.chisquare(observed, probs * observed.sum()).pvalue


def _sample(logits_fn, process, starts, known, x_known, seed, num_samples=N):
  shape = (num_samples, known.size)
  fn = jax.jit(lambda key: sampler.sample(logits_fn, key, starts, shape, process, known=known, x_known=x_known))
  return np.asarray(fn(jax.random.key(seed)))


def test_sequential_infilling_keeps_the_given_and_follows_the_conditional():
  num_variables = 4
  joint = exact_model.random_joint(0, num_variables, K)
  known, x_known = np.array([True, False, True, False]), np.array([2, 0, 0, 0])
  samples = _sample(exact_model.oa_logits_fn(joint, K), plan_walk.oa_process(K, K), [2, 3], known, x_known, 0)
  np.testing.assert_array_equal(samples[:, known], np.broadcast_to(x_known[known], (N, 2)))
  p_value = _chi_square(samples, known, _conditional(joint, num_variables, known, x_known))
  print(f"sequential OA infill, D=4, k=2: chi-square p = {p_value:.4f}")
  assert p_value > P_VALUE
  # The conditional differs from the unknowns' marginal: the test can tell them apart.
  marginal = joint.reshape((K,) * num_variables).sum(axis=(0, 2)).reshape(-1)
  assert _chi_square(samples, known, marginal) < 1e-10


def _chain_joint(seed, num_variables):
  """A Markov chain x0 - x1 - x2 - x3: x1 and x3 are independent given x0 and x2."""
  rs = np.random.RandomState(seed)
  joint = rs.dirichlet(np.ones(K))
  for _ in range(num_variables - 1):
    joint = joint[..., None] * rs.dirichlet(np.full(K, 0.5), size=K)  # [..., previous, next]
  return joint.reshape(-1)


def test_one_parallel_call_is_exact_when_the_unknowns_are_independent_given_the_known():
  num_variables = 4
  known, x_known = np.array([True, False, True, False]), np.array([1, 0, 2, 0])
  process = plan_walk.oa_process(K, K)
  chain = _chain_joint(1, num_variables)
  logits_fn, seen = exact_model.count_calls(exact_model.oa_logits_fn(chain, K))
  samples = _sample(logits_fn, process, [2], known, x_known, 1)
  jax.effects_barrier()
  assert [int(t[0]) for t in seen] == [2]  # one call, at step k = 2
  np.testing.assert_array_equal(samples[:, known], np.broadcast_to(x_known[known], (N, 2)))
  p_value = _chi_square(samples, known, _conditional(chain, num_variables, known, x_known))
  print(f"one parallel call, chain joint, D=4, k=2: chi-square p = {p_value:.4f}")
  assert p_value > P_VALUE
  # With correlated unknowns the same call samples the product of their conditionals, not the conditional.
  joint = exact_model.random_joint(0, num_variables, K)
  samples = _sample(exact_model.oa_logits_fn(joint, K), process, [2], known, x_known, 2)
  conditional = _conditional(joint, num_variables, known, x_known).reshape(K, K)
  product = np.outer(conditional.sum(1), conditional.sum(0)).reshape(-1)
  assert _chi_square(samples, known, product) > P_VALUE
  assert _chi_square(samples, known, conditional.reshape(-1)) < 1e-10


def test_parallel_plan_samples_the_order_mixture_of_its_conditional_likelihood():
  """Known {1}, plan [1, 2]: one variable, then the other two at once; the law is the average over the orders
  (known first) of the plan's q(x_unknown | x_known), scored by the likelihood walk."""
  num_variables = 4
  joint = exact_model.random_joint(3, num_variables, K)
  logits_fn = exact_model.oa_logits_fn(joint, K)
  process = plan_walk.oa_process(K, K)
  known, x_known = np.array([False, True, False, False]), np.array([0, 2, 0, 0])
  seqs = exact_model.all_sequences(num_variables, K)
  xs = jnp.asarray(seqs[seqs[:, 1] == 2])  # every completion, in the row-major order of the unknown cells
  # Likelihood with a first call at 0 that scores the known variable; the calls from step 1 on score the rest.
  per_call = jax.jit(lambda sigma: likelihood.log_likelihood(logits_fn, xs, sigma, [0, 1, 2], process)[1])
  q = np.zeros(len(xs))
  for rest in itertools.permutations(range(1, num_variables)):
    sigma = np.zeros(num_variables, np.int32)
    sigma[[0, 2, 3]] = rest
    q += np.exp(np.asarray(per_call(jnp.asarray(sigma))[:, 0, 1:].sum(-1), np.float64))
  q /= q.sum()
  samples = _sample(logits_fn, process, [1, 2], known, x_known, 3)
  np.testing.assert_array_equal(samples[:, 1], 2)
  p_value = _chi_square(samples, known, q)
  print(f"parallel plan [1, 2], D=4, k=1: chi-square p = {p_value:.4f} against the order mixture")
  assert p_value > P_VALUE
  assert _chi_square(samples, known, _conditional(joint, num_variables, known, x_known)) < 1e-10


@pytest.mark.parametrize("parametrisation", ["direct", "data"])
def test_upscale_infilling_gives_the_known_in_every_stage_and_follows_the_conditional(parametrisation):
  num_variables = 3
  tr = upscale.digit_transitions(K, 2)  # 2 stages
  joint = exact_model.random_joint(5, num_variables, K)
  logits_fn, seen = exact_model.count_calls(exact_model.staged_logits_fn(joint, tr, parametrisation))
  process = plan_walk.upscale_process(tr, parametrisation)
  known, x_known = np.array([False, True, False]), np.array([0, 2, 0])
  samples = _sample(logits_fn, process, [[1, 2], [1, 2]], known, x_known, 4 + (parametrisation == "data"))
  jax.effects_barrier()
  assert [int(t[0]) for t in seen] == [1, 2, num_variables + 1, num_variables + 2]
  np.testing.assert_array_equal(samples[:, 1], 2)
  p_value = _chi_square(samples, known, _conditional(joint, num_variables, known, x_known))
  print(f"upscale ({parametrisation}) sequential infill, D=3, k=1: chi-square p = {p_value:.4f}")
  assert p_value > P_VALUE


def test_conditional_orders_put_the_known_first_in_uniform_random_orders():
  num_variables, num_samples = 5, 12000
  known = np.array([False, True, False, True, False])
  sigma = np.asarray(
    plan_walk.conditional_orders(jax.random.key(0), jnp.broadcast_to(known, (num_samples, num_variables)))
  )
  assert np.all(sigma[:, known] < 2) and np.all(np.sort(sigma, axis=1) == np.arange(num_variables))
  # All 2! * 3! orders of the known and the unknown variables equally likely.
  observed = np.unique(sigma, axis=0, return_counts=True)[1]
  assert len(observed) == 12
  p_value = stats.chisquare(observed).pvalue
  print(f"conditional orders uniform over the 12 orders: chi-square p = {p_value:.4f}")
  assert p_value > P_VALUE
  # With nothing known they are the unconditional orders themselves (the sampler's random stream is kept).
  shape = (7, 2, 3)
  np.testing.assert_array_equal(
    plan_walk.conditional_orders(jax.random.key(1), jnp.zeros(shape, bool)),
    orders.sample_orders(jax.random.key(1), shape),
  )


def _brute_force_remaining(losses, budget, num_known):
  """min over the plans num_known = p_0 < ... < p_{B-1} < D of sum_i (p_{i+1} - p_i) * L[p_i]."""
  num_variables = len(losses)
  best = np.inf
  for rest in itertools.combinations(range(num_known + 1, num_variables), budget - 1):
    starts = (num_known,) + rest
    ends = rest + (num_variables,)
    best = min(best, sum((end - start) * losses[start] for start, end in zip(starts, ends)))
  return best


def test_the_plan_of_the_remaining_steps_is_optimal_and_the_full_plan_when_nothing_is_known():
  rng = np.random.default_rng(0)
  checked = 0
  for num_variables in range(1, 7):
    for losses in (
      planner.sort_step_losses(rng.exponential(size=num_variables)),  # a tracked profile: non-increasing
      planner.sort_step_losses(rng.integers(0, 3, size=num_variables)),  # ties and zeros
      rng.exponential(size=num_variables),  # noisy: the unknown steps' losses are sorted, as the planner does
    ):
      for num_known in range(num_variables):
        remaining = planner.sort_step_losses(losses[num_known:])
        shifted = np.concatenate([np.zeros(num_known), remaining])
        for budget in range(1, num_variables - num_known + 1):
          result = planner.plan_remaining(losses, budget, num_known)
          assert result.starts.shape == (budget,) and result.starts[0] == num_known
          assert np.all(np.diff(result.starts) > 0) and result.starts[-1] < num_variables
          expected = _brute_force_remaining(shifted, budget, num_known)
          np.testing.assert_allclose(result.cost, expected, rtol=1e-12, atol=1e-12)
          ends = np.append(result.starts[1:], num_variables)
          np.testing.assert_allclose(np.sum((ends - result.starts) * shifted[result.starts]), expected, atol=1e-12)
          checked += 1
        if num_known == 0:
          for budget in range(1, num_variables + 1):
            full = planner.plan(planner.sort_step_losses(losses), budget)
            result = planner.plan_remaining(losses, budget, 0)
            np.testing.assert_array_equal(result.starts, full.starts)
            assert result.cost == full.cost
  print(f"remaining-steps planner = brute force on {checked} (D, k, budget, losses) cases")
  with pytest.raises(ValueError, match=r"budget must be in 1..D-k = 1..2 \(the unknown steps\), got 3"):
    planner.plan_remaining(np.ones(5), 3, 3)


def test_the_sampler_refuses_plans_that_do_not_start_at_k_and_uneven_known_counts():
  logits_fn = exact_model.oa_logits_fn(exact_model.random_joint(0, 3, K), K)
  process = plan_walk.oa_process(K, K)
  known = np.array([True, False, False])
  with pytest.raises(ValueError, match="starts must begin at 1"):
    sampler.sample(logits_fn, jax.random.key(0), [0, 2], (2, 3), process, known=known, x_known=np.zeros(3))
  with pytest.raises(ValueError, match="same number of known variables"):
    uneven = np.array([[True, False, False], [True, True, False]])
    sampler.sample(logits_fn, jax.random.key(0), [1], (2, 3), process, known=uneven, x_known=0)


# ------------------------------------------------------------------------------------------------- inputs


def _png(pixels, mode=None):
  out = io.BytesIO()
  Image.fromarray(np.asarray(pixels, np.uint8), mode).save(out, format="PNG")
  return out.getvalue()


def test_text_inputs_mask_characters_and_continue_short_prompts():
  condition = conditions.text_condition(b"ab_ d\n", "p.txt", (8,), "text")
  np.testing.assert_array_equal(condition.known_E, [1, 1, 0, 1, 1, 0, 0, 0])
  np.testing.assert_array_equal(condition.x_known_E[condition.known_E], [1, 2, 0, 4])
  assert conditions.text_condition(b"a#b", "p", (4,), "text", mask_char="#").num_unknown == 2
  condition = conditions.text_condition(b"\x00_\xff", "p", (3,), "bytes")
  np.testing.assert_array_equal(condition.x_known_E[condition.known_E], [0, 255])


def test_image_inputs_take_a_mask_or_the_transparent_pixels():
  pixels = np.arange(4 * 4 * 3).reshape(4, 4, 3)
  mask = np.zeros((4, 4), np.uint8)
  mask[1:3, 2] = 200
  condition = conditions.image_condition(_png(pixels), "i.png", (4, 4, 3), _png(mask), "m.png")
  np.testing.assert_array_equal(condition.known_E[..., 0], mask == 0)
  np.testing.assert_array_equal(condition.x_known_E[mask == 0], pixels[mask == 0])
  rgba = np.concatenate([pixels, np.full((4, 4, 1), 255)], axis=-1)
  rgba[0, 0, 3] = 0
  condition = conditions.image_condition(_png(rgba, "RGBA"), "a.png", (4, 4, 3))
  assert condition.num_unknown == 3 and not condition.known_E[0, 0].any()
  gray = conditions.image_condition(_png(pixels[..., 0]), "g.png", (4, 4, 3), _png(mask), "m.png")
  np.testing.assert_array_equal(gray.x_known_E[0, 0], [0, 0, 0])


@pytest.mark.parametrize(
  "make, message",
  [
    (lambda: text_condition(b"abcdefghi", "p.txt", (8,), "text"), "p.txt: 9 characters, but the model's rows"),
    (lambda: text_condition(b"Ab_!", "p.txt", (8,), "text"), r"2 known characters outside .*'A' at 0, '!' at 3"),
    (lambda: text_condition(b"abcdefgh", "p.txt", (8,), "text"), "p.txt: nothing unknown"),
    (lambda: text_condition(b"ab", "p.txt", (8,), "text", mask_char="__"), "must be one ASCII character"),
    (
      lambda: image_condition(_png(np.zeros((4, 4, 3))), "i.png", (4, 4, 3), _png(np.ones((4, 5))), "m.png"),
      "m.png: the mask is 5x4 pixels, the image i.png is 4x4",
    ),
    (lambda: image_condition(_png(np.zeros((4, 3, 3))), "i.png", (4, 4, 3)), "the image is 3x4 pixels"),
    (lambda: image_condition(_png(np.zeros((4, 4, 3))), "i.png", (4, 4, 3)), "i.png: nothing unknown"),
    (
      lambda: image_condition(_png(np.zeros((4, 4, 3))), "i.png", (4, 4, 3), _png(np.zeros((4, 4))), "m.png"),
      "m.png: nothing unknown",
    ),
    (lambda: infill.plan_unknown(np.ones((1, 8)), 6, 3), r"a budget of 6 network calls, but there are 5 unknown"),
    (lambda: infill.plan_unknown(np.ones((1, 8)), 0, 3), r"use 1..5"),
    (lambda: conditions.load_condition("", "m.png", "image", (4, 4, 3)), "needs the image it masks"),
  ],
)
def test_bad_inputs_are_one_line_errors(make, message):
  with pytest.raises(infill.InfillError, match=message) as error:
    make()
  assert "\n" not in str(error.value)


# ------------------------------------------------------------------------------------------- command line


def _bundle(path, variant, event_shape, step_losses=True):
  """A bundle of a randomly initialised tiny Transformer, with the tracked step losses a trained one exports."""
  config = quickstart.get_config(variant)
  if variant == "images":
    config.model = quickstart.get_config().model  # a tiny Transformer over the flattened patch compiles fast
  else:
    config.data.seq_len = event_shape[0]
  config.model.num_layers, config.model.width, config.model.num_heads, config.model.mlp_dim = 1, 32, 2, 64
  num_classes = 27 if variant == "" else 256
  model = experiment.build_model(config, num_classes, None)
  x = jnp.zeros((1,) + event_shape, jnp.int32)
  params = jax.jit(model.init)(jax.random.key(0), x, x > 0, jnp.zeros((1,), jnp.int32))["params"]
  num_variables = int(np.prod(event_shape))
  meta = {
    "bundle_version": 1,
    "kind": data_kinds.of_data(config.data),
    "event_shape": list(event_shape),
    "num_classes": num_classes,
    "order": [np.random.RandomState(0).permutation(num_variables).tolist()],
    "order_bpd": [0.0],
    "plans": {"3": {"starts": [[0, 1, 2]], "planned_bpd": 0.0}},
    "unseen_steps": 0,
    "train_step": 0,
  }
  if step_losses:
    meta["step_losses"] = [np.linspace(0.3, 0.05, num_variables).tolist()]
  codec.write_bundle(path, config, params, meta)
  return path


def _generate_cli(*args):
  """Runs the generate command line in this process, its flags parsed as absl would."""
  argv = generate.FLAGS(["generate", *map(str, args)])
  try:
    generate.main(argv)
  finally:
    generate.FLAGS.unparse_flags()


def test_command_line_infills_a_text_and_says_what_it_planned(tmp_path, capsys):
  model = _bundle(tmp_path / "text", "", (8,))
  (tmp_path / "in.txt").write_bytes(b"a_c_e")
  _generate_cli(f"--model={model}", "--budget=2", "--num_samples=3", tmp_path / "in.txt", "-o", tmp_path / "out.txt")
  lines = (tmp_path / "out.txt").read_text().splitlines()
  # 6 unknown steps (2 masked, 3 continued), losses L_2..L_7 planned with 2 calls.
  planned = planner.plan_remaining(np.linspace(0.3, 0.05, 8), 2, 3).cost * 8 / 5
  assert lines[0].startswith(f"# 2 network calls, planned {planned:.4f} bpd over the 5 unknown characters")
  assert len(lines) == 4 and all(
    len(row) == 8 and row[0] == "a" and row[2] == "c" and row[4] == "e" for row in lines[1:]
  )
  assert "3 samples, 2 network calls" in capsys.readouterr().out
  with pytest.raises(infill.InfillError, match="a budget of 6 network calls, but there are 5 unknown steps"):
    _generate_cli(f"--model={model}", "--budget=6", tmp_path / "in.txt", "-o", tmp_path / "o.txt")
  old = _bundle(tmp_path / "old", "", (8,), step_losses=False)
  with pytest.raises(codec.CodecError, match="no tracked step losses .* export it again"):
    _generate_cli(f"--model={old}", "--budget=2", "-o", tmp_path / "o.txt")


def test_command_line_inpaints_an_image_and_writes_a_grid(tmp_path):
  model = _bundle(tmp_path / "images", "images", (4, 4, 3))
  rgba = np.concatenate([np.random.RandomState(0).randint(0, 256, (4, 4, 3)), np.full((4, 4, 1), 255)], -1)
  rgba[1:3, 1:3, 3] = 0  # 4 transparent pixels: 12 unknown subpixels
  (tmp_path / "in.png").write_bytes(_png(rgba, "RGBA"))
  _, line, written = generate.generate(
    codec.load_bundle(model), str(tmp_path / "in.png"), str(tmp_path / "out"), 4, num_samples=2
  )
  assert [p.split("/")[-1] for p in written] == ["sample_00.png", "sample_01.png", "grid.png"]
  assert "4 network calls" in line and "over the 12 unknown subpixels" in line
  for name in written[:2]:
    image = Image.open(name)
    assert image.info["Comment"].startswith(line)
    pixels = np.asarray(image)
    known = rgba[..., 3] > 0
    np.testing.assert_array_equal(pixels[known], rgba[..., :3][known])
  assert Image.open(written[-1]).info["Comment"].startswith(line)
  assert json.loads((model / "codec.json").read_text())["step_losses"]


@pytest.mark.slow
def test_main_sample_mode_completes_a_prompt_also_in_a_workdir_trained_without_the_keys(tmp_path):
  config = quickstart.get_config()
  config.model.num_layers, config.model.width, config.model.mlp_dim = 1, 32, 64  # Compiles in seconds.
  workdir = str(tmp_path / "work")
  trainer = train.Trainer(experiment.build_experiment(config))
  state = trainer.init(jax.random.key_data(jax.random.key(0)))
  num_steps = state.tracker.ema.shape[0]  # an untrained network with a tracker that has seen every step
  state = state.replace(tracker=step_tracker.StepTracker(jnp.linspace(0.3, 0.05, num_steps), jnp.ones(num_steps, int)))
  ckpt = checkpointing.Checkpointer(workdir, config)
  ckpt.save(state)
  ckpt.close()
  (tmp_path / "prompt.txt").write_text("the _ython docs\n")
  saved = json.loads((tmp_path / "work" / "config.json").read_text())
  del saved["sample"]["mask"], saved["sample"]["mask_char"]  # as a workdir trained before these keys existed
  saved["sample"].update(prompt=str(tmp_path / "prompt.txt"), budget=5, num_samples=3)
  (tmp_path / "work" / "config.json").write_text(json.dumps(saved))
  samples = inference.sample(None, workdir)  # the workdir's config alone, as `main.py --mode=sample` reads it
  text = (tmp_path / "work" / "samples_step0_budget5_given.txt").read_text().splitlines()
  assert text[0].startswith("# 5 network calls, planned ") and "over the 18 unknown characters" in text[0]
  assert len(samples) == 3 and all(row.startswith("the ") and row[5:15] == "ython docs" for row in text[1:])
