"""Lossless compression with codec bundles: coded size against the model's -log2 q and classic codecs; speed.

For every budget (20, 100 and D, as far as the bundle has them) it codes held-out data points of the bundle's
dataset as one file (all rows chained into one ANS stream, container as written by `python -m ardm_jax.compress
encode`) and reports the payload's bits per dimension next to the model's -log2 q(x) / D under the same order and
plan (likelihood.py), then the same points, one data point at a time and all at once, with classic codecs: zlib-9,
bz2-9, lzma-9e, zstd-19 and brotli-11 for text; PNG (optimised), WebP lossless and JPEG-XL lossless (imagecodecs)
for images; FLAC at level 8 (its highest) and 5 (its default), and zstd-19 and xz-9e on the raw 16-bit PCM for
audio, whose file is the held-out clips as one WAV. Speed: data points per second, encode and decode, with every
row in its own network call (batch 1) and with all rows sharing each call (batched), and the share of the time
spent in network calls.

Usage: python benchmarks/compression.py --text_model=MODEL [--image_model=MODEL] [--audio_model=MODEL]
[--num_rows=64] (each repeatable; make the bundles with `python -m ardm_jax.compress export`). Writes
benchmarks/results/compression.json.
"""

import argparse
import bz2
import io
import json
import lzma
import math
import os
import pathlib
import sys
import time
import zlib

# Run from a checkout, no install: the checkout replaces this folder on the path, so that compression.py here
# does not shadow the `compression` module (Python 3.14's standard library) that jax's compilation cache imports.
sys.path.pop(0)
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
# pylint: disable=wrong-import-position
import imagecodecs
import jax
import jax.numpy as jnp
import numpy as np

from ardm_jax import codec
from ardm_jax.codec import container
from ardm_jax import data as data_lib
from ardm_jax.core import likelihood
from ardm_jax.data import media
from ardm_jax.data import audio as audio_lib
from benchmarks import _measure


def held_out_rows(bundle, num_rows):
  dataset = data_lib.make_dataset(bundle.config.data)
  return np.asarray(dataset.eval_examples[:num_rows], np.int32)


def model_bits(bundle, rows, starts):
  log_q = jax.jit(
    lambda x: likelihood.log_likelihood(
      bundle.logits_fn, x, jnp.asarray(bundle.order)[:, None], jnp.asarray(starts), bundle.process
    )[0]
  )(rows)
  return float(-np.sum(np.asarray(log_q, np.float64)) / math.log(2))


def speed(bundle, rows, starts, batch_size):
  """(encode points/s, decode points/s, network share of the time) with batch_size rows per call."""
  return _measure.coding_speed(bundle.logits_fn, rows, bundle.order, starts, bundle.process, batch_size)


def budgets_of(bundle):
  num_variables = math.prod(bundle.event_shape)
  return [b for b in (20, 100, num_variables) if b in bundle.budgets]


def codec_rows(bundle, rows, name, as_file, args):
  num_dims = rows.size
  print(
    f"\n### {bundle.kind} model {bundle.fingerprint[:12]}: {len(rows)} held-out data points of "
    f"{bundle.event_shape}, {num_dims} dimensions, one file\n"
  )
  print(
    "| budget | coded bpd | model -log2 q bpd | payload bits - 1.005 x model bits | container bytes |"
    " encode pts/s b1 | decode pts/s b1 | encode pts/s batched | decode pts/s batched | network share b1 |"
    " network share batched |"
  )
  print("|---|---|---|---|---|---|---|---|---|---|---|")
  results = []
  for budget in budgets_of(bundle):
    starts = bundle.plan(budget)
    blob = codec.encode_files(bundle, {name: as_file}, budget, method="ardm")[name].blob
    payload = container.unpack(name, blob)[1]
    if codec.decode_files(bundle, {name + ".ardm": blob})[name + ".ardm"] != as_file:
      raise AssertionError("file round trip failed")
    bits, ideal = 8 * len(payload), model_bits(bundle, rows, starts)
    one = rows[: args.batch1_rows]
    enc1, dec1, share1 = speed(bundle, one, starts, 1)
    enc, dec, share = speed(bundle, rows, starts, args.batch_size)
    print(
      f"| {budget} | {bits / num_dims:.4f} | {ideal / num_dims:.4f} | {bits - 1.005 * ideal:+.1f} |"
      f" {len(blob)} | {enc1:.1f} | {dec1:.1f} | {enc:.1f} | {dec:.1f} | {share1:.0%} | {share:.0%} |",
      flush=True,
    )
    results.append(
      dict(
        budget=budget,
        coded_bpd=bits / num_dims,
        model_bpd=ideal / num_dims,
        payload_minus_1005_model_bits=bits - 1.005 * ideal,
        container_bytes=len(blob),
        encode_per_s_batch1=enc1,
        decode_per_s_batch1=dec1,
        encode_per_s_batched=enc,
        decode_per_s_batched=dec,
        network_share_batch1=share1,
        network_share_batched=share,
      )
    )
  net1 = _measure.network_rows_per_s(bundle.logits_fn, rows, 1)
  net = _measure.network_rows_per_s(bundle.logits_fn, rows, args.batch_size)
  print(
    f"\nThe bare network: {net1:.0f} rows/s at batch 1, {net:.0f} rows/s at batch {args.batch_size} "
    f"({net / net1:.1f}x): the most that sharing calls can gain here."
  )
  return {
    "kind": bundle.kind,
    "fingerprint": bundle.fingerprint,
    "event_shape": list(bundle.event_shape),
    "num_points": len(rows),
    "budgets": results,
    "network_rows_per_s": {"batch1": net1, f"batch{args.batch_size}": net},
  }


def classic_text(rows, kind):
  points = [bytes(r.astype(np.uint8)) if kind == "bytes" else data_lib.decode(r).encode() for r in rows]
  codecs = {
    "zlib-9": lambda b: zlib.compress(b, 9),
    "bz2-9": lambda b: bz2.compress(b, 9),
    "lzma-9e": lambda b: lzma.compress(b, preset=9 | lzma.PRESET_EXTREME),
    "zstd-19": lambda b: imagecodecs.zstd_encode(b, level=19),
    "brotli-11": lambda b: imagecodecs.brotli_encode(b, level=11),
  }
  return report(codecs, points, b"".join(points), rows.size)


def classic_images(rows):
  points = [r.astype(np.uint8) for r in rows]
  side = math.ceil(math.sqrt(len(points)))
  height, width = points[0].shape[:2]
  mosaic = np.zeros((side * height, side * width, 3), np.uint8)
  for i, p in enumerate(points):
    mosaic[(i // side) * height : (i // side + 1) * height, (i % side) * width : (i % side + 1) * width] = p

  def png(image):
    return media.png_bytes(image, optimize=True)

  codecs = {
    "PNG (optimised)": png,
    "WebP lossless": lambda a: imagecodecs.webp_encode(a, lossless=True, level=100),
    "JPEG-XL lossless": lambda a: imagecodecs.jpegxl_encode(a, lossless=True, effort=9),
  }
  return report(codecs, points, mosaic, rows.size, whole_note=f"(one {side}x{side} mosaic)")


def classic_audio(rows):
  """FLAC (soundfile's libsndfile) and general-purpose codecs on the raw PCM of int16 clips."""
  import soundfile  # pylint: disable=g-import-not-at-top

  def flac(level):
    def encode(pcm):
      out = io.BytesIO()
      soundfile.write(out, pcm, audio_lib.SAMPLE_RATE, format="FLAC", subtype="PCM_16", compression_level=level / 8)
      return out.getvalue()

    return encode

  points = [audio_lib.to_pcm16(r) for r in rows]
  codecs = {
    "FLAC level 8": flac(8),
    "FLAC level 5 (default)": flac(5),
    "zstd-19 on the PCM": lambda a: imagecodecs.zstd_encode(a.astype("<i2").tobytes(), level=19),
    "xz-9e on the PCM": lambda a: lzma.compress(a.astype("<i2").tobytes(), preset=9 | lzma.PRESET_EXTREME),
  }
  return report(codecs, points, np.concatenate(points), rows.size, whole_note="(the clips as one stream)")


def report(codecs, points, whole, num_dims, whole_note=""):
  print(f"\n| codec | bpd, one data point at a time | bpd, all at once {whole_note} |")
  print("|---|---|---|")
  results = {}
  for name, fn in codecs.items():
    per_point, at_once = sum(len(fn(p)) for p in points) * 8 / num_dims, len(fn(whole)) * 8 / num_dims
    print(f"| {name} | {per_point:.4f} | {at_once:.4f} |", flush=True)
    results[name] = {"one_at_a_time_bpd": per_point, "all_at_once_bpd": at_once}
  return results


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--text_model", action="append", help="bundle of a text (or bytes) model; repeatable")
  parser.add_argument("--image_model", action="append", help="bundle of an image model; repeatable")
  parser.add_argument("--audio_model", action="append", help="bundle of an audio model; repeatable")
  parser.add_argument("--num_rows", type=int, default=64, help="held-out data points (one file)")
  parser.add_argument("--batch_size", type=int, default=64, help="rows per network call, batched speed")
  parser.add_argument("--batch1_rows", type=int, default=64, help="rows timed at batch 1")
  parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "compression.json"))
  args = parser.parse_args()
  print(f"jax {jax.__version__} on {jax.devices()[0].platform} ({jax.devices()[0].device_kind})")
  models = []
  for name in args.text_model or []:
    bundle = codec.load_bundle(name)
    rows = held_out_rows(bundle, args.num_rows)
    flat = rows.reshape(-1)
    as_file = flat.astype(np.uint8).tobytes() if bundle.kind == "bytes" else data_lib.decode(flat).encode()
    result = codec_rows(bundle, rows, "test.txt", as_file, args)
    models.append(dict(result, model=name, classic=classic_text(rows, bundle.kind)))
  for name in args.image_model or []:
    bundle = codec.load_bundle(name)
    rows = held_out_rows(bundle, args.num_rows)
    out = io.BytesIO()
    np.save(out, rows.astype(np.uint8))
    result = codec_rows(bundle, rows, "test.npy", out.getvalue(), args)
    models.append(dict(result, model=name, classic=classic_images(rows)))
  for name in args.audio_model or []:
    bundle = codec.load_bundle(name)
    rows = held_out_rows(bundle, args.num_rows)
    wav = media.wav_bytes(audio_lib.to_pcm16(rows.reshape(-1)), audio_lib.SAMPLE_RATE)
    result = codec_rows(bundle, rows, "test.wav", wav, args)
    models.append(dict(result, model=name, classic=classic_audio(rows)))
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  summary = {
    "jax": jax.__version__,
    "device": jax.devices()[0].device_kind,
    "cpu_count": os.cpu_count(),
    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    "batch_size": args.batch_size,
    "models": models,
  }
  out.write_text(json.dumps(summary, indent=1))
  print(f"\nwrote {out}")


if __name__ == "__main__":
  main()
