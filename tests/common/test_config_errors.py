"""Config mistakes give messages that name the key and the fix."""

import ml_collections
import pytest

from common import config_checks
from common import example_task
from common import parallel
from tests.common import helpers


def _stderr(tmp_path, *overrides):
  proc = helpers.run_train(tmp_path, *overrides, check=False, devices=8)
  assert proc.returncode != 0
  return proc.stderr


def test_unknown_key_names_key_and_suggests(tmp_path):
  err = _stderr(tmp_path, "--config.optim.lr=3e-4")
  assert "'optim.lr'" in err and "unknown key" in err and "'optim.learning_rate'" in err


def test_wrong_type_names_key_and_type(tmp_path):
  err = _stderr(tmp_path, "--config.train.batch_size=big")
  assert "'train.batch_size'" in err and "expects int" in err


def test_batch_not_divisible_by_devices(tmp_path):
  err = _stderr(tmp_path, "--config.train.batch_size=100", "--config.train.num_steps=2")
  assert "'train.batch_size'" in err and "8 devices" in err and "batch_size=104" in err


def test_programmatic_config_checks():
  config = helpers.tiny_config()
  config.unlock()
  config.train.bach_size = 3
  with pytest.raises(config_checks.ConfigError, match=r"train.bach_size.*did you mean "
                     r"'train.batch_size'"):
    example_task.train_and_evaluate(config, "/nonexistent-never-written")
  # ConfigDict is type-safe on assignment, but a config built from a plain dict is not checked.
  d = helpers.tiny_config().to_dict()
  d["optim"]["learning_rate"] = "fast"
  config = ml_collections.ConfigDict(d)
  with pytest.raises(config_checks.ConfigError, match=r"optim.learning_rate.*expects float"):
    example_task.train_and_evaluate(config, "/nonexistent-never-written")


def test_too_many_devices_and_unknown_method():
  with pytest.raises(config_checks.ConfigError, match="parallel.num_devices"):
    parallel.DataParallel("mesh", 64)
  from common import methods  # pylint: disable=g-import-not-at-top
  with pytest.raises(config_checks.ConfigError, match="'method'.*known"):
    methods.get_trainer("resnet")


def test_resume_with_a_changed_config_is_refused(tmp_path):
  helpers.run_train(tmp_path, "--config.train.num_steps=4", "--config.train.checkpoint_every=4",
                    "--config.model.hidden=(8,)", devices=1)
  err = _stderr(tmp_path, "--config.train.num_steps=8", "--config.model.hidden=(16,)")
  assert "'model.hidden'" in err and "[8]" in err and "new workdir" in err
  # A longer budget with the same settings resumes.
  proc = helpers.run_train(tmp_path, "--config.train.num_steps=8", "--config.model.hidden=(8,)",
                           devices=1)
  assert "Resumed from checkpoint step 4" in proc.stdout
