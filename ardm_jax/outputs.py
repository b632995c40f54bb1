"""Files the modes write for people to look at: sample grids (PNG), sample texts, plan tables and plots.

Everything goes through the path layer (local or gs://) and is written by process 0 only; the other hosts of a
multi-host run compute the same results and write nothing.
"""

import io
import math

import jax
import numpy as np

from ardm_jax import paths


def _is_writer() -> bool:
  return jax.process_index() == 0


def image_grid(images_NxHxWxC: np.ndarray) -> np.ndarray:
  """uint8 [rows*H, cols*W, C] from [N, H, W, C] images, as square as possible, 1-pixel gaps."""
  n, h, w, c = images_NxHxWxC.shape
  cols = math.ceil(math.sqrt(n))
  rows = math.ceil(n / cols)
  grid = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1, c), 255, np.uint8)
  for i, image in enumerate(images_NxHxWxC):
    r, col = divmod(i, cols)
    grid[r * (h + 1) : r * (h + 1) + h, col * (w + 1) : col * (w + 1) + w] = image
  return grid


def write_png(path: str, image_HxWxC: np.ndarray) -> None:
  from PIL import Image  # pylint: disable=g-import-not-at-top

  if not _is_writer():
    return
  buffer = io.BytesIO()
  Image.fromarray(image_HxWxC).save(buffer, format="PNG")
  paths.write_atomically(paths.resolve(path), buffer.getvalue())


def write_text(path: str, text: str) -> None:
  if _is_writer():
    paths.write_atomically(paths.resolve(path), text)


def write_plan_plot(path: str, costs: np.ndarray, num_stages: int) -> None:
  """Planned bits/dim against network calls per stage (log x axis) as a PNG."""
  if not _is_writer():
    return
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, ax = plt.subplots(figsize=(5, 3.5))
  ax.plot(np.arange(1, len(costs) + 1), costs)
  ax.set_xscale("log")
  ax.set_xlabel("network calls per stage" if num_stages > 1 else "network calls")
  ax.set_ylabel("planned bits per dimension")
  ax.grid(True, alpha=0.3)
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=120)
  plt.close(fig)
  paths.write_atomically(paths.resolve(path), buffer.getvalue())
