"""A workdir remembers its config: the read-only modes use it, with only the overridable fields replaced."""

import logging

import pytest

from ardm_jax.training import checkpointing
from ardm_jax.io import paths
from ardm_jax.training import workdir as workdir_lib
from configs import quickstart


@pytest.fixture(name="trained_dir")
def fixture_trained_dir(tmp_path):
  trained = quickstart.get_config()
  trained.model.num_layers = 3  # A training override that later commands do not repeat.
  trained.training.num_train_steps = 77
  paths.write_atomically(paths.resolve(tmp_path) / checkpointing.CONFIG_NAME, trained.to_json())
  return str(tmp_path)


def test_the_trained_config_is_used_without_a_config(trained_dir):
  config = workdir_lib.effective_config(None, trained_dir)
  assert config.model.num_layers == 3 and config.training.num_train_steps == 77


def test_explicit_overrides_apply_only_where_allowed(trained_dir, caplog):
  given = quickstart.get_config()  # The file's defaults: model.num_layers = 2.
  overrides = {"sample.budget": 3, "eval.num_passes": 5, "optimizer.learning_rate": 0.5}
  with caplog.at_level(logging.WARNING):
    config = workdir_lib.effective_config(given, trained_dir, overrides)
  assert (config.sample.budget, config.eval.num_passes) == (3, 5)
  assert config.model.num_layers == 3 and config.optimizer.learning_rate == given.optimizer.learning_rate
  assert "optimizer.learning_rate=0.5 (trained with 0.002)" in caplog.text and "ignored" in caplog.text


def test_library_callers_pass_the_config_they_want(trained_dir):
  given = quickstart.get_config()
  given.sample.budget = 5
  config = workdir_lib.effective_config(given, trained_dir)
  assert config.sample.budget == 5 and config.model.num_layers == 3


def test_a_workdir_without_a_record_needs_a_config(tmp_path):
  with pytest.raises(checkpointing.CheckpointError, match="records no config"):
    workdir_lib.effective_config(None, str(tmp_path))
  given = quickstart.get_config()
  assert workdir_lib.effective_config(given, str(tmp_path)) is given
