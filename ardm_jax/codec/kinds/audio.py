"""Mono 16-bit PCM WAV files of any length and sample rate ('audio'), cut into the model's clips, the last one
padded with silence; decoding writes the canonical WAV (a 44-byte header) of the same samples and rate."""

import numpy as np

from ardm_jax.codec import container
from ardm_jax.codec.errors import CodecError
from ardm_jax.codec.kinds import base
from ardm_jax.codec.kinds import text
from ardm_jax.data import audio as audio_lib
from ardm_jax.data import media


class Audio(base.Kind):
  name = model_kind = "audio"
  candidates = ("ardm", "stored", "flac", "zstd", "xz")

  def read(self, name, raw, bundle, clean):
    try:
      channels, width, rate, frames = media.read_wav(raw, name)
    except media.MediaError as e:
      raise CodecError(f"{e}; the audio model takes mono 16-bit WAV.") from None
    if not 1 <= rate <= container.MAX_SAMPLE_RATE:
      limit = container.MAX_SAMPLE_RATE
      raise CodecError(f"{name}: a WAV with a sample rate of {rate} Hz (the model's files take 1..{limit}).")
    if (channels, width) != (1, 2):
      raise CodecError(f"{name}: a {channels}-channel {8 * width}-bit WAV; the audio model codes mono 16-bit PCM.")
    pcm = np.frombuffer(frames, "<i2").astype(np.int16)
    return base.Item(self.name, (len(pcm),), None, raw, pcm, None, sample_rate=rate)

  def rows(self, values, bundle):
    return text.layout(audio_lib.to_classes(values), bundle, audio_lib.SILENCE)

  def blank(self, header):
    return np.zeros(header.shape, np.int16)

  def from_rows(self, header, x, bundle):
    return audio_lib.to_pcm16(x.reshape(-1)[: header.shape[0]])

  def restore(self, values, sample_rate=None):
    return media.wav_bytes(values, sample_rate)

  def check_header(self, name, header, bundle):
    if not header.sample_rate:
      raise CodecError(f"{name}: its header gives a sample rate of 0 Hz (crafted or damaged file).")


AUDIO = Audio()
