"""Audio sources: SC09 (16 kHz, 16-bit spoken digits; arXiv 2110.02037, section 5) and the built-in `embedded_audio`
(synthesised vowels, no download). D = samples per clip, K = 65,536; class k = int16 sample + 32768 (offset binary,
32768 = silence), so class order is amplitude order; `to_pcm16` is the inverse. Design notes: docs/design.md#audio
"""

import numpy as np

from ardm_jax.io import paths
from ardm_jax.data import dataset
from ardm_jax.data import media

NUM_CLASSES = 65536
SAMPLE_RATE = 16000
SC09_LENGTH = 16000
SC09_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SC09_LISTS = {"valid": "validation_list.txt", "test": "testing_list.txt"}
SILENCE = 32768
EMBEDDED_CLIPS = 200
EMBEDDED_TEST_EVERY = 10
# (F1, F2, F3) in Hz of a few vowels (Peterson and Barney 1952, adult male averages).
_VOWEL_FORMANTS = np.array(
  [[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240], [530, 1840, 2480], [570, 840, 2410], [660, 1720, 2410]],
  np.float64,
)


def to_classes(pcm_int16: np.ndarray) -> np.ndarray:
  """uint16 classes k = sample + 32768 of int16 samples (offset binary)."""
  return (np.asarray(pcm_int16, np.int32) + 32768).astype(np.uint16)


def to_pcm16(classes: np.ndarray) -> np.ndarray:
  """int16 samples of classes 0..65535 (the inverse of to_classes)."""
  return (np.asarray(classes, np.int32) - 32768).astype(np.int16)


def read_wav_pcm16(raw: bytes, name: str) -> np.ndarray:
  """int16 [n] samples of a mono 16-bit 16 kHz WAV file's bytes; ValueError naming `name` otherwise."""
  channels, width, rate, frames = media.read_wav(raw, name)
  if (channels, width, rate) != (1, 2, SAMPLE_RATE):
    raise ValueError(
      f"{name}: {channels} channel(s), {8 * width} bit, {rate} Hz; SC09 clips are mono 16-bit {SAMPLE_RATE} Hz"
    )
  return np.frombuffer(frames, "<i2")


def pad_clip(pcm_int16: np.ndarray, length: int) -> np.ndarray:
  """uint16 [length] classes of a clip, padded with silence at the end (or cut) to `length` samples."""
  out = np.full((length,), SILENCE, np.uint16)
  clip = to_classes(pcm_int16[:length])
  out[: len(clip)] = clip
  return out


def sc09_split_files(root, split: str) -> list:
  """The digit clips of one split ('train', 'valid', 'test') as paths relative to `root`, sorted."""
  listed = {
    name: set((root / filename).read_text().split()) if (root / filename).exists() else None
    for name, filename in SC09_LISTS.items()
  }
  missing = [SC09_LISTS[name] for name, files in listed.items() if files is None]
  if missing:
    raise paths.InputNotFoundError(
      f"SC09: {', '.join(missing)} not found in data.path={str(root)!r}; point data.path at the extracted "
      f"Speech Commands archive (speech_commands_v0.02.tar.gz, folders zero/ .. nine/ and the two split lists)."
    )
  files = sorted(
    f"{digit}/{p.name}" for digit in SC09_DIGITS if (root / digit).exists() for p in (root / digit).glob("*.wav")
  )
  if split == "train":
    return [f for f in files if f not in listed["valid"] and f not in listed["test"]]
  return [f for f in files if f in listed[split]]


def load_sc09(path: str, split: str) -> np.ndarray:
  """All clips of an SC09 split as classes uint16 [N, 16000].

  Raises:
    FileNotFoundError: no folder or no split lists at `path` (one line saying how to get the data).
    ValueError: a split without clips, or a clip that is not 16-bit mono 16 kHz.
  """
  root = paths.resolve(path)
  if not root.is_dir():
    raise paths.InputNotFoundError(
      f"SC09 not found at data.path={path!r}: download Speech Commands v0.02 (speech_commands_v0.02.tar.gz, "
      f"2.3 GB; arXiv 1804.03209), extract it (tar xzf) and set data.path to the folder with zero/ .. nine/."
    )
  files = sc09_split_files(root, split)
  if not files:
    raise ValueError(f"SC09 {split!r} split at data.path={path!r} has no clips of the digits zero..nine")
  return np.stack([pad_clip(read_wav_pcm16((root / f).read_bytes(), f), SC09_LENGTH) for f in files])


def _resonate(source: np.ndarray, formants_hz: np.ndarray) -> np.ndarray:
  """The source through one two-pole resonator per formant (bandwidth 80 Hz), summed with falling weights."""
  from scipy import signal  # pylint: disable=import-outside-toplevel

  radius = np.exp(-np.pi * 80.0 / SAMPLE_RATE)
  out = np.zeros_like(source)
  for i, frequency in enumerate(formants_hz):
    theta = 2 * np.pi * frequency / SAMPLE_RATE
    out += signal.lfilter([1.0], [1.0, -2 * radius * np.cos(theta), radius**2], source) / (i + 1)
  return out


def synthesised_clip(rng: np.random.Generator, length: int) -> np.ndarray:
  """float64 [length] in [-1, 1]: a gliding-pitch voice crossfading between two vowels (module docstring)."""
  t = np.arange(length) / SAMPLE_RATE
  pitch = rng.uniform(90, 250) * np.linspace(1.0, rng.uniform(0.7, 1.3), length)
  source = np.maximum(0.0, np.sin(2 * np.pi * np.cumsum(pitch / SAMPLE_RATE))) ** 3 - 0.2  # glottal-like pulses
  first, second = _VOWEL_FORMANTS[rng.choice(len(_VOWEL_FORMANTS), 2)]
  mix = np.clip(np.linspace(-0.5, 1.5, length), 0, 1)
  voice = (1 - mix) * _resonate(source, first) + mix * _resonate(source, second)
  duration = max(t[-1], 1e-9)
  envelope = np.clip(np.minimum(t, duration - t) / min(0.02, duration / 4 + 1e-9), 1e-3, 1.0)
  voice = voice * envelope + 0.01 * rng.standard_normal(length)
  return voice / max(1e-9, np.abs(voice).max()) * rng.uniform(0.3, 0.9)


def embedded_audio_clips(clip_len: int) -> tuple[np.ndarray, np.ndarray]:
  """(train, test) classes uint16 [N, clip_len] of the synthesised clips."""
  rng = np.random.default_rng(0)
  clips = np.stack([synthesised_clip(rng, clip_len) for _ in range(EMBEDDED_CLIPS)])
  classes = to_classes(np.round(clips * 32767).astype(np.int16))
  is_test = np.arange(EMBEDDED_CLIPS) % EMBEDDED_TEST_EVERY == 0
  return classes[~is_test], classes[is_test]


def audio_dataset(name: str, train: np.ndarray, test: np.ndarray, *, seed: int) -> dataset.Dataset:
  """The step-indexed dataset of classes train [N, L] and test [M, L] (uint16)."""
  return dataset.Dataset(
    name=name,
    event_shape=tuple(test.shape[1:]),
    num_classes=NUM_CLASSES,
    train_examples=train,
    eval_examples=test,
    seed=seed,
  )
