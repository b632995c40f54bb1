"""Bad input, one test per case: each fails early with one message saying what is wrong and how to fix it."""

import importlib
import os
import subprocess
import sys
import zipfile

import jax
import ml_collections
import numpy as np
import pytest

import fake_data
from ardm_jax.training import checkpointing
from ardm_jax.training import config_schema
from ardm_jax.training import experiment
from ardm_jax.training import inference
from ardm_jax.training import train
from configs import cifar10
from configs import common
from configs import quickstart
from configs import text8

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(name="text8_zip", scope="module")
def fixture_text8_zip(tmp_path_factory):
  path = tmp_path_factory.mktemp("data") / "text8.zip"
  fake_data.write_text8_zip(path, fake_data.random_text(40_000, seed=1))
  return str(path)


def text8_config(text8_zip):
  config = text8.get_config("local")
  config.data.path = text8_zip
  return config


def run_main(*flags, workdir="/nonexistent/never_created"):
  cmd = [sys.executable, os.path.join(REPO, "main.py"), f"--workdir={workdir}", *flags]
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1")
  return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


LOCAL = "--config=" + os.path.join(REPO, "configs/text8.py:local")


@pytest.mark.slow
@pytest.mark.parametrize(
  "flags, message",
  [
    pytest.param(
      [LOCAL, "--config.training.bogus=1"],
      "Unknown config key 'bogus' in --config.training.bogus=1: the config has no such field",
      id="cli_unknown_key",
    ),
    pytest.param(
      [LOCAL, "--config.training.batch_size=abc"],
      "Bad command line: flag --config.training.batch_size=abc: invalid literal for int() with base 10: "
      "'abc'. Fix the flag",
      id="cli_bad_type",
    ),
    pytest.param(
      ["--config=" + os.path.join(REPO, "configs/text8.py:huge")],
      "Unknown config variant 'huge'; choose one of ['', 'local'].",
      id="cli_unknown_variant",
    ),
    pytest.param(
      ["--config=" + os.path.join(REPO, "configs/nope.py")],
      "No such file or directory: '" + os.path.join(REPO, "configs/nope.py"),
      id="cli_missing_config_file",
    ),
    pytest.param(
      [LOCAL, "--mode=train,evaluate"],
      "Bad command line: unknown --mode ['evaluate']; choose from ['train', 'eval', 'sample', 'plan', 'compress']",
      id="cli_unknown_mode",
    ),
    pytest.param(
      [LOCAL, "--config.sample.budget=0"],
      "Error (ConfigError): config.sample.budget = 0 network calls per stage, but it is required and must "
      "lie in 1..D with D = 32",
      id="cli_run_error_is_one_line",
    ),
  ],
)
def test_command_line_mistakes(flags, message, text8_zip):
  run = run_main(*flags, *([f"--config.data.path={text8_zip}"] if flags[0] == LOCAL else []))
  assert run.returncode == 1
  assert message in run.stderr, run.stderr[-2000:]
  assert "Traceback" not in run.stderr, run.stderr[-2000:]
  assert not os.path.exists("/nonexistent/never_created")


@pytest.mark.parametrize(
  "overrides, error, message",
  [
    pytest.param(
      {"model.widht": 64},
      experiment.ConfigError,
      "config.model.widht is not a key of model.name='transformer'; remove or rename it (its keys: "
      "name, num_heads, dropout, dtype, attention, remat, num_layers, width, mlp_dim, arch).",
      id="mistyped_model_field",
    ),
    pytest.param(
      {"data.sequence_length": 64},
      experiment.ConfigError,
      "config.data.sequence_length is not a key of data.name='text8'; remove or rename it (its keys: "
      "name, seed, seq_len, path, eval_split).",
      id="mistyped_data_field",
    ),
    pytest.param(
      {"data.name": "mnist"},
      experiment.ConfigError,
      "config.data.name = 'mnist' is not one of ['cifar10', 'embedded_images', 'embedded_photos', 'text8', "
      "'embedded_text', 'embedded_bytes', 'sc09', 'embedded_audio', 'files']; pick one with --config.data.name=",
      id="unknown_dataset",
    ),
    pytest.param(
      {"model.name": "resnet"},
      experiment.ConfigError,
      "config.model.name = 'resnet' is not one of ['unet', 'transformer', 'diffwave']; pick one with "
      "--config.model.name=",
      id="unknown_model",
    ),
    pytest.param(
      {"objective.kind": "ar"},
      experiment.ConfigError,
      "config.objective.kind = 'ar' is not one of ['oa', 'upscale']",
      id="unknown_objective",
    ),
    pytest.param(
      {"optimizer.name": "sgd"},
      experiment.ConfigError,
      "config.optimizer.name = 'sgd' is not one of ['adam', 'adamw']",
      id="unknown_optimizer",
    ),
    pytest.param(
      {"training.on_nonfinite": "ignore"},
      experiment.ConfigError,
      "config.training.on_nonfinite = 'ignore' is not one of ['stop', 'skip']",
      id="unknown_on_nonfinite",
    ),
    pytest.param(
      {"sample.budget": 0},
      experiment.ConfigError,
      "config.sample.budget = 0 network calls per stage, but it is required and must lie in 1..D with "
      "D = 32 variables per data point (D: one call per variable); set it with --config.sample.budget=",
      id="budget_zero",
    ),
    pytest.param(
      {"sample.budget": 33},
      experiment.ConfigError,
      "config.sample.budget = 33 network calls per stage, but it is required and must lie in 1..D with D = 32",
      id="budget_above_D",
    ),
    pytest.param(
      {"sample.budget": None},
      experiment.ConfigError,
      "config.sample.budget = None network calls per stage, but it is required",
      id="budget_unset",
    ),
    pytest.param(
      {"compress.budget": 40},
      experiment.ConfigError,
      "config.compress.budget = 40 network calls per stage, but it is required and must lie in 1..D with D = 32",
      id="compress_budget_above_D",
    ),
    pytest.param(
      {"objective": lambda c: common.upscale_objective(c.objective, "digits", "direct", branching=1)},
      experiment.ConfigError,
      "config.objective.branching = 1, but it must be >= 2 (each upscale stage chooses among b >= 2 "
      "refinements); fix it with --config.objective.branching=",
      id="upscale_branching_1",
    ),
    pytest.param(
      {"optimizer.learning_rate": -1e-3},
      experiment.ConfigError,
      "config.optimizer.learning_rate = -0.001, but it must be >= 0; fix it with --config.optimizer.learning_rate=",
      id="negative_learning_rate",
    ),
    pytest.param(
      {"optimizer.ema_decay": 1.0},
      experiment.ConfigError,
      "config.optimizer.ema_decay = 1.0, but it must be in [0, 1); fix it with --config.optimizer.ema_decay=",
      id="ema_decay_1",
    ),
    pytest.param(
      {"training.num_train_steps": 0},
      experiment.ConfigError,
      "config.training.num_train_steps = 0, but it must be > 0",
      id="zero_train_steps",
    ),
    pytest.param(
      {"objective.absorbing_value": 28},
      experiment.ConfigError,
      "config.objective.absorbing_value = 28 is outside 0..27 for 27-class data; use 27",
      id="absorbing_28",
    ),
    pytest.param(
      {"data.seq_len": 0},
      experiment.ConfigError,
      "config.data.seq_len = 0, but it must be in [1, 1000]; fix it with --config.data.seq_len=",
      id="seq_len_0",
    ),
    pytest.param(
      {"model.num_heads": 3},
      experiment.ConfigError,
      "config.model.num_heads = 3 does not divide config.model.width = 64 (each attention head gets "
      "width / num_heads features); fix one of them with --config.model.num_heads=... or "
      "--config.model.width=...",
      id="heads_not_dividing_width",
    ),
    pytest.param(
      {"model.width": -64},
      experiment.ConfigError,
      "config.model.width = -64, but it must be > 0; fix it with --config.model.width=",
      id="negative_width",
    ),
    pytest.param(
      {"model.num_layers": 0},
      experiment.ConfigError,
      "config.model.num_layers = 0, but it must be > 0; fix it with --config.model.num_layers=",
      id="zero_layers",
    ),
    pytest.param(
      {"model.dropout": 1.5},
      experiment.ConfigError,
      "config.model.dropout = 1.5, but it must be in [0, 1); fix it with --config.model.dropout=",
      id="dropout_1.5",
    ),
    pytest.param(
      {"model.dtype": "float16"},
      experiment.ConfigError,
      "config.model.dtype = 'float16' is not one of ['float32', 'bfloat16']",
      id="unknown_dtype",
    ),
    pytest.param(
      {"training": lambda c: ml_collections.ConfigDict({**c.training.to_dict(), "batch_size": 16.0})},
      experiment.ConfigError,
      "config.training.batch_size = 16.0 (float), but it must be an integer",
      id="float_batch_size",
    ),
    pytest.param(
      {"data.augment": True},
      experiment.ConfigError,
      "config.data.augment is not used with data.name='text8' (only with data.name='cifar10', "
      "data.name='embedded_images', data.name='embedded_photos', data.name='files'); remove it from the config.",
      id="image_key_on_text",
    ),
    pytest.param(
      {"data.eval_split": "train"},
      experiment.ConfigError,
      "config.data.eval_split = 'train' is not one of ['test', 'valid']",
      id="eval_split_train",
    ),
    pytest.param(
      {"data.path": None},
      experiment.ConfigError,
      "config.data.path is not set; it is required and must be the path of text8.zip "
      "(http://mattmahoney.net/dc/text8.zip) (--config.data.path=...).",
      id="text8_path_unset",
    ),
    pytest.param(
      {"objective.branching": 4},
      experiment.ConfigError,
      "config.objective.branching is not used with objective.kind='oa' (only with "
      "objective.kind='upscale'); remove it from the config.",
      id="upscale_key_on_oa",
    ),
    pytest.param(
      {"objective.kind": "upscale"},
      experiment.ConfigError,
      "config.objective.transitions is missing for objective.kind='upscale'; add it to the config file",
      id="upscale_kind_on_oa_config",
    ),
    pytest.param(
      {"objective": lambda c: common.upscale_objective(c.objective, "text8", "data"), "objective.absorbing_value": 27},
      experiment.ConfigError,
      "config.objective.absorbing_value is not used with objective.kind='upscale' and "
      "objective.transitions='text8' (only with objective.kind='oa'); remove it from the config.",
      id="oa_key_on_upscale",
    ),
    pytest.param(
      {"objective": lambda c: common.upscale_objective(c.objective, "text8", "data"), "objective.branching": 4},
      experiment.ConfigError,
      "config.objective.branching is not used with objective.kind='upscale' and "
      "objective.transitions='text8' (only with objective.transitions='digits')",
      id="branching_on_text8",
    ),
  ],
)
def test_bad_config_values(overrides, error, message, text8_zip):
  config = text8_config(text8_zip)
  for dotted, value in overrides.items():
    if callable(value):  # A whole section, built from the config.
      config[dotted] = value(config)
    else:
      section, key = dotted.split(".")
      config[section][key] = value
  with pytest.raises(error) as info:
    experiment.build_experiment(config)
  assert message in str(info.value)


@pytest.mark.parametrize(
  "name, arg",
  [(name, arg) for name in ("cifar10", "cifar10_upscale", "text8", "text8_upscale") for arg in ("", "local")]
  + [("quickstart", ""), ("quickstart", "images")],
)
def test_every_shipped_config_is_valid(name, arg):
  config = importlib.import_module(f"configs.{name}").get_config(arg)
  if config.data.name == "text8":
    config.data.path = "text8.zip"  # Required; each run passes its own.
  experiment.validate_config(config)


def test_schema_and_experiment_know_the_same_models():
  assert set(config_schema.MODEL.options) == set(experiment.MODELS)


@pytest.mark.parametrize(
  "overrides, message",
  [
    pytest.param({"ch": 30}, "config.model.ch = 30, but it must be a positive multiple of 4", id="unet_ch_30"),
    pytest.param({"ch": -32}, "config.model.ch = -32, but it must be a positive multiple of 4", id="unet_negative_ch"),
    pytest.param(
      {"num_heads": 3},
      "config.model.num_heads = 3 does not divide config.model.ch = 32",
      id="unet_heads_not_dividing_ch",
    ),
    pytest.param({"num_res_blocks": 0}, "config.model.num_res_blocks = 0, but it must be > 0", id="unet_no_blocks"),
  ],
)
def test_bad_unet_values(overrides, message):
  config = cifar10.get_config("local")  # Checked before any data is read: no CIFAR-10 needed.
  config.model.update(overrides)
  with pytest.raises(experiment.ConfigError) as info:
    experiment.validate_config(config)
  assert message in str(info.value)


@pytest.mark.parametrize(
  "fields, message",
  [
    pytest.param(
      {"name": "embedded_text", "seq_len": 1001},
      "config.data.seq_len = 1001, but it must be in [1, 1000]",
      id="seq_len_above_chunk",
    ),
    pytest.param(
      {"name": "embedded_text", "eval_split": "valid"},
      "config.data.eval_split = 'valid' is not one of ['test']",
      id="embedded_text_has_no_valid_split",
    ),
    pytest.param(
      {"name": "embedded_images", "augment": 1},
      "config.data.augment = 1 (int), but it must be True or False",
      id="augment_not_bool",
    ),
    pytest.param(
      {"name": "embedded_images", "downscale": 0}, "config.data.downscale = 0, but it must be > 0", id="downscale_0"
    ),
    pytest.param(
      {"name": "cifar10", "download": "yes"},
      "config.data.download = 'yes' (str), but it must be True or False",
      id="download_not_bool",
    ),
  ],
)
def test_bad_data_values(fields, message):
  config = quickstart.get_config()
  name = fields.pop("name")
  section = common.text_data(name) if name.endswith("text") else common.image_data(name)
  config.data = ml_collections.ConfigDict({**section.to_dict(), **fields})  # Fresh fields: any type.
  with pytest.raises(experiment.ConfigError) as info:
    experiment.validate_config(config)
  assert message in str(info.value)


@pytest.mark.slow
@pytest.mark.parametrize(
  "config_file, message",
  [
    pytest.param(
      ("bad.py", "def get_config(:\n  pass\n"),
      "Bad config file {dir}/bad.py, line 1: SyntaxError: invalid syntax. --config takes a .py file",
      id="config_syntax_error",
    ),
    pytest.param(
      ("typo.py", "from configs import text8\n\ndef get_config():\n  return text9.get_config()\n"),
      "Bad config file {dir}/typo.py, line 4: NameError: name 'text9' is not defined.",
      id="config_name_error",
    ),
    pytest.param(
      ("no_function.py", "import ml_collections\nCONFIG = ml_collections.ConfigDict()\n"),
      "Bad config file {dir}/no_function.py: it has no get_config() function",
      id="config_without_get_config",
    ),
    pytest.param(
      ("README.md", None),
      "Bad config file {path}, line {line}: SyntaxError: {msg}. {path} is not a "
      "Python config file. --config takes a .py file whose get_config() returns the config, e.g. "
      "--config=configs/quickstart.py.",
      id="config_is_readme",
    ),
  ],
)
def test_config_file_that_does_not_run(config_file, message, tmp_path):
  name, text = config_file
  path = os.path.join(REPO, name) if text is None else str(tmp_path / name)
  if text is None:  # An existing file that is not Python: where Python's own parser stops.
    with pytest.raises(SyntaxError) as parse:
      compile(open(path).read(), path, "exec")
    message = message.format(path=path, line=parse.value.lineno, msg=parse.value.msg, dir="{dir}")
  else:
    open(path, "w").write(text)
  run = run_main(f"--config={path}")
  assert run.returncode == 1
  assert message.format(dir=tmp_path) in run.stderr, run.stderr[-2000:]
  assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr, run.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize(
  "flag, message",
  [
    pytest.param(
      "--workdir=",
      "Bad command line: --workdir is empty; give the run's directory, e.g. --workdir=/tmp/ardm_run.",
      id="empty_workdir",
    ),
    pytest.param(
      "--mode=",
      "Bad command line: --mode is empty; choose from ['train', 'eval', 'sample', 'plan', "
      "'compress'], e.g. --mode=train,plan.",
      id="empty_mode",
    ),
  ],
)
def test_empty_flags_are_refused_at_start(flag, message, tmp_path):
  run = subprocess.run(
    [sys.executable, os.path.join(REPO, "main.py"), LOCAL, f"--workdir={tmp_path / 'w'}", flag],
    capture_output=True,
    text=True,
    timeout=120,
    cwd=tmp_path,
  )
  assert run.returncode == 1
  assert run.stderr.strip() == message
  assert os.listdir(tmp_path) == []  # Nothing written, in the workdir or the current directory.


def test_text8_path_with_tilde(text8_zip, tmp_path, monkeypatch):
  monkeypatch.setenv("HOME", str(tmp_path))
  (tmp_path / "text8.zip").write_bytes(open(text8_zip, "rb").read())
  config = text8_config("~/text8.zip")
  np.testing.assert_array_equal(
    experiment.build_experiment(config).dataset.train_examples,
    experiment.build_experiment(text8_config(text8_zip)).dataset.train_examples,
  )
  config.data.path = "~/data/text8.zip"
  with pytest.raises(FileNotFoundError) as info:
    experiment.build_experiment(config)
  assert (
    f"text8 not found at data.path='~/data/text8.zip' (looked for '{tmp_path}/data/text8.zip'); download it "
    "with `wget http://mattmahoney.net/dc/text8.zip`"
  ) in str(info.value)


def test_batch_not_divisible_by_devices(text8_zip):
  config = text8_config(text8_zip)
  config.training.batch_size = 15
  exp = experiment.build_experiment(config)
  with pytest.raises(
    experiment.ConfigError,
    match=r"config.training.batch_size = 15 is not divisible by the 2 "
    r"devices of the mesh; use a multiple of 2 \(--config.training.batch_size=...\)",
  ):
    train.Trainer(exp)


def write_zip(path, members):
  with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
    for name, text in members.items():
      archive.writestr(name, text)


@pytest.mark.parametrize(
  "make_file, error, message",
  [
    pytest.param(
      None,
      FileNotFoundError,
      "text8 not found at data.path='{path}'; download it with `wget http://mattmahoney.net/dc/text8.zip`",
      id="missing_text8",
    ),
    pytest.param(
      lambda p, good: open(p, "wb").write(open(good, "rb").read()[:5000]),
      experiment.ConfigError,
      "{path}: not a readable zip archive, truncated or corrupt",
      id="truncated_text8",
    ),
    pytest.param(
      lambda p, good: write_zip(p, {"enwik8": "some text"}),
      experiment.ConfigError,
      "{path}: zip has no member 'text8' (members: ['enwik8'])",
      id="zip_without_text8_member",
    ),
    pytest.param(
      lambda p, good: write_zip(p, {"text8": " hello World 42" * 5000}),
      experiment.ConfigError,
      "characters outside [a-z ], the first is 'W' (byte 87) at offset 7",
      id="text8_bad_characters",
    ),
    pytest.param(
      lambda p, good: write_zip(p, {"text8": " short text"}),
      experiment.ConfigError,
      "text8 is too short: its train split has 9 characters (needs at least 1000)",
      id="text8_too_short",
    ),
  ],
)
def test_bad_text8_file(make_file, error, message, text8_zip, tmp_path):
  path = str(tmp_path / "text8.zip")
  if make_file is not None:
    make_file(path, text8_zip)
  config = text8_config(path)
  with pytest.raises(error) as info:
    experiment.build_experiment(config)
  assert message.format(path=path) in str(info.value)


def mock_cifar10_images(shape, dtype):
  """tfds mock data whose images have the given per-image shape and dtype (a damaged or wrong prepared copy)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  def as_dataset(self, split, *args, **kwargs):
    del self, split, args, kwargs
    return tf.data.Dataset.from_tensor_slices(
      {
        "image": np.zeros((8, *shape), dtype),
        "label": np.zeros(8, np.int64),
        "id": np.array([f"mock_{i}" for i in range(8)]),
      }
    )

  return tfds.testing.mock_data(as_dataset_fn=as_dataset)


@pytest.mark.parametrize(
  "shape, dtype, found",
  [
    pytest.param((28, 28, 1), np.uint8, "uint8 (28, 28, 1)", id="cifar10_wrong_shape"),
    pytest.param((32, 32, 3), np.float32, "float32 (32, 32, 3)", id="cifar10_wrong_dtype"),
  ],
)
def test_cifar10_wrong_images(shape, dtype, found):
  with mock_cifar10_images(shape, dtype):
    with pytest.raises(experiment.ConfigError) as info:
      experiment.build_experiment(cifar10.get_config("local"))
  assert (
    f"CIFAR-10 'train' split in data.tfds_data_dir='' holds {found} images, expected uint8 (32, 32, 3): the "
    "prepared copy is not CIFAR-10 or is damaged; rebuild it with `tfds build cifar10"
  ) in str(info.value)


def test_cifar10_not_prepared(tmp_path):
  config = cifar10.get_config("local")
  config.data.tfds_data_dir = str(tmp_path)
  with pytest.raises(FileNotFoundError) as info:
    experiment.build_experiment(config)
  assert f"CIFAR-10 is not prepared in data.tfds_data_dir='{tmp_path}'" in str(info.value)
  assert "tfds build cifar10" in str(info.value) and "data.download=True" in str(info.value)


@pytest.fixture(name="workdir_with_checkpoint", scope="module")
def fixture_workdir_with_checkpoint(text8_zip, tmp_path_factory):
  """A workdir holding the initial state of the text8 :local config, checkpointed at step 0."""
  config = text8_config(text8_zip)
  trainer = train.Trainer(experiment.build_experiment(config))
  workdir = str(tmp_path_factory.mktemp("work"))
  ckpt = checkpointing.Checkpointer(workdir, config)
  ckpt.save(trainer.init(jax.random.key_data(jax.random.key(0))))
  ckpt.close()
  return workdir


@pytest.mark.slow
def test_checkpoint_from_a_different_config(workdir_with_checkpoint, text8_zip):
  config = text8_config(text8_zip)
  config.model.num_layers = 3
  config.optimizer.learning_rate = 2e-3
  config.training.num_train_steps = 50  # Resumable: not reported.
  with pytest.raises(checkpointing.CheckpointError) as info:
    train.train_and_evaluate(config, workdir_with_checkpoint)
  assert (
    f"The checkpoint at step 0 in {workdir_with_checkpoint}/checkpoints was written by a different config: "
    "model.num_layers: 2 -> 3; optimizer.learning_rate: 0.001 -> 0.002. Use a new --workdir, or rerun with "
    "the original config."
  ) == str(info.value)


@pytest.mark.parametrize("mode", ["evaluate", "sample", "plan_report"])
def test_inference_without_checkpoint(mode, text8_zip, tmp_path):
  workdir = str(tmp_path / "never_trained")
  with pytest.raises(checkpointing.CheckpointError) as info:
    getattr(inference, mode)(text8_config(text8_zip), workdir)
  assert str(info.value) == f"No checkpoint in {workdir}/checkpoints: train first (--mode=train)."
  assert not os.path.exists(workdir)  # Read-only: a mistyped --workdir is not created.
