"""What a user gets on whole files from outside the training data: every candidate of `encode --method=auto`.

For each file, the size of the compressed file (header included) under the model ('ardm') and under every
classic codec of its kind (text and bytes: stored, zstd-19, brotli-11, xz-9e; images: the PNG's own bytes, WebP
lossless, JPEG XL lossless), zlib-9 for reference, and the method that `auto` keeps, all in bits per dimension
(per byte of text; per sub-pixel of images). It also codes one CIFAR-shaped (32x32x3) image as one file with
the image model, header included, next to the paper's 2.71-2.76 bpd (arXiv 2110.02037, Table 4).

Default files (all ship with this project's dependencies, none is training data of the quickstart models):
  text and bytes models: the licence files of numpy, scipy, jax, flax, optax, pillow and matplotlib (a text
    model codes them through its training cleaner, and every candidate then codes the cleaned text);
  image models: matplotlib's sample photo (grace_hopper.jpg) and two graphics (logo2.png,
    Minduka_Present_Blue_Pack.png), converted to RGB PNG (alpha composited on white) and scaled to 96 pixels
    wide; the CIFAR-shaped image is a 32x32 crop of the photo scaled to 64 pixels wide.

Usage: python benchmarks/whole_files.py [--text_model=MODEL]... [--image_model=MODEL]... [--budget=20]
[--files=GLOB]... [--no_default_files]. Writes benchmarks/results/whole_files.json.
"""

import argparse
import glob
import json
import os
import pathlib
import sys
import sysconfig
import time
import zlib

# Run from a checkout, no install (as the other scripts here).
sys.path.pop(0)
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
# pylint: disable=wrong-import-position
import jax
import numpy as np
from PIL import Image

from ardm_jax import codec
from ardm_jax.codec import kinds
from ardm_jax.codec import container
from ardm_jax.data import media

LICENCE_PACKAGES = ("numpy", "scipy", "jax", "flax", "optax", "pillow", "matplotlib")
PAPER_CIFAR10_BPD = "2.71-2.76"


def licence_files() -> dict[str, bytes]:
  """name -> content of the first licence file of each package in LICENCE_PACKAGES that is installed."""
  site = sysconfig.get_paths()["purelib"]
  files = {}
  for package in LICENCE_PACKAGES:
    found = sorted(glob.glob(os.path.join(site, f"{package}-*.dist-info", "**", "LICEN[CS]E*"), recursive=True))
    found = [f for f in found if 1000 <= os.path.getsize(f) <= 40000]
    if found:
      files[f"{package}/{os.path.basename(found[0])}"] = pathlib.Path(found[0]).read_bytes()
  return files


def _png(image: Image.Image) -> bytes:
  return media.png_bytes(np.asarray(image), optimize=True)


def _rgb(path: str, width: int) -> Image.Image:
  image = Image.open(path)
  if image.mode in ("RGBA", "LA", "P"):
    image = image.convert("RGBA")
    background = Image.new("RGBA", image.size, (255, 255, 255, 255))
    image = Image.alpha_composite(background, image)
  image = image.convert("RGB")
  height = max(1, round(image.height * width / image.width))
  return image.resize((width, height), Image.LANCZOS)


def sample_images() -> tuple[dict[str, bytes], bytes]:
  """(name -> RGB PNG, the CIFAR-shaped 32x32 PNG)."""
  import matplotlib  # pylint: disable=g-import-not-at-top

  data = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "sample_data")
  names = ("grace_hopper.jpg", "logo2.png", "Minduka_Present_Blue_Pack.png")
  files = {os.path.splitext(n)[0] + ".png": _png(_rgb(os.path.join(data, n), 96)) for n in names}
  photo = _rgb(os.path.join(data, names[0]), 64)
  cifar_shaped = photo.crop((16, 8, 48, 40))
  return files, _png(cifar_shaped)


def candidates(bundle, files: dict[str, bytes], budget: int, clean: bool):
  encoded = codec.encode_files(bundle, files, budget, clean=clean)
  rows = []
  for name, result in encoded.items():
    dims = result.num_dims
    bpd = {m: 8 * n / dims for m, n in result.sizes.items()}
    item = codec.prepare(name, files[name], bundle, clean=clean)
    reference = item.file_bytes if item.kind in ("text", "bytes", "file") else np.asarray(item.values).tobytes()
    zlib_bytes = len(zlib.compress(reference, 9))  # text: the cleaned text; images: the raw pixels
    rows.append(
      dict(
        file=name,
        original_bytes=len(files[name]),
        dims=dims,
        bpd=bpd,
        zlib9_bpd=8 * zlib_bytes / dims,
        auto=result.method,
        auto_bytes=len(result.blob),
        header_bytes=len(result.blob) - len(container.unpack(name, result.blob)[1]),
      )
    )
  return rows


def print_table(title, rows, methods):
  print(f"\n### {title}\n")
  print("| file | bytes | " + " | ".join(methods) + " | zlib-9 | auto keeps |")
  print("|---|---|" + "---|" * len(methods) + "---|---|")
  for r in rows:
    cells = " | ".join(f"{r['bpd'][m]:.2f}" if m in r["bpd"] else "-" for m in methods)
    print(f"| {r['file']} | {r['original_bytes']} | {cells} | {r['zlib9_bpd']:.2f} | {r['auto']} |", flush=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--text_model", action="append", default=[], help="bundle of a text or bytes model")
  parser.add_argument("--image_model", action="append", default=[], help="bundle of an image model")
  parser.add_argument("--budget", type=int, default=20, help="network calls per stage (one of the bundle's)")
  parser.add_argument("--files", action="append", default=[], help="glob of other files to code (repeatable)")
  parser.add_argument("--no_default_files", action="store_true", help="code only the --files")
  parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "results" / "whole_files.json"))
  args = parser.parse_args()
  print(f"jax {jax.__version__} on {jax.devices()[0].platform} ({jax.devices()[0].device_kind})")
  extra = {p: pathlib.Path(p).read_bytes() for pattern in args.files for p in sorted(glob.glob(pattern))}
  results = []
  for name in args.text_model:
    bundle = codec.load_bundle(name)
    files = dict({} if args.no_default_files else licence_files(), **extra)
    rows = candidates(bundle, files, args.budget, clean=bundle.kind == "text")
    print_table(f"{bundle.kind} model {name} (budget {args.budget})", rows, kinds.KINDS["text"].candidates)
    results.append(dict(model=name, kind=bundle.kind, files=rows))
  for name in args.image_model:
    bundle = codec.load_bundle(name)
    files, cifar_shaped = sample_images()
    rows = candidates(bundle, dict({} if args.no_default_files else files, **extra), args.budget, clean=False)
    print_table(f"image model {name} (budget {args.budget})", rows, kinds.KINDS["image_rgb"].candidates)
    single = codec.encode_files(bundle, {"cifar32.png": cifar_shaped}, args.budget, method="ardm")["cifar32.png"]
    single_bpd = 8 * len(single.blob) / single.num_dims
    header = len(single.blob) - len(container.unpack("c", single.blob)[1])
    print(
      f"\nOne CIFAR-shaped 32x32x3 image as one file (header {header} bytes included): {single_bpd:.2f} bpd "
      f"with this model; the paper's CIFAR-10 OA/upscale ARDMs: {PAPER_CIFAR10_BPD} bpd per image."
    )
    results.append(dict(model=name, kind="image", files=rows, cifar_shaped_bpd=single_bpd, header_bytes=header))
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  summary = {
    "jax": jax.__version__,
    "device": jax.devices()[0].device_kind,
    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    "budget": args.budget,
    "models": results,
  }
  out.write_text(json.dumps(summary, indent=1))
  print(f"\nwrote {out}")


if __name__ == "__main__":
  main()
