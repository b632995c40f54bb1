"""Codec bundles: what decoding needs of a trained model, written once by `export` and validated on load.

A bundle is a directory (local or gs://): config.json (the training config, read as JSON data and validated),
params.msgpack (the EMA parameters, flax msgpack: numeric arrays only, no pickle) and codec.json (the data kind,
event shape and classes, the coding order of every stage, the optimal plan of every budget, the rows per network
call, the tracked step losses, and a SHA-256 fingerprint of the three files).
"""

import dataclasses
import functools
import hashlib
import json
import math
import os
import uuid

from etils import epath
import flax.serialization
import jax
import jax.numpy as jnp
import jaxlib
import ml_collections
import numpy as np

from ardm_jax.codec.errors import CodecError
from ardm_jax.core import likelihood
from ardm_jax.core import orders
from ardm_jax.core import plan_walk
from ardm_jax.core import planner
from ardm_jax.core import step_tracker
from ardm_jax.data import kinds
from ardm_jax.io import paths
from ardm_jax.training import config_schema
from ardm_jax.training import experiment
from ardm_jax.training import workdir as workdir_lib

# XLA flags that change no numerics (how many host devices to fake, where to dump): left out of the fingerprint.
_IGNORED_XLA_FLAGS = ("--xla_force_host_platform_device_count", "--xla_dump")
DEFAULT_BATCH_SIZE = 64


def _sha256(*chunks: bytes) -> str:
  digest = hashlib.sha256()
  for chunk in chunks:
    digest.update(chunk)
  return digest.hexdigest()


def numerics() -> dict:
  """What the network's outputs depend on besides the bundle: decoding needs the encoder's values."""
  flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(_IGNORED_XLA_FLAGS)]
  return {
    "jax": jax.__version__,
    "jaxlib": jaxlib.__version__,
    "backend": jax.default_backend(),
    "device": jax.devices()[0].device_kind,
    "x64": bool(jax.config.jax_enable_x64),
    "xla_flags": " ".join(sorted(flags)),
  }


def numerics_fingerprint() -> bytes:
  """4 bytes of the SHA-256 of numerics()."""
  return hashlib.sha256(json.dumps(numerics(), sort_keys=True).encode()).digest()[:4]


@dataclasses.dataclass(frozen=True, eq=False)
class Bundle:
  """A loaded codec bundle."""

  config: ml_collections.ConfigDict
  params: dict
  meta: dict
  fingerprint: str

  @property
  def kind(self) -> str:
    return self.meta["kind"]

  @property
  def event_shape(self) -> tuple[int, ...]:
    return tuple(self.meta["event_shape"])

  @property
  def num_classes(self) -> int:
    return self.meta["num_classes"]

  @property
  def batch_size(self) -> int:
    """Rows per network call: part of the bundle, since the network's outputs may depend on the batch shape."""
    return int(self.meta.get("batch_size", DEFAULT_BATCH_SIZE))

  @property
  def fingerprint_bytes(self) -> bytes:
    """The 8 bytes of the fingerprint that a compressed file records."""
    return bytes.fromhex(self.fingerprint[:16])

  @property
  def budgets(self) -> list[int]:
    return sorted(int(b) for b in self.meta["plans"])

  @property
  def order(self) -> np.ndarray:
    """int64 [S, *event]: the coding order of every stage."""
    return np.asarray(self.meta["order"], np.int64).reshape((-1,) + self.event_shape)

  def plan(self, budget: int) -> np.ndarray:
    """int64 [S, budget]: the starts of every stage's calls."""
    if str(budget) not in self.meta["plans"]:
      raise CodecError(
        f"the bundle has no plan for --budget={budget}; it has {self.budgets} (export it with --budgets=...,{budget})."
      )
    return np.asarray(self.meta["plans"][str(budget)]["starts"], np.int64)

  def step_losses(self) -> np.ndarray:
    """float64 [S, D]: the tracked L_t of every stage in step order (meta 'step_losses'); CodecError if absent."""
    losses = self.meta.get("step_losses")
    num_stages, num_variables = self.order.shape[0], math.prod(self.event_shape)
    if losses is None:
      raise CodecError(
        "the bundle has no tracked step losses (meta 'step_losses'), which planning the unknown steps needs; "
        "export it again with `python -m ardm_jax.compress export --workdir=... -o MODEL`."
      )
    try:
      losses = np.asarray(losses, np.float64)
    except (ValueError, TypeError):  # Ragged or not numbers: refused below by its shape.
      losses = np.zeros((0,))
    if losses.shape != (num_stages, num_variables) or not np.all(np.isfinite(losses)) or np.any(losses < 0):
      raise CodecError(
        f"the bundle's step_losses must be {num_stages} x {num_variables} finite non-negative numbers, got shape "
        f"{losses.shape}; export it again."
      )
    return losses

  @functools.cached_property
  def process(self) -> plan_walk.Process:
    return experiment.build_process(self.config, self.num_classes)

  @functools.cached_property
  def logits_fn(self):
    """The network with the parameters as a jit argument, so that they are not compiled in as constants."""
    transitions = self.process.transitions if self.config.objective.kind == "upscale" else None
    model = experiment.build_model(self.config, self.num_classes, transitions)
    return functools.partial(jax.jit(model.apply), {"params": self.params})


def bundle_fingerprint(config_json: bytes, params_bytes: bytes, meta: dict) -> str:
  meta_json = json.dumps({k: v for k, v in meta.items() if k != "fingerprint"}, sort_keys=True).encode()
  return _sha256(config_json, b"\0", params_bytes, b"\0", meta_json)[:32]


BUNDLE_FILES = ("config.json", "params.msgpack", "codec.json")


def write_bundle(out, config: ml_collections.ConfigDict, params, meta: dict, *, force: bool = False) -> Bundle:
  """Writes a bundle directory (local or gs://) and returns it as loaded.

  An existing bundle is replaced only with force (the files encoded with it decode only with it); an empty
  directory is filled. Locally the bundle is written complete into a temporary sibling and renamed into place,
  so no reader ever sees half a bundle; on gs:// its three objects are written one by one.
  """
  out = epath.Path(out)
  check_bundle_target(out, force)
  config_json = config.to_json(sort_keys=True).encode()
  params = jax.tree.map(np.asarray, params)
  params_bytes = flax.serialization.msgpack_serialize(params)
  meta = dict(meta, fingerprint=bundle_fingerprint(config_json, params_bytes, meta))
  contents = dict(zip(BUNDLE_FILES, (config_json, params_bytes, json.dumps(meta, sort_keys=True).encode())))
  if paths.is_url(out):
    out.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
      (out / name).write_bytes(data)
  else:
    _write_bundle_dir(os.fspath(out), contents)
  return Bundle(config=config, params=params, meta=meta, fingerprint=meta["fingerprint"])


def check_bundle_target(out: epath.Path, force: bool) -> None:
  """Refuses to write a bundle over anything but an empty directory, without force."""
  if paths.occupied(out) and not force and not (out.is_dir() and not any(out.iterdir())):
    raise CodecError(
      f"{out} exists and is not an empty directory: not replaced (files encoded with a bundle decode only with "
      "it); pass --force to replace it, or give another -o."
    )


def _write_bundle_dir(out: str, contents: dict[str, bytes]) -> None:
  """Writes the files into a temporary sibling directory, then swaps it in for `out` (kept on any failure)."""
  parent, name = os.path.dirname(out), os.path.basename(out)
  os.makedirs(parent, exist_ok=True)
  staging = os.path.join(parent, f".{name}.{uuid.uuid4().hex}.tmp")
  backup = os.path.join(parent, f".{name}.{uuid.uuid4().hex}.bak")
  paths.PENDING.update((staging, backup))
  try:
    os.mkdir(staging)
    for file_name, data in contents.items():
      with open(os.path.join(staging, file_name), "wb") as f:
        f.write(data)
    with paths.COMMIT_LOCK:
      if os.path.lexists(out):
        os.rename(out, backup)
      try:
        os.rename(staging, out)
      except OSError:
        if os.path.lexists(backup):
          os.rename(backup, out)
        raise
  finally:
    for leftover in (staging, backup):
      paths.remove_leftover(leftover)
    paths.PENDING.difference_update((staging, backup))


def load_bundle(path) -> Bundle:
  """Reads and verifies a bundle directory written by write_bundle; its config is validated data."""
  path = epath.Path(path)
  files = {name: path / name for name in BUNDLE_FILES}
  missing = [name for name, f in files.items() if not f.exists()]
  if missing:
    raise CodecError(
      f"--model={path} is not a codec bundle: {', '.join(missing)} missing (make one with "
      f"`python -m ardm_jax.compress export --config=... --workdir=... -o {path}`)."
    )
  config_json, params_bytes = files["config.json"].read_bytes(), files["params.msgpack"].read_bytes()
  try:
    meta = json.loads(files["codec.json"].read_text())
  except ValueError:
    meta = None
  if meta is not None and not isinstance(meta, dict):
    raise CodecError(
      f"--model={path}: codec.json is a JSON {type(meta).__name__}, not an object (crafted or damaged bundle); "
      "export it again."
    )
  fingerprint_ok = meta is not None and meta.get("fingerprint") == bundle_fingerprint(config_json, params_bytes, meta)
  if not fingerprint_ok:
    raise CodecError(
      f"--model={path}: the bundle's files do not match its fingerprint (corrupted or altered); export it again."
    )
  return checked_bundle(path, config_json, params_bytes, meta)


# What a bundle may ask for: D variables per data point, rows per call, and float32s of network outputs per call.
MAX_BUNDLE_VARIABLES = 2**16
MAX_BUNDLE_BATCH = 4096
MAX_CALL_OUTPUTS = 2**28
NUM_CLASSES = kinds.NUM_CLASSES  # The classes of each bundle kind.
_LAYER_COUNTS = ("num_layers", "num_res_blocks", "num_blocks")


def checked_bundle(path, config_json: bytes, params_bytes: bytes, meta) -> Bundle:
  """The bundle of these file contents, each field checked before it is used to size anything.

  A bundle is shared like a checkpoint and its fingerprint is a plain hash, so it is validated as untrusted data:
  codec.json field by field (kind, classes, shape, order a permutation per stage, strictly increasing plans, rows
  per call) with limits that bound memory, then the parameters against the network the config builds (tree,
  shapes and dtypes, traced without allocating). CodecError names the field.
  """

  def refuse(field: str, what: str):
    raise CodecError(f"--model={path}: {field} {what} (crafted or damaged bundle); export it again.")

  try:
    config = ml_collections.ConfigDict(json.loads(config_json))
    config_schema.validate_network(config)
  except (ValueError, TypeError, AttributeError, config_schema.ConfigError) as e:
    refuse("config.json", f"is not a valid config: {e}")
  if not isinstance(meta, dict):
    refuse("codec.json", f"is a JSON {type(meta).__name__}, not an object")
  missing = [k for k in ("kind", "event_shape", "num_classes", "order", "plans") if k not in meta]
  if missing:
    refuse("codec.json", f"lacks {', '.join(missing)}")
  kind = meta["kind"]
  if kind not in NUM_CLASSES:
    refuse("codec.json 'kind'", f"= {kind!r} is not one of {list(NUM_CLASSES)}")
  data_kind = _data_kind_or_none(config)
  if data_kind not in (None, kind):
    refuse("codec.json 'kind'", f"= {kind!r} is not the kind of the config's data ({data_kind})")
  if meta["num_classes"] != NUM_CLASSES[kind] or isinstance(meta["num_classes"], bool):
    refuse("codec.json 'num_classes'", f"= {meta['num_classes']!r}; a {kind} model has {NUM_CLASSES[kind]} classes")
  shape = meta["event_shape"]
  rank = 3 if kind == "image" else 1
  if (
    not isinstance(shape, list)
    or len(shape) != rank
    or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)
    or (kind == "image" and shape[-1] != 3)
    or math.prod(shape) > MAX_BUNDLE_VARIABLES
  ):
    limits = f"{rank} positive sizes{' ending in 3' if kind == 'image' else ''}, at most {MAX_BUNDLE_VARIABLES} in all"
    refuse("codec.json 'event_shape'", f"= {str(shape)[:80]} is not {limits}")
  num_variables = math.prod(shape)
  try:
    process = experiment.build_process(config, NUM_CLASSES[kind])
    transitions = process.transitions if config.objective.kind == "upscale" else None
    model = experiment.build_model(config, NUM_CLASSES[kind], transitions)
  except (ValueError, TypeError, KeyError) as e:
    refuse("config.json", f"does not build a network for {kind} data ({e})")
  num_stages = process.num_stages
  order = _int_array(meta["order"], (num_stages, num_variables))
  if order is None or not np.array_equal(
    np.sort(order, axis=1), np.broadcast_to(np.arange(num_variables), order.shape)
  ):
    refuse("codec.json 'order'", f"is not {num_stages} permutation(s) of 0..{num_variables - 1}")
  plans = meta["plans"]
  if not isinstance(plans, dict) or not plans:
    refuse("codec.json 'plans'", "is not an object of one plan per budget")
  for budget, plan in plans.items():
    if not budget.isdigit() or not 1 <= int(budget) <= num_variables or not isinstance(plan, dict):
      refuse("codec.json 'plans'", f"has budget {budget[:20]!r}, not a number of calls in 1..{num_variables}")
    starts = _int_array(plan.get("starts"), (num_stages, int(budget)))
    if (
      starts is None
      or np.any(starts[:, 0] != 0)
      or np.any(np.diff(starts, axis=1) <= 0)
      or starts.max() >= num_variables
    ):
      refuse(f"codec.json 'plans'[{budget}]", f"is not {num_stages} row(s) of starts 0 < ... < {num_variables}")
  batch_size = meta.get("batch_size", DEFAULT_BATCH_SIZE)
  outputs_per_call = num_variables * model.num_classes_out * (batch_size if isinstance(batch_size, int) else 1)
  if not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BUNDLE_BATCH or outputs_per_call > MAX_CALL_OUTPUTS:
    refuse(
      "codec.json 'batch_size'",
      f"= {batch_size!r} is not in 1..{MAX_BUNDLE_BATCH} within {MAX_CALL_OUTPUTS} outputs per call",
    )
  for field in ("unseen_steps", "train_step"):
    if not isinstance(meta.get(field, 0), int) or meta.get(field, 0) < 0:
      refuse(f"codec.json {field!r}", f"= {meta[field]!r} is not a count")
  try:
    params = flax.serialization.msgpack_restore(params_bytes)
  except Exception as e:  # pylint: disable=broad-except  # msgpack's errors (nesting, truncation) and others.
    refuse("params.msgpack", f"is not a parameter file ({type(e).__name__}: {e})")
  _check_params(refuse, params, model, tuple(shape), config)
  return Bundle(config=config, params=params, meta=meta, fingerprint=meta["fingerprint"])


def _int_array(value, shape) -> np.ndarray | None:
  """int64 array of a JSON list of lists if it has exactly `shape`, else None (no allocation past its size)."""
  if not isinstance(value, list) or len(value) != shape[0]:
    return None
  if not all(isinstance(row, list) and len(row) == shape[1] for row in value):
    return None
  if not all(isinstance(v, int) and not isinstance(v, bool) for row in value for v in row):
    return None
  return np.asarray(value, np.int64).reshape(shape)


def _check_params(refuse, params, model, event_shape, config) -> None:
  """Refuses parameters that are not the tree of arrays (names, shapes, float32) the config's network has."""
  if not isinstance(params, dict):
    refuse("params.msgpack", "is not a tree of parameters")
  for key in _LAYER_COUNTS:  # Tracing the network costs time per layer: bounded by what the file holds.
    if config.model.get(key, 0) > len(params):
      refuse(f"config.json model.{key}", f"= {config.model[key]} is more than the parameter file's {len(params)} parts")
  x = jax.ShapeDtypeStruct((1, *event_shape), jnp.int32)
  try:
    expected = jax.eval_shape(model.init, jax.random.key(0), x, x, jax.ShapeDtypeStruct((1,), jnp.int32))["params"]
  except Exception as e:  # pylint: disable=broad-except  # The config's sizes do not make a network.
    refuse("config.json", f"does not make a network ({type(e).__name__}: {str(e)[:200]})")
  expected_leaves = jax.tree_util.tree_leaves_with_path(expected)
  try:
    leaves = jax.tree_util.tree_leaves_with_path(params)
  except Exception:  # pylint: disable=broad-except
    leaves = []
  found = {jax.tree_util.keystr(p): v for p, v in leaves}
  for path, spec in expected_leaves:
    name = jax.tree_util.keystr(path)
    value = found.pop(name, None)
    if not isinstance(value, np.ndarray) or value.shape != spec.shape or value.dtype != spec.dtype:
      what = "missing" if value is None else f"{getattr(value, 'dtype', type(value).__name__)} {np.shape(value)}"
      refuse("params.msgpack", f"does not fit the config's network: {name} is {what}, not {spec.dtype} {spec.shape}")
  if found:
    refuse("params.msgpack", f"has parameters the config's network does not: {', '.join(list(found)[:3])}")


def _data_kind_or_none(config) -> str | None:
  """The kind of a bundle config's data section, or None where it has none the registry knows (checked, not
  trusted)."""
  try:
    return kinds.of_data(config.data) if "data" in config else None
  except (kinds.KindError, KeyError, AttributeError, TypeError):
    return None


def export(
  config,
  workdir: str,
  out: str,
  budgets,
  *,
  num_orders: int = 4,
  order_rows: int = 64,
  seed: int = 0,
  batch_size: int = DEFAULT_BATCH_SIZE,
  force: bool = False,
  report=print,
) -> Bundle:
  """Writes the codec bundle of a trained workdir: EMA parameters, config, the best of `num_orders` random
  orders on `order_rows` training rows, and the optimal plan of every budget ('D': one call per variable)."""
  if not budgets or not all(b == "D" or str(b).isdigit() for b in budgets):
    raise CodecError(f"--budgets must be numbers of calls >= 1 (or 'D', one call per variable), got {budgets}.")
  if not 1 <= batch_size <= MAX_BUNDLE_BATCH:
    raise CodecError(f"--batch_size={batch_size} must be in 1..{MAX_BUNDLE_BATCH}.")
  out_path = paths.resolve(out)
  check_bundle_target(out_path, force)  # Before the workdir is read.
  exp, _, state = workdir_lib.restore(config, workdir)
  config = exp.config
  num_variables, num_stages = exp.num_variables, exp.num_stages
  asked = [num_variables if b == "D" else int(b) for b in budgets]
  if min(asked) < 1:
    raise CodecError(f"--budgets must be >= 1 (or 'D', one call per variable), got {budgets}.")
  if max(asked) > num_variables:
    report(f"budgets above D = {num_variables} ({[b for b in asked if b > num_variables]}) are planned as D")
  budgets = sorted({min(b, num_variables) for b in asked})
  losses, unseen = step_tracker.seen_stage_losses(state.tracker, num_stages)
  sorted_losses = [planner.sort_step_losses(stage_losses) for stage_losses in losses]
  plans = {}
  for budget in budgets:
    stage_plans = [planner.plan(stage_losses, budget) for stage_losses in sorted_losses]
    plans[str(budget)] = {
      "starts": np.stack([p.starts for p in stage_plans]).tolist(),
      "planned_bpd": float(sum(p.cost for p in stage_plans)),
    }
  process, logits_fn = exp.process, exp.logits_fn(state.ema_params)
  rows = jnp.asarray(exp.dataset.train_batch(0, order_rows))
  scoring_starts = jnp.asarray(plans[str(budgets[-1])]["starts"])
  score = jax.jit(
    lambda sigma: likelihood.log_likelihood(logits_fn, rows, sigma[:, None], scoring_starts, process)[0].mean()
  )
  event_shape = tuple(exp.dataset.event_shape)
  candidates = [
    np.asarray(orders.sample_orders(jax.random.key(seed + i), (num_stages,) + event_shape)) for i in range(num_orders)
  ]
  bpd = [-float(score(jnp.asarray(sigma))) / (np.log(2) * num_variables) for sigma in candidates]
  meta = {
    "bundle_version": 1,
    "kind": kinds.of_data(config.data),
    "event_shape": list(event_shape),
    "num_classes": exp.dataset.num_classes,
    "order": candidates[int(np.argmin(bpd))].reshape(num_stages, -1).tolist(),
    "order_bpd": bpd,
    "plans": plans,
    "step_losses": [np.asarray(stage_losses, np.float64).tolist() for stage_losses in losses],
    "batch_size": int(batch_size),
    "unseen_steps": unseen,
    "train_step": int(state.step),
  }
  return write_bundle(out_path, config, state.ema_params, meta, force=force)


def plan_report(bundle: Bundle) -> str:
  """The planned bits/dim of every budget of the bundle, and a note on steps the tracker never saw."""
  meta = bundle.meta
  total = len(meta["order"]) * len(meta["order"][0])
  lines = [f"{'budget':>8} {'planned bpd':>12}"]
  lines += [f"{b:>8} {meta['plans'][str(b)]['planned_bpd']:>12.4f}" for b in bundle.budgets]
  note = step_tracker.unseen_note(meta["unseen_steps"], total)
  return "\n".join(lines + ([note] if note else []))
