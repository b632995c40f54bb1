"""Format version 2: a header of bytes, not kilobytes; never bigger than the classic codecs; crafted files refused.

Crafted files are made with container.pack, which (as a hostile user can) writes any header with a valid CRC32.
"""

import dataclasses
import io
import math
import os
import zlib

import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from ardm_jax.codec import classic
from ardm_jax import codec
from ardm_jax.codec import kinds
from ardm_jax.codec import coder
from ardm_jax.codec import container
from ardm_jax.core import likelihood
from tests.codec.test_codec import _bundle, _cli, _npy, _png

TEXT = b"one text"  # exactly one row of the TEXT_LEN = 8 bundle


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory):
  path = tmp_path_factory.mktemp("text_v2")
  _bundle(path)
  return path


@pytest.fixture(scope="module")
def text_bundle(text_dir):
  return codec.load_bundle(text_dir)


def _encode(bundle, files, method="auto", budget=3, **kwargs):
  return codec.encode_files(bundle, files, budget, method=method, **kwargs)


def _code_length_bound(bundle, x, budget, header_bytes):
  """Bits a one-row file may take: -log2 q(x) + the ANS flush (64) + smoothing and quantisation + the header."""
  sigma = jnp.asarray(bundle.order)[:, None]
  log_q = likelihood.log_likelihood(
    bundle.logits_fn, jnp.asarray(x), sigma, jnp.asarray(bundle.plan(budget)), bundle.process
  )[0]
  minus_log2_q = -float(log_q[0]) / math.log(2)
  num_classes, num_variables = bundle.num_classes, x[0].size
  per_symbol = -math.log2((1 - coder.EPS * num_classes) * (1 - num_classes / 2**coder.PRECISION))
  return minus_log2_q, minus_log2_q + 64 + num_variables * per_symbol + 1e-3 + 8 * header_bytes


def test_a_single_32x32_image_pays_only_for_itself(tmp_path):
  bundle = _bundle(tmp_path / "img32", "images", event_shape=(32, 32, 3), batch_size=1)
  pixels = np.random.RandomState(0).randint(0, 256, (32, 32, 3), np.uint8)
  encoded = _encode(bundle, {"one.png": _png(pixels, "RGB")}, method="ardm")["one.png"]
  header, payload = container.unpack("one", encoded.blob)
  header_bytes = len(encoded.blob) - len(payload)
  assert header_bytes <= 32 and header.shape == (32, 32) and header.kind == "image_rgb"
  minus_log2_q, bound = _code_length_bound(bundle, pixels[None].astype(np.int32), 3, header_bytes)
  assert minus_log2_q < 8 * len(encoded.blob) <= bound
  decoded = codec.decode_files(bundle, {"one.ardm": encoded.blob})["one.ardm"]
  np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(decoded))), pixels)


def test_a_short_text_pays_only_for_itself(text_bundle):
  encoded = _encode(text_bundle, {"t.txt": TEXT}, method="ardm")["t.txt"]
  payload = container.unpack("t", encoded.blob)[1]
  header_bytes = len(encoded.blob) - len(payload)
  assert header_bytes <= 32
  x = codec.prepare("t", TEXT, text_bundle).rows[0]
  minus_log2_q, bound = _code_length_bound(text_bundle, x, 3, header_bytes)
  assert minus_log2_q < 8 * len(encoded.blob) <= bound


def test_auto_keeps_the_smallest_and_every_method_restores_the_file(text_bundle, tmp_path):
  files = {
    "words.txt": b"the cat sat on the mat " * 40,  # repetitive: the classic codecs beat an untrained model
    "short.txt": b"qzx",
    "empty.txt": b"",
  }
  encoded = _encode(text_bundle, files)
  for name, result in encoded.items():
    classic_best = min(n for m, n in result.sizes.items() if m != "ardm")
    assert len(result.blob) == min(result.sizes.values()) <= classic_best
    assert set(result.sizes) == set(kinds.KINDS["text"].candidates)
    header = container.unpack(name, result.blob)[0]
    assert header.method == result.method
    # Never bigger than the best classic codec's bare output plus the header.
    bare = min(len(classic.encode_bytes(m, files[name])) for m in container.BYTE_METHODS)
    assert len(result.blob) <= bare + 32
  assert encoded["words.txt"].method != "ardm"
  for method in kinds.KINDS["text"].candidates:
    blobs = {n + ".ardm": e.blob for n, e in _encode(text_bundle, files, method=method).items()}
    assert {n + ".ardm": files[n] for n in files} == codec.decode_files(text_bundle, blobs)


def test_images_and_arrays_round_trip_under_every_method(tmp_path):
  bundle = _bundle(tmp_path / "img", "images", event_shape=(4, 4, 3))
  rs = np.random.RandomState(1)
  rgb, gray = rs.randint(0, 256, (5, 7, 3), np.uint8), rs.randint(0, 256, (3, 9), np.uint8)
  files = {"rgb.png": _png(rgb, "RGB"), "gray.png": _png(gray, "L")}
  for method in kinds.KINDS["image_rgb"].candidates:
    encoded = _encode(bundle, files, method=method)
    decoded = codec.decode_files(bundle, {n + ".ardm": e.blob for n, e in encoded.items()})
    for name, pixels in (("rgb.png", rgb), ("gray.png", gray)):
      restored = decoded[name + ".ardm"]
      if method == "stored":
        assert restored == files[name]  # the PNG's own bytes
      np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(restored))), pixels)
  array = rs.randint(0, 256, (2, 4, 4, 3)).astype(np.int16)
  for method in kinds.KINDS["array"].candidates:
    (result,) = _encode(bundle, {"a.npy": _npy(array)}, method=method).values()
    restored = np.load(io.BytesIO(codec.decode_files(bundle, {"a.ardm": result.blob})["a.ardm"]))
    assert restored.dtype == array.dtype and np.array_equal(restored, array)


def test_files_the_model_cannot_code_go_to_the_classic_codecs(text_bundle, tmp_path):
  rgba = _png(np.random.RandomState(2).randint(0, 256, (6, 6, 4), np.uint8), "RGBA")
  files = {"Upper.txt": b"Hello, World!\n" * 5, "alpha.png": rgba}
  encoded = _encode(text_bundle, files)
  for name, result in encoded.items():
    assert "ardm" not in result.sizes and container.unpack(name, result.blob)[0].kind == "file"
    assert "byte methods, which keep its bytes" in result.note
  blobs = {n + ".ardm": e.blob for n, e in encoded.items()}
  assert codec.decode_files(text_bundle, blobs) == {n + ".ardm": c for n, c in files.items()}
  with pytest.raises(codec.CodecError, match="outside the model's alphabet"):
    _encode(text_bundle, files, method="ardm")


def test_version_1_files_are_refused_naming_their_version(text_bundle):
  version_1 = b"ARDMzip\x00" + (1).to_bytes(2, "little") + bytes(40)
  with pytest.raises(codec.CodecError, match="old.ardm: format version 1 .* reads version 2"):
    codec.decode_files(text_bundle, {"old.ardm": version_1})


def _crafted(text_bundle, **fields):
  """A file with a valid CRC32 whose header fields are replaced."""
  blob = _encode(text_bundle, {"t.txt": TEXT}, method="ardm")["t.txt"].blob
  header, payload = container.unpack("t", blob)
  return container.pack(dataclasses.replace(header, **fields), payload)


def _raw_header(text_bundle, tail: bytes, method_byte: int = 0) -> bytes:
  """A file of an 'ardm' file's fixed header part, with method byte `method_byte`, then `tail` and a valid CRC32."""
  blob = _encode(text_bundle, {"t.txt": TEXT}, method="ardm")["t.txt"].blob
  body = blob[:5] + bytes([method_byte]) + blob[6 : container._FIXED.size] + tail
  return body + container._CRC.pack(zlib.crc32(body))


def test_crafted_sizes_are_refused_before_anything_is_allocated(text_bundle, text_dir):
  untouchable = codec.load_bundle(text_dir)
  untouchable.__dict__["logits_fn"] = None  # a network call would fail with a TypeError, not a CodecError
  text, array = container.KINDS.index("text"), container.KINDS.index("array")
  with_metadata = container.METHODS.index("ardm") | 0x80
  huge = container._varint(10**12)
  cases = {
    "a length of 10^12": (_raw_header(text_bundle, bytes([text]) + huge + b"\x00"), "above the limit"),
    "rows of 10^12": (
      _raw_header(text_bundle, bytes([array, 0, 2]) + huge + container._varint(8) + b"\x00"),
      "above the limit",
    ),
    "a negative length (an endless varint)": (_raw_header(text_bundle, bytes([text]) + b"\xff" * 12), "not a valid"),
    "a dimension that overflows 64 bits": (
      _raw_header(text_bundle, bytes([text]) + b"\xff" * 9 + b"\x7f"),
      "above the limit",
    ),
    "an array of rank 200": (_raw_header(text_bundle, bytes([array, 0, 200])), "invalid array dtype"),
    "a metadata length of 10^12": (_raw_header(text_bundle, bytes([text, 8, 0]) + huge, with_metadata), "above the"),
    "metadata that is not JSON": (_raw_header(text_bundle, bytes([text, 8, 0, 3]) + b"{x]", with_metadata), "JSON"),
    "a metadata list, not an object": (_raw_header(text_bundle, bytes([text, 8, 0, 2]) + b"[]", with_metadata), "JSON"),
    "an unknown method": (_raw_header(text_bundle, bytes([text, 8, 0]), 0x7F), "unknown coding method"),
    "an unknown kind": (_raw_header(text_bundle, bytes([99, 8, 0])), "unknown data kind"),
    "the model on a 'file' kind": (
      _raw_header(text_bundle, bytes([container.KINDS.index("file"), 8, 0])),
      "does not fit the bundle",
    ),
    "a header cut short": (_raw_header(text_bundle, bytes([text])), "truncated header"),
  }
  for what, (blob, message) in cases.items():
    with pytest.raises(codec.CodecError, match=f"x.ardm: .*({message})"):
      codec.decode_files(untouchable, {"x.ardm": blob})
    print(what, "refused")
  # A byte method whose payload restores more than its header says: refused, and no bigger buffer allocated.
  bomb = classic.encode_bytes("zstd", bytes(10**7))
  header = container.Header("zstd", bytes(8), bytes(4), 0, "file", (100,))
  with pytest.raises(codec.CodecError, match="x.ardm: corrupted"):
    codec.decode_files(untouchable, {"x.ardm": container.pack(header, bomb)})


NAMES = {
  "absolute": "/tmp/ardm_crafted_absolute.txt",
  "parent": "../../ardm_crafted_parent.txt",
  "separator": "sub/dir.txt",
  "backslash": "..\\x.txt",
  "NUL": "a\x00b",
  "empty": "",
  "dot-dot": "..",
  "control": "a\nb",
}


@pytest.mark.parametrize("kind", sorted(NAMES))
def test_a_crafted_stored_name_never_chooses_where_decode_writes(kind, tmp_path, text_bundle, text_dir):
  crafted = tmp_path / "in" / "crafted.ardm"
  crafted.parent.mkdir()
  crafted.write_bytes(_crafted(text_bundle, metadata={"name": NAMES[kind]}))
  honest = tmp_path / "in" / "honest.ardm"
  honest.write_bytes(_encode(text_bundle, {"h.txt": b"honest"}, method="ardm")["h.txt"].blob)
  out = tmp_path / "out"
  # By default the output is named by the input: the stored name is never read.
  _cli("decode", f"--model={text_dir}", crafted, honest, "-o", out)
  assert sorted(os.listdir(out)) == ["crafted", "honest"] and (out / "crafted").read_bytes() == TEXT
  # Asked to use stored names, the crafted one is refused in one line, and nothing is written anywhere.
  with pytest.raises(codec.CodecError, match=r"crafted.ardm: the stored name .* is not a plain file name"):
    _cli("decode", f"--model={text_dir}", "--stored_names", crafted, honest, "-o", tmp_path / "out2")
  assert not (tmp_path / "out2").exists() or not os.listdir(tmp_path / "out2")
  for base in (out, tmp_path / "out2", os.getcwd()):  # where a followed name would have landed
    for landed in ("/tmp/ardm_crafted_absolute.txt", "../../ardm_crafted_parent.txt", "sub", "..\\x.txt"):
      assert not os.path.lexists(os.path.join(base, landed))


def test_decode_keeps_existing_files_and_never_writes_through_a_symlink(tmp_path, text_bundle, text_dir):
  (tmp_path / "f.ardm").write_bytes(_encode(text_bundle, {"f.txt": TEXT}, method="ardm")["f.txt"].blob)
  (tmp_path / "g.ardm").write_bytes(_encode(text_bundle, {"g.txt": b"gg"}, method="ardm")["g.txt"].blob)
  out = tmp_path / "out"
  out.mkdir()
  target = tmp_path / "precious.txt"
  target.write_bytes(b"precious")
  os.symlink(target, out / "f")
  (out / "g").write_bytes(b"mine")
  for output in (out / "f", out / "g"):
    with pytest.raises(codec.CodecError, match=f"{output} exists .*pass --force"):
      _cli("decode", f"--model={text_dir}", tmp_path / f"{output.name}.ardm", "-o", output)
  with pytest.raises(codec.CodecError, match="exists"):  # several inputs: refused before the first write
    _cli("decode", f"--model={text_dir}", tmp_path / "f.ardm", tmp_path / "g.ardm", "-o", out)
  assert target.read_bytes() == b"precious" and (out / "g").read_bytes() == b"mine"
  _cli("decode", f"--model={text_dir}", "--force", tmp_path / "f.ardm", tmp_path / "g.ardm", "-o", out)
  assert not os.path.islink(out / "f") and (out / "f").read_bytes() == TEXT and (out / "g").read_bytes() == b"gg"
  assert target.read_bytes() == b"precious"  # the link was replaced, its target never written
  assert sorted(os.listdir(out)) == ["f", "g"]  # no temporary file left behind


def test_info_prints_every_candidate_of_a_file_and_the_header_of_a_compressed_one(tmp_path, text_dir, capsys):
  (tmp_path / "w.txt").write_bytes(b"the cat sat on the mat " * 20)
  _cli("encode", f"--model={text_dir}", "--budget=3", tmp_path / "w.txt", "-o", tmp_path / "w.txt.ardm")
  encode_lines = capsys.readouterr().out
  _cli("info", f"--model={text_dir}", "--budget=3", tmp_path / "w.txt", tmp_path / "w.txt.ardm")
  lines = {line.split(" ")[0]: line for line in capsys.readouterr().out.splitlines()}
  candidates = lines[str(tmp_path / "w.txt")]
  for method in kinds.KINDS["text"].candidates:
    assert f"{method} " in candidates and " bpd" in candidates
  kept = candidates.split("auto keeps ")[1]
  header = lines[str(tmp_path / "w.txt.ardm") + ":"]
  size = (tmp_path / "w.txt.ardm").stat().st_size
  assert header.startswith(f"{tmp_path / 'w.txt.ardm'}: {kept}") and f"{size} bytes = " in header
  assert f"-> {size} bytes, {kept}" in encode_lines


def test_a_bundle_config_is_data_checked_by_the_schema(tmp_path, text_bundle):
  """A crafted bundle (its fingerprint recomputed) cannot name code to run: the schema refuses it in one line."""
  for key, value, message in (
    ("name", "os.system", r"config.model.name = 'os.system' is not one of"),
    ("module_path", "os", r"config.model.module_path is not a key of"),
  ):
    config = text_bundle.config.copy_and_resolve_references()
    config.model[key] = value
    codec.write_bundle(tmp_path / key, config, text_bundle.params, text_bundle.meta)
    with pytest.raises(codec.CodecError, match=f"config.json is not a valid config: {message}"):
      codec.load_bundle(tmp_path / key)


def test_a_file_above_the_decoders_value_limit_is_never_coded_by_the_model(tmp_path):
  """A grayscale PNG is coded as 3 channels: 2400 x 2400 pixels are 17.3M values, above the 2^24 that decode
  accepts, so the encoder leaves it to the classic codecs instead of writing a file nobody can decode."""
  bundle = _bundle(tmp_path / "img", "images", event_shape=(4, 4, 3))
  item = codec.prepare("big.png", _png(np.zeros((2400, 2400), np.uint8), "L"), bundle)
  assert 2400 * 2400 <= container.MAX_VALUES < container.num_values("image_l", (2400, 2400))
  assert item.kind == "file" and item.rows is None and "above the model's limit" in item.note
