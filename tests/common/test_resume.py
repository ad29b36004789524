"""Killed runs resume exactly; divergence stops the run with the last good checkpoint intact."""

import math
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from common import example_task
from common import metric_writers
from tests.common import helpers

FLAGS = ["--config.train.num_steps=20", "--config.train.checkpoint_every=4",
         "--config.train.eval_every=10", "--config.train.log_every=4", "--config.train.batch_size=32",
         "--config.model.hidden=(16,)", "--config.data.eval_examples=64"]


@pytest.mark.parametrize("mode", ["mesh", "pmap"])
def test_sigkill_mid_run_then_resume_equals_uninterrupted(tmp_path, mode):
  flags = FLAGS + [f"--config.parallel.mode={mode}"]
  helpers.run_train(tmp_path / "straight", *flags)

  killed = helpers.run_train(tmp_path / "killed", *flags, "--config.debug.sigkill_at_step=10",
                             check=False)
  assert killed.returncode == -signal.SIGKILL
  ckpts = sorted(int(d) for d in os.listdir(tmp_path / "killed" / "checkpoints") if d.isdigit())
  assert ckpts and max(ckpts) <= 10 and max(ckpts) % 4 == 0, ckpts
  assert not (tmp_path / "killed" / "results.json").exists()

  resumed = helpers.run_train(tmp_path / "killed", *flags)
  assert f"Resumed from checkpoint step {max(ckpts)}" in resumed.stdout

  step_a, params_a, record_a = helpers.final_params(str(tmp_path / "straight"))
  step_b, params_b, record_b = helpers.final_params(str(tmp_path / "killed"))
  assert step_a == step_b == 20
  assert record_a["data"] == record_b["data"] == {"index": 20}
  jax.tree.map(np.testing.assert_array_equal, params_a, params_b)
  # The metrics log holds each logged step once, as if the run had never stopped.
  rows = metric_writers.read_jsonl(str(tmp_path / "killed" / "metrics.jsonl"), split="train")
  steps = [r["step"] for r in rows]
  assert steps == sorted(set(steps)) == [4, 8, 12, 16, 20]


def test_nan_loss_stops_with_step_and_last_checkpoint_restores(tmp_path):
  config = helpers.tiny_config(num_steps=20, checkpoint_every=4)
  config.debug.nan_at_step = 7
  workdir = str(tmp_path / "nan")
  with pytest.raises(FloatingPointError, match=r"at step 7\..*checkpoint \(step 4\)"):
    example_task.train_and_evaluate(config, workdir)
  step, params, record = helpers.final_params(workdir)
  assert step == 4 and record["step"] == 4
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(params))
  assert not os.path.exists(os.path.join(workdir, "results.json"))

  # The same workdir resumes from step 4 once the cause is fixed.
  config.debug.nan_at_step = -1
  out = example_task.train_and_evaluate(config, workdir)
  assert out["step"] == 20 and math.isfinite(out["test"]["loss"])


def test_sigterm_saves_and_exits(tmp_path):
  cmd = [sys.executable, helpers.TRAIN, "--config=" + os.path.join(
      helpers.REPO_ROOT, "configs/example/mlp.py"), f"--workdir={tmp_path}",
         "--config.train.num_steps=1000000", "--config.train.checkpoint_every=0",
         "--config.train.log_every=100", "--config.train.progress_bar=False",
         "--config.train.eval_every=0", "--config.model.hidden=(8,)"]
  proc = subprocess.Popen(cmd, env=helpers.env(1), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  metrics = tmp_path / "metrics.jsonl"
  deadline = time.time() + 120
  while not (metrics.exists() and metrics.stat().st_size) and time.time() < deadline:
    time.sleep(0.2)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 0, err[-2000:]
  step, _, record = helpers.final_params(str(tmp_path))
  assert 100 <= step < 1000000 and record["data"]["index"] == step
