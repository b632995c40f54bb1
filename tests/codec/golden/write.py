r"""Writes the golden files: small bundles and, for every data kind and every method, a compressed file and its
original, which every later version must decode byte-exact (tests/codec/test_golden.py).

  python tests/codec/golden/write.py  # only on purpose: after a format change, with container.VERSION bumped

The bundles hold tiny randomly initialised networks (a round trip needs no trained model); everything is seeded.
"""

import io
import pathlib
import shutil
import sys
import wave

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3]))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from ardm_jax import codec  # noqa: E402
from ardm_jax.data import media  # noqa: E402
from ardm_jax.training import experiment  # noqa: E402
from configs import quickstart  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent


def _tiny_transformer(config):
  config.model.num_layers, config.model.width, config.model.num_heads, config.model.mlp_dim = 1, 16, 2, 24
  return config


def bundle_configs():
  """name -> (config, kind, event_shape, num_classes)."""
  text = _tiny_transformer(quickstart.get_config())
  text.data.seq_len = 8
  data_bytes = _tiny_transformer(quickstart.get_config("bytes"))
  data_bytes.data.seq_len = 8
  images = quickstart.get_config("images")
  images.model = _tiny_transformer(quickstart.get_config()).model  # A tiny Transformer over the flattened patch.
  audio = quickstart.get_config("audio")
  audio.data.clip_len = 16
  audio.model.ch, audio.model.num_blocks, audio.objective.num_mixtures = 8, 2, 3
  return {
    "text": (text, (8,), 27),
    "bytes": (data_bytes, (8,), 256),
    "image": (images, (4, 4, 3), 256),
    "audio": (audio, (16,), 65536),
  }


def write_bundle(name, config, event_shape, num_classes):
  process = experiment.build_process(config, num_classes)
  model = experiment.build_model(config, num_classes, None)
  x = jnp.zeros((1,) + event_shape, jnp.int32)
  params = jax.jit(model.init)(jax.random.key(0), x, x > 0, jnp.zeros((1,), jnp.int32))["params"]
  num_variables = int(np.prod(event_shape))
  meta = {
    "bundle_version": 1,
    "kind": name,
    "event_shape": list(event_shape),
    "num_classes": num_classes,
    "order": [np.random.RandomState(0).permutation(num_variables).tolist()] * process.num_stages,
    "order_bpd": [0.0],
    "plans": {"3": {"starts": [[0, 2, 5]] * process.num_stages, "planned_bpd": 0.0}},
    "step_losses": [np.linspace(0.5, 0.1, num_variables).tolist()] * process.num_stages,
    "unseen_steps": 0,
    "train_step": 0,
    "batch_size": 2,
  }
  return codec.write_bundle(HERE / "bundles" / name, config, params, meta, force=True)


def _npy(array) -> bytes:
  out = io.BytesIO()
  np.save(out, array, allow_pickle=False)
  return out.getvalue()


def _wav(pcm) -> bytes:
  out = io.BytesIO()
  with wave.open(out, "wb") as w:
    w.setnchannels(1)
    w.setsampwidth(2)
    w.setframerate(8000)
    w.writeframes(np.asarray(pcm, "<i2").tobytes())
  return out.getvalue()


def originals():
  """bundle name -> {file name: (bytes, method)}: every kind and every method at least once."""
  rng = np.random.RandomState(0)
  text = b"the golden files keep the format"
  rgb = media.png_bytes(rng.randint(0, 256, (5, 6, 3)).astype(np.uint8))
  gray = media.png_bytes(rng.randint(0, 256, (6, 5)).astype(np.uint8))
  pcm = (np.sin(np.arange(40) / 2.0) * 9000).astype(np.int16)
  return {
    "text": {
      "text.txt": (text, "ardm"),
      "text_stored.txt": (text, "stored"),
      "text_zstd.txt": (text, "zstd"),
      "text_brotli.txt": (text, "brotli"),
      "text_xz.txt": (text, "xz"),
      "capitals.txt": (b"Not For The 27-Letter Model!", "auto"),  # kind 'file'
      "points.npy": (_npy(rng.randint(0, 27, (2, 8)).astype(np.uint8)), "ardm"),  # kind 'array'
    },
    "bytes": {"bytes.bin": (bytes(range(0, 256, 7)), "ardm")},
    "image": {
      "rgb.png": (rgb, "ardm"),
      "rgb_webp.png": (rgb, "webp"),
      "rgb_jxl.png": (rgb, "jxl"),
      "gray.png": (gray, "ardm"),
    },
    "audio": {"speech.wav": (_wav(pcm), "ardm"), "speech_flac.wav": (_wav(pcm), "flac")},
  }


def main():
  shutil.rmtree(HERE / "bundles", ignore_errors=True)
  shutil.rmtree(HERE / "files", ignore_errors=True)
  for name, (config, event_shape, num_classes) in bundle_configs().items():
    bundle = write_bundle(name, config, event_shape, num_classes)
    folder = HERE / "files" / name
    folder.mkdir(parents=True)
    for file_name, (raw, method) in originals()[name].items():
      (encoded,) = codec.encode_files(bundle, {file_name: raw}, 3, method=method).values()
      (folder / file_name).write_bytes(raw)
      (folder / (file_name + codec.SUFFIX)).write_bytes(encoded.blob)
      print(f"{name}/{file_name}: {encoded.method}, {len(raw)} -> {len(encoded.blob)} bytes")


if __name__ == "__main__":
  main()
