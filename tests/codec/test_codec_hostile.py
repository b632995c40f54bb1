"""The codec against hostile and odd inputs: crafted bundles (fingerprint recomputed), headers that claim more
work than their payload can hold, odd media that the model must not take, names, budgets.

Each case asserts one clear CodecError naming the field or file, or an exact round trip; none may reach a
traceback or lose a byte.
"""

import dataclasses
import io
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib

from etils import epath
import flax.serialization
import numpy as np
from PIL import Image
import pytest

from ardm_jax import codec
from ardm_jax.codec import container
from ardm_jax.io import paths
from configs import quickstart
from tests.codec import test_audio_codec
from tests.codec import test_codec

_bundle = test_codec._bundle


@pytest.fixture(scope="module")
def text_bundle(tmp_path_factory):
  return _bundle(tmp_path_factory.mktemp("text"))


@pytest.fixture(scope="module")
def image_bundle(tmp_path_factory):
  return _bundle(tmp_path_factory.mktemp("img"), "images", event_shape=(4, 4, 3))


def _write_crafted(path, bundle, *, meta=None, config=None, params_bytes=None):
  """A bundle directory whose files are `bundle`'s with some replaced, and the fingerprint recomputed."""
  path.mkdir(parents=True, exist_ok=True)
  config_json = (config if config is not None else bundle.config.to_json(sort_keys=True)).encode()
  if params_bytes is None:
    params_bytes = flax.serialization.msgpack_serialize(bundle.params)
  meta = dict(bundle.meta if meta is None else meta) if not isinstance(meta, list) else meta
  if isinstance(meta, dict):
    meta.pop("fingerprint", None)
    meta["fingerprint"] = codec.bundle_fingerprint(config_json, params_bytes, meta)
  (path / "config.json").write_bytes(config_json)
  (path / "params.msgpack").write_bytes(params_bytes)
  (path / "codec.json").write_text(json.dumps(meta))
  return path


def _meta(bundle, **changes):
  meta = {k: v for k, v in bundle.meta.items() if k != "fingerprint"}
  for key, value in changes.items():
    if value is None:
      meta.pop(key)
    else:
      meta[key] = value
  return meta


def _config_with(bundle, **model):
  config = bundle.config.copy_and_resolve_references()
  for key, value in model.items():
    config.model[key] = value
  return config.to_json(sort_keys=True)


def _nested_msgpack(depth: int) -> bytes:
  return b"\x81\xa1a" * depth + b"\xc0"  # {"a": {"a": ... None}}


CRAFTED = {
  "event_shape_huge": (lambda b: dict(meta=_meta(b, event_shape=[10**9])), "'event_shape'"),
  "event_shape_negative": (lambda b: dict(meta=_meta(b, event_shape=[-8])), "'event_shape'"),
  "event_shape_not_a_list": (lambda b: dict(meta=_meta(b, event_shape="8")), "'event_shape'"),
  "num_classes_huge": (lambda b: dict(meta=_meta(b, num_classes=10**9)), "'num_classes'"),
  "batch_size_huge": (lambda b: dict(meta=_meta(b, batch_size=10**6)), "'batch_size'"),
  "batch_size_zero": (lambda b: dict(meta=_meta(b, batch_size=0)), "'batch_size'"),
  "order_not_a_permutation": (lambda b: dict(meta=_meta(b, order=[[0] * 8])), "'order'"),
  "order_out_of_range": (lambda b: dict(meta=_meta(b, order=[[1, 2, 3, 4, 5, 6, 7, 8]])), "'order'"),
  "order_missing": (lambda b: dict(meta=_meta(b, order=None)), "lacks order"),
  "order_of_floats": (lambda b: dict(meta=_meta(b, order=[[0.0, 1, 2, 3, 4, 5, 6, 7]])), "'order'"),
  "plan_not_increasing": (lambda b: dict(meta=_meta(b, plans={"3": {"starts": [[0, 5, 2]]}})), "'plans'"),
  "plan_past_d": (lambda b: dict(meta=_meta(b, plans={"3": {"starts": [[0, 4, 8]]}})), "'plans'"),
  "plan_not_from_zero": (lambda b: dict(meta=_meta(b, plans={"3": {"starts": [[1, 4, 6]]}})), "'plans'"),
  "plan_wrong_length": (lambda b: dict(meta=_meta(b, plans={"3": {"starts": [[0, 4]]}})), "'plans'"),
  "plan_budget_not_a_number": (lambda b: dict(meta=_meta(b, plans={"x": {"starts": [[0]]}})), "'plans'"),
  "plans_empty": (lambda b: dict(meta=_meta(b, plans={})), "'plans'"),
  "kind_unknown": (lambda b: dict(meta=_meta(b, kind="video")), "'kind'"),
  "kind_of_other_data": (lambda b: dict(meta=_meta(b, kind="image", num_classes=256)), "'kind'"),
  "codec_json_a_list": (lambda b: dict(meta=[1, 2, 3]), "codec.json is a JSON list"),
  "params_of_another_model": (
    lambda b: dict(config=_config_with(b, width=64, mlp_dim=128)),
    "params.msgpack does not fit the config's network",
  ),
  "params_truncated": (
    lambda b: dict(params_bytes=flax.serialization.msgpack_serialize(b.params)[:-100]),
    "params.msgpack is not a parameter file",
  ),
  "params_nested_deep": (lambda b: dict(params_bytes=_nested_msgpack(100_000)), "params.msgpack"),
  "params_not_a_tree": (lambda b: dict(params_bytes=flax.serialization.msgpack_serialize(3)), "params.msgpack"),
  "config_width_huge": (lambda b: dict(config=_config_with(b, width=10**9, mlp_dim=10**9)), "params.msgpack"),
  "config_layers_huge": (lambda b: dict(config=_config_with(b, num_layers=10**6)), "model.num_layers"),
  "config_not_json": (lambda b: dict(config="{not json"), "config.json is not a valid config"),
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_a_crafted_bundle_is_refused_in_one_line_naming_the_field(tmp_path, text_bundle, case):
  craft, field = CRAFTED[case]
  path = _write_crafted(tmp_path / case, text_bundle, **craft(text_bundle))
  with pytest.raises(codec.CodecError, match="crafted or damaged bundle") as error:
    codec.load_bundle(path)
  message = str(error.value)
  assert field in message and "\n" not in message


def test_the_untouched_bundle_passes_the_same_checks(tmp_path, text_bundle):
  """The checks refuse the crafted fields, not bundles: the same files, re-fingerprinted, load."""
  path = _write_crafted(tmp_path / "same", text_bundle, meta=_meta(text_bundle))
  loaded = codec.load_bundle(path)
  assert loaded.meta == text_bundle.meta and loaded.budgets == text_bundle.budgets


# ----------------------------------------------------------------------------------- work bounded by input


def _pack_claiming(bundle, kind: str, shape, payload: bytes) -> bytes:
  header = container.Header(
    method="ardm",
    bundle=bundle.fingerprint_bytes,
    numerics=codec.numerics_fingerprint(),
    data_crc=0,
    kind=kind,
    shape=tuple(shape),
    budget_index=0,
  )
  return container.pack(header, payload)


@pytest.mark.parametrize("claimed", [2**24, 2**22, 2**20])
def test_a_header_claiming_more_than_its_payload_can_hold_is_refused_before_decoding(text_bundle, claimed):
  """Every coded character costs at least -log2(largest smoothed probability) bits: 40 bytes cannot hold
  millions of them, and the decoder says so before any network call."""
  blob = _pack_claiming(text_bundle, "text", (claimed,), b"\0" * 8)
  with pytest.raises(codec.CodecError, match="cannot hold"):
    codec.read_header("big.ardm", blob, text_bundle)


def test_the_payload_bound_never_refuses_a_real_file(text_bundle):
  """The most compressible text (one letter repeated) coded by an untrained model passes the bound."""
  for size in (1, 100, 5000):
    files = {"a.txt": b"a" * size}
    encoded = codec.encode_files(text_bundle, files, 3, method="ardm")["a.txt"]
    codec.read_header("a.txt.ardm", encoded.blob, text_bundle)
    bits = 8 * len(container.unpack("a", encoded.blob)[1])
    assert bits >= codec.min_payload_bits(text_bundle, "text", (size,))


# ------------------------------------------------------------------------------------------- lossless


def _png_chunks(pixels, mode, extra=(), bit_depth=None):
  """A PNG from PIL with chunks (type, data) inserted before IDAT."""
  out = io.BytesIO()
  Image.fromarray(pixels, mode=mode).save(out, format="PNG")
  raw = out.getvalue()
  idat = raw.index(b"IDAT") - 4
  chunks = b"".join(struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d)) for t, d in extra)
  return raw[:idat] + chunks + raw[idat:]


def _odd_pngs():
  rng = np.random.default_rng(0)
  rgb = rng.integers(0, 256, (5, 6, 3), np.uint8)
  gray = rng.integers(0, 256, (5, 6), np.uint8)
  files = {
    "rgb16.png": _raw_png(rng.integers(0, 65536, (5, 6, 3)).astype(">u2"), 16, 2),
    "gray16.png": _raw_png(rng.integers(0, 65536, (5, 6)).astype(">u2"), 16, 0),
    "rgba.png": _raw_png(rng.integers(0, 256, (5, 6, 4), np.uint8), 8, 6),
    "la.png": _raw_png(rng.integers(0, 256, (5, 6, 2), np.uint8), 8, 4),
    "gray4.png": _raw_png(np.packbits(rng.integers(0, 2, (5, 24), np.uint8), axis=1), 4, 0),
    "palette.png": _pil_png(gray, "L", convert="P"),
    "bilevel.png": _pil_png(gray, "L", convert="1"),
    "trns.png": _png_chunks(rgb, "RGB", [(b"tRNS", b"\x00\x01\x00\x02\x00\x03")]),
    "gama.png": _png_chunks(rgb, "RGB", [(b"gAMA", struct.pack(">I", 45455))]),
    "iccp.png": _png_chunks(gray, "L", [(b"iCCP", b"x\x00\x00" + zlib.compress(b"profile"))]),
    "text.png": _png_chunks(rgb, "RGB", [(b"tEXt", b"Comment\x00hello")]),
    "apng.png": _apng(rgb),
    "trailing.png": _pil_png(rgb, "RGB") + b"extra bytes",
    "interlaced.png": _pil_png(rgb, "RGB", interlace=1),
  }
  return files


def _chunk(chunk_type: bytes, data: bytes) -> bytes:
  return struct.pack(">I", len(data)) + chunk_type + data + struct.pack(">I", zlib.crc32(chunk_type + data))


def _raw_png(samples, bit_depth: int, colour_type: int) -> bytes:
  """A PNG written by hand (filter 0 on every row): PIL cannot write 16-bit RGB."""
  height, width = samples.shape[:2]
  rows = b"".join(b"\0" + samples[y].tobytes() for y in range(height))
  ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
  return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b"")


def _pil_png(pixels, mode, convert=None, **save):
  image = Image.fromarray(pixels, mode=mode) if mode not in ("I",) else Image.fromarray(pixels)
  if convert:
    image = image.convert(convert)
  out = io.BytesIO()
  image.save(out, format="PNG", **save)
  return out.getvalue()


def _apng(rgb):
  frames = [Image.fromarray(np.roll(rgb, i, axis=0)) for i in range(3)]
  out = io.BytesIO()
  frames[0].save(out, format="PNG", save_all=True, append_images=frames[1:])
  return out.getvalue()


def test_every_odd_png_comes_back_byte_exact_or_pixel_exact_with_a_note(image_bundle):
  """The property: decode(encode(f)) is f itself, or, only for a PNG of 8-bit RGB/gray pixels and nothing else,
  a PNG of the same pixels with a note saying so."""
  files = _odd_pngs()
  assert any(b"acTL" in raw for raw in files.values())  # The APNG is animated.
  for method in ("auto", "ardm"):
    encoded = {}
    for name, raw in files.items():
      try:
        encoded.update(codec.encode_files(image_bundle, {name: raw}, 3, method=method))
      except codec.CodecError:
        assert method == "ardm"  # Only a forced model may refuse.
    decoded = codec.decode_files(image_bundle, {n + ".ardm": e.blob for n, e in encoded.items()})
    for name, e in encoded.items():
      restored = decoded[name + ".ardm"]
      header = container.unpack(name, e.blob)[0]
      if restored == files[name]:
        continue
      assert name == "interlaced.png" and header.kind in ("image_rgb", "image_l"), name
      assert "same pixels" in e.note
      pixels = [np.asarray(Image.open(io.BytesIO(f))) for f in (restored, files[name])]
      np.testing.assert_array_equal(*pixels)
  for name in ("rgb16.png", "gray16.png", "trns.png", "apng.png", "gama.png", "iccp.png", "text.png", "trailing.png"):
    (auto,) = codec.encode_files(image_bundle, {name: files[name]}, 3).values()
    assert container.unpack(name, auto.blob)[0].kind == "file" and "byte methods" in auto.note, name


def test_a_huge_png_is_refused_from_its_header_before_any_pixel_is_decoded(image_bundle):
  """13000 x 13000 zeros compress to a small file; their size is read from IHDR, nothing is decompressed."""
  width = height = 13000
  ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
  idat = zlib.compress(b"\0" * 1000)  # Not the whole image: the decoder must never get that far.
  raw = b"\x89PNG\r\n\x1a\n" + b"".join(
    struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    for t, d in ((b"IHDR", ihdr), (b"IDAT", idat), (b"IEND", b""))
  )
  item = codec.prepare("huge.png", raw, image_bundle)
  assert item.kind == "file" and "13000x13000 pixels, above the model's limit" in item.note


@pytest.mark.parametrize("order", ["F", "C"])
def test_npy_files_come_back_byte_exact(tmp_path, order):
  bundle = _bundle(tmp_path / "img", "images", event_shape=(4, 4, 3))
  array = np.asarray(np.arange(96).reshape(2, 4, 4, 3) % 256, np.uint8, order=order)
  out = io.BytesIO()
  np.save(out, array if order == "C" else np.asfortranarray(array))
  raw = out.getvalue()
  (auto,) = codec.encode_files(bundle, {"a.npy": raw}, 3).values()
  decoded = codec.decode_files(bundle, {"a.npy.ardm": auto.blob})
  assert decoded == {"a.npy.ardm": raw}
  kind = container.unpack("a", auto.blob)[0].kind
  assert (kind == "array") == (order == "C")
  if order == "F":
    assert "Fortran" in auto.note
    with pytest.raises(codec.CodecError, match="Fortran"):
      codec.encode_files(bundle, {"a.npy": raw}, 3, method="ardm")


def test_an_npy_header_claiming_a_huge_shape_is_one_line(tmp_path):
  bundle = _bundle(tmp_path / "img", "images", event_shape=(4, 4, 3))
  out = io.BytesIO()
  np.lib.format.write_array_header_1_0(out, {"descr": "|u1", "fortran_order": False, "shape": (10**12, 4, 4, 3)})
  raw = out.getvalue() + b"\0" * 48
  item = codec.prepare("big.npy", raw, bundle)
  assert item.kind == "file" and "not a readable .npy file" in item.note


# ---------------------------------------------------------------------------------------------- names


@pytest.mark.parametrize("name", ["a\x9bb", "a\ud800", "\x85", "x/y", "..", "a" * 256, "\x7f"])
def test_stored_names_that_are_not_plain_utf8_file_names_are_refused(name):
  with pytest.raises(codec.CodecError, match="not a plain file name"):
    codec.check_base_name(name, "f.ardm")


# ---------------------------------------------------------------------------------- all or nothing


_cli = test_codec._cli


def test_write_files_takes_back_what_it_placed_when_a_later_output_fails(tmp_path):
  target = tmp_path / "new" / "deeper" / "a"
  with pytest.raises(FileExistsError):  # The second write of one path: 'another process got there first'.
    paths.write_files([(epath.Path(target), b"1"), (epath.Path(target), b"2")])
  assert not (tmp_path / "new").exists()  # Nor the folders it made.
  assert list(tmp_path.iterdir()) == []


def test_write_files_with_force_restores_what_it_replaced_when_a_later_output_fails(tmp_path, monkeypatch):
  a, b = tmp_path / "a", tmp_path / "b"
  a.write_bytes(b"old a")
  b.write_bytes(b"old b")
  real_replace, calls = os.replace, []

  def replace_failing_second(src, dst):
    calls.append(dst)
    if len(calls) == 2:
      raise OSError("disk full")
    real_replace(src, dst)

  monkeypatch.setattr(os, "replace", replace_failing_second)
  with pytest.raises(OSError, match="disk full"):
    paths.write_files([(epath.Path(a), b"new a"), (epath.Path(b), b"new b")], force=True)
  monkeypatch.undo()
  assert a.read_bytes() == b"old a" and b.read_bytes() == b"old b"
  assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]  # No temporaries or backups left.


@pytest.mark.parametrize("force", [False, True])
def test_stale_temporaries_of_a_killed_run_are_removed_by_the_next(tmp_path, text_bundle, force):
  bundle_dir = tmp_path / "bundle"
  codec.write_bundle(bundle_dir, text_bundle.config, text_bundle.params, _meta(text_bundle))
  (tmp_path / "a.txt").write_bytes(b"abc")
  (tmp_path / "b.txt").write_bytes(b"def")
  out = tmp_path / "out"
  out.mkdir()
  stale = [out / f".a.txt.ardm.{'0' * 32}.tmp", out / f".b.txt.ardm.{'f' * 32}.tmp"]
  for s in stale:
    s.write_bytes(b"half")
  (out / ".unrelated.tmp").write_bytes(b"kept")  # Not a temporary of this run's outputs.
  _cli(
    "encode",
    f"--model={bundle_dir}",
    "--budget=3",
    *(["--force"] if force else []),
    tmp_path / "a.txt",
    tmp_path / "b.txt",
    "-o",
    out,
  )
  assert sorted(p.name for p in out.iterdir()) == [".unrelated.tmp", "a.txt.ardm", "b.txt.ardm"]


def test_a_failed_multi_file_decode_leaves_no_folder(tmp_path, text_bundle):
  bundle_dir = tmp_path / "bundle"
  codec.write_bundle(bundle_dir, text_bundle.config, text_bundle.params, _meta(text_bundle))
  files = {"a.txt": b"good", "b.txt": b"also good"}
  encoded = codec.encode_files(text_bundle, files, 3, method="ardm")
  header, payload = container.unpack("b", encoded["b.txt"].blob)
  (tmp_path / "a.ardm").write_bytes(encoded["a.txt"].blob)
  (tmp_path / "b.ardm").write_bytes(container.pack(dataclasses.replace(header, data_crc=header.data_crc ^ 1), payload))
  with pytest.raises(codec.CodecError, match="does not match its checksum"):
    _cli("decode", f"--model={bundle_dir}", tmp_path / "a.ardm", tmp_path / "b.ardm", "-o", tmp_path / "out" / "sub")
  assert not (tmp_path / "out").exists()


def test_export_refuses_an_existing_bundle_and_replaces_it_whole_with_force(tmp_path, text_bundle):
  bundle_dir = tmp_path / "bundle"
  first = codec.write_bundle(bundle_dir, text_bundle.config, text_bundle.params, _meta(text_bundle))
  with pytest.raises(codec.CodecError, match="exists and is not an empty directory: not replaced"):
    codec.write_bundle(bundle_dir, text_bundle.config, text_bundle.params, _meta(text_bundle, train_step=7))
  assert codec.load_bundle(bundle_dir).fingerprint == first.fingerprint
  second = codec.write_bundle(
    bundle_dir, text_bundle.config, text_bundle.params, _meta(text_bundle, train_step=7), force=True
  )
  assert codec.load_bundle(bundle_dir).fingerprint == second.fingerprint != first.fingerprint
  assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # No staging or backup folder left.


def test_budget_zero_is_not_the_default_budget(tmp_path, text_bundle):
  bundle_dir = tmp_path / "bundle"
  codec.write_bundle(bundle_dir, text_bundle.config, text_bundle.params, _meta(text_bundle))
  (tmp_path / "a.txt").write_bytes(b"abc")
  with pytest.raises(codec.CodecError, match="no plan for --budget=0"):
    _cli("encode", f"--model={bundle_dir}", "--budget=0", tmp_path / "a.txt", "-o", tmp_path / "a.ardm")
  assert not (tmp_path / "a.ardm").exists()


@pytest.mark.slow
def test_ctrl_c_during_a_long_encode_stops_at_once_and_leaves_nothing(tmp_path, text_bundle):
  bundle_dir = tmp_path / "bundle"
  codec.write_bundle(bundle_dir, text_bundle.config, text_bundle.params, _meta(text_bundle))
  (tmp_path / "big.txt").write_bytes(b"the quick brown fox " * 20_000)  # Minutes of tiny network calls.
  out = tmp_path / "out"
  command = [sys.executable, "-m", "ardm_jax.compress", "encode", f"--model={bundle_dir}", "--budget=8"]
  process = subprocess.Popen(
    [*command, str(tmp_path / "big.txt"), "-o", str(out)],
    stderr=subprocess.PIPE,
    stdout=subprocess.PIPE,
    env=dict(os.environ, JAX_PLATFORMS="cpu"),
    cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
  )
  time.sleep(12)  # Well into the network calls.
  assert process.poll() is None, process.communicate()
  sent = time.monotonic()
  process.send_signal(signal.SIGINT)
  _, stderr = process.communicate(timeout=60)
  assert time.monotonic() - sent < 5 and process.returncode == 130
  assert stderr.decode().strip().splitlines()[-1].startswith("interrupted (Ctrl-C)")
  assert "Traceback" not in stderr.decode()
  assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["big.txt", "bundle"]


@pytest.fixture(scope="module")
def audio_bundle(tmp_path_factory):
  return test_audio_codec.bundle.__wrapped__(tmp_path_factory)


@pytest.mark.parametrize("rate", [4_000_000_000, 2**31, 2**31 - 1, 1_000_000])
def test_wavs_at_absurd_sample_rates_round_trip_or_are_one_line(audio_bundle, rate):
  """A rate FLAC cannot take skips that candidate; one the canonical header cannot hold skips the model."""
  wav = test_audio_codec._wav(np.arange(20, dtype=np.int16) * 300)
  wav = wav[:24] + struct.pack("<II", rate, (2 * rate) % 2**32) + wav[32:]
  (auto,) = codec.encode_files(audio_bundle, {"s.wav": wav}, 3).values()
  assert codec.decode_files(audio_bundle, {"s.wav.ardm": auto.blob}) == {"s.wav.ardm": wav}
  assert auto.method == ("ardm" if rate < 2**31 else "stored")
  with pytest.raises(codec.CodecError) as error:
    codec.encode_files(audio_bundle, {"s.wav": wav}, 3, method="flac")
  assert "\n" not in str(error.value)


# ------------------------------------------------------------------------------------- one line each


def _run(*args, cwd=None):
  return subprocess.run(
    [sys.executable, *map(str, args)],
    capture_output=True,
    text=True,
    env=dict(os.environ, JAX_PLATFORMS="cpu"),
    cwd=cwd or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    timeout=300,
  )


@pytest.mark.slow
@pytest.mark.parametrize(
  "case, expected",
  [
    ("missing", "records no config"),
    ("untrained", "No checkpoint in"),
    ("truncated_config", "is not a readable config"),
    ("bad_budgets", "--budgets must be numbers of calls"),
  ],
)
def test_export_mistakes_are_one_line_errors(tmp_path, case, expected):
  workdir = tmp_path / "work"
  if case != "missing":
    workdir.mkdir()
    config = quickstart.get_config().to_json()
    (workdir / "config.json").write_text(config[: len(config) // 2] if case == "truncated_config" else config)
  budgets = "abc" if case == "bad_budgets" else "4"
  result = _run(
    "-m", "ardm_jax.compress", "export", f"--workdir={workdir}", "-o", tmp_path / "b", f"--budgets={budgets}"
  )
  assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
  assert result.stderr.strip().splitlines()[-1].startswith("error: ") and expected in result.stderr
  assert not (tmp_path / "b").exists()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["eval", "plan"])
def test_a_truncated_workdir_config_is_one_line_for_main(tmp_path, mode):
  workdir = tmp_path / "work"
  workdir.mkdir()
  config = quickstart.get_config().to_json()
  (workdir / "config.json").write_text(config[: len(config) // 3])
  result = _run("main.py", f"--workdir={workdir}", f"--mode={mode}")
  assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
  assert "is not a readable config" in result.stderr


@pytest.mark.slow
def test_generate_keeps_existing_outputs_and_bounds_its_samples(tmp_path, text_bundle):
  bundle_dir = tmp_path / "bundle"
  meta = _meta(text_bundle, step_losses=[[1.0] * 8])
  codec.write_bundle(bundle_dir, text_bundle.config, text_bundle.params, meta)
  out = tmp_path / "out.txt"
  out.write_text("mine")
  result = _run("-m", "ardm_jax.generate", f"--model={bundle_dir}", "--budget=2", "-o", out)
  assert result.returncode == 1 and "exists: not replaced" in result.stderr and out.read_text() == "mine"
  result = _run("-m", "ardm_jax.generate", f"--model={bundle_dir}", "--budget=2", "--num_samples=1000000", "-o", out)
  assert result.returncode == 1 and "--num_samples=1000000 must be in 1..4096" in result.stderr
  assert "Traceback" not in result.stderr
  result = _run("-m", "ardm_jax.generate", f"--model={bundle_dir}", "--budget=2", "--force", "-o", out)
  assert result.returncode == 0 and out.read_text() != "mine", result.stderr[-2000:]


def _wav_corpus():
  """WAVs of the formats people have: canonical mono 16-bit, stereo, 8/24/32-bit, float, extensible, chunks."""
  wav = test_audio_codec._wav
  pcm = (np.sin(np.arange(50) / 3) * 20000).astype(np.int16)
  canonical = wav(pcm)
  fmt_end = 12 + 8 + 16
  extensible_fmt = struct.pack("<HHIIHHHHIH14s", 0xFFFE, 1, 16000, 32000, 2, 16, 22, 16, 4, 1, b"\0" * 14)
  extensible = b"RIFF" + struct.pack("<I", 4 + 8 + len(extensible_fmt) + 8 + 100) + b"WAVE"
  extensible += b"fmt " + struct.pack("<I", len(extensible_fmt)) + extensible_fmt + canonical[fmt_end:]
  float_fmt = struct.pack("<HHIIHH", 3, 1, 16000, 64000, 4, 32)
  floats = np.linspace(-1, 1, 25, dtype="<f4").tobytes()
  float_wav = b"RIFF" + struct.pack("<I", 4 + 24 + 8 + len(floats)) + b"WAVE" + b"fmt " + struct.pack("<I", 16)
  float_wav += float_fmt + b"data" + struct.pack("<I", len(floats)) + floats
  chunk = b"LIST" + struct.pack("<I", 10) + b"INFOtitle\0"
  return {
    "mono16.wav": canonical,
    "stereo16.wav": wav(np.stack([pcm, -pcm], 1), channels=2),
    "mono8.wav": wav((pcm // 256 + 128).astype(np.uint8), width=1),
    "mono24.wav": wav(np.frombuffer(np.arange(150, dtype=np.uint8).tobytes(), np.uint8), width=3),
    "mono32.wav": wav(pcm.astype(np.int32) << 16, width=4),
    "float32.wav": float_wav,
    "extensible.wav": extensible,
    "list_chunk.wav": canonical[:4] + struct.pack("<I", len(canonical) - 8 + len(chunk)) + canonical[8:] + chunk,
    "odd_rate.wav": wav(pcm, rate=11025),
    "empty.wav": wav(np.zeros(0, np.int16)),
  }


def test_every_wav_comes_back_byte_exact(audio_bundle):
  files = _wav_corpus()
  encoded = codec.encode_files(audio_bundle, files, 3)
  decoded = codec.decode_files(audio_bundle, {n + ".ardm": e.blob for n, e in encoded.items()})
  assert {n[: -len(".ardm")]: d for n, d in decoded.items()} == files
  kinds = {n: container.unpack(n, e.blob)[0].kind for n, e in encoded.items()}
  assert kinds["mono16.wav"] == kinds["odd_rate.wav"] == "audio"
  assert all(kinds[n] == "file" for n in ("stereo16.wav", "mono8.wav", "extensible.wav", "list_chunk.wav"))


def _npy_corpus():
  """.npy files of every integer dtype in both byte orders, C and Fortran order, other dtypes and shapes."""
  rng = np.random.default_rng(3)
  base = rng.integers(0, 200, (2, 4, 4, 3))
  files = {}
  for code in ("u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8"):
    for order in ("<", ">"):
      array = base.astype(np.dtype(order + code) if code[1] != "1" else np.dtype(code))
      files[f"{order}{code}.npy"] = array
  files["fortran.npy"] = np.asfortranarray(base.astype(np.uint8))
  files["float.npy"] = base.astype(np.float32)
  files["bool.npy"] = base > 100
  files["scalar.npy"] = np.uint8(7)
  files["one_point.npy"] = base[0].astype(np.uint8)
  files["other_shape.npy"] = base.reshape(8, 12).astype(np.uint8)
  out = {}
  for name, array in files.items():
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    out[name] = buffer.getvalue()
  buffer = io.BytesIO()
  np.lib.format.write_array(buffer, base.astype(np.uint8), version=(2, 0))
  out["version2.npy"] = buffer.getvalue()
  return out


def test_every_npy_comes_back_byte_exact(image_bundle):
  files = _npy_corpus()
  encoded = codec.encode_files(image_bundle, files, 3)
  decoded = codec.decode_files(image_bundle, {n + ".ardm": e.blob for n, e in encoded.items()})
  assert {n[: -len(".ardm")]: d for n, d in decoded.items()} == files
  kinds = {n: container.unpack(n, e.blob)[0].kind for n, e in encoded.items()}
  assert kinds["<u1.npy"] == kinds["one_point.npy"] == "array"
  assert all(kinds[n] == "file" for n in ("fortran.npy", "float.npy", ">u2.npy", "version2.npy"))
