"""rANS coding of single data points: exact round trips, code length near -log2 q(x), corrupt messages rejected.

Code-length bound used throughout: bits <= -log2 q(x) + 32 (header) + 64 (ANS flush) + D * log2(1 / ((1 - eps C)
(1 - C 2^-24))) (smoothing and quantisation: each frequency is >= that fraction of q) + 1e-3 (float32 log q).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ardm_jax.codec import coder
from ardm_jax.core import likelihood
from ardm_jax.core import plan_walk
from ardm_jax.core import upscale
from tests import exact_model

D, K = 4, 3
ORDERS = ([0, 1, 2, 3], [2, 0, 3, 1])
PLANS = ([0, 1, 2, 3], [0, 2], [0])


def _overhead_bound(num_variables, num_classes, eps=coder.EPS):
  per_symbol = -math.log2((1 - eps * num_classes) * (1 - num_classes / 2**coder.PRECISION))
  return 32 + 64 + num_variables * per_symbol + 1e-3


def _minus_log2_q(logits_fn, xs, sigma, starts, num_classes):
  """[N] -log2 q(x) of the plan's OA model (absorbing value K), batched over xs [N, *event]."""
  log_q = likelihood.log_likelihood(
    logits_fn, jnp.asarray(xs), jnp.asarray(sigma), jnp.asarray(starts), plan_walk.oa_process(num_classes, num_classes)
  )[0]
  return -np.asarray(log_q, np.float64) / math.log(2)


def _encode(logits_fn, x, sigma, starts, num_classes, **kwargs):
  """The message of one data point x [*event] of an OA model with absorbing value K."""
  process = plan_walk.oa_process(num_classes, num_classes)
  return coder.encode(logits_fn, np.asarray(x)[None], sigma, starts, process, batch_size=1, **kwargs)[0]


def _decode(logits_fn, message, sigma, starts, event_shape, num_classes, **kwargs):
  process = plan_walk.oa_process(num_classes, num_classes)
  return coder.decode(logits_fn, [message], sigma, starts, process, (1,) + tuple(event_shape), batch_size=1, **kwargs)[
    0
  ]


def _low_rank_logits_fn(seed, event_shape, num_classes, rank=8):
  """A fixed random network (jitted): every variable's logits are a low-rank linear map of the one-hot input
  plus a bias per step t."""
  num_variables = math.prod(event_shape)
  k_in, k_out, k_t = jax.random.split(jax.random.key(seed), 3)
  w_in = jax.random.normal(k_in, (num_variables * (num_classes + 1), rank))
  w_out = jax.random.normal(k_out, (rank, num_variables * num_classes))
  step_bias = jax.random.normal(k_t, (num_variables, num_variables * num_classes))

  def logits_fn(x_in, known, t):
    del known  # the absorbing class num_classes marks the unknown variables
    batch = x_in.shape[0]
    features = jax.nn.one_hot(x_in.reshape(batch, -1), num_classes + 1).reshape(batch, -1)
    logits = features @ w_in @ w_out / math.sqrt(num_variables) + step_bias[t]
    return logits.reshape(batch, *event_shape, num_classes)

  return jax.jit(logits_fn)


def test_quantisation_by_hand():
  # K = 2, precision 8: the free weight is 256 - 2 = 254.
  freqs = coder.quantized_probabilities(np.array([[0.0, 0.0], [0.0, -1e9]]), eps=0.01, precision=8)
  # Equal logits: floor(0.5 * 254) + 1 = 128 each. Second row: smoothed [0.99, 0.01] -> floor 251, 2, plus 1
  # each -> [252, 3], sum 255, and the remaining 1 goes to the largest.
  np.testing.assert_array_equal(freqs, [[128, 128], [253, 3]])
  allowed = np.array([True, False, True, True])
  freqs = coder.quantized_probabilities(np.zeros(4), eps=0.01, allowed=allowed, precision=8)
  # Free weight 256 - 4 = 252; three allowed classes of 1/3 each: floor(252 / 3) + 1 = 85; the disallowed one
  # keeps 1; nothing is left over.
  np.testing.assert_array_equal(freqs, [85, 1, 85, 85])


def test_quantisation_is_deterministic_normalised_and_positive():
  rs = np.random.RandomState(0)
  logits = np.concatenate(
    [
      rs.normal(size=(50, 256)) * 10,
      np.where(rs.rand(50, 256) < 0.5, -1e9, rs.normal(size=(50, 256))),
      np.full((1, 256), -1e9),
      np.eye(256)[:1] * 1e9,
      np.where(np.arange(256) == 7, 0.0, -np.inf)[None],
    ]
  ).astype(np.float32)
  freqs = coder.quantized_probabilities(logits)
  assert freqs.dtype == np.int64 and np.all(freqs >= 1)
  np.testing.assert_array_equal(freqs.sum(-1), 2**coder.PRECISION)
  np.testing.assert_array_equal(coder.quantized_probabilities(logits.copy()), freqs)
  probs = np.exp(logits - logits.max(-1, keepdims=True).astype(np.float64))
  smoothed = (1 - coder.EPS * 256) * probs / probs.sum(-1, keepdims=True) + coder.EPS
  assert np.all(np.abs(freqs - smoothed * 2**coder.PRECISION) <= 256 + 1)
  floor_frequency = math.floor(coder.EPS * (2**coder.PRECISION - 256)) + 1  # a class with softmax 0
  assert np.all(freqs[101, 1:] == floor_frequency) and np.all(np.delete(freqs[102], 7) == floor_frequency)
  np.testing.assert_array_equal(freqs[100], 2**coder.PRECISION // 256)  # all -1e9: uniform


@pytest.mark.parametrize(
  "logits, kwargs, message",
  [
    (np.zeros(3), {"eps": 0.4}, "eps"),
    (np.array([0.0, np.nan]), {}, "NaN"),
    (np.array([0.0, -np.inf]), {"allowed": np.array([False, True])}, "finite logit"),
    (np.zeros(1), {}, "classes"),
  ],
)
def test_quantisation_rejects_bad_inputs(logits, kwargs, message):
  with pytest.raises(ValueError, match=message):
    coder.quantized_probabilities(logits, **kwargs)


@pytest.mark.parametrize("order", ORDERS)
def test_exact_model_round_trips_every_sequence_near_its_code_length(order):
  joint = exact_model.random_joint(0, D, K)
  logits_fn = jax.jit(exact_model.oa_logits_fn(joint, K))
  xs = exact_model.all_sequences(D, K)
  for starts in PLANS:
    minus_log2_q = _minus_log2_q(logits_fn, xs, order, starts, K)
    for x, cost in zip(xs, minus_log2_q):
      message = _encode(logits_fn, x, order, starts, K)
      assert message.dtype == np.uint32
      np.testing.assert_array_equal(_decode(logits_fn, message, order, starts, (D,), K), x)
      assert coder.compressed_bits(message) <= cost + _overhead_bound(D, K)


def test_mean_code_length_over_the_exact_distribution_is_its_entropy_plus_the_overhead():
  joint = exact_model.random_joint(3, D, K, scale=1.5)
  logits_fn = jax.jit(exact_model.oa_logits_fn(joint, K))
  entropy_bits = -np.sum(joint * np.log2(joint))
  xs = exact_model.all_sequences(D, K)
  bits = np.array([coder.compressed_bits(_encode(logits_fn, x, [1, 3, 0, 2], np.arange(D), K)) for x in xs])
  mean_bits = np.sum(joint * bits)
  assert entropy_bits <= mean_bits <= entropy_bits + _overhead_bound(D, K)
  # A parallel plan loses the correlations: its mean cost exceeds the sequential one by E_P[log p / q] > 0.
  parallel = np.array([coder.compressed_bits(_encode(logits_fn, x, [1, 3, 0, 2], [0], K)) for x in xs])
  product_bits = -np.sum(joint * np.log2(exact_model.product_of_marginals(joint, D, K)))
  assert product_bits > entropy_bits + 0.3
  assert product_bits <= np.sum(joint * parallel) <= product_bits + _overhead_bound(D, K)


def test_random_network_round_trips_with_multi_axis_events():
  event_shape, num_classes = (2, 3), 5
  num_variables = math.prod(event_shape)
  logits_fn = _low_rank_logits_fn(0, event_shape, num_classes)
  rs = np.random.RandomState(1)
  xs = rs.randint(0, num_classes, size=(6,) + event_shape)
  sigmas = np.stack([rs.permutation(num_variables).reshape(event_shape) for _ in xs])
  for starts in (np.arange(num_variables), [0, 2, 5], [0]):
    costs = _minus_log2_q(logits_fn, xs, sigmas, starts, num_classes)  # each x with its own order
    for x, sigma, cost in zip(xs, sigmas, costs):
      message = _encode(logits_fn, x, sigma, starts, num_classes)
      decoded = _decode(logits_fn, message, sigma, starts, event_shape, num_classes)
      np.testing.assert_array_equal(decoded, x)
      assert coder.compressed_bits(message) <= cost + _overhead_bound(num_variables, num_classes)


def test_long_data_round_trips_with_a_small_overhead_per_dimension():
  num_variables, num_classes = 512, 16
  logits_fn = _low_rank_logits_fn(2, (num_variables,), num_classes)
  rs = np.random.RandomState(2)
  x, sigma = rs.randint(0, num_classes, num_variables), rs.permutation(num_variables)
  starts = np.arange(0, num_variables, 32)  # 16 calls
  message = _encode(logits_fn, x, sigma, starts, num_classes)
  np.testing.assert_array_equal(_decode(logits_fn, message, sigma, starts, (num_variables,), num_classes), x)
  cost = _minus_log2_q(logits_fn, x[None], sigma, starts, num_classes)[0]
  assert cost > 1000
  # At most (96 + 512 * 4.6e-4) / 512 = 0.19 bits per dimension above -log2 q(x) / D.
  assert coder.compressed_bits(message) <= cost + _overhead_bound(num_variables, num_classes)


def test_one_network_call_per_planned_step():
  joint = exact_model.random_joint(0, D, K)
  logits_fn, seen = exact_model.count_calls(exact_model.oa_logits_fn(joint, K))
  logits_fn = jax.jit(logits_fn)
  x, starts = np.array([2, 0, 1, 1]), [0, 1, 3]
  message = _encode(logits_fn, x, [3, 1, 0, 2], starts, K)
  jax.effects_barrier()
  assert [int(t[0]) for t in seen] == starts
  seen.clear()
  _decode(logits_fn, message, [3, 1, 0, 2], starts, (D,), K)
  jax.effects_barrier()
  assert [int(t[0]) for t in seen] == starts


def test_corrupted_truncated_or_mismatched_messages_raise():
  joint = exact_model.random_joint(0, D, K)
  logits_fn = jax.jit(exact_model.oa_logits_fn(joint, K))
  order, starts = [2, 0, 3, 1], [0, 2]
  message = _encode(logits_fn, np.array([1, 2, 0, 2]), order, starts, K)
  decode = lambda m, order=order, starts=starts: _decode(logits_fn, m, order, starts, (D,), K)
  for bit in range(0, 32 * message.size, 7):
    flipped = message.copy()
    flipped[bit // 32] ^= np.uint32(1 << (bit % 32))
    with pytest.raises(ValueError, match="checksum mismatch"):
      decode(flipped)
  with pytest.raises(ValueError, match="checksum mismatch"):
    decode(message[:-1])
  with pytest.raises(ValueError, match="checksum mismatch"):
    decode(message, starts=[0, 1])
  with pytest.raises(ValueError, match="checksum mismatch"):
    decode(message, order=[0, 1, 2, 3])
  with pytest.raises(ValueError, match="empty"):
    decode(message[:0])
  with pytest.raises(ValueError, match="uint32"):
    decode(message.astype(np.int64))
  # A message whose checksum is right but whose ANS words hold an extra word is still caught at the end.
  settings = coder._settings_crc(
    plan_walk.oa_process(K, K), (D,), np.array([order]), np.array([starts]), np.zeros((1, D), bool), coder.EPS
  )
  padded = coder._with_header(np.concatenate([[np.uint32(12345)], message[1:]]), settings)
  with pytest.raises(ValueError, match="does not end"):
    decode(padded)


def test_encode_rejects_out_of_range_data_and_bad_orders():
  logits_fn = jax.jit(exact_model.oa_logits_fn(exact_model.random_joint(0, D, K), K))
  with pytest.raises(ValueError, match="values in 0..2"):
    _encode(logits_fn, np.array([0, 3, 1, 1]), np.arange(D), [0], K)
  with pytest.raises(ValueError, match="permutation"):
    _encode(logits_fn, np.array([0, 1, 1, 1]), [0, 1, 1, 2], [0], K)


@pytest.mark.parametrize("parametrisation", ["direct", "data"])
def test_upscale_round_trips_near_its_code_length(parametrisation):
  tr = upscale.digit_transitions(K, 2)  # 2 stages; K = 3 is not a power of 2, so some groups have 1 child
  joint = exact_model.random_joint(4, D, K)
  logits_fn, seen = exact_model.count_calls(exact_model.staged_logits_fn(joint, tr, parametrisation))
  logits_fn = jax.jit(logits_fn)
  xs = exact_model.all_sequences(D, K)
  sigma = np.array([[1, 2, 3, 0], [3, 0, 1, 2]])
  for starts in ([0, 1, 2, 3], [[0, 2], [0, 1]]):
    process = plan_walk.upscale_process(tr, parametrisation)
    log_q = likelihood.log_likelihood(
      logits_fn, jnp.asarray(xs), jnp.asarray(sigma)[:, None], jnp.asarray(starts), process
    )[0]
    minus_log2_q = -np.asarray(log_q, np.float64) / math.log(2)
    for x, cost in zip(xs[::4], minus_log2_q[::4]):
      message = coder.encode(logits_fn, x[None], sigma, starts, process, batch_size=1)[0]
      jax.effects_barrier()
      seen.clear()
      decoded = coder.decode(logits_fn, [message], sigma, starts, process, (1, D), batch_size=1)[0]
      jax.effects_barrier()
      np.testing.assert_array_equal(decoded, x)
      assert coder.compressed_bits(message) <= cost + _overhead_bound(tr.num_stages * D, tr.max_branching)
      plan = np.broadcast_to(starts, (tr.num_stages, np.shape(starts)[-1]))
      assert [int(t[0]) for t in seen] == [s * D + start for s in range(tr.num_stages) for start in plan[s]]
  with pytest.raises(ValueError, match="checksum mismatch"):  # an upscale message is no OA message
    _decode(logits_fn, message, sigma[0], [0, 1], (D,), K)
