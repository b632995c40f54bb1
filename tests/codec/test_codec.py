"""Files in, files out: byte-exact round trips, refusals before any network call, damaged files detected.

The bundles hold tiny untrained networks (a round trip needs no trained model): the coder is lossless for any
network as long as encoder and decoder see bitwise the same outputs. Most tests force the model
(method='ardm'); test_container.py covers the format, the classic methods and crafted files.
"""

import dataclasses
import io
import json
import logging
import shutil

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from ardm_jax import codec
from ardm_jax.data import kinds as data_kinds
from ardm_jax.cli import compress
from ardm_jax.codec import coder
from ardm_jax.codec import container
from ardm_jax.training import experiment
from ardm_jax.core import step_tracker
from configs import quickstart
from configs import text8_upscale

TEXT_LEN = 8


def _config(variant):
  config = text8_upscale.get_config("local") if variant == "upscale" else quickstart.get_config(variant)
  if variant == "images":  # a tiny Transformer over the flattened patch compiles much faster than a U-Net
    config.model = quickstart.get_config().model
  else:
    config.data.seq_len = TEXT_LEN
  config.model.num_layers, config.model.width, config.model.num_heads, config.model.mlp_dim = 1, 32, 2, 64
  return config


def _bundle(path, variant="", seed=0, event_shape=(TEXT_LEN,), batch_size=4):
  """A bundle of a randomly initialised network, written to and read back from disk."""
  config = _config(variant)
  num_classes = 27 if variant in ("", "upscale") else 256
  process = experiment.build_process(config, num_classes)
  num_stages = process.num_stages
  model = experiment.build_model(config, num_classes, None if variant != "upscale" else process.transitions)
  x = jnp.zeros((1,) + event_shape, jnp.int32)
  params = jax.jit(model.init)(jax.random.key(seed), x, x > 0, jnp.zeros((1,), jnp.int32))["params"]
  num_variables = int(np.prod(event_shape))
  order = np.stack([np.random.RandomState(seed + s).permutation(num_variables) for s in range(num_stages)])
  plans = {
    str(b): {
      "starts": [np.linspace(0, num_variables, b, endpoint=False).astype(int).tolist()] * num_stages,
      "planned_bpd": 0.0,
    }
    for b in (3, num_variables)
  }
  meta = {
    "bundle_version": 1,
    "kind": data_kinds.of_data(config.data),
    "event_shape": list(event_shape),
    "num_classes": num_classes,
    "order": order.tolist(),
    "order_bpd": [0.0],
    "plans": plans,
    "unseen_steps": 0,
    "train_step": 0,
    "batch_size": batch_size,
  }
  codec.write_bundle(path, config, params, meta)
  return codec.load_bundle(path)


@pytest.fixture(scope="module")
def text_bundle_dir(tmp_path_factory):
  path = tmp_path_factory.mktemp("text")
  _bundle(path)
  return path


@pytest.fixture(scope="module")
def text_bundle(text_bundle_dir):
  return codec.load_bundle(text_bundle_dir)


def _round_trip(bundle, files, budget=3, method="ardm", **kwargs):
  encoded = {n: e.blob for n, e in codec.encode_files(bundle, files, budget, method=method, **kwargs).items()}
  decoded = codec.decode_files(bundle, {name + ".ardm": blob for name, blob in encoded.items()})
  return encoded, {name[: -len(".ardm")]: content for name, content in decoded.items()}


def _blob(bundle, files, budget=3, method="ardm", **kwargs):
  (encoded,) = codec.encode_files(bundle, files, budget, method=method, **kwargs).values()
  return encoded.blob


def test_text_files_of_any_length_round_trip_in_one_call(text_bundle):
  files = {
    "empty.txt": b"",
    "one.txt": b"a",
    "odd.txt": b"the quick brown fox jumps",
    "row.txt": b"abcdefgh",
    "long.txt": b"hello world " * 30,
  }
  encoded, decoded = _round_trip(text_bundle, files, keep_names=True)
  assert decoded == files
  for name, blob in encoded.items():  # the exact length (and, asked for, the base name) come from the header
    header, payload = container.unpack(name, blob)
    assert header.method == "ardm" and header.shape == (len(files[name]),) and header.metadata == {"name": name}
    assert (len(payload) == 0) == (files[name] == b"")  # one message per file, none for an empty file


def test_an_upscale_model_codes_files_stage_by_stage(tmp_path):
  bundle = _bundle(tmp_path / "upscale", "upscale", batch_size=2)
  assert bundle.process.num_stages == 2 and bundle.plan(3).shape == (2, 3)
  files = {"a.txt": b"upscale models refine twice", "b.txt": b"x"}
  assert _round_trip(bundle, files)[1] == files


def test_one_stream_per_file_pays_the_overhead_once(text_bundle):
  """Chaining a file's rows into one message costs less than coding its 4 rows apart (one flush, not four)."""
  text = b"abcdefgh" * 4
  starts = text_bundle.plan(3)
  chained_bits = 8 * len(container.unpack("f", _blob(text_bundle, {"f.txt": text}))[1])
  x = codec.prepare("f", text, text_bundle).rows[0]
  apart = coder.encode(
    text_bundle.logits_fn, x, text_bundle.order, starts, text_bundle.process, batch_size=4, checksum=False
  )
  apart_bits = sum(coder.compressed_bits(m) for m in apart)
  assert chained_bits < apart_bits


def test_characters_outside_the_alphabet_are_named_or_cleaned(text_bundle):
  with pytest.raises(codec.CodecError, match=r"bad.txt: 3 characters outside .*'H' at 0, ',' at 5, '\\n' at 12"):
    codec.encode_files(text_bundle, {"bad.txt": b"Hello, world\n"}, 3, method="ardm")
  _, decoded = _round_trip(text_bundle, {"bad.txt": b"Hello, World 2!\n"}, clean=True)
  assert decoded == {"bad.txt": b"hello world two"}


def test_batched_network_calls_are_bitwise_equal_in_both_directions(text_bundle):
  """5 rows in groups of 2 (the last group partial): the decoder sees exactly the encoder's inputs and outputs."""
  calls = {"encode": [], "decode": []}
  direction = []

  def recording(x_in, known, t):
    logits = text_bundle.logits_fn(x_in, known, t)
    calls[direction[-1]].append((np.asarray(x_in), np.asarray(known), np.asarray(t), np.asarray(logits)))
    return logits

  x = np.random.RandomState(0).randint(0, 27, (5, TEXT_LEN))
  args = (text_bundle.order, text_bundle.plan(3), text_bundle.process)
  direction.append("encode")
  messages = coder.encode(recording, x, *args, streams=[0, 0, 1, 1, 1], batch_size=2)
  direction.append("decode")
  decoded = coder.decode(recording, messages, *args, x.shape, streams=[0, 0, 1, 1, 1], batch_size=2)
  np.testing.assert_array_equal(decoded, x)
  assert len(calls["encode"]) == len(calls["decode"]) == 3 * 3  # 3 planned calls x 3 groups of 2 rows
  for encoded_call, decoded_call in zip(calls["encode"], calls["decode"]):
    assert encoded_call[0].shape[0] == 2
    for a, b in zip(encoded_call, decoded_call):
      assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


def test_any_bytes_round_trip_with_a_bytes_model(tmp_path):
  bundle = _bundle(tmp_path / "bytes", "bytes")
  files = {"all.bin": bytes(range(256)) + b"\x00\xff\n", "x": b"Z", "empty": b""}
  assert _round_trip(bundle, files, budget=TEXT_LEN)[1] == files


def _png(pixels, mode):
  out = io.BytesIO()
  Image.fromarray(pixels, mode=mode).save(out, format="PNG")
  return out.getvalue()


def test_pngs_of_odd_sizes_and_grayscale_round_trip_pixel_exact(tmp_path):
  bundle = _bundle(tmp_path / "images", "images", event_shape=(4, 4, 3))
  rs = np.random.RandomState(0)
  files = {
    "rgb.png": _png(rs.randint(0, 256, (5, 7, 3), np.uint8), "RGB"),
    "gray.png": _png(rs.randint(0, 256, (3, 9), np.uint8), "L"),
    "tiny.png": _png(rs.randint(0, 256, (1, 1, 3), np.uint8), "RGB"),
    "a.npy": _npy(rs.randint(0, 256, (2, 4, 4, 3)).astype(np.int16)),
  }
  encoded, decoded = _round_trip(bundle, files)
  for name in ("rgb.png", "gray.png", "tiny.png"):
    original, restored = Image.open(io.BytesIO(files[name])), Image.open(io.BytesIO(decoded[name]))
    assert restored.mode == original.mode and restored.size == original.size
    np.testing.assert_array_equal(np.asarray(restored), np.asarray(original))
  assert container.unpack("rgb", encoded["rgb.png"])[0].shape == (5, 7)
  restored = np.load(io.BytesIO(decoded["a.npy"]))
  original = np.load(io.BytesIO(files["a.npy"]))
  assert restored.dtype == original.dtype and np.array_equal(restored, original)
  with pytest.raises(codec.CodecError, match="a 8-bit RGBA PNG"):
    codec.encode_files(bundle, {"alpha.png": _png(np.zeros((2, 2, 4), np.uint8), "RGBA")}, 3, method="ardm")


def _npy(array):
  out = io.BytesIO()
  np.save(out, array)
  return out.getvalue()


def _network_must_not_run(bundle):
  def refuse(*args):
    raise AssertionError("the network was called")

  bundle.__dict__["logits_fn"] = refuse  # replaces the cached property on this instance


def test_other_bundles_and_other_numerics_are_refused_before_any_network_call(tmp_path, text_bundle, text_bundle_dir):
  encoded = {"f.ardm": _blob(text_bundle, {"f.txt": b"some text"})}
  params = jax.tree.map(lambda p: p * np.float32(1.001), text_bundle.params)  # a slightly different network
  codec.write_bundle(tmp_path / "other", text_bundle.config, params, text_bundle.meta)
  other = codec.load_bundle(tmp_path / "other")
  _network_must_not_run(other)
  with pytest.raises(codec.CodecError, match=f"compressed with bundle {text_bundle.fingerprint[:16]}, not with"):
    codec.decode_files(other, encoded)
  reloaded = codec.load_bundle(text_bundle_dir)
  _network_must_not_run(reloaded)
  with jax.enable_x64(True):
    with pytest.raises(codec.CodecError, match="encoded under other numerics .*x64 True"):
      codec.decode_files(reloaded, encoded)


def test_corrupted_or_truncated_files_are_refused_before_any_network_call(text_bundle, text_bundle_dir):
  blob = _blob(text_bundle, {"f.txt": b"a few words of text"})
  untouchable = codec.load_bundle(text_bundle_dir)
  _network_must_not_run(untouchable)
  for position in range(len(blob)):  # every byte, header and payload: the file's CRC32 catches one flipped bit
    damaged = bytearray(blob)
    damaged[position] ^= 0x10
    with pytest.raises(codec.CodecError, match="f.ardm: (not an ardm|checksum mismatch|format version)"):
      codec.decode_files(untouchable, {"f.ardm": bytes(damaged)})
  for length in (0, 4, 12, len(blob) // 2, len(blob) - 1):
    with pytest.raises(codec.CodecError, match="f.ardm: (not an ardm|truncated|checksum)"):
      codec.decode_files(untouchable, {"f.ardm": blob[:length]})


def test_unseen_tracker_steps_take_the_seen_losses_around_them():
  tracker = step_tracker.StepTracker(
    ema=jnp.array([4.0, 0.0, 2.0, 0.0, 0.0, 9.0, 0.0, 1.0]), count=jnp.array([3, 0, 1, 0, 0, 2, 0, 5])
  )
  losses, unseen = step_tracker.seen_stage_losses(tracker, num_stages=2)
  np.testing.assert_allclose(losses, [[4.0, 3.0, 2.0, 2.0], [9.0, 9.0, 5.0, 1.0]])
  assert unseen == 4
  with pytest.raises(ValueError, match="stage 1 has no step"):
    step_tracker.seen_stage_losses(tracker._replace(count=jnp.array([1, 0, 0, 0, 0, 0, 0, 0])), 2)


def test_the_bundle_detects_altered_files(tmp_path, text_bundle_dir):
  bundle_dir = tmp_path / "b"
  shutil.copytree(text_bundle_dir, bundle_dir)
  meta = json.loads((bundle_dir / "codec.json").read_text())
  meta["plans"]["3"]["starts"] = [[0, 1, 2]]
  (bundle_dir / "codec.json").write_text(json.dumps(meta))
  with pytest.raises(codec.CodecError, match="do not match its fingerprint"):
    codec.load_bundle(bundle_dir)
  with pytest.raises(codec.CodecError, match="is not a codec bundle: params.msgpack missing"):
    (bundle_dir / "params.msgpack").unlink()
    codec.load_bundle(bundle_dir)


def _cli(*args):
  """Runs the command line in this process (flags parsed as absl would).

  Parsing absl's flags sets the 'absl' logger to --verbosity's level; it is put back afterwards so that later
  tests still see INFO records.
  """
  absl_logger = logging.getLogger("absl")
  level = absl_logger.level
  argv = compress.FLAGS(["compress", *map(str, args)])
  try:
    compress.main(argv)
  finally:
    compress.FLAGS.unparse_flags()
    absl_logger.setLevel(level)


def test_command_line_round_trip_and_no_output_on_a_bad_checksum(tmp_path, text_bundle_dir):
  (tmp_path / "a.txt").write_bytes(b"the command line")
  (tmp_path / "b.txt").write_bytes(b"")
  _cli(
    "encode", f"--model={text_bundle_dir}", "--budget=3", tmp_path / "a.txt", tmp_path / "b.txt", "-o", tmp_path / "enc"
  )
  assert sorted(p.name for p in (tmp_path / "enc").iterdir()) == ["a.txt.ardm", "b.txt.ardm"]
  _cli(
    "decode",
    f"--model={text_bundle_dir}",
    tmp_path / "enc" / "a.txt.ardm",
    tmp_path / "enc" / "b.txt.ardm",
    "-o",
    tmp_path / "dec",
  )
  assert (tmp_path / "dec" / "a.txt").read_bytes() == b"the command line"
  assert (tmp_path / "dec" / "b.txt").read_bytes() == b""
  header, payload = container.unpack("a", (tmp_path / "enc" / "a.txt.ardm").read_bytes())
  forged = dataclasses.replace(header, data_crc=header.data_crc ^ 1)  # a valid file CRC over a wrong data CRC
  (tmp_path / "forged.ardm").write_bytes(container.pack(forged, payload))
  with pytest.raises(codec.CodecError, match="does not match its checksum"):
    _cli("decode", f"--model={text_bundle_dir}", tmp_path / "forged.ardm", "-o", tmp_path / "out.txt")
  assert not (tmp_path / "out.txt").exists() and not list(tmp_path.glob(".out.txt*"))
