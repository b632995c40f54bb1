"""Lossless compression with an ARDM and rANS (arXiv 2110.02037), batched over many rows, one stream per file:
rows are coded along a fixed order per stage and a plan, with bitwise the same integer probabilities on both sides.

Design notes (stream layout, digits of a mixture, exactness, overheads): docs/design.md#coder.
"""

import dataclasses
import functools
import math
import zlib

import constriction
import jax
import numpy as np

from ardm_jax.core import distributions
from ardm_jax.core import plan_walk

EPS = 2e-5  # arXiv 2110.02037: lossless compression: smoothing mass per class.
PRECISION = 24  # Bits of the fixed-point probabilities of constriction's default ANS coder (32-bit words).
HEADER_WORDS = 1
MAX_DIGIT_BASE = 256  # A logistic mixture's choice among C children is coded in digits of at most 256 values.
_CHUNK = 1024  # Rows per interval-probability call of the mixture digits.


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


def _check_order(sigma, num_stages: int, event_shape) -> np.ndarray:
  """int64 [S, D]: the order of every stage, from sigma [*event] (shared) or [S, *event]."""
  sigma = np.asarray(sigma, np.int64)
  sigma = np.broadcast_to(sigma, (num_stages,) + tuple(event_shape)).reshape(num_stages, -1)
  num_variables = sigma.shape[1]
  for stage_sigma in sigma:
    if not np.array_equal(np.sort(stage_sigma), np.arange(num_variables)):
      raise ValueError(f"sigma must be a permutation of 0..D-1 (D = {num_variables}).")
  return sigma


def _plan(starts, num_variables: int, num_stages: int):
  """(starts, ends) int64 numpy [S, n]."""
  return tuple(np.asarray(a, np.int64) for a in plan_walk.plan_steps(starts, num_variables, num_stages))


def _streams(streams, num_rows: int) -> np.ndarray:
  """int64 [N]: the stream of every row, 0..num_streams-1 (default: one stream per row)."""
  streams = np.arange(num_rows) if streams is None else np.asarray(streams, np.int64)
  if streams.shape != (num_rows,) or (num_rows and (streams.min() < 0)):
    raise ValueError(f"streams must give every one of the {num_rows} rows a stream number >= 0.")
  return streams


def _settings_crc(process, event_shape, sigma, starts, fixed_rows, eps) -> int:
  """CRC32 of what a decoder must share with the encoder about one stream."""
  crc = zlib.crc32(process.description.encode())
  for array in (event_shape, sigma, starts, [len(fixed_rows)]):
    crc = zlib.crc32(np.ascontiguousarray(array, "<i8").tobytes(), crc)
  crc = zlib.crc32(np.packbits(fixed_rows).tobytes(), crc)
  return zlib.crc32(np.float64(eps).astype("<f8").tobytes(), crc)


@functools.partial(jax.jit, static_argnames="process")
def _network_input(values, coarse, known, stage, *, process):
  return plan_walk.network_input(process, values, coarse, known, stage)


@functools.partial(jax.jit, static_argnames="process")
def _children_log_probs(logits, coarse, stage, *, process):
  return plan_walk.children_log_probs(process, logits, coarse, stage)


def _digits(num_children: int) -> tuple[int, int]:
  """(L, b): a mixture's child number 0..C-1 is coded as L base-b digits, most significant first, with the
  smallest L such that b <= MAX_DIGIT_BASE and b^L >= C (C = 65,536 classes: two bytes; C <= 256: one digit)."""
  levels = 1
  while MAX_DIGIT_BASE**levels < num_children:
    levels += 1
  base = max(2, math.ceil(num_children ** (1.0 / levels)))
  while base**levels < num_children:
    base += 1
  return levels, base


@functools.partial(jax.jit, static_argnames=("num_classes", "base"))
def _digit_log_probs(params_Nx3M, coarse_N, first_N, num_children_N, stride_N, group_end_N, span, *, num_classes, base):
  """(float32 [N, base] log-probabilities of the digit's runs, bool [N, base] the runs that are not empty)."""
  edges_NxR1 = plan_walk.run_edges(coarse_N, first_N, span, base, num_children_N, stride_N, group_end_N)
  log_probs = distributions.partition_log_probs(params_Nx3M, edges_NxR1, num_classes)
  return log_probs, edges_NxR1[:, 1:] > edges_NxR1[:, :-1]


@dataclasses.dataclass(frozen=True, eq=False)
class _DigitFreqs:
  """The frequencies of one digit of the children of a call's coded variables under their logistic mixtures,
  computed when called: the encoder keeps these (the mixture parameters, ~3M floats per variable) instead of
  C frequencies per variable until it pushes in reverse, and recomputes them bitwise as the decoder did.

  Digit d of child numbers starting at `first` (the digits so far) stands for children first + d * span ..
  first + (d + 1) * span - 1, whose classes are one run (plan_walk.run_edges): its probability is the
  mixture's mass on that run (distributions.partition_log_probs). Children past the value's last are not allowed
  (frequency 1).
  """

  process: plan_walk.Process
  stage: int
  params_Nx3M: np.ndarray  # float32
  coarse_N: np.ndarray  # the stage-s values
  first_N: np.ndarray  # the child number the digits so far give
  span: int
  base: int
  eps: float

  def __call__(self) -> np.ndarray:
    tr, s = self.process.transitions, self.stage
    per_row = (  # the tables' entries of every row's value (arguments, not constants of the compiled code)
      self.params_Nx3M,
      self.coarse_N,
      self.first_N,
      tr.num_children[s][self.coarse_N],
      np.full(self.coarse_N.shape, tr.child_stride[s], np.int32),
      tr.group_last[s][self.coarse_N] + 1,
    )
    num_rows = len(self.coarse_N)
    log_probs = np.zeros((num_rows, self.base), np.float32)
    allowed = np.zeros((num_rows, self.base), bool)  # a run past the value's last child is empty: frequency 1
    for begin in range(0, num_rows, _CHUNK):  # chunks padded to a power of two: few compilations, bounded memory
      rows = slice(begin, min(begin + _CHUNK, num_rows))
      size = rows.stop - rows.start
      pad = max(16, 1 << (size - 1).bit_length()) - size
      chunk = [np.pad(a[rows], [(0, pad)] + [(0, 0)] * (a.ndim - 1)) for a in per_row]
      chunk_log_probs, chunk_allowed = _digit_log_probs(
        *chunk, np.int32(self.span), num_classes=self.process.num_classes, base=self.base
      )
      log_probs[rows], allowed[rows] = np.asarray(chunk_log_probs)[:size], np.asarray(chunk_allowed)[:size]
    return quantized_probabilities(log_probs, self.eps, allowed=allowed)


def _refine(transitions, stage: int, coarse, children) -> np.ndarray:
  """int32: upscale.refine_values on the host, for a call's coded variables (their number changes from call to
  call, so the jnp version would compile its ops anew for each)."""
  if transitions.child_stride is not None:
    return (coarse + children * transitions.child_stride[stage]).astype(np.int32)
  return transitions.child_state[stage][coarse, children]


def _walk(logits_fn, process, rows_in, batch_size, eps, code_step):
  """Runs the planned calls over all rows; code_step gives the coded children of every call.

  Args:
    rows_in: the _Rows of the call: event_shape, sigma, starts, ends, fill (int32 [N, D] values of the fixed
      positions, the classes; anything elsewhere) and fixed (bool [N, D] positions not coded).
    code_step(stage, step [m] positions of the call, freqs, coded [N, m], span, base) -> int64 [M]: one
      base-`base` digit of the child numbers of the call's coded variables (row-major over (row, position)
      where coded), the digit of weight `span`; freqs() gives their frequencies [M, base]. A categorical
      output codes each child in one digit (span 1, base C); a logistic mixture in `_digits` digits.
  Returns:
    int32 [N, D]: the classes.
  """
  event_shape, sigma, starts, ends = rows_in.event_shape, rows_in.sigma, rows_in.starts, rows_in.ends
  fill, fixed = rows_in.fill, rows_in.fixed
  num_rows, num_variables = fixed.shape
  num_groups = -(-num_rows // batch_size)
  padded = num_groups * batch_size
  tr = process.transitions
  values = np.zeros((padded, num_variables), np.int32)  # padding rows: class 0, nothing known
  values[:num_rows] = np.where(fixed, tr.state_values[0][fill], tr.state_values[0, 0])
  known_fixed = np.zeros((padded, num_variables), bool)
  known_fixed[:num_rows] = fixed
  for s in range(process.num_stages):
    coarse = values.copy()
    values[:num_rows][fixed] = tr.state_values[s + 1][fill[fixed]]
    positions = np.argsort(sigma[s])
    for start, end in zip(starts[s], ends[s]):
      known = (sigma[s] < start)[None] | known_fixed
      step = positions[start:end]
      outputs = []
      for g in range(num_groups):
        rows = slice(g * batch_size, (g + 1) * batch_size)
        group_shape = (batch_size,) + tuple(event_shape)
        group_coarse = coarse[rows].reshape(group_shape)
        group_known = known[rows].reshape(group_shape)
        x_in = _network_input(values[rows].reshape(group_shape), group_coarse, group_known, s, process=process)
        logits = logits_fn(x_in, group_known, np.full((batch_size,), s * num_variables + start, np.int32))
        if not process.num_mixtures:  # the categorical's log-probs over the children
          logits = _children_log_probs(logits, group_coarse, s, process=process)
        outputs.append(np.asarray(logits).reshape(batch_size, num_variables, -1)[:, step])
      outputs = np.concatenate(outputs)[:num_rows]  # [N, m, C] log-probs or [N, m, 3M] mixture parameters
      coded = ~fixed[:, step]  # [N, m]
      step_coarse = coarse[:num_rows, step][coded]
      if process.num_mixtures:
        levels, base = _digits(tr.max_branching)
        children = np.zeros(len(step_coarse), np.int64)
        params = np.ascontiguousarray(outputs[coded], np.float32)
        for level in range(levels):
          span = base ** (levels - 1 - level)
          freqs = _DigitFreqs(process, s, params, step_coarse, children.copy(), span, base, eps)
          children += span * np.asarray(code_step(s, step, freqs, coded, span, base), np.int64)
      else:
        allowed = tr.num_children[s][step_coarse][:, None] > np.arange(tr.max_branching)
        freqs = quantized_probabilities(outputs[coded], eps, allowed=allowed)
        children = code_step(s, step, lambda freqs=freqs: freqs, coded, 1, tr.max_branching)
      step_values = values[:num_rows, step]
      step_values[coded] = _refine(tr, s, step_coarse, children)
      values[:num_rows, step] = step_values
  return values[:num_rows]


def _push(steps, num_streams: int) -> list[np.ndarray]:
  """ANS words of every stream, so that decoding pops steps[0] first.

  steps: [(freqs, [(stream, symbols [m], rows [m] of freqs())])]; each freqs() is computed once, in reverse.
  """
  coders = [constriction.stream.stack.AnsCoder() for _ in range(num_streams)]
  family = constriction.stream.model.Categorical(perfect=False)
  for freqs_fn, parts in reversed(steps):
    if not any(symbols.size for _, symbols, _ in parts):
      continue
    weights = (freqs_fn() - 1).astype(np.float64)
    for k, symbols, index in parts:
      if symbols.size:
        coders[k].encode_reverse(symbols.astype(np.int32), family, weights[index])
  return [ans.get_compressed() for ans in coders]


def _with_header(words: np.ndarray, settings_crc: int) -> np.ndarray:
  """The message [crc32, *words]."""
  crc = zlib.crc32(np.ascontiguousarray(words, "<u4").tobytes(), settings_crc)
  return np.concatenate([np.array([crc], np.uint32), words.astype(np.uint32)])


def _open(message, settings_crc: int | None):
  """A constriction AnsCoder on the message's ANS words, after checking the header (None: no header)."""
  message = np.asarray(message)
  if message.dtype != np.uint32 or message.ndim != 1:
    raise ValueError(f"a message is a 1-D uint32 array, got {message.dtype} with shape {message.shape}.")
  if settings_crc is None:
    return constriction.stream.stack.AnsCoder(np.ascontiguousarray(message))
  if message.size < HEADER_WORDS:
    raise ValueError("the message is empty: it has no header.")
  words = message[HEADER_WORDS:]
  if zlib.crc32(np.ascontiguousarray(words, "<u4").tobytes(), settings_crc) != int(message[0]):
    raise ValueError(
      "checksum mismatch: the message is corrupted or truncated, or it was encoded with another "
      "event shape, order, plan, eps, model setting or rows."
    )
  return constriction.stream.stack.AnsCoder(np.ascontiguousarray(words))


class _Rows:
  """The validated common arguments of encode and decode."""

  def __init__(self, process, shape, sigma, starts, streams, fixed, fill, batch_size, eps):
    self.num_rows, self.event_shape = shape[0], tuple(shape[1:])
    num_variables = int(np.prod(self.event_shape))
    self.sigma = _check_order(sigma, process.num_stages, self.event_shape)
    self.starts, self.ends = _plan(starts, num_variables, process.num_stages)
    self.streams = _streams(streams, self.num_rows)
    self.num_streams = int(self.streams.max()) + 1 if self.num_rows else 0
    flat = (self.num_rows, num_variables)
    self.fixed = np.zeros(flat, bool) if fixed is None else np.asarray(fixed, bool).reshape(flat)
    self.fill = np.zeros(flat, np.int32) if fill is None else np.asarray(fill, np.int32).reshape(flat)
    if np.any(self.fixed & ((self.fill < 0) | (self.fill >= process.num_classes))):
      raise ValueError(f"fixed values must lie in 0..{process.num_classes - 1}.")
    if batch_size < 1:
      raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    self.settings = [
      _settings_crc(process, self.event_shape, self.sigma, self.starts, self.fixed[self.streams == k], eps)
      for k in range(self.num_streams)
    ]

  def split(self, coded):
    """[(stream, mask [N, m])]: the coded entries of every stream's rows, in stream order."""
    return [(k, coded & (self.streams == k)[:, None]) for k in range(self.num_streams)]


def encode(
  logits_fn: plan_walk.LogitsFn,
  x,
  sigma,
  starts,
  process: plan_walk.Process,
  *,
  streams=None,
  fixed=None,
  batch_size: int = 64,
  eps: float = EPS,
  checksum: bool = True,
) -> list[np.ndarray]:
  """Compresses rows of data, one message per stream, with one batched network call per planned step.

  Args:
    logits_fn: network, (x_in, known, stage * D + t) -> logits [batch_size, *event, outputs]. Jit it with the
      parameters as jit arguments (e.g. functools.partial(jax.jit(model.apply), {"params": params})).
    x: int [N, *event], classes in 0..K-1.
    sigma: int [*event] (one order for every stage) or [S, *event]: ranks, a permutation of 0..D-1 each.
    starts: int [n] (the same plan for every stage) or [S, n].
    process: plan_walk.oa_process or plan_walk.upscale_process.
    streams: int [N], the stream of each row (0..num_streams-1, rows of a stream coded in row order); None:
      one stream per row.
    fixed: bool [N, *event] or None: positions not coded (the decoder gets their values as `fill`).
    batch_size: rows per network call; the decoder must use the same (its outputs depend on the batch shape).
    eps: smoothing of the predictions (quantized_probabilities).
    checksum: start every message with the CRC32 word; False: bare ANS words, for a caller whose container
      has its own checksum over the message and the settings (codec.py).
  Returns:
    One message (uint32 [words]) per stream.
  """
  x = np.asarray(x, np.int32)
  if not np.all((x >= 0) & (x < process.num_classes)):
    raise ValueError(f"x must take values in 0..{process.num_classes - 1}, the model's classes.")
  rows = _Rows(process, x.shape, sigma, starts, streams, fixed, x, batch_size, eps)
  flat = x.reshape(rows.num_rows, -1)
  steps = []

  def code_step(s, step, freqs, coded, span, base):
    digits = (process.transitions.child_index[s][flat[:, step]] // span) % base  # [N, m]
    order_of_coded = np.cumsum(coded.reshape(-1)).reshape(coded.shape) - 1  # index into freqs()
    steps.append((freqs, [(k, digits[mask], order_of_coded[mask]) for k, mask in rows.split(coded)]))
    return digits[coded]

  _walk(logits_fn, process, rows, batch_size, eps, code_step)
  words = _push(steps, rows.num_streams)
  if not checksum:
    return [w.astype(np.uint32) for w in words]
  return [_with_header(w, settings) for w, settings in zip(words, rows.settings)]


def decode(
  logits_fn: plan_walk.LogitsFn,
  messages,
  sigma,
  starts,
  process: plan_walk.Process,
  shape,
  *,
  streams=None,
  fixed=None,
  fill=None,
  batch_size: int = 64,
  eps: float = EPS,
  checksum: bool = True,
) -> np.ndarray:
  """Decompresses the messages of `encode` with the same network, orders, plan and settings.

  Args:
    messages: one uint32 message per stream.
    shape: (N, *event_shape).
    fixed, fill: the positions not coded and their classes (int [N, *event]; read only where fixed).
    logits_fn, sigma, starts, process, streams, batch_size, eps, checksum: as given to encode.
  Returns:
    x: int32 [N, *event_shape].
  Raises:
    ValueError: a message is corrupted or truncated, or the settings differ from the encoder's.
  """
  shape = tuple(shape)
  rows = _Rows(process, shape, sigma, starts, streams, fixed, fill, batch_size, eps)
  if len(messages) != rows.num_streams:
    raise ValueError(f"{rows.num_streams} streams need as many messages, got {len(messages)}.")
  coders = [_open(message, settings if checksum else None) for message, settings in zip(messages, rows.settings)]
  family = constriction.stream.model.Categorical(perfect=False)

  def code_step(s, step, freqs, coded, span, base):
    del s, step, span, base
    order_of_coded = np.cumsum(coded.reshape(-1)).reshape(coded.shape) - 1
    children = np.zeros(coded.shape, np.int64)
    if coded.any():
      weights = (freqs() - 1).astype(np.float64)
      for k, mask in rows.split(coded):
        if mask.any():
          children[mask] = coders[k].decode(family, weights[order_of_coded[mask]])
    return children[coded]

  x = _walk(logits_fn, process, rows, batch_size, eps, code_step)
  if not all(ans.is_empty() for ans in coders):
    raise ValueError("a message does not end where its decoded data ends (corrupted message).")
  return x.reshape(shape)
