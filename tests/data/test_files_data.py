"""The `files` source (ardm_jax/data/files.py) on real files written here: listing, split by file, batches, errors."""

import hashlib
import os
import shutil
import subprocess
import sys

import ml_collections
import numpy as np
import pytest
from etils import epath
from PIL import Image

from ardm_jax import data
from ardm_jax.training import experiment
from ardm_jax.io import paths
from ardm_jax import codec
from ardm_jax.training import train
from ardm_jax.data import files
from ardm_jax.data import media
from ardm_jax.data import text
from configs import common
from configs import files as files_config
from tests import fake_data
from tests import gcs_emulator

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NUM_FILES = 12


def _u(name):
  """The documented split hash: the first 8 bytes of SHA-256(name) over 2**64."""
  return int(hashlib.sha256(name.encode()).hexdigest()[:16], 16) / 2**64


def _section(kind, path, **fields):
  section = common.files_data(kind)
  section.path = str(path)
  section.update(fields)
  return section


def _write_png(path, pixels):
  Image.fromarray(pixels).save(path, format="PNG")


@pytest.fixture(name="text_dir", scope="module")
def fixture_text_dir(tmp_path_factory):
  """12 UTF-8 files of words with capitals, digits and punctuation (cleaned by the text8 recipe)."""
  root = tmp_path_factory.mktemp("text")
  for i in range(NUM_FILES):
    words = fake_data.random_text(900, seed=i).split()
    (root / f"doc{i:02d}.txt").write_text(f"Chapter {i}: " + ", ".join(words[:3]).title() + " " + " ".join(words))
  return root


@pytest.fixture(name="bytes_dir", scope="module")
def fixture_bytes_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("bytes")
  rng = np.random.default_rng(0)
  for i in range(NUM_FILES):
    (root / f"blob{i:02d}.bin").write_bytes(rng.integers(0, 256, 400 + 50 * i, dtype=np.uint8).tobytes())
  return root


@pytest.fixture(name="image_dir", scope="module")
def fixture_image_dir(tmp_path_factory):
  """PNGs of several sizes, RGB and grayscale; (folder, {name: pixels uint8 [H, W, 3]})."""
  root = tmp_path_factory.mktemp("images")
  rng = np.random.default_rng(1)
  expected = {}
  for i, (height, width) in enumerate([(8, 8), (9, 17), (16, 12), (20, 20), (11, 8), (8, 30), (24, 9), (13, 13)]):
    if i % 3 == 1:  # Grayscale: the model sees three equal channels, as the codec codes it.
      gray = rng.integers(0, 256, (height, width), dtype=np.uint8)
      _write_png(root / f"img{i}.png", gray)
      expected[f"img{i}.png"] = np.repeat(gray[:, :, None], 3, axis=2)
    else:
      rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
      _write_png(root / f"img{i}.png", rgb)
      expected[f"img{i}.png"] = rgb
  return root, expected


# ------------------------------------------------------------------------------------------------ listing, split


def test_split_is_the_documented_hash_of_each_name_and_adding_files_moves_none():
  names = [f"notes/{i}.md" for i in range(200)]
  train_names, eval_names = files.split_files(names, 0.1, "DIR")
  assert eval_names == [n for n in names if _u(n) < 0.1] and train_names == [n for n in names if _u(n) >= 0.1]
  assert 5 < len(eval_names) < 40  # About 10% of 200.
  more_train, more_eval = files.split_files(sorted(names + [f"new/{i}.md" for i in range(50)]), 0.1, "DIR")
  assert set(eval_names) == set(more_eval) & set(names) and set(train_names) == set(more_train) & set(names)


def test_split_gives_both_sides_a_file_and_refuses_a_single_file():
  low, high = sorted(["a", "b"], key=_u)
  assert files.split_files(["a", "b"], 1e-9, "DIR") == ([high], [low])  # None below: the lowest u is eval.
  assert files.split_files(["a", "b"], 1 - 1e-9, "DIR") == ([high], [low])  # All below: the highest trains.
  with pytest.raises(ValueError, match=r"data.path='DIR' holds 1 file \(a\); data.name='files' needs at least 2"):
    files.split_files(["a"], 0.1, "DIR")


def test_a_folder_is_read_recursively_and_hidden_names_skipped(tmp_path):
  for name in ("b.txt", "a.md", "sub/c.txt", "sub/deeper/d.txt", ".hidden.txt", ".git/config", "sub/.cache"):
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_text(name)
  listed = files.list_files(str(tmp_path))
  assert [name for name, _ in listed] == ["a.md", "b.txt", "sub/c.txt", "sub/deeper/d.txt"]
  assert all(file.read_text() == name for name, file in listed)
  # A glob keeps names relative to its last folder before the wildcard, so the split is the folder's.
  assert [name for name, _ in files.list_files(f"{tmp_path}/*.txt")] == ["b.txt"]
  assert [name for name, _ in files.list_files(f"{tmp_path}/s*/*.txt")] == ["sub/c.txt"]


def test_home_relative_path(text_dir, monkeypatch):
  monkeypatch.setenv("HOME", str(text_dir.parent))
  listed = files.list_files(f"~/{text_dir.name}")
  assert [name for name, _ in listed] == [f"doc{i:02d}.txt" for i in range(NUM_FILES)]


@pytest.mark.slow
def test_a_gs_copy_of_the_folder_gives_the_same_dataset(bytes_dir, tmp_path):
  """Names are relative to the folder, so its copy on an object store (here a GCS emulator) splits the same."""
  mine = tmp_path / "mine"
  shutil.copytree(bytes_dir, mine)
  (mine / "sub").mkdir()
  (mine / "sub" / "nested.bin").write_bytes(b"nested " * 100)
  local = data.make_dataset(_section("bytes", mine, seq_len=40))
  with gcs_emulator.running(str(tmp_path / "emulator.log")) as url:
    with gcs_emulator.patched_environ(gcs_emulator.environment(url)):
      for name, file in files.list_files(str(mine)):
        epath.Path(f"gs://bucket/mine/{name}").write_bytes(file.read_bytes())
      listed = files.list_files("gs://bucket/mine")
      remote = data.make_dataset(_section("bytes", "gs://bucket/mine", seq_len=40))
  assert [name for name, _ in listed] == [f"blob{i:02d}.bin" for i in range(NUM_FILES)] + ["sub/nested.bin"]
  assert all(os.fspath(file).startswith("gs://bucket/mine/") for _, file in listed)
  np.testing.assert_array_equal(remote.train_examples, local.train_examples)
  np.testing.assert_array_equal(remote.eval_examples, local.eval_examples)


# ------------------------------------------------------------------------------------------------ text and bytes


def _expected_stream(root, names, kind):
  if kind == "bytes":
    return np.frombuffer(b"".join((root / n).read_bytes() for n in names), np.uint8)
  return text.encode(" ".join(text.clean_text((root / n).read_text()) for n in names))


@pytest.mark.parametrize("kind", ["text", "bytes"])
def test_text_and_bytes_splits_are_whole_files_in_name_order(kind, text_dir, bytes_dir):
  root = text_dir if kind == "text" else bytes_dir
  ds = data.make_dataset(_section(kind, root, seq_len=40, test_fraction=0.25))
  names = sorted(os.listdir(root))
  train_names, eval_names = files.split_files(names, 0.25, str(root))
  assert train_names and eval_names
  train_stream, eval_stream = (_expected_stream(root, n, kind) for n in (train_names, eval_names))
  assert (ds.name, ds.event_shape, ds.num_classes) == ("files", (40,), 27 if kind == "text" else 256)
  np.testing.assert_array_equal(ds.train_examples.reshape(-1), train_stream[: ds.num_train_examples * 1000])
  assert ds.num_train_examples == len(train_stream) // 1000 and ds.num_eval_examples == len(eval_stream) // 40
  np.testing.assert_array_equal(ds.eval_examples.reshape(-1), eval_stream[: ds.num_eval_examples * 40])


def test_text_batches_are_documented_crops_of_shuffled_chunks(text_dir):
  seed, step, batch_size, seq_len = 5, 7, 8, 40
  ds = data.make_dataset(_section("text", text_dir, seq_len=seq_len, seed=seed))
  positions = step * batch_size + np.arange(batch_size)
  epochs, offsets = np.divmod(positions, ds.num_train_examples)
  chunks = [
    ds.train_examples[np.random.default_rng((seed, 0, e)).permutation(ds.num_train_examples)[o]]
    for e, o in zip(epochs, offsets)
  ]
  bits = np.random.default_rng((seed, 1, step)).integers(0, 2**63, size=batch_size, dtype=np.uint64)
  starts = (bits % np.uint64(1000 - seq_len + 1)).astype(int)
  expected = np.stack([chunk[s : s + seq_len] for chunk, s in zip(chunks, starts)])
  batch = ds.train_batch(step, batch_size)
  assert batch.dtype == np.int32 and batch.shape == (batch_size, seq_len) and batch.max() <= 26
  np.testing.assert_array_equal(batch, expected)
  halves = [ds.train_batch(step, batch_size, p, 2) for p in range(2)]  # Each host builds its own rows.
  np.testing.assert_array_equal(np.concatenate(halves), batch)


# ------------------------------------------------------------------------------------------------ images


def _patches(image, size):
  """The non-overlapping size x size patches of image [H, W, 3], row by row (partial edges dropped)."""
  rows, cols = image.shape[0] // size, image.shape[1] // size
  return [image[r * size : (r + 1) * size, c * size : (c + 1) * size] for r in range(rows) for c in range(cols)]


def test_image_eval_patches_and_training_crops_follow_the_documented_functions(image_dir):
  root, pixels = image_dir
  size, seed, step, batch_size = 8, 3, 4, 16
  ds = data.make_dataset(_section("images", root, image_size=size, seed=seed, test_fraction=0.3))
  train_names, eval_names = files.split_files(sorted(pixels), 0.3, str(root))
  assert (ds.event_shape, ds.num_classes) == ((size, size, 3), 256)
  np.testing.assert_array_equal(ds.eval_examples, np.stack([p for n in eval_names for p in _patches(pixels[n], size)]))
  # One training example per grid patch of each training image: a file weighs by its area.
  counts = [len(_patches(pixels[n], size)) for n in train_names]
  np.testing.assert_array_equal(np.bincount(ds.train_examples, minlength=len(train_names)), counts)

  batch = ds.train_batch(step, batch_size)
  assert batch.shape == (batch_size, size, size, 3) and batch.dtype == np.int32
  bits = np.random.default_rng((seed, 1, step)).integers(0, 2**63, size=batch_size, dtype=np.uint64) >> np.uint64(3)
  for row, image_id, b in zip(batch, ds.train_indices(step, batch_size), bits):
    image = pixels[train_names[ds.train_examples[image_id]]]
    num_tops, num_lefts = image.shape[0] - size + 1, image.shape[1] - size + 1
    top, left = int(b % np.uint64(num_tops)), int(b // np.uint64(num_tops) % np.uint64(num_lefts))
    np.testing.assert_array_equal(row, image[top : top + size, left : left + size])
  crops_seen = {row.tobytes() for s in range(20) for row in ds.train_batch(s, batch_size).astype(np.uint8)}
  assert len(crops_seen) > sum(counts)  # Random crops, not only the grid patches.

  augmented = data.make_dataset(_section("images", root, image_size=size, seed=seed, augment=True, test_fraction=0.3))
  for plain, turned in zip(batch, augmented.train_batch(step, batch_size)):
    assert any(np.array_equal(turned, np.rot90(f, k)) for f in (plain, plain[:, ::-1]) for k in range(4))


# ------------------------------------------------------------------------------------------------ errors


def _make(tmp_path, kind, entries, **fields):
  for name, content in entries.items():
    (tmp_path / name).write_bytes(content) if isinstance(content, bytes) else _write_png(tmp_path / name, content)
  return data.make_dataset(_section(kind, tmp_path, **fields))


def _png(shape, mode_channels=3):
  return np.zeros(shape + ((mode_channels,) if mode_channels > 1 else ()), np.uint8)


def test_missing_path_and_empty_folder_or_glob(tmp_path):
  with pytest.raises(paths.InputNotFoundError, match=f"data.path='{tmp_path}/nope' does not exist"):
    files.list_files(f"{tmp_path}/nope")
  (tmp_path / ".DS_Store").write_bytes(b"x")
  with pytest.raises(paths.InputNotFoundError, match=f"data.path='{tmp_path}' holds no files .*hidden names"):
    files.list_files(str(tmp_path))
  with pytest.raises(paths.InputNotFoundError, match=r"data.path='.*/\*.txt' holds no files"):
    files.list_files(f"{tmp_path}/*.txt")
  with pytest.raises(ValueError, match=r"'\*\*' globs are not supported; give the folder itself"):
    files.list_files(f"{tmp_path}/**/*.txt")
  with pytest.raises(ValueError, match=r"is a single file; .* point data.path at their folder"):
    files.list_files(f"{tmp_path}/.DS_Store")


def test_unreadable_file_is_named(tmp_path):
  (tmp_path / "good.bin").write_bytes(b"x" * 2000)
  os.symlink(tmp_path / "gone", tmp_path / "dangling.bin")  # Listed, but reading it fails (also as root).
  with pytest.raises(ValueError, match=f"{tmp_path}/dangling.bin: cannot be read .*move it out of data.path"):
    data.make_dataset(_section("bytes", tmp_path))


@pytest.mark.parametrize(
  "content, message",
  [
    pytest.param(b"\x89\xffbinary", r"bad.txt: not a UTF-8 text file \(byte 0x89 at offset 0", id="invalid_utf8"),
    pytest.param(b"text\x00\x01", r"bad.txt: not a UTF-8 text file \(byte 0x00 at offset 4: a NUL byte", id="nul"),
  ],
)
def test_binary_file_among_text(content, message, tmp_path):
  with pytest.raises(ValueError, match=message + r".*use --config.data.kind=bytes to model any file"):
    _make(tmp_path, "text", {"good.txt": b"hello " * 300, "bad.txt": content})


@pytest.mark.parametrize(
  "entries, message",
  [
    pytest.param(
      {"notes.txt": b"not an image"},
      r"notes.txt: not a PNG file \(it starts with b'not an i'\); data.kind='images' reads PNG files only",
      id="not_png",
    ),
    pytest.param(
      {"cut.png": media.PNG_SIGNATURE + b"\x00\x00"}, r"cut.png: not a readable PNG, truncated or corrupt", id="cut"
    ),
    pytest.param({"rgba.png": _png((8, 8), 4)}, r"rgba.png: PNG mode 'RGBA' is not supported", id="rgba"),
    pytest.param(
      {"tiny.png": _png((8, 5))},
      r"tiny.png: image of 5x8 pixels is smaller than one 8x8 patch; lower --config.data.image_size",
      id="smaller_than_patch",
    ),
  ],
)
def test_wrong_images_are_named(entries, message, tmp_path):
  with pytest.raises(ValueError, match=message):
    _make(tmp_path, "images", {"a.png": _png((8, 8)), "b.png": _png((8, 8)), **entries}, image_size=8)


def test_too_little_text_says_how_much(tmp_path):
  with pytest.raises(ValueError, match=r"the train files \[.*\] hold 50 bytes, fewer than the 1000 needed"):
    _make(tmp_path, "bytes", {"a.bin": b"a" * 50, "b.bin": b"b" * 50}, test_fraction=0.5)


# ------------------------------------------------------------------------------------------------ config, run


@pytest.mark.parametrize("variant", ["text", "bytes", "images"])
def test_shipped_variants_are_valid(variant):
  config = files_config.get_config(variant)
  assert config.data.kind == variant
  config.data.path = "~/my_files"
  experiment.validate_config(config)


@pytest.mark.parametrize(
  "fields, message",
  [
    pytest.param({"path": None}, "config.data.path is not set; it is required and must name a folder", id="no_path"),
    pytest.param({"path": " "}, "config.data.path = ' ', but it must name a folder or glob", id="blank_path"),
    pytest.param({"test_fraction": 1.0}, "config.data.test_fraction = 1.0, but it must be in (0, 1)", id="fraction_1"),
    pytest.param({"kind": "audio"}, "config.data.kind = 'audio' is not one of ['text', 'bytes', 'images']", id="kind"),
    pytest.param(
      {"image_size": 8},
      "config.data.image_size is not used with data.name='files' and data.kind='bytes' (only with "
      "data.name='embedded_images', data.name='embedded_photos', data.kind='images'); remove it from the config.",
      id="image_size_for_bytes",
    ),
  ],
)
def test_bad_files_config_values(fields, message):
  config = files_config.get_config("bytes")
  config.data = ml_collections.ConfigDict({**config.data.to_dict(), "path": "DIR", **fields})
  with pytest.raises(experiment.ConfigError) as info:
    experiment.validate_config(config)
  assert message in str(info.value)


@pytest.mark.slow
def test_main_reports_a_wrong_file_in_one_line(tmp_path):
  (tmp_path / "data").mkdir()
  (tmp_path / "data" / "a.txt").write_text("hello " * 400)
  (tmp_path / "data" / "b.jpg").write_bytes(b"\xff\xd8\xff\xe0 a jpeg")
  cmd = [
    sys.executable,
    os.path.join(REPO, "main.py"),
    "--config=" + os.path.join(REPO, "configs/files.py:text"),
    f"--config.data.path={tmp_path}/data",
    f"--workdir={tmp_path}/run",
  ]
  run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr[-2000:]
  assert [line for line in run.stderr.splitlines() if not line.startswith(("I", "W"))] == [
    f"Error (ConfigError): {tmp_path}/data/b.jpg: not a UTF-8 text file (byte 0xff at offset 0: invalid start "
    "byte in UTF-8); data.kind='text' reads text only: move it out of data.path or narrow data.path to a glob "
    "such as 'DIR/*.txt', or use --config.data.kind=bytes to model any file"
  ]


@pytest.mark.slow
def test_two_training_steps_on_text_files_then_a_codec_of_them(text_dir, tmp_path):
  config = files_config.get_config("text")
  config.data.path = str(text_dir)
  config.training.num_train_steps = config.training.eval_every_steps = config.training.checkpoint_every_steps = 2
  config.training.batch_size = config.eval.batch_size = 4
  config.eval.max_batches = 1
  config.model.num_layers, config.model.width, config.model.mlp_dim = 1, 32, 64  # Compiles in seconds.
  state = train.train_and_evaluate(config, str(tmp_path))
  assert int(state.step) == 2
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2"]
  # The workdir exports to a text codec (data.kind), which codes a file losslessly.
  bundle = codec.export(None, str(tmp_path), str(tmp_path / "model"), ["2"], num_orders=1, order_rows=4)
  assert bundle.kind == "text" and bundle.meta["batch_size"] == codec.DEFAULT_BATCH_SIZE
  text = b"a held out file of words"
  blob = codec.encode_files(bundle, {"f.txt": text}, 2, method="ardm")["f.txt"].blob
  assert codec.decode_files(codec.load_bundle(tmp_path / "model"), {"f.ardm": blob}) == {"f.ardm": text}
