"""Lossless compression of single data points with an ARDM and rANS (PAPER.md section 4).

One message per data point, for a fixed order sigma and a plan `starts` (planner.plan, or arange(D) for
sequential). The decoder runs the planned network calls in order: call i sees the variables decoded so far and
decodes every variable with starts[i] <= sigma < starts[i+1] (by rank) from that call's categorical. The
encoder knows x, so it runs the same calls on the same inputs first and then pushes the symbols onto the ANS
stack in reverse (constriction's AnsCoder is last in, first out). The code length is -log2 q(x) of the plan's
model (likelihood.py) plus the smoothing and quantisation cost and a constant overhead.

Exactness: the decoder must use bitwise the same integer probabilities as the encoder. Both sides call the
network (jitted by the caller) with batch 1 on identical inputs, so the logits are bitwise equal on one
platform, and `quantized_probabilities` turns them into integer frequencies with float64 numpy. The frequencies f reach
constriction as the floats f - 1, for which its fast quantisation (cdf(k) = floor(sum_{j<k} w_j * scale) + k,
scale = (2^24 - C) / sum(w) = 1) reproduces f exactly.

Message: uint32 words [crc32, *ans_words]. The CRC covers the ANS words and the decoder's settings (shape,
order, plan, eps, absorbing value or transitions), so a corrupted or truncated message, or one decoded with
other settings, raises ValueError before any network call. Overhead over the ideal sum(-log2 f / 2^24): 32
header bits plus the ANS flush and word rounding (-3..+55 bits measured on 3000 random messages, < 64).
"""
import functools
import zlib

import constriction
import jax
import jax.numpy as jnp
import numpy as np

from ardm_jax import objective
from ardm_jax import orders
from ardm_jax import upscale

EPS = 2e-5  # PAPER.md section 4: smoothing mass per class.
PRECISION = 24  # Bits of the fixed-point probabilities of constriction's default ANS coder (32-bit words).
HEADER_WORDS = 1


def quantized_probabilities(logits, eps: float = EPS, *, allowed=None, precision: int = PRECISION) -> np.ndarray:
  """Integer frequencies of smoothed categoricals: deterministic, each row sums to 2**precision, all >= 1.

  Smoothing as in the paper, (1 - eps * n) * softmax(logits) + eps over the n allowed classes of a row, then
  frequencies floor(p * (2**precision - C)) + 1, so every class keeps mass (a disallowed one exactly 1). The
  remainder (0..C) goes to the row's largest frequency (the first on ties).

  Args:
    logits: float [..., C]; -inf is allowed (the class still gets eps), NaN and +inf are not.
    eps: smoothing mass per allowed class, eps * C < 1.
    allowed: bool [..., C] or None (all allowed): the classes that can occur.
    precision: the frequencies sum to 2**precision (the ANS coder's PRECISION).
  Returns:
    int64 [..., C].
  """
  logits = np.asarray(logits, np.float64)
  num_classes = logits.shape[-1]
  if not 2 <= num_classes <= 2 ** (precision - 1):
    raise ValueError(f"need 2 <= C <= 2**(precision - 1) classes, got C = {num_classes}.")
  if not 0 <= eps * num_classes < 1:
    raise ValueError(f"need 0 <= eps * C < 1, got eps = {eps} and C = {num_classes}.")
  if np.any(np.isnan(logits) | (logits == np.inf)):
    raise ValueError("logits must not be NaN or +inf.")
  allowed = np.ones(logits.shape, bool) if allowed is None else np.broadcast_to(allowed, logits.shape)
  masked = np.where(allowed, logits, -np.inf)
  row_max = masked.max(axis=-1, keepdims=True)
  if not np.all(np.isfinite(row_max)):
    raise ValueError("every row needs an allowed class with a finite logit.")
  unnormalised = np.exp(masked - row_max)
  probs = unnormalised / unnormalised.sum(axis=-1, keepdims=True)
  num_allowed = allowed.sum(axis=-1, keepdims=True)
  smoothed = np.where(allowed, (1.0 - eps * num_allowed) * probs + eps, 0.0)
  freqs = np.floor(smoothed * (2**precision - num_classes)).astype(np.int64) + 1
  # sum(smoothed) = 1, so the floors lose 0..C in total (float rounding cannot gain a whole unit).
  largest = np.argmax(freqs, axis=-1)[..., None]
  remainder = 2**precision - freqs.sum(axis=-1, keepdims=True)
  np.put_along_axis(freqs, largest, np.take_along_axis(freqs, largest, axis=-1) + remainder, axis=-1)
  return freqs


def compressed_bits(message: np.ndarray) -> int:
  """Length of a message in bits (header included)."""
  return 32 * int(np.asarray(message).size)


def _network_call(logits_fn, x_in, known, t) -> np.ndarray:
  """Output [*event, C] of one network call on a batch of one (x_in, known [*event], t a global step)."""
  return np.asarray(logits_fn(jnp.asarray(x_in[None], jnp.int32), jnp.asarray(known[None]),
                              jnp.full((1,), t, jnp.int32)))[0]


@functools.partial(jax.jit, static_argnames=("transitions", "parametrisation"))
def _children_log_probs(logits, coarse, stage, *, transitions, parametrisation):
  """(log-probs [*event, C], allowed [*event, C]) over the children of every variable's stage-s value.

  logits: [*event, transitions.num_outputs(parametrisation)]; coarse: int32 [*event], the stage-s values.
  """
  log_probs = upscale.next_state_log_probs(transitions, logits, coarse, stage, parametrisation)
  if parametrisation == "data":  # a child's probability is the total over its fine classes
    to_child = jax.nn.one_hot(jnp.asarray(transitions.child_index)[stage], transitions.max_branching,
                              dtype=bool)                                   # [K, C]
    log_probs = jax.nn.logsumexp(jnp.where(to_child, log_probs[..., None], -jnp.inf), axis=-2)
  return log_probs, jnp.asarray(transitions.valid_children)[stage, coarse]


def _children_freqs(logits, coarse, stage, step, transitions, parametrisation, eps) -> np.ndarray:
  """int64 [m, C]: quantised child probabilities of the variables at flat positions step [m]."""
  log_probs, allowed = _children_log_probs(logits, coarse, stage, transitions=transitions,
                                           parametrisation=parametrisation)
  num_variables = coarse.size
  return quantized_probabilities(np.asarray(log_probs).reshape(num_variables, -1)[step], eps,
                                 allowed=np.asarray(allowed).reshape(num_variables, -1)[step])


def _positions_by_rank(sigma: np.ndarray) -> np.ndarray:
  """int64 [D]: the flat index of the variable with rank r, for an order sigma [*event]."""
  flat = sigma.reshape(-1)
  if not np.array_equal(np.sort(flat), np.arange(flat.size)):
    raise ValueError(f"sigma must be a permutation of 0..D-1 (D = {flat.size}).")
  return np.argsort(flat)


def _plan(starts, num_variables: int, num_stages: int = 0):
  """(starts, ends) as int64 numpy [n] (num_stages = 0) or [S, n] (the same plan for every stage if [n])."""
  starts, ends = (np.asarray(a, np.int64) for a in orders.plan_bounds(starts, num_variables))
  if num_stages:
    starts, ends = (np.broadcast_to(a, (num_stages, a.shape[-1])) for a in (starts, ends))
  elif starts.ndim != 1:
    raise ValueError(f"an OA plan is one list of starts [n], got shape {starts.shape}.")
  return starts, ends


def _settings_crc(name: str, *arrays, eps: float) -> int:
  """CRC32 of the settings a decoder must share with the encoder: a format name, int arrays and eps."""
  crc = zlib.crc32(name.encode())
  for array in arrays:
    crc = zlib.crc32(np.ascontiguousarray(array, "<i8").tobytes(), crc)
  return zlib.crc32(np.float64(eps).astype("<f8").tobytes(), crc)


def _push(steps) -> np.ndarray:
  """ANS words of the (symbols [m], frequencies [m, C]) steps, so that decoding pops steps[0] first."""
  ans = constriction.stream.stack.AnsCoder()
  family = constriction.stream.model.Categorical(perfect=False)
  for symbols, freqs in reversed(steps):
    ans.encode_reverse(symbols.astype(np.int32), family, (freqs - 1).astype(np.float64))
  return ans.get_compressed()


def _with_header(words: np.ndarray, settings_crc: int) -> np.ndarray:
  """The message [crc32, *words]."""
  crc = zlib.crc32(np.ascontiguousarray(words, "<u4").tobytes(), settings_crc)
  return np.concatenate([np.array([crc], np.uint32), words.astype(np.uint32)])


def _open(message, settings_crc: int):
  """A constriction AnsCoder on the message's ANS words, after checking the header."""
  message = np.asarray(message)
  if message.dtype != np.uint32 or message.ndim != 1:
    raise ValueError(f"a message is a 1-D uint32 array, got {message.dtype} with shape {message.shape}.")
  if message.size < HEADER_WORDS:
    raise ValueError("the message is empty: it has no header.")
  words = message[HEADER_WORDS:]
  if zlib.crc32(np.ascontiguousarray(words, "<u4").tobytes(), settings_crc) != int(message[0]):
    raise ValueError("checksum mismatch: the message is corrupted or truncated, or it was encoded with another "
                     "event shape, order, plan, eps or model setting.")
  return constriction.stream.stack.AnsCoder(np.ascontiguousarray(words))


def _pop(ans, freqs: np.ndarray) -> np.ndarray:
  """int64 [m]: the next m symbols, decoded with frequencies [m, C]."""
  family = constriction.stream.model.Categorical(perfect=False)
  return np.asarray(ans.decode(family, (freqs - 1).astype(np.float64)), np.int64)


def _check_consumed(ans) -> None:
  if not ans.is_empty():
    raise ValueError("the message does not end where the decoded data ends (corrupted message).")


def _oa_settings(event_shape, sigma, starts, absorbing_value, eps) -> int:
  return _settings_crc("ardm-oa", event_shape, sigma, starts, absorbing_value, eps=eps)


def encode(logits_fn: objective.LogitsFn, x, sigma, starts, *, absorbing_value: int,
           eps: float = EPS) -> np.ndarray:
  """Compresses one data point with an OA-ARDM: one network call per planned step.

  Args:
    logits_fn: network, (x_in, known, t) -> logits [1, *event, K], called on a batch of one. Pass a jitted
      function with the parameters as jit arguments (e.g. lambda x, k, t: apply(params, x, k, t) with
      apply = jax.jit(model.apply)): the decoder must get bitwise the same logits, and a jit that closed over
      the parameters would embed them as constants.
    x: int [*event], values in 0..K-1.
    sigma: int [*event], the order (ranks, a permutation of 0..D-1); the decoder needs the same one.
    starts: int [n], the plan.
    absorbing_value: input value of the variables not decoded yet.
    eps: smoothing of the predictions (quantized_probabilities).
  Returns:
    message: uint32 [words].
  """
  x = np.asarray(x, np.int32)
  sigma = np.broadcast_to(np.asarray(sigma, np.int64), x.shape)
  positions = _positions_by_rank(sigma)
  starts, ends = _plan(starts, x.size)
  steps = []
  for start, end in zip(starts, ends):
    known = sigma < start
    logits = _network_call(logits_fn, np.where(known, x, absorbing_value), known, start).reshape(x.size, -1)
    step = positions[start:end]
    symbols = x.reshape(-1)[step]
    if not np.all((symbols >= 0) & (symbols < logits.shape[-1])):
      raise ValueError(f"x must take values in 0..{logits.shape[-1] - 1}, the network's classes.")
    steps.append((symbols, quantized_probabilities(logits[step], eps)))
  return _with_header(_push(steps), _oa_settings(x.shape, sigma, starts, absorbing_value, eps))


def decode(logits_fn: objective.LogitsFn, message, sigma, starts, event_shape, *, absorbing_value: int,
           eps: float = EPS) -> np.ndarray:
  """Decompresses a message of `encode` with the same network, order, plan and settings.

  Args:
    logits_fn, sigma, starts, absorbing_value, eps: as given to encode.
    message: uint32 [words].
    event_shape: shape of the data point.
  Returns:
    x: int32 [*event_shape].
  Raises:
    ValueError: the message is corrupted or truncated, or the settings differ from the encoder's.
  """
  event_shape = tuple(event_shape)
  sigma = np.broadcast_to(np.asarray(sigma, np.int64), event_shape)
  positions = _positions_by_rank(sigma)
  starts, ends = _plan(starts, sigma.size)
  ans = _open(message, _oa_settings(event_shape, sigma, starts, absorbing_value, eps))
  x = np.full(event_shape, absorbing_value, np.int32)  # the network input: unknown variables absorbed
  for start, end in zip(starts, ends):
    logits = _network_call(logits_fn, x, sigma < start, start)
    step = positions[start:end]
    freqs = quantized_probabilities(logits.reshape(sigma.size, -1)[step], eps)
    x.reshape(-1)[step] = _pop(ans, freqs)
  _check_consumed(ans)
  return x


def _upscale_settings(event_shape, sigma, starts, transitions, parametrisation, eps) -> int:
  return _settings_crc(f"ardm-upscale-{parametrisation}", event_shape, sigma, starts, transitions.state_values,
                       eps=eps)


def encode_upscale(logits_fn: objective.LogitsFn, x, sigma, starts, transitions: upscale.Transitions, *,
                   parametrisation: str, eps: float = EPS) -> np.ndarray:
  """Compresses one data point with an upscale ARDM: stage by stage, one network call per planned step.

  Each variable's stage-(s+1) value is coded as its child number among the children of its stage-s value,
  smoothed over the valid children only.

  Args:
    logits_fn: network, (x_in, known, stage * D + t) -> logits [1, *event, C], jitted as for encode.
    x: int [*event], values in 0..K-1.
    sigma: int [*event] (one order for every stage) or [S, *event].
    starts: int [n] (the same plan for every stage) or [S, n].
    transitions: the stages.
    parametrisation: "direct" or "data".
    eps: smoothing of the predictions.
  Returns:
    message: uint32 [words].
  """
  x = np.asarray(x, np.int32)
  if not np.all((x >= 0) & (x < transitions.num_classes)):
    raise ValueError(f"x must take values in 0..{transitions.num_classes - 1}.")
  num_stages = transitions.num_stages
  sigma = np.broadcast_to(np.asarray(sigma, np.int64), (num_stages,) + x.shape)
  starts, ends = _plan(starts, x.size, num_stages)
  steps = []
  for s in range(num_stages):
    positions = _positions_by_rank(sigma[s])
    coarse, refined = transitions.state_values[s][x], transitions.state_values[s + 1][x]
    child = transitions.child_index[s][x].reshape(-1)
    for start, end in zip(starts[s], ends[s]):
      known = sigma[s] < start
      logits = _network_call(logits_fn, np.where(known, refined, coarse), known, s * x.size + start)
      step = positions[start:end]
      steps.append((child[step], _children_freqs(logits, coarse, s, step, transitions, parametrisation, eps)))
  return _with_header(_push(steps), _upscale_settings(x.shape, sigma, starts, transitions, parametrisation, eps))


def decode_upscale(logits_fn: objective.LogitsFn, message, sigma, starts, event_shape,
                   transitions: upscale.Transitions, *, parametrisation: str, eps: float = EPS) -> np.ndarray:
  """Decompresses a message of `encode_upscale` with the same network, orders, plans and settings.

  Returns:
    x: int32 [*event_shape].
  Raises:
    ValueError: the message is corrupted or truncated, or the settings differ from the encoder's.
  """
  event_shape = tuple(event_shape)
  num_stages = transitions.num_stages
  sigma = np.broadcast_to(np.asarray(sigma, np.int64), (num_stages,) + event_shape)
  num_variables = sigma[0].size
  starts, ends = _plan(starts, num_variables, num_stages)
  ans = _open(message, _upscale_settings(event_shape, sigma, starts, transitions, parametrisation, eps))
  state = np.full(event_shape, transitions.state_values[0, 0], np.int32)
  for s in range(num_stages):
    positions = _positions_by_rank(sigma[s])
    coarse = state.copy()
    for start, end in zip(starts[s], ends[s]):
      logits = _network_call(logits_fn, state, sigma[s] < start, s * num_variables + start)
      step = positions[start:end]
      child = _pop(ans, _children_freqs(logits, coarse, s, step, transitions, parametrisation, eps))
      state.reshape(-1)[step] = transitions.child_state[s][coarse.reshape(-1)[step], child]
  _check_consumed(ans)
  return state
