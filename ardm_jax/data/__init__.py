"""Data pipelines: deterministic, step-indexed datasets of int32 arrays (no model knowledge).

`make_dataset(config.data)` returns a `Dataset` (see dataset.py for the batching rules): the global training
batch at a step is a pure function of (data.seed, step), so the train step is the data position.

Fields of the data config (all optional except `name`, and `path` for text8; a field that the chosen source
does not use must be absent or at its default, so a misplaced key fails early):
  name: 'cifar10' | 'text8' | 'embedded_text' | 'embedded_bytes' | 'embedded_images'.
  seed: int >= 0 (default 0); seeds the epoch permutations and the per-row crops/augmentations.
  seq_len: text sequence length, 1..1000 (default 250, the paper's); text sources.
  path: path of the standard text8.zip (http://mattmahoney.net/dc/text8.zip, not unzipped); text8 only.
  eval_split: 'test' (default) or 'valid' (text8 only); the split `eval_batches` walks.
  tfds_data_dir: tensorflow-datasets data dir for cifar10 (default None: tfds's default, ~/tensorflow_datasets).
  download: bool (default False); let tfds download and prepare cifar10 if it is missing.
  augment: bool (default False); random horizontal flips + 90-degree rotations of training images.
  image_size: patch size of embedded_images, e.g. 8, 16 or 32 (default 32).
  downscale: integer factor >= 1 by which embedded_images shrinks the photos before cutting patches (default 1).
The sources do not download anything except cifar10 with download=True. TensorFlow is imported only when a
cifar10 dataset is made.
"""
import numbers
from typing import Any, Mapping

from ardm_jax.data import images
from ardm_jax.data import text
from ardm_jax.data.dataset import Dataset
from ardm_jax.data.text import decode, encode

DEFAULTS = {
    "seed": 0,
    "seq_len": 250,
    "path": None,
    "eval_split": "test",
    "tfds_data_dir": None,
    "download": False,
    "augment": False,
    "image_size": 32,
    "downscale": 1,
}
FIELDS_USED = {
    "cifar10": {"seed", "tfds_data_dir", "download", "augment", "eval_split"},
    "text8": {"seed", "seq_len", "path", "eval_split"},
    "embedded_text": {"seed", "seq_len", "eval_split"},
    "embedded_images": {"seed", "augment", "image_size", "downscale", "eval_split"},
    "embedded_bytes": {"seed", "seq_len", "eval_split"},
}
KNOWN_NAMES = tuple(FIELDS_USED)

__all__ = ["Dataset", "make_dataset", "encode", "decode", "KNOWN_NAMES"]


def _int_field(fields: Mapping[str, Any], key: str, low: int, high: float = float("inf")) -> int:
  value = fields[key]
  if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
    raise ValueError(f"data.{key} must be an integer in [{low}, {high}], got {value!r}")
  return int(value)


def _bool_field(fields: Mapping[str, Any], key: str) -> bool:
  if not isinstance(fields[key], bool):
    raise ValueError(f"data.{key} must be True or False, got {fields[key]!r}")
  return fields[key]


def _fields(data_config) -> dict[str, Any]:
  """The config's fields with defaults filled in, after checking names and unused fields."""
  keys = set(data_config.keys())
  name = data_config.get("name")
  if name not in FIELDS_USED:
    raise ValueError(f"data.name={name!r} is not a known dataset; known names: {', '.join(KNOWN_NAMES)}")
  unknown = sorted(keys - set(DEFAULTS) - {"name"})
  if unknown:
    raise ValueError(f"unknown data config fields {unknown}; known fields: {['name', *DEFAULTS]}")
  fields = {key: data_config.get(key, default) for key, default in DEFAULTS.items()}
  unused = sorted(key for key in keys & set(DEFAULTS)
                  if key not in FIELDS_USED[name] and fields[key] != DEFAULTS[key])
  if unused:
    raise ValueError(f"data.name={name!r} does not use {unused}; remove them or leave them at their defaults")
  fields["name"] = name
  return fields


def make_dataset(data_config) -> Dataset:
  """Builds the dataset that `data_config` (an ml_collections.ConfigDict or mapping) names.

  Returns:
    A `Dataset` with name, event_shape, num_classes, num_eval_examples, train_batch(...) and eval_batches(...).
  Raises:
    ValueError: unknown name or field, or an invalid value (the message names the key).
    FileNotFoundError: text8 zip missing, or cifar10 not prepared with download=False.
  """
  fields = _fields(data_config)
  name, seed = fields["name"], _int_field(fields, "seed", 0)
  if name == "embedded_bytes":
    seq_len = _int_field(fields, "seq_len", 1, text.TRAIN_CHUNK_LEN)
    return text.text_dataset(name, text.embedded_text_splits(text.embedded_bytes()), seq_len=seq_len,
                             eval_split=fields["eval_split"], seed=seed, num_classes=256)
  if name in ("text8", "embedded_text"):
    seq_len = _int_field(fields, "seq_len", 1, text.TRAIN_CHUNK_LEN)
    if name == "text8":
      if not isinstance(fields["path"], str):
        raise ValueError(f"data.path must be the path of text8.zip ({text.TEXT8_URL}), got {fields['path']!r}")
      splits = text.text8_splits(text.read_text8(fields["path"]))
    else:
      splits = text.embedded_text_splits(text.embedded_text_ids())
    return text.text_dataset(name, splits, seq_len=seq_len, eval_split=fields["eval_split"], seed=seed)

  if fields["eval_split"] != "test":
    raise ValueError(f"data.eval_split={fields['eval_split']!r}: {name} has only a 'test' eval split")
  augment = _bool_field(fields, "augment")
  if name == "cifar10":
    download = _bool_field(fields, "download")
    train, test = (images.load_cifar10(split, fields["tfds_data_dir"], download) for split in ("train", "test"))
  else:
    train, test = images.embedded_image_patches(
        _int_field(fields, "image_size", 1), _int_field(fields, "downscale", 1))
  return images.image_dataset(name, train, test, augment=augment, seed=seed)
