"""Audio sources: SC09 read from a Speech Commands folder in the real layout (made here, nothing downloads), the
class mapping, padding, splits and per-host rows; the synthesised embedded_audio; WAV round trips."""

import numpy as np
import pytest

from ardm_jax.training import config_schema
from ardm_jax import data as data_lib
from ardm_jax.data import media
from ardm_jax.io import outputs
from ardm_jax.data import audio
from configs import sc09


def _wav(path, pcm, channels=1, width=2, rate=16000):
  import wave

  path.parent.mkdir(parents=True, exist_ok=True)
  with wave.open(str(path), "wb") as w:
    w.setnchannels(channels)
    w.setsampwidth(width)
    w.setframerate(rate)
    w.writeframes(np.asarray(pcm).astype(f"<i{width}").tobytes())


def _speech_commands(root):
  """A tiny Speech Commands v0.02 folder: digit and non-digit words, the two split lists; {relpath: int16}."""
  rng = np.random.default_rng(0)
  clips = {}
  for word, count in [("zero", 3), ("one", 2), ("nine", 3), ("yes", 2), ("_background_noise_", 1)]:
    for i in range(count):
      length = 16000 if i == 0 else 4000 + 1000 * i  # most SC09 clips are 1 s, some shorter
      pcm = rng.integers(-32768, 32768, length).astype(np.int16)
      name = f"{word}/spk{i}_nohash_0.wav"
      _wav(root / name, pcm)
      clips[name] = pcm
  (root / "validation_list.txt").write_text("zero/spk1_nohash_0.wav\nyes/spk0_nohash_0.wav\n")
  (root / "testing_list.txt").write_text("nine/spk2_nohash_0.wav\none/spk0_nohash_0.wav\n")
  return clips


def _sc09(path, eval_split="test"):
  return data_lib.make_dataset({"name": "sc09", "seed": 0, "path": str(path), "eval_split": eval_split})


def test_class_mapping_is_offset_binary_and_inverts():
  pcm = np.array([-32768, -1, 0, 1, 32767], np.int16)
  np.testing.assert_array_equal(audio.to_classes(pcm), [0, 32767, 32768, 32769, 65535])
  np.testing.assert_array_equal(audio.to_pcm16(audio.to_classes(pcm)), pcm)


def test_sc09_reads_the_digits_of_each_split_padded_with_silence(tmp_path):
  clips = _speech_commands(tmp_path)
  ds = _sc09(tmp_path)
  assert ds.event_shape == (16000,) and ds.num_classes == 65536
  train = ["nine/spk0_nohash_0.wav", "nine/spk1_nohash_0.wav", "one/spk1_nohash_0.wav", "zero/spk0_nohash_0.wav"]
  train += ["zero/spk2_nohash_0.wav"]
  test = ["nine/spk2_nohash_0.wav", "one/spk0_nohash_0.wav"]
  for split, names, examples in [("train", train, ds.train_examples), ("test", test, ds.eval_examples)]:
    assert examples.shape == (len(names), 16000), split
    for row, name in zip(examples, names):
      pcm = clips[name]
      np.testing.assert_array_equal(row[: len(pcm)], pcm.astype(np.int32) + 32768)
      np.testing.assert_array_equal(row[len(pcm) :], 32768)  # silence
  valid = _sc09(tmp_path, "valid").eval_examples
  np.testing.assert_array_equal(valid[0, :5000], clips["zero/spk1_nohash_0.wav"].astype(np.int32) + 32768)
  assert len(valid) == 1  # yes/ is not a digit


def test_each_host_reads_its_own_rows_of_the_global_batch(tmp_path):
  _speech_commands(tmp_path)
  ds = _sc09(tmp_path)
  for step in (0, 3):
    whole = ds.train_batch(step, 4)
    assert whole.dtype == np.int32 and whole.max() < 65536
    halves = [ds.train_batch(step, 4, process_index=p, process_count=2) for p in (0, 1)]
    np.testing.assert_array_equal(np.concatenate(halves), whole)


def test_missing_or_wrong_data_names_the_fix(tmp_path):
  with pytest.raises(FileNotFoundError, match="SC09 not found at data.path=.*extract it"):
    _sc09(tmp_path / "nowhere")
  _wav(tmp_path / "zero" / "a_nohash_0.wav", np.zeros(10))
  with pytest.raises(FileNotFoundError, match="validation_list.txt, testing_list.txt not found"):
    _sc09(tmp_path)
  (tmp_path / "validation_list.txt").write_text("")
  (tmp_path / "testing_list.txt").write_text("")
  _wav(tmp_path / "one" / "b_nohash_0.wav", np.zeros(20), channels=2)
  with pytest.raises(ValueError, match="one/b_nohash_0.wav: 2 channel"):
    _sc09(tmp_path)
  config = sc09.get_config()
  with pytest.raises(config_schema.ConfigError, match="config.data.path is not set"):
    config_schema.validate(config)


def test_embedded_audio_is_deterministic_speech_like_and_split():
  ds = data_lib.make_dataset({"name": "embedded_audio", "seed": 0, "clip_len": 400, "eval_split": "test"})
  assert ds.event_shape == (400,) and ds.num_classes == 65536
  assert (ds.num_train_examples, ds.num_eval_examples) == (180, 20)
  again = audio.embedded_audio_clips(400)
  np.testing.assert_array_equal(again[1], ds.eval_examples)
  pcm = audio.to_pcm16(ds.train_examples).astype(np.float64)
  peaks = np.abs(pcm).max(axis=1)
  assert np.all(peaks > 0.25 * 32767) and np.all(peaks <= 0.9 * 32767 + 1)
  # Voiced: most of the energy lies below 4 kHz.
  spectrum = np.abs(np.fft.rfft(pcm, axis=1)) ** 2
  low = spectrum[:, : spectrum.shape[1] // 2].sum(1)
  assert np.all(low > 0.8 * spectrum.sum(1))


def test_wav_files_round_trip(tmp_path):
  pcm = np.array([-32768, -5, 0, 7, 32767], np.int16)
  outputs.write_bytes(str(tmp_path / "a.wav"), media.wav_bytes(pcm))
  np.testing.assert_array_equal(audio.read_wav_pcm16((tmp_path / "a.wav").read_bytes(), "a.wav"), pcm)
  outputs.write_audio_plot(str(tmp_path / "a.png"), np.stack([np.resize(pcm, 64), np.resize(pcm[::-1], 64)]))
  assert (tmp_path / "a.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_audio_quickstart_trains_evaluates_and_samples_wavs(tmp_path):
  import importlib
  import wave

  from ardm_jax.training import inference
  from ardm_jax.training import train

  config = importlib.import_module("configs.quickstart").get_config("audio")
  config.data.clip_len, config.model.ch, config.model.num_blocks = 32, 8, 2  # compiles in seconds
  config.training.num_train_steps, config.training.batch_size = 2, 4
  config.eval.num_passes, config.eval.max_batches, config.eval.batch_size = 1, 1, 4
  config.sample.num_samples, config.sample.budget = 2, 2
  train.train_and_evaluate(config, str(tmp_path))
  assert np.isfinite(inference.evaluate(config, str(tmp_path))["eval_bpd"])
  samples = inference.sample(config, str(tmp_path))
  assert samples.shape == (2, 32) and samples.min() >= 0 and samples.max() <= 65535
  for i in range(2):
    with wave.open(str(tmp_path / f"samples_step2_budget2_{i}.wav"), "rb") as w:
      assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 16000, 32)
      np.testing.assert_array_equal(np.frombuffer(w.readframes(32), "<i2"), audio.to_pcm16(samples[i]))
  assert (tmp_path / "samples_step2_budget2.png").read_bytes()[:4] == b"\x89PNG"
  table = inference.plan_report(config, str(tmp_path))
  assert sorted(table)[-1] == 32 and all(np.isfinite(list(table.values())))
