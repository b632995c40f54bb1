"""Tests of the data pipelines on real-format fixtures: splits, mapping, coverage, determinism, slicing, errors."""

import collections
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from ardm_jax import data
from ardm_jax.data import images
from ardm_jax.data import text
from configs import common
from tests import fake_data

NUM_CHARS = 20_000  # train 18000 (18 chunks of 1000), valid 1000, test 1000


@pytest.fixture(scope="module")
def text8_file(tmp_path_factory):
  chars = fake_data.random_text(NUM_CHARS)
  path = tmp_path_factory.mktemp("text8") / "text8.zip"
  fake_data.write_text8_zip(path, chars)
  return str(path), chars


def _dataset(name, **fields):
  """make_dataset on the data section that configs/common.py builds for source `name`, with `fields` changed."""
  section = common.text_data(name) if name in ("text8", "embedded_text") else common.image_data(name)
  section.update(fields)
  return data.make_dataset(section)


def _text8(path, **fields):
  return _dataset("text8", **{"path": path, "seq_len": 50, "seed": 3, **fields})


def _gathered_eval(ds, batch_size, process_count):
  """Eval rows and weights of all processes, in global order: per batch, process 0's rows first."""
  per_process = [list(ds.eval_batches(batch_size, p, process_count)) for p in range(process_count)]
  assert len({len(batches) for batches in per_process}) == 1  # same batch count on every process
  xs = [per_process[p][b][0] for b in range(len(per_process[0])) for p in range(process_count)]
  weights = [per_process[p][b][1] for b in range(len(per_process[0])) for p in range(process_count)]
  return np.concatenate(xs), np.concatenate(weights)


def _assert_slices_make_global_batch(ds, step, global_batch_size):
  whole = ds.train_batch(step, global_batch_size)
  for process_count in (2, 4):
    slices = [ds.train_batch(step, global_batch_size, p, process_count) for p in range(process_count)]
    assert all(s.shape == (global_batch_size // process_count, *ds.event_shape) for s in slices)
    np.testing.assert_array_equal(np.concatenate(slices), whole)


# ----------------------------------------------------------------------------------------------- text8


def test_text_mapping_round_trips():
  np.testing.assert_array_equal(data.encode(" az"), [0, 1, 26])
  sample = fake_data.random_text(500, seed=1)
  assert data.decode(data.encode(sample)) == sample
  assert data.encode(sample).dtype == np.uint8


def test_text8_split_fractions():
  sizes = {k: len(v) for k, v in text.text8_splits(np.zeros(100_000_000, np.uint8)).items()}
  assert sizes == {"train": 90_000_000, "valid": 5_000_000, "test": 5_000_000}
  sizes = {k: len(v) for k, v in text.text8_splits(np.zeros(20_007, np.uint8)).items()}
  assert sizes == {"train": 18_006, "valid": 1_000, "test": 1_001}


def test_text8_splits_hold_the_right_characters(text8_file):
  path, chars = text8_file
  ds = _text8(path)
  assert (ds.event_shape, ds.num_classes) == ((50,), 27)
  assert ds.num_train_examples == 18 and ds.num_eval_examples == 20
  assert data.decode(ds.train_examples) == chars[:18_000]
  assert data.decode(ds.eval_examples) == chars[19_000:]
  assert data.decode(_text8(path, eval_split="valid").eval_examples) == chars[18_000:19_000]


def test_text8_eval_covers_test_split_exactly_once(text8_file):
  path, chars = text8_file
  ds = _text8(path, seq_len=30)  # 1000 test chars -> 33 sequences, 10 chars dropped
  for process_count in (1, 2, 4):
    x, weight = _gathered_eval(ds, batch_size=4, process_count=process_count)
    assert x.dtype == np.int32 and weight.dtype == np.float32
    assert weight.sum() == ds.num_eval_examples == 33
    assert np.all(weight[:33] == 1) and np.all(weight[33:] == 0)
    assert data.decode(x[weight == 1]) == chars[19_000:19_990]


def test_text8_training_rows_are_crops_of_their_chunks(text8_file):
  path, chars = text8_file
  ds = _text8(path)
  batch = ds.train_batch(5, 12)
  assert batch.shape == (12, 50) and batch.dtype == np.int32
  for row, chunk in zip(batch, ds.train_indices(5, 12)):
    assert data.decode(row) in chars[chunk * 1000 : (chunk + 1) * 1000]
  offsets = {
    chars[i * 1000 : (i + 1) * 1000].find(data.decode(row))
    for row, i in zip(ds.train_batch(0, 18), ds.train_indices(0, 18))
  }
  assert len(offsets) > 1  # crops start at varying offsets


def test_text8_batches_are_deterministic_in_seed_and_step(text8_file):
  path, _ = text8_file
  ds, same = _text8(path), _text8(path)
  np.testing.assert_array_equal(ds.train_batch(7, 8), same.train_batch(7, 8))
  assert not np.array_equal(ds.train_batch(7, 8), ds.train_batch(8, 8))
  assert not np.array_equal(ds.train_batch(7, 8), _text8(path, seed=4).train_batch(7, 8))


def test_text8_process_slices_make_global_batch(text8_file):
  _assert_slices_make_global_batch(_text8(text8_file[0]), step=1, global_batch_size=12)  # straddles epochs


def test_every_epoch_visits_each_example_once(text8_file):
  ds = _text8(text8_file[0])  # 18 chunks
  for batch_size in (6, 4):  # 4 does not divide 18: batches straddle epochs
    positions = np.concatenate([ds.train_indices(step, batch_size) for step in range(-(-18 * 3 // batch_size))])
    for epoch in range(3):
      assert sorted(positions[epoch * 18 : (epoch + 1) * 18]) == list(range(18))
    assert not np.array_equal(positions[:18], positions[18:36])  # a fresh permutation per epoch


def test_uneven_process_split_names_both_numbers(text8_file):
  with pytest.raises(ValueError, match="10 is not divisible by process_count 4"):
    _text8(text8_file[0]).train_batch(0, 10, 0, 4)


def test_missing_text8_names_path_and_source(tmp_path):
  missing = str(tmp_path / "nowhere" / "text8.zip")
  with pytest.raises(FileNotFoundError, match="mattmahoney.net/dc/text8.zip") as error:
    _text8(missing)
  assert missing in str(error.value)


def test_truncated_text8_zip(text8_file, tmp_path):
  whole = open(text8_file[0], "rb").read()
  truncated = tmp_path / "truncated.zip"
  truncated.write_bytes(whole[: len(whole) // 2])
  with pytest.raises(ValueError, match="truncated or corrupt") as error:
    _text8(str(truncated))
  assert str(truncated) in str(error.value)


def test_corrupt_text8_zip_data(text8_file, tmp_path):
  whole = bytearray(open(text8_file[0], "rb").read())
  whole[100:200] = bytes(100)  # inside the deflated member; the directory at the end is intact
  corrupt = tmp_path / "corrupt.zip"
  corrupt.write_bytes(bytes(whole))
  with pytest.raises(ValueError, match="truncated or corrupt"):
    _text8(str(corrupt))


def test_text8_zip_without_text8_member(tmp_path):
  path = tmp_path / "other.zip"
  fake_data.write_text8_zip(path, fake_data.random_text(NUM_CHARS), member="enwik8")
  with pytest.raises(ValueError, match=r"no member 'text8' \(members: \['enwik8'\]\)"):
    _text8(str(path))


def test_text8_with_characters_outside_alphabet(tmp_path):
  path = tmp_path / "bad.zip"
  chars = fake_data.random_text(NUM_CHARS)
  fake_data.write_text8_zip(path, chars[:123] + "Q" + chars[124:])
  with pytest.raises(ValueError, match=r"outside \[a-z \], the first is 'Q' \(byte 81\) at offset 123"):
    _text8(str(path))


# ------------------------------------------------------------------------------------------ data checks
# The keys and values of the data section are checked by ardm_jax/training/config_schema.py
# (tests/test_config_errors.py); the data modules check only what needs the data itself.


def test_too_few_patches_names_the_keys():
  with pytest.raises(ValueError, match="data.image_size=300 with data.downscale=1 leaves only 4 patches"):
    _dataset("embedded_images", image_size=300)


@pytest.mark.slow
def test_importing_data_does_not_import_tensorflow():
  code = "import ardm_jax.data, sys; assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
  code += "; assert 'skimage' not in sys.modules, 'skimage imported'"
  subprocess.run([sys.executable, "-c", code], check=True, cwd=pathlib.Path(__file__).parents[2])


# ------------------------------------------------------------------------------------------ embedded_text


def test_clean_text_follows_text8_recipe():
  assert text.clean_text("Hello, World!\n\t42 times -- OK?") == "hello world four two times ok"


def test_embedded_text_is_clean_and_split_90_10():
  ids = text.embedded_text_ids()
  chars = data.decode(ids)
  assert set(chars) <= set(text.ALPHABET) and "  " not in chars
  assert "assert statements are a convenient way to insert debugging assertions into a program" in chars
  ds = _dataset("embedded_text", seq_len=64)
  train_len = len(ids) * 9 // 10
  assert ds.num_train_examples == train_len // 1000
  assert ds.num_eval_examples == (len(ids) - train_len) // 64
  assert data.decode(ds.eval_examples) == chars[train_len : train_len + ds.num_eval_examples * 64]
  assert data.decode(ds.train_examples) == chars[: ds.num_train_examples * 1000]


def test_embedded_bytes_are_the_raw_docs_with_256_classes():
  raw = text.embedded_bytes()
  docs = raw.tobytes().decode("utf-8")
  assert "Assert statements" in docs and "\n" in docs and any(c.isdigit() for c in docs)
  ds = data.make_dataset({"name": "embedded_bytes", "seed": 0, "seq_len": 48, "eval_split": "test"})
  train_len = len(raw) * 9 // 10
  assert ds.num_classes == 256 and ds.event_shape == (48,)
  assert ds.eval_examples.tobytes() == raw[train_len : train_len + ds.num_eval_examples * 48].tobytes()
  assert raw.max() > 127  # non-ASCII UTF-8 bytes occur: no cleaning
  assert ds.train_batch(0, 4).dtype == np.int32 and ds.train_batch(0, 4).shape == (4, 48)


# ---------------------------------------------------------------------------------------- embedded_images


def _image_hashes(batch):
  return [hash(image.tobytes()) for image in np.asarray(batch, np.uint8)]


def test_embedded_image_patches_and_split():
  ds = _dataset("embedded_images")
  assert (ds.event_shape, ds.num_classes) == ((32, 32, 3), 256)
  assert (ds.num_train_examples, ds.num_eval_examples) == (468, 52)  # 2 photos x 13 x 20 patches
  assert ds.train_examples.dtype == np.uint8
  assert not set(_image_hashes(ds.train_examples)) & set(_image_hashes(ds.eval_examples))
  from sklearn.datasets import load_sample_images  # pylint: disable=import-outside-toplevel

  china = load_sample_images().images[0]
  np.testing.assert_array_equal(ds.eval_examples[0], china[:32, :32])  # patch 0 -> test
  np.testing.assert_array_equal(ds.train_examples[0], china[:32, 32:64])  # patch 1 -> train
  np.testing.assert_array_equal(ds.eval_examples[2], china[32:64, :32])  # patch 20 -> test
  batch = ds.train_batch(2, 16)
  assert batch.dtype == np.int32 and batch.min() >= 0 and batch.max() <= 255
  np.testing.assert_array_equal(batch, _dataset("embedded_images").train_batch(2, 16))


@pytest.mark.parametrize("size, factor, num_train, num_test", [(16, 1, 1872, 208), (8, 1, 7632, 848), (32, 2, 108, 12)])
def test_embedded_image_patch_counts(size, factor, num_train, num_test):
  ds = _dataset("embedded_images", image_size=size, downscale=factor)
  assert (ds.num_train_examples, ds.num_eval_examples) == (num_train, num_test)
  assert ds.event_shape == (size, size, 3)


def test_downscale_averages_boxes():
  image = np.array([[0, 2, 9], [4, 6, 9], [9, 9, 9]], np.uint8)[:, :, None]  # 3x3 -> one 2x2 box
  np.testing.assert_array_equal(images.downscale(image, 2), [[[3]]])


def test_eval_weights_count_real_rows_across_processes():
  ds = _dataset("embedded_images")  # 52 test patches
  for process_count in (1, 2, 3):
    x, weight = _gathered_eval(ds, batch_size=5, process_count=process_count)
    assert weight.sum() == 52 and len(x) % (5 * process_count) == 0
    np.testing.assert_array_equal(x[weight == 1], ds.eval_examples)


# ---------------------------------------------------------------------------------------- embedded_photos


def _grid_counts(shape_HxWxC, size, offsets=(0,)):
  """Patches of the size x size grid(s) that start at each offset (down and right) of an image of this shape."""
  return sum(((shape_HxWxC[0] - o) // size) * ((shape_HxWxC[1] - o) // size) for o in offsets)


def _window_hashes(image_HxWx3, size):
  """A 64-bit linear hash of every size x size window of the image, [H - size + 1, W - size + 1]: equal windows
  hash equal (so a hash found nowhere means the window is found nowhere)."""
  multipliers = np.random.default_rng(0).integers(1, 2**63, size=(2, size, 3), dtype=np.uint64) | np.uint64(1)
  pixels = image_HxWx3.astype(np.uint64)
  height, width = pixels.shape[:2]
  rows = sum(pixels[:, k : width - size + 1 + k] @ multipliers[0, k] for k in range(size))
  return sum(rows[k : height - size + 1 + k] * multipliers[1, k, 0] for k in range(size))


def test_embedded_photos_are_split_by_photo():
  assert images.TEST_PHOTOS == ("chelsea",) and not set(images.TRAIN_PHOTOS) & set(images.TEST_PHOTOS)
  assert set(images.PHOTO_LICENCES) == {*images.TRAIN_PHOTOS, *images.TEST_PHOTOS}
  import skimage.data  # pylint: disable=import-outside-toplevel

  size = 8
  train, test = images.embedded_photo_patches(size)
  cat = skimage.data.chelsea()
  rows, cols = cat.shape[0] // size, cat.shape[1] // size
  tiled = test.reshape(rows, cols, size, size, 3).transpose(0, 2, 1, 3, 4).reshape(rows * size, cols * size, 3)
  np.testing.assert_array_equal(tiled, cat[: rows * size, : cols * size])  # the held-out photo's grid, exactly
  assert not set(_image_hashes(test)) & set(_image_hashes(train))
  # No test patch is any 8x8 window of a training photo, at any offset; the 16 and 32 grids of the cat are made of
  # these 8x8 patches, so neither are theirs.
  photos = images.embedded_photos()
  train_windows = np.concatenate([_window_hashes(photos[name], size).ravel() for name in images.TRAIN_PHOTOS])
  test_windows = _window_hashes(photos["chelsea"], size)[::size, ::size][:rows, :cols].ravel()
  assert len(train_windows) > 700_000 and len(test_windows) == len(test)
  assert not np.isin(test_windows, train_windows).any()
  astronaut, shift = photos["astronaut"], size // 2  # the first training photo: its grid, then the shifted grid
  np.testing.assert_array_equal(train[0], astronaut[:size, :size])
  np.testing.assert_array_equal(
    train[_grid_counts(astronaut.shape, size)], astronaut[shift : shift + size, shift : shift + size]
  )


@pytest.mark.parametrize("size", [8, 16, 32])
def test_embedded_photo_patch_counts(size):
  ds = _dataset("embedded_photos", image_size=size)
  photos = images.embedded_photos()
  num_train = sum(_grid_counts(photos[name].shape, size, (0, size // 2)) for name in images.TRAIN_PHOTOS)
  num_test = sum(_grid_counts(photos[name].shape, size) for name in images.TEST_PHOTOS)
  assert (ds.num_train_examples, ds.num_eval_examples) == (num_train, num_test)
  assert (ds.name, ds.event_shape, ds.num_classes) == ("embedded_photos", (size, size, 3), 256)
  assert ds.train_examples.dtype == ds.eval_examples.dtype == np.uint8
  batch = ds.train_batch(0, 8)
  assert batch.shape == (8, size, size, 3) and batch.dtype == np.int32 and 0 <= batch.min() <= batch.max() <= 255


def test_embedded_photos_batches_are_deterministic_in_seed():
  for augment in (False, True):
    ds, same = _dataset("embedded_photos", augment=augment), _dataset("embedded_photos", augment=augment)
    np.testing.assert_array_equal(ds.train_batch(3, 16), same.train_batch(3, 16))
    assert not np.array_equal(
      ds.train_batch(3, 16), _dataset("embedded_photos", seed=1, augment=augment).train_batch(3, 16)
    )
    for (x, weight), (x_same, weight_same) in zip(ds.eval_batches(32), same.eval_batches(32)):
      np.testing.assert_array_equal(x, x_same)
      np.testing.assert_array_equal(weight, weight_same)


def test_embedded_photo_patch_larger_than_held_out_photo_names_the_size():
  height = min(images.embedded_photos()[name].shape[0] for name in images.TEST_PHOTOS)
  assert images.embedded_photo_patches(height)[1].shape == (1, height, height, 3)
  with pytest.raises(ValueError, match=rf"data.image_size={height + 1} leaves no test patch"):
    _dataset("embedded_photos", image_size=height + 1)


# ------------------------------------------------------------------------------------------------ cifar10


def _dihedral_transforms(image):
  return [np.rot90(flipped, k) for flipped in (image, image[:, ::-1]) for k in range(4)]


@pytest.fixture(scope="module")
def mock_cifar10():
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

  with tfds.testing.mock_data(num_examples=32):
    plain = _dataset("cifar10", seed=1)
    augmented = _dataset("cifar10", seed=1, augment=True)
  return plain, augmented


def test_cifar10_shapes_and_values(mock_cifar10):
  ds, _ = mock_cifar10
  assert (ds.name, ds.event_shape, ds.num_classes) == ("cifar10", (32, 32, 3), 256)
  assert ds.num_train_examples == ds.num_eval_examples == 32
  batch = ds.train_batch(0, 8)
  assert batch.shape == (8, 32, 32, 3) and batch.dtype == np.int32
  assert batch.min() >= 0 and batch.max() <= 255
  x, weight = next(ds.eval_batches(8))
  assert x.shape == (8, 32, 32, 3) and x.dtype == np.int32 and weight.dtype == np.float32


def test_cifar10_epoch_sees_each_image_once(mock_cifar10):
  ds, _ = mock_cifar10
  train_hashes = _image_hashes(ds.train_examples)
  assert len(set(train_hashes)) == 32  # mock images are distinct
  for epoch in range(2):
    seen = np.concatenate([ds.train_batch(epoch * 4 + step, 8) for step in range(4)])
    assert collections.Counter(_image_hashes(seen)) == collections.Counter(train_hashes)


def test_cifar10_augmentation_is_dihedral(mock_cifar10):
  plain, augmented = mock_cifar10
  originals = np.concatenate([plain.train_batch(step, 32) for step in range(4)])
  rows = np.concatenate([augmented.train_batch(step, 32) for step in range(4)])
  used = set()
  for original, row in zip(originals, rows):
    matches = [k for k, t in enumerate(_dihedral_transforms(original)) if np.array_equal(t, row)]
    assert len(matches) == 1
    used.add(matches[0])
  assert used == set(range(8))


def test_cifar10_process_slices_make_global_batch(mock_cifar10):
  for ds in mock_cifar10:
    _assert_slices_make_global_batch(ds, step=3, global_batch_size=24)  # straddles epochs


def test_cifar10_not_prepared_says_how_to_prepare(tmp_path):
  with pytest.raises(FileNotFoundError, match="tfds build cifar10") as error:
    _dataset("cifar10", tfds_data_dir=str(tmp_path))
  assert str(tmp_path) in str(error.value) and "data.download=True" in str(error.value)
