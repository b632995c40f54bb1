"""16-bit WAV files in, the same samples out: the audio model's codec (arXiv 2110.02037, section 6, on the SC09
model of section 5) and its classic rivals (FLAC level 8, zstd and xz on the file).

The bundle holds a tiny untrained DiffWave with a logistic-mixture head over the 65,536 classes: the coder is
lossless for any network, and codes each 16-bit sample as two byte digits of the mixture (coder._digits), so no
65,536-wide table is built.
"""

import io
import struct
import wave

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ardm_jax import codec
from ardm_jax.data import kinds as data_kinds
from ardm_jax.codec import kinds
from ardm_jax.codec import container
from ardm_jax.training import experiment
from ardm_jax.data import media
from configs import quickstart

CLIP = 16  # samples per data point of the tiny bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
  config = quickstart.get_config("audio")
  config.data.clip_len = CLIP
  config.model.ch, config.model.num_blocks, config.objective.num_mixtures = 8, 2, 3
  num_classes = 65536
  model = experiment.build_model(config, num_classes, None)
  x = jnp.zeros((1, CLIP), jnp.int32)
  params = jax.jit(model.init)(jax.random.key(0), x, x > 0, jnp.zeros((1,), jnp.int32))["params"]
  meta = {
    "bundle_version": 1,
    "kind": data_kinds.of_data(config.data),
    "event_shape": [CLIP],
    "num_classes": num_classes,
    "order": [np.random.RandomState(0).permutation(CLIP).tolist()],
    "order_bpd": [0.0],
    "plans": {"3": {"starts": [[0, 5, 11]], "planned_bpd": 0.0}},
    "unseen_steps": 0,
    "train_step": 0,
    "batch_size": 2,
  }
  path = tmp_path_factory.mktemp("audio")
  codec.write_bundle(path, config, params, meta)
  return codec.load_bundle(path)


def _speech_like(num_samples, seed=0):
  """int16 [n]: a decaying two-tone burst with noise, spanning most of the 16-bit range."""
  t = np.arange(num_samples)
  rs = np.random.RandomState(seed)
  wave_ = 20000 * np.sin(0.07 * t) * np.exp(-t / 400) + 3000 * np.sin(0.31 * t) + rs.normal(0, 200, num_samples)
  pcm = np.clip(wave_, -32768, 32767).astype(np.int16)
  pcm[:2] = [-32768, 32767]  # the open end bins of the mixture
  return pcm


def _wav(pcm, rate=16000, channels=1, width=2):
  out = io.BytesIO()
  with wave.open(out, "wb") as w:
    w.setnchannels(channels)
    w.setsampwidth(width)
    w.setframerate(rate)
    w.writeframes(np.asarray(pcm).tobytes())
  return out.getvalue()


def _samples(wav_bytes):
  with wave.open(io.BytesIO(wav_bytes), "rb") as w:
    return w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), "<i2")


def _round_trip(bundle, files, method="ardm"):
  encoded = codec.encode_files(bundle, files, 3, method=method)
  decoded = codec.decode_files(bundle, {n + ".ardm": e.blob for n, e in encoded.items()})
  return encoded, {n[: -len(".ardm")]: d for n, d in decoded.items()}


def test_wavs_of_any_length_and_rate_round_trip_sample_exact(bundle):
  """Cut into 16-sample clips (the last padded with silence, not coded); length and rate come from the header."""
  files = {
    "empty.wav": _wav(np.zeros(0, np.int16)),
    "short.wav": _wav(_speech_like(5)),
    "odd.wav": _wav(_speech_like(37, 1), rate=8000),
    "clips.wav": _wav(_speech_like(4 * CLIP, 2), rate=44100),
  }
  encoded, decoded = _round_trip(bundle, files)
  assert decoded == files  # canonical WAVs in, the same bytes out
  for name, e in encoded.items():
    header, payload = container.unpack(name, e.blob)
    rate, pcm = _samples(files[name])
    assert (header.kind, header.shape, header.sample_rate) == ("audio", (len(pcm),), rate)
    assert len(container.pack(header, b"")) <= 32  # the header and CRC: no per-file table, no JSON
    assert (len(payload) == 0) == (len(pcm) == 0)


def test_auto_keeps_the_smallest_and_every_audio_method_restores_the_samples(bundle):
  pcm = _speech_like(3 * CLIP + 3, 3)
  files = {"a.wav": _wav(pcm)}
  (auto,) = codec.encode_files(bundle, files, 3).values()
  assert set(auto.sizes) == set(kinds.KINDS["audio"].candidates) and len(auto.blob) == min(auto.sizes.values())
  for method in kinds.KINDS["audio"].candidates:
    encoded, decoded = _round_trip(bundle, files, method)
    assert container.unpack("a", encoded["a.wav"].blob)[0].method == method
    assert decoded == files


def test_a_wav_with_extra_chunks_goes_to_the_byte_methods_which_keep_its_bytes(bundle):
  """The model would restore the canonical WAV of its samples, not the file: lossless means its own bytes."""
  pcm = _speech_like(20, 4)
  canonical = _wav(pcm)
  chunk = b"LIST" + struct.pack("<I", 10) + b"INFOtitle\0"
  extra = canonical[:4] + struct.pack("<I", len(canonical) - 8 + len(chunk)) + canonical[8:] + chunk
  assert _samples(extra)[1].tolist() == pcm.tolist()
  with pytest.raises(codec.CodecError, match="extra chunks"):
    codec.encode_files(bundle, {"x.wav": extra}, 3, method="ardm")
  (auto,) = codec.encode_files(bundle, {"x.wav": extra}, 3).values()
  assert "extra chunks" in auto.note and container.unpack("x", auto.blob)[0].kind == "file"
  for method in ("auto", "stored", "zstd"):
    assert _round_trip(bundle, {"x.wav": extra}, method)[1] == {"x.wav": extra}
  assert _round_trip(bundle, {"x.wav": canonical})[1] == {"x.wav": canonical}  # The canonical file: the model.


@pytest.mark.parametrize(
  "wav, why",
  [
    (_wav(np.zeros(40, np.int16), channels=2), "2-channel 16-bit"),
    (_wav(np.zeros(20, np.uint8), width=1), "1-channel 8-bit"),
    (b"RIFF\x10\x00\x00\x00WAVEnot a wav", "not a readable PCM WAV"),
    (_wav(np.zeros(20, np.int16))[:24] + b"\0\0\0\0" + _wav(np.zeros(20, np.int16))[28:], "sample rate of 0 Hz"),
  ],
)
def test_wavs_the_model_cannot_code_go_to_the_classic_codecs_byte_exact(bundle, wav, why):
  (auto,) = codec.encode_files(bundle, {"s.wav": wav}, 3).values()
  assert why in auto.note and container.unpack("s", auto.blob)[0].kind == "file"
  assert _round_trip(bundle, {"s.wav": wav}, "auto")[1] == {"s.wav": wav}
  with pytest.raises(codec.CodecError, match=why):
    codec.encode_files(bundle, {"s.wav": wav}, 3, method="ardm")


def test_flac_is_the_real_encoder_at_its_highest_level(bundle):
  """The flac payload is a FLAC stream any decoder reads (soundfile), no bigger than FLAC's default level's."""
  import soundfile  # pylint: disable=g-import-not-at-top

  pcm = _speech_like(4000, 5)
  header, payload = container.unpack(
    "f", codec.encode_files(bundle, {"f.wav": _wav(pcm)}, 3, method="flac")["f.wav"].blob
  )
  assert payload[:4] == b"fLaC"
  read, rate = soundfile.read(io.BytesIO(payload), dtype="int16")
  assert rate == 16000 and read.tolist() == pcm.tolist()
  default = io.BytesIO()
  soundfile.write(default, pcm, 16000, format="FLAC", subtype="PCM_16")
  assert len(payload) <= len(default.getvalue())


def test_crafted_audio_headers_and_payloads_are_refused_in_one_line(bundle):
  pcm = _speech_like(50, 6)
  blob = codec.encode_files(bundle, {"f.wav": _wav(pcm)}, 3, method="flac")["f.wav"].blob
  header, payload = container.unpack("f", blob)
  crafted = {
    "samples": (container.pack(header.__class__(**{**header.__dict__, "shape": (51,)}), payload), "corrupted"),
    "rate": (container.pack(header.__class__(**{**header.__dict__, "sample_rate": 8000}), payload), "corrupted"),
    "payload": (container.pack(header, payload[:-7]), "corrupted"),
    "kind": (container.pack(header.__class__(**{**header.__dict__, "kind": "bytes"}), payload), "does not code"),
  }
  for name, (blob, message) in crafted.items():
    with pytest.raises(codec.CodecError, match=message):
      codec.decode_files(bundle, {name + ".ardm": blob})
  zero_rate = container.pack(header.__class__(**{**header.__dict__, "sample_rate": 0}), payload)
  with pytest.raises(codec.CodecError, match="sample rate of 0 Hz"):
    codec.decode_files(bundle, {"zero.ardm": zero_rate})
  too_long = container.pack(header.__class__(**{**header.__dict__, "shape": (container.MAX_VALUES + 1,)}), b"")
  with pytest.raises(codec.CodecError, match="above the limit"):
    codec.decode_files(bundle, {"long.ardm": too_long})
  # The canonical WAV writer is what every audio kind restores.
  assert media.wav_bytes(pcm, 16000) == _wav(pcm)
