"""Files the modes write for people to look at: sample grids (PNG), sample texts, sample audio (16-bit WAV, waveform
and spectrogram PNG), plan tables and plots; through the path layer, by process 0 only.
Design notes: docs/design.md#outputs
"""

import io

import jax
import numpy as np

from ardm_jax.io import paths


def _is_writer() -> bool:
  return jax.process_index() == 0


def write_bytes(path: str, data: bytes) -> None:
  """Writes a file of bytes (a PNG, a WAV) whole, from process 0 only."""
  if _is_writer():
    paths.write_atomically(paths.resolve(path), data)


def write_text(path: str, text: str) -> None:
  if _is_writer():
    paths.write_atomically(paths.resolve(path), text)


def write_plan_plot(path: str, costs: np.ndarray, num_stages: int, measured=()) -> None:
  """Planned bits/dim against network calls per stage (log x axis) as a PNG, with the bits/dim measured under
  the optimal and the evenly spaced plans (rows of inference.measure_plans) where given."""
  if not _is_writer():
    return
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, ax = plt.subplots(figsize=(5, 3.5))
  ax.plot(np.arange(1, len(costs) + 1), costs, label="planned (tracked losses)")
  for key, label in (("measured", "measured, optimal plan"), ("even", "measured, evenly spaced")):
    if measured:
      budgets = [r["budget"] for r in measured]
      values, errors = [r[key] for r in measured], [r[f"{key}_stderr"] for r in measured]
      ax.errorbar(budgets, values, yerr=errors, marker="o", linestyle="--", capsize=3, label=label)
  ax.set_xscale("log")
  ax.set_xlabel("network calls per stage" if num_stages > 1 else "network calls")
  ax.set_ylabel("bits per dimension")
  ax.grid(True, alpha=0.3)
  if measured:
    ax.legend(fontsize=8)
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=120)
  plt.close(fig)
  paths.write_atomically(paths.resolve(path), buffer.getvalue())


def write_audio_plot(path: str, pcm_NxL: np.ndarray, sample_rate: int = 16000) -> None:
  """Waveform (left) and spectrogram (right) of every clip [N, L] of int16 samples, one row each, as a PNG."""
  if not _is_writer():
    return
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  num_clips, length = pcm_NxL.shape
  fig, axes = plt.subplots(num_clips, 2, figsize=(9, 1.8 * num_clips), squeeze=False)
  seconds = np.arange(length) / sample_rate
  for row, clip in enumerate(np.asarray(pcm_NxL, np.float64) / 32768.0):
    axes[row, 0].plot(seconds, clip, linewidth=0.5)
    axes[row, 0].set_ylim(-1, 1)
    axes[row, 0].set_ylabel(f"#{row}")
    nfft = max(16, min(256, 2 ** int(np.log2(max(length // 4, 16)))))
    axes[row, 1].specgram(clip, NFFT=nfft, Fs=sample_rate, noverlap=nfft // 2, cmap="magma")
  axes[-1, 0].set_xlabel("seconds")
  axes[-1, 1].set_xlabel("seconds (spectrogram, Hz)")
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=100)
  plt.close(fig)
  paths.write_atomically(paths.resolve(path), buffer.getvalue())
