"""Builders of small real-format data files for tests (nothing is downloaded)."""

import os
import sys
import zipfile

import numpy as np

_WORDS = (
  "the of and in a to is was as for on by with he that from his it at an are which this be or "
  "anarchism originated zero one two nine quick brown fox jumps over lazy dog"
).split()


def random_text(num_chars: int, seed: int = 0) -> str:
  """Exactly num_chars of lowercase words separated by single spaces, starting with a space like text8."""
  rng = np.random.default_rng(seed)
  pieces, length = [], 0
  while length < num_chars:
    word = " " + _WORDS[rng.integers(len(_WORDS))]
    pieces.append(word)
    length += len(word)
  return "".join(pieces)[:num_chars]


def write_text8_zip(path, text: str, member: str = "text8") -> None:
  """Writes a deflated zip holding `text` as its single member, like the real text8.zip."""
  with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
    archive.writestr(member, text.encode("ascii"))


def mock_cifar10(num_examples: int = 64):
  """tfds.testing.mock_data serving real 32x32 photo patches in CIFAR-10's exact feature format.

  tfds's default mock examples are uniform noise, which no model can compress below 8 bits/dim; real
  patches (scikit-learn's sample photos) let a smoke test see the loss fall through the real tfds path.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from ardm_jax.data import images  # pylint: disable=g-import-not-at-top

  train, _ = images.embedded_image_patches(32, 1)
  patches = np.asarray(train[:num_examples], np.uint8)

  def as_dataset(self, split, *args, **kwargs):
    del self, args, kwargs
    offset = 0 if "train" in str(split) else num_examples // 2
    chosen = np.roll(patches, -offset, axis=0)
    return tf.data.Dataset.from_tensor_slices(
      {
        "image": chosen,
        "label": np.arange(len(chosen), dtype=np.int64) % 10,
        "id": np.array([f"mock_{i}" for i in range(len(chosen))]),
      }
    )

  return tfds.testing.mock_data(as_dataset_fn=as_dataset)


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def text8_local_command(workdir, text8_zip, num_steps: int, *flags: str) -> list[str]:
  """`python main.py` training configs/text8.py:local on a text8.zip (local or gs://) for num_steps steps."""
  return [
    sys.executable,
    os.path.join(REPO, "main.py"),
    "--config=" + os.path.join(REPO, "configs/text8.py:local"),
    f"--workdir={workdir}",
    f"--config.data.path={text8_zip}",
    f"--config.training.num_train_steps={num_steps}",
    *flags,
  ]
