"""scripts/run_suite.py: the table, a preempted run resumed, a changed config refused."""

import json
import os
import subprocess
import sys

import ml_collections
import pytest

from common import config_checks
from tests.common import helpers

SUITE = os.path.join(helpers.REPO_ROOT, "scripts", "run_suite.py")


def _suite(workdir, *extra):
  cmd = [sys.executable, SUITE, "--config=" + os.path.join(helpers.REPO_ROOT, "configs/example/mlp.py"),
         "--models=runlocal", "--seeds=0", "--metrics=accuracy", f"--workdir={workdir}",
         "--config.train.progress_bar=False", *extra]
  return subprocess.run(cmd, env=helpers.env(1), capture_output=True, text=True, timeout=300)


def test_preempted_run_is_resumed_and_a_changed_config_refused(tmp_path):
  run_dir = tmp_path / "runlocal_seed0"
  run_dir.mkdir()
  # What a SIGTERM'd run leaves: results without a test evaluation. It is not a finished run.
  (run_dir / "results.json").write_text(json.dumps({"step": 20, "stop_reason": "preempted (SIGTERM)"}))
  proc = _suite(tmp_path)
  assert proc.returncode == 0, proc.stderr[-3000:]
  res = json.loads((run_dir / "results.json").read_text())
  assert res["step"] == 40 and 0.5 < res["test"]["accuracy"] <= 1.0
  table = (tmp_path / "suite.md").read_text()
  assert "runlocal" in table and f"{res['test']['accuracy']:.4f}" in table
  saved = json.loads((run_dir / "config.json").read_text())
  assert saved["seed"] == 0 and saved["train"]["num_steps"] == 40

  # Resuming the same run with another learning rate is refused, naming the key; nothing changes.
  (run_dir / "results.json").unlink()
  before = (run_dir / "config.json").read_text()
  proc = _suite(tmp_path, "--config.optim.learning_rate=0.1")
  assert proc.returncode == 2
  assert "optim.learning_rate" in proc.stderr and "new workdir" in proc.stderr, proc.stderr[-2000:]
  assert (run_dir / "config.json").read_text() == before
  assert not (run_dir / "results.json").exists()


def test_save_run_config_allows_only_the_resumable_keys(tmp_path):
  c = ml_collections.ConfigDict(dict(seed=0, train=dict(num_steps=10, progress_bar=True),
                                     model=dict(hidden=(16, 8)), debug=dict(kill_at=-1)))
  config_checks.save_run_config(c, str(tmp_path))
  c.model.hidden = (16, 2)
  config_checks.save_run_config(c, str(tmp_path))  # nothing trained yet: overwritten
  c.model.hidden = (16, 8)
  config_checks.save_run_config(c, str(tmp_path))
  (tmp_path / "checkpoints" / "4").mkdir(parents=True)  # a run has started
  config_checks.save_run_config(c, str(tmp_path))  # the same config resumes
  c.train.num_steps, c.train.progress_bar, c.debug.kill_at = 20, False, 5
  config_checks.save_run_config(c, str(tmp_path))  # budget, bar and debug switches may change
  assert json.loads((tmp_path / "config.json").read_text())["train"]["num_steps"] == 20
  c.model.hidden = (16, 4)
  with pytest.raises(config_checks.ConfigError, match=r"model\.hidden.*\[16, 8\].*\[16, 4\]"):
    config_checks.save_run_config(c, str(tmp_path))
  (tmp_path / "config.json").write_text("{not json")
  with pytest.raises(config_checks.ConfigError, match="not valid JSON"):
    config_checks.save_run_config(c, str(tmp_path))
