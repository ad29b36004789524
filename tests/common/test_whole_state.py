"""Whole-state checkpoints, refreshable constants and the scan-chunk driver survive kill -9.

- the batch loop with a ``TrainState`` subclass whose extra field is recomputed by ``refresh``
  every 5 steps, killed at step 10 (last checkpoint 8, between the refreshes before steps 6 and
  11), resumes to the same bits as an uninterrupted run;
- the toy RL trainer (``common/example_rl.py``): 3 seeds vmapped, env states split over 8 fake
  devices, chunks of ``lax.scan``; killed mid-run it resumes bit-identically, in pmap and mesh
  mode, and logs every metric per seed and as the mean.
"""

import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from common import checkpoints
from common import example_rl
from common import metric_writers
from common import parallel
from common import run_services
from common import train_state as ts
from configs.example import chain
from tests.common import helpers
from tests.common import refresh_task


def _saved_state(workdir):
  """The newest checkpoint's whole saved tree (nested dict of arrays) and its step."""
  ckpt = checkpoints.Checkpointer(str(workdir), every=0)
  step = ckpt.latest_step()
  template = jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), ckpt.saved_structure(step))
  state, record = ckpt.restore(template)
  ckpt.close()
  return step, state, record


def _assert_same_bits(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  jax.tree.map(np.testing.assert_array_equal, a, b)


def _run_refresh_task(workdir, mode, sigkill_at=-1):
  cmd = [sys.executable, "-m", "tests.common.refresh_task", str(workdir), mode, str(sigkill_at)]
  return subprocess.run(cmd, env=helpers.env(8), cwd=helpers.REPO_ROOT, capture_output=True,
                        text=True, timeout=300)


def test_extra_field_and_refresh_survive_kill_and_resume(tmp_path):
  straight = _run_refresh_task(tmp_path / "straight", "mesh")
  assert straight.returncode == 0, straight.stderr[-3000:]
  killed = _run_refresh_task(tmp_path / "killed", "mesh", sigkill_at=10)
  assert killed.returncode == -signal.SIGKILL
  resumed = _run_refresh_task(tmp_path / "killed", "mesh")
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  # Step 8 lies between the refreshes before steps 6 and 11; the resumed run crosses 11 and 16.
  assert "Resumed from checkpoint step 8." in resumed.stdout

  step_a, state_a, _ = _saved_state(tmp_path / "straight")
  step_b, state_b, _ = _saved_state(tmp_path / "killed")
  assert step_a == step_b == 16
  # The extra fields are in the checkpoint: refreshes before steps 1, 6, 11, 16.
  assert int(state_a["refreshes"]) == 4
  assert state_a["anchor"].shape == (2, 16)
  _assert_same_bits(state_a, state_b)


def test_refresh_changes_the_trajectory(tmp_path):
  """The refreshed field matters: without refreshes the run ends elsewhere (the test can fail)."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  from common import train_loop  # pylint: disable=g-import-not-at-top
  c = refresh_task.config()
  with_refresh = train_loop.run(c, str(tmp_path / "a"), refresh_task.make_task(c))
  task = dataclasses.replace(refresh_task.make_task(c), refresh_every=0)
  without = train_loop.run(c, str(tmp_path / "b"), task)
  assert int(with_refresh["state"].refreshes) == 4 and int(without["state"].refreshes) == 0
  assert not np.array_equal(with_refresh["state"].params["Dense_0"]["kernel"],
                            without["state"].params["Dense_0"]["kernel"])


RL_FLAGS = ["--config.train.num_steps=6", "--config.train.checkpoint_every=2",
            "--config.train.log_every=2", "--config.env.num_envs=16",
            "--config.env.updates_per_chunk=4", "--config.train.progress_bar=False"]


def _run_rl(workdir, mode, *extra):
  cmd = [sys.executable, helpers.TRAIN, "--config=" + os.path.join(
      helpers.REPO_ROOT, "configs/example/chain.py"), f"--workdir={workdir}",
         f"--config.parallel.mode={mode}", *RL_FLAGS, *extra]
  return subprocess.run(cmd, env=helpers.env(8), capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("mode", ["mesh", "pmap"])
def test_scan_chunk_trainer_resumes_bit_identically_over_seeds(tmp_path, mode):
  straight = _run_rl(tmp_path / "straight", mode)
  assert straight.returncode == 0, straight.stderr[-3000:]
  killed = _run_rl(tmp_path / "killed", mode, "--config.debug.sigkill_at_step=3")
  assert killed.returncode == -signal.SIGKILL
  resumed = _run_rl(tmp_path / "killed", mode)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  assert "Resumed from checkpoint step 2." in resumed.stdout

  step_a, state_a, _ = _saved_state(tmp_path / "straight")
  step_b, state_b, _ = _saved_state(tmp_path / "killed")
  assert step_a == step_b == 6
  # The whole runner: 3 seeds of params/optimizer/RNG, and every env's state.
  assert state_a["cell"].shape == (3, 16) and state_a["train"]["step"].shape == (3,)
  np.testing.assert_array_equal(state_a["train"]["step"], [24, 24, 24])
  _assert_same_bits(state_a, state_b)

  rows = metric_writers.read_jsonl(str(tmp_path / "killed" / "metrics.jsonl"), split="train")
  assert [r["step"] for r in rows] == [2, 4, 6]
  for row in rows:
    per_seed = [row[f"reward_per_step/seed_{k}"] for k in range(3)]
    assert row["reward_per_step"] == pytest.approx(np.mean(per_seed))
    assert len(set(per_seed)) > 1  # the seeds really differ
  final = metric_writers.read_jsonl(str(tmp_path / "killed" / "results.json").replace(
      "results.json", "metrics.jsonl"), split="final")
  assert final and "greedy_reward_per_step/seed_2" in final[0]


def test_env_states_are_split_over_devices_in_mesh_mode():
  c = chain.get_config("runlocal")
  dp = parallel.DataParallel("mesh")
  init_state, chunk = example_rl.make_train(c)
  state = jax.device_get(jax.jit(init_state)(jax.random.PRNGKey(0)))
  specs = example_rl.state_specs()
  placed = dp.put(state, specs)
  assert placed.cell.sharding.spec == parallel.P(None, parallel.DATA_AXIS)
  assert {s.data.shape for s in placed.cell.addressable_shards} == {(3, 2)}
  out, metrics = dp.wrap(chunk, (specs,), (specs, parallel.REPLICATED))(placed)
  assert out.cell.sharding.spec == parallel.P(None, parallel.DATA_AXIS)
  assert metrics["loss"].shape == (3,)
  # pmap: the same per-device shapes, the device axis in front.
  dp_pmap = parallel.DataParallel("pmap")
  assert dp_pmap.put(state, specs).cell.shape == (8, 3, 2)
  np.testing.assert_array_equal(dp_pmap.to_host(dp_pmap.put(state, specs), specs).cell,
                                state.cell)


def test_toy_rl_learns_beyond_random(tmp_path):
  c = chain.get_config()
  c.train.progress_bar = False
  out = example_rl.train_and_evaluate(c, str(tmp_path))
  random = example_rl.random_reward(c)
  greedy = [out["final"][f"greedy_reward_per_step/seed_{k}"] for k in range(3)]
  assert min(greedy) > 3 * random, (greedy, random)


def test_nan_guard_names_the_seed(tmp_path):
  services = run_services.RunServices(str(tmp_path), checkpoint_every=0, progress_bar=False)
  services.check_finite(3, np.array([0.5, np.nan, 0.1]))
  with pytest.raises(FloatingPointError, match=r"at step 3 \(seed\(s\) \[1\]\)"):
    services.flush_checks()
  services.close()


def test_state_dict_round_trips_any_pytree():
  state = example_rl.Runner(train={"a": np.arange(3), "b": (np.ones(2), np.zeros(1))},
                            cell=np.arange(4).reshape(2, 2), episodes=np.float32(2.0))
  saved = ts.state_dict(state)
  assert set(saved) == {"train", "cell", "episodes"} and set(saved["train"]["b"]) == {"0", "1"}
  _assert_same_bits(ts.restore_from_dict(state, saved), state)
