"""Data pipelines: deterministic, step-indexed int32 datasets (no model knowledge). `make_dataset(config.data)` returns
a `Dataset` whose global training batch at a step is a pure function of (data.seed, step); nothing downloads except
cifar10 with download=True. Design notes: docs/design.md#data
"""

from typing import Any, Mapping

from ardm_jax.data import audio
from ardm_jax.data import files
from ardm_jax.data import images
from ardm_jax.data import text
from ardm_jax.data.dataset import Dataset
from ardm_jax.data.text import decode, encode

__all__ = ["Dataset", "make_dataset", "encode", "decode", "audio"]


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
  elif name == "embedded_photos":
    train, test = images.embedded_photo_patches(data["image_size"])
  else:
    raise ValueError(f"data.name={name!r} is not a data source of ardm_jax.data")
  return images.image_dataset(name, train, test, augment=data["augment"], seed=seed)
