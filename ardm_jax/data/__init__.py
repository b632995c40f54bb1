"""Data pipelines: deterministic, step-indexed datasets of int32 arrays (no model knowledge).

`make_dataset(config.data)` returns a `Dataset` (see dataset.py for the batching rules): the global training
batch at a step is a pure function of (data.seed, step), so the train step is the data position.

The data section's keys per source, their defaults and their allowed values are those of configs/common.py
(`image_data`, `text_data`, `files_data`) and ardm_jax/training/config_schema.py, which validates them before a run; this module
takes the values as they are and checks only what needs the files (a readable zip, enough text or patches).
  name: 'cifar10' | 'text8' | 'embedded_text' | 'embedded_bytes' (raw bytes, K=256) | 'embedded_images' |
    'files' (your own files, all of one data.kind: 'text', 'bytes' or 'images'; see files.py) |
    'sc09' (16-bit spoken digits, K=65536; path: the extracted Speech Commands folder) | 'embedded_audio'
    (synthesised vowels, clip_len samples per clip; see audio.py).
  seed: seeds the epoch permutations and the per-row crops/augmentations (every source).
  seq_len, eval_split: text sources; path: text8 and files (local, ~/... or gs://).
  tfds_data_dir, download: cifar10; augment: image sources; image_size, downscale: embedded_images.
  kind, test_fraction: files (with seq_len for kind 'text' / 'bytes', image_size and augment for 'images').
The sources do not download anything except cifar10 with download=True. TensorFlow is imported only when a
cifar10 dataset is made.
"""

from typing import Any, Mapping

from ardm_jax.data import audio
from ardm_jax.data import files
from ardm_jax.data import images
from ardm_jax.data import text
from ardm_jax.data.dataset import Dataset
from ardm_jax.data.text import decode, encode

__all__ = ["Dataset", "make_dataset", "encode", "decode", "audio", "AUDIO_SOURCES"]

AUDIO_SOURCES = ("sc09", "embedded_audio")  # 16-bit clips, K = 65536 (audio.py)


def make_dataset(data: Mapping[str, Any]) -> Dataset:
  """Builds the dataset that `data` (config.data, or a mapping with the same keys) names.

  Returns:
    A `Dataset` with name, event_shape, num_classes, num_eval_examples, train_batch(...) and eval_batches(...).
  Raises:
    ValueError: the data does not fit (a damaged text8 zip, too little text, too few image patches, a file
      of the wrong kind).
    FileNotFoundError: text8 zip or files missing, or cifar10 not prepared with download=False.
  """
  name, seed = data["name"], data["seed"]
  if name == "files":
    kind = data["kind"]
    return files.files_dataset(
      data["path"],
      kind,
      data["test_fraction"],
      seed=seed,
      seq_len=data["seq_len"] if kind != "images" else None,
      image_size=data["image_size"] if kind == "images" else None,
      augment=data["augment"] if kind == "images" else False,
    )
  if name == "embedded_bytes":
    return text.text_dataset(
      name,
      text.embedded_text_splits(text.embedded_bytes()),
      seq_len=data["seq_len"],
      eval_split=data["eval_split"],
      seed=seed,
      num_classes=256,
    )
  if name in ("text8", "embedded_text"):
    if name == "text8":
      splits = text.text8_splits(text.read_text8(data["path"]))
    else:
      splits = text.embedded_text_splits(text.embedded_text_ids())
    return text.text_dataset(name, splits, seq_len=data["seq_len"], eval_split=data["eval_split"], seed=seed)
  if name == "sc09":
    train, test = (audio.load_sc09(data["path"], split) for split in ("train", data["eval_split"]))
    return audio.audio_dataset(name, train, test, seed=seed)
  if name == "embedded_audio":
    return audio.audio_dataset(name, *audio.embedded_audio_clips(data["clip_len"]), seed=seed)
  if name == "cifar10":
    train, test = (images.load_cifar10(split, data["tfds_data_dir"], data["download"]) for split in ("train", "test"))
  elif name == "embedded_images":
    train, test = images.embedded_image_patches(data["image_size"], data["downscale"])
  else:
    raise ValueError(f"data.name={name!r} is not a data source of ardm_jax.data")
  return images.image_dataset(name, train, test, augment=data["augment"], seed=seed)
