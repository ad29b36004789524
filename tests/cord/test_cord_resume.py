"""The CORD trainer through ``scripts/train.py``: 2 fake devices, kill -9, bit-identical resume.

Slow (three subprocess runs, each compiling the learner): ``pytest -m slow tests/cord``.
"""

import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from common import metric_writers
from tests.common import helpers
from tests.common import test_whole_state

FLAGS = ["--config.env.num_envs=8", "--config.train.num_steps=3",
         "--config.train.checkpoint_every=1", "--config.train.progress_bar=False"]


def _train(workdir, mode, *extra):
  cmd = [sys.executable, helpers.TRAIN, "--config=" + os.path.join(
      helpers.REPO_ROOT, "configs/cord/foraging.py:runlocal"), f"--workdir={workdir}",
         f"--config.parallel.mode={mode}", *FLAGS, *extra]
  return subprocess.run(cmd, env=helpers.env(2), capture_output=True, text=True, timeout=900)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["mesh", "pmap"])
def test_cord_resumes_bit_identically_after_kill(tmp_path, mode):
  straight = _train(tmp_path / "straight", mode)
  assert straight.returncode == 0, straight.stderr[-3000:]
  killed = _train(tmp_path / "killed", mode, "--config.debug.sigkill_at_step=2")
  assert killed.returncode == -signal.SIGKILL
  resumed = _train(tmp_path / "killed", mode)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "Resumed from checkpoint step 2." in resumed.stdout
  step_a, a, _ = test_whole_state._saved_state(tmp_path / "straight")
  step_b, b, _ = test_whole_state._saved_state(tmp_path / "killed")
  assert step_a == step_b == 3
  assert a["env_state"]["env_state"]["agent_pos"].shape[:2] == (2, 8)  # [seeds, envs]
  jax.tree.map(np.testing.assert_array_equal, a, b)
  rows = metric_writers.read_jsonl(str(tmp_path / "killed" / "metrics.jsonl"), split="train")
  assert [r["step"] for r in rows] == [1, 2, 3]
  for name in ("return", "r_c", "r_d", "role_entropy", "role_hist/0", "loss"):
    assert f"{name}/seed_1" in rows[-1], name
  final = metric_writers.read_jsonl(str(tmp_path / "killed" / "metrics.jsonl"), split="final")
  assert "return/seed_1" in final[0]
