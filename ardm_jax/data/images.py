"""Image sources: CIFAR-10 (tensorflow-datasets) and the built-in `embedded_images` and `embedded_photos` (no
download): finite sets of uint8 RGB images (K = 256) batched by `dataset.Dataset`, with an optional dihedral
augmentation per training row.
`embedded_photos` splits scikit-image's lossless photos by photo: TEST_PHOTOS (the cat) are held out whole, the
TRAIN_PHOTOS give the training patches. Design notes: docs/design.md#images
"""

import functools

import numpy as np

from ardm_jax.io import paths
from ardm_jax.data import dataset

NUM_CLASSES = 256
CIFAR10_SHAPE = (32, 32, 3)
EMBEDDED_TEST_EVERY = 10
# scikit-image's PNG colour photos with a stated free licence (its JPEGs rocket, retina and hubble_deep_field are
# left out, and its Middlebury stereo motorcycle, whose licence scikit-image does not state).
TRAIN_PHOTOS = ("astronaut", "coffee", "immunohistochemistry")
TEST_PHOTOS = ("chelsea",)
PHOTO_LICENCES = {
  "astronaut": "public domain (NASA)",
  "coffee": "CC0 (Rachel Michetti)",
  "immunohistochemistry": "no known copyright restrictions (CMMI)",
  "chelsea": "CC0 (Stefan van der Walt)",
}
_TFDS_READ_BATCH = 10_000


def random_dihedral(images_BxHxWxC: np.ndarray, row_bits_B: np.ndarray) -> np.ndarray:
  """Row transform: bit 0 flips a row horizontally, bits 1-2 turn it by that many 90-degree rotations."""
  flip_B = (row_bits_B & np.uint64(1)).astype(bool)
  turns_B = (row_bits_B >> np.uint64(1)) & np.uint64(3)
  flipped = np.where(flip_B[:, None, None, None], images_BxHxWxC[:, :, ::-1], images_BxHxWxC)
  transformed = np.empty_like(flipped)
  for turns in range(4):
    rows = turns_B == turns
    transformed[rows] = np.rot90(flipped[rows], turns, axes=(1, 2))
  return transformed


@functools.cache
def _hide_accelerators_from_tensorflow():
  """tf.data only reads files here; keep TensorFlow from claiming the GPUs that JAX uses."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  tf.config.set_visible_devices([], "GPU")


def load_cifar10(split: str, data_dir, download: bool) -> np.ndarray:
  """All images of a CIFAR-10 split ('train' / 'test') from tensorflow-datasets: uint8 [N, 32, 32, 3].

  Raises:
    FileNotFoundError: the dataset is not prepared in `data_dir` and `download` is False.
    ValueError: the prepared split is empty or holds images that are not uint8 32x32x3.
  """
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

  _hide_accelerators_from_tensorflow()
  try:
    split_ds = tfds.load("cifar10", split=split, data_dir=data_dir or None, download=download, as_supervised=True)
  except AssertionError as error:  # tfds's way of saying "not prepared" when download=False
    if download:
      raise
    raise paths.InputNotFoundError(
      f"CIFAR-10 is not prepared in data.tfds_data_dir={data_dir!r} ('': $TFDS_DATA_DIR or "
      f'~/tensorflow_datasets). Prepare it once with `tfds build cifar10 --data_dir=DIR` (or python -c "import '
      f"tensorflow_datasets as tfds; tfds.builder('cifar10', data_dir='DIR').download_and_prepare()\"), "
      f"or set data.download=True, or point data.tfds_data_dir at a prepared copy. ({error})"
    ) from None
  # Read in batches rather than with batch_size=-1, which aborts the process under tfds.testing.mock_data.
  batches = [np.asarray(images) for images, _ in tfds.as_numpy(split_ds.batch(_TFDS_READ_BATCH))]
  found = sorted({f"{b.dtype.name} {b.shape[1:]}" for b in batches})
  if found != [f"uint8 {CIFAR10_SHAPE}"]:
    raise ValueError(
      f"CIFAR-10 {split!r} split in data.tfds_data_dir={data_dir!r} holds {' and '.join(found) or 'no'} "
      f"images, expected uint8 {CIFAR10_SHAPE}: the prepared copy is not CIFAR-10 or is damaged; rebuild "
      f"it with `tfds build cifar10 --data_dir=DIR` or point data.tfds_data_dir at a good copy."
    )
  return np.concatenate(batches)


def downscale(image_HxWxC: np.ndarray, factor: int) -> np.ndarray:
  """Box-filter downscaling by an integer factor (edges that do not fill a box are dropped): uint8."""
  height, width, channels = image_HxWxC.shape
  boxes = image_HxWxC[: height // factor * factor, : width // factor * factor].reshape(
    height // factor, factor, width // factor, factor, channels
  )
  return np.round(boxes.mean(axis=(1, 3))).astype(np.uint8)


def patches(image_HxWxC: np.ndarray, size: int) -> np.ndarray:
  """Non-overlapping size x size patches in row-major order: [rows * cols, size, size, C]."""
  height, width, channels = image_HxWxC.shape
  rows, cols = height // size, width // size
  grid = image_HxWxC[: rows * size, : cols * size].reshape(rows, size, cols, size, channels)
  return grid.transpose(0, 2, 1, 3, 4).reshape(rows * cols, size, size, channels)


def embedded_image_patches(image_size: int, downscale_factor: int) -> tuple[np.ndarray, np.ndarray]:
  """(train, test) patches uint8 [N, image_size, image_size, 3] of scikit-learn's sample photos."""
  from sklearn.datasets import load_sample_images  # pylint: disable=import-outside-toplevel

  photos = load_sample_images().images
  all_patches = np.concatenate([patches(downscale(photo, downscale_factor), image_size) for photo in photos])
  if len(all_patches) < EMBEDDED_TEST_EVERY:
    raise ValueError(
      f"data.image_size={image_size} with data.downscale={downscale_factor} leaves only "
      f"{len(all_patches)} patches of the 427x640 sample photos; use smaller values"
    )
  is_test = np.arange(len(all_patches)) % EMBEDDED_TEST_EVERY == 0
  return all_patches[~is_test], all_patches[is_test]


@functools.cache
def embedded_photos() -> dict[str, np.ndarray]:
  """The TRAIN_PHOTOS and TEST_PHOTOS by name, uint8 [H, W, 3] (read-only), decoded once from scikit-image's wheel."""
  from skimage import data as skdata  # pylint: disable=import-outside-toplevel

  photos = {
    "astronaut": skdata.astronaut(),
    "coffee": skdata.coffee(),
    "immunohistochemistry": skdata.immunohistochemistry(),
    "chelsea": skdata.chelsea(),
  }
  for photo_HxWx3 in photos.values():
    photo_HxWx3.setflags(write=False)
  return photos


def embedded_photo_patches(patch_size: int) -> tuple[np.ndarray, np.ndarray]:
  """(train, test) patches uint8 [N, P, P, 3] and [M, P, P, 3] (P = patch_size) of scikit-image's photos.

  Test: the non-overlapping grid of each TEST_PHOTO. Train: that grid of each TRAIN_PHOTO, plus the grid shifted
  by P // 2 down and right (half-overlapping patches, for variety).

  Raises:
    ValueError: patch_size leaves no test patch.
  """
  photos = embedded_photos()
  test_MxPxPx3 = np.concatenate([patches(photos[name], patch_size) for name in TEST_PHOTOS])
  if not len(test_MxPxPx3):
    sizes = ", ".join(f"{name} {photos[name].shape[0]}x{photos[name].shape[1]}" for name in TEST_PHOTOS)
    largest = max(min(photos[name].shape[:2]) for name in TEST_PHOTOS)
    raise ValueError(
      f"data.image_size={patch_size} leaves no test patch of the held-out photos ({sizes}); use "
      f"data.image_size <= {largest}"
    )
  shift = patch_size // 2
  train_NxPxPx3 = np.concatenate(
    [patches(photos[name][offset:, offset:], patch_size) for name in TRAIN_PHOTOS for offset in (0, shift)]
  )
  return train_NxPxPx3, test_MxPxPx3


def image_dataset(name: str, train: np.ndarray, test: np.ndarray, *, augment: bool, seed: int) -> dataset.Dataset:
  """Builds the step-indexed dataset from uint8 images train [N, H, W, C] and test [M, H, W, C]."""
  if augment and train.shape[1] != train.shape[2]:
    raise ValueError(f"data.augment rotates by 90 degrees and needs square images, got {train.shape[1:3]}")
  return dataset.Dataset(
    name=name,
    event_shape=tuple(test.shape[1:]),
    num_classes=NUM_CLASSES,
    train_examples=train,
    eval_examples=test,
    seed=seed,
    train_transform=random_dihedral if augment else None,
  )
