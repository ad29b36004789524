"""Faults a user meets: two runs on one workdir, a damaged checkpoint, a NaN before any
checkpoint, an unwritable workdir, a stopped run's results, bad config arguments."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from common import config_checks
from common import example_task
from common import train_loop
from tests.common import helpers

MLP = os.path.join(helpers.REPO_ROOT, "configs", "example", "mlp.py")


def _train(workdir, *flags, config=MLP, devices=1):
  cmd = [sys.executable, helpers.TRAIN, f"--config={config}", f"--workdir={workdir}",
         "--config.train.progress_bar=False", *flags]
  return subprocess.run(cmd, env=helpers.env(devices), capture_output=True, text=True,
                        timeout=300)


def _start_long_run(workdir):
  cmd = [sys.executable, helpers.TRAIN, f"--config={MLP}", f"--workdir={workdir}",
         "--config.train.progress_bar=False", "--config.train.num_steps=100000000",
         "--config.train.log_every=10", "--config.train.eval_every=0",
         "--config.train.checkpoint_every=0", "--config.model.hidden=(8,)"]
  proc = subprocess.Popen(cmd, env=helpers.env(1), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  metrics = os.path.join(workdir, "metrics.jsonl")
  deadline = time.time() + 120
  while not (os.path.exists(metrics) and os.path.getsize(metrics)) and time.time() < deadline:
    time.sleep(0.2)
  assert proc.poll() is None, proc.communicate()[1][-2000:]
  return proc


def test_second_run_on_a_workdir_stops_and_a_stale_lock_is_taken_over(tmp_path):
  first = _start_long_run(tmp_path)
  try:
    second = _train(tmp_path, "--config.train.num_steps=5")
    assert second.returncode == 2
    err = second.stderr.strip().splitlines()
    assert len(err) == 1 and f"in use by another run (pid {first.pid}" in err[0], err
  finally:
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=60)
  # The killed run's lock file is still there, its flock is gone: the next run takes over.
  assert (tmp_path / "run.lock").exists()
  third = _train(tmp_path, config=MLP + ":runlocal")
  assert third.returncode == 0, third.stderr[-2000:]
  assert f"Took over the lock of an earlier run that is gone (pid {first.pid}" in third.stdout
  assert not (tmp_path / "run.lock").exists()  # released at the end


def _truncate_array_files(directory):
  """Cuts every array-data file of a checkpoint (orbax/ocdbt keeps them in ``d/`` folders) in
  half; which of them a restore reads depends on orbax's layout, so all of them are cut."""
  files = [os.path.join(d, f) for d, _, fs in os.walk(directory) for f in fs
           if os.path.basename(d) == "d"]
  assert files
  for target in files:
    with open(target, "r+b") as f:
      f.truncate(os.path.getsize(target) // 2)


TINY = ["--config.model.hidden=(16,)", "--config.data.eval_examples=64",
        "--config.train.batch_size=32", "--config.train.checkpoint_every=4",
        "--config.train.log_every=4", "--config.train.eval_every=0"]


@pytest.mark.parametrize("damage", ["array_file", "record_json"])
def test_damaged_newest_checkpoint_is_skipped_and_kept(tmp_path, damage):
  # Separate processes, as in real life (an in-process rerun could read orbax's cache).
  first = _train(tmp_path, *TINY, "--config.train.num_steps=12")
  assert first.returncode == 0, first.stderr[-2000:]
  newest = tmp_path / "checkpoints" / "12"
  if damage == "array_file":
    _truncate_array_files(str(newest / "state"))
  else:
    (newest / "record" / "metadata").write_text('{"step": 12, "data":')  # JSON cut short
  rerun = _train(tmp_path, *TINY, "--config.train.num_steps=16")
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert "Checkpoint step 12 could not be restored" in rerun.stdout, rerun.stdout
  assert "Resumed from checkpoint step 8." in rerun.stdout
  kept = tmp_path / "corrupt_checkpoints" / "12"
  assert kept.is_dir() and f"moved it to {kept}" in rerun.stdout
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["step"] == 16 and np.isfinite(results["test"]["loss"])


def test_nan_before_any_checkpoint_says_so(tmp_path):
  config = helpers.tiny_config(num_steps=20, checkpoint_every=8)
  config.debug.nan_at_step = 3
  with pytest.raises(FloatingPointError) as e:
    example_task.train_and_evaluate(config, str(tmp_path))
  message = str(e.value)
  assert "at step 3" in message and "No checkpoint had been written yet" in message
  assert "step None" not in message and "learning_rate" in message


def test_nan_from_non_finite_inputs_names_the_inputs(tmp_path):
  config = helpers.tiny_config(num_steps=20, checkpoint_every=4)
  task = example_task.make_task(config)
  inner = task.train_iter

  class Poisoned:
    def __iter__(self):
      return self

    def __next__(self):
      batch = next(inner)
      if inner.index == 6:
        batch = dict(batch, x=np.where(np.arange(batch["x"].shape[0])[:, None] < 2, np.nan,
                                       batch["x"]).astype(np.float32))
      return batch

    def get_state(self):
      return inner.get_state()

    def set_state(self, s):
      inner.set_state(s)

  task.train_iter = Poisoned()
  with pytest.raises(FloatingPointError) as e:
    train_loop.run(config, str(tmp_path), task)
  message = str(e.value)
  assert "at step 6" in message and "checkpoint (step 4)" in message
  assert "inputs of that step hold non-finite values (['x']: 32 of 512)" in message
  assert "fix the data" in message


def test_unwritable_workdir_is_one_line(tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a directory")
  proc = _train(blocker / "run", config=MLP + ":runlocal")
  assert proc.returncode == 2
  err = proc.stderr.strip().splitlines()
  assert len(err) == 1 and "cannot be written" in err[0] and "--workdir" in err[0], err


def test_stopped_run_keeps_its_results_through_evaluate_script(tmp_path):
  proc = subprocess.Popen(
      [sys.executable, helpers.TRAIN, f"--config={MLP}", f"--workdir={tmp_path}",
       "--config.train.progress_bar=False", "--config.train.num_steps=100000000",
       "--config.train.eval_every=50", "--config.train.log_every=50",
       "--config.train.checkpoint_every=0"], env=helpers.env(1), stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 120
  def best_saved():
    best = tmp_path / "best" / "checkpoints"
    return best.is_dir() and any(p.name.isdigit() for p in best.iterdir())
  while not best_saved() and time.time() < deadline:
    time.sleep(0.2)
  proc.send_signal(signal.SIGTERM)
  out, err = proc.communicate(timeout=120)
  assert proc.returncode == 0, err[-2000:]
  assert not (tmp_path / "results.json").exists()
  assert f"python scripts/evaluate.py --workdir={tmp_path}" in out

  evaluate = os.path.join(helpers.REPO_ROOT, "scripts", "evaluate.py")
  done = subprocess.run([sys.executable, evaluate, f"--workdir={tmp_path}"], env=helpers.env(1),
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["stop_reason"] == "preempted (SIGTERM)"
  assert results["evaluated_step"] == results["best_step"] <= results["step"]
  assert 0.5 < results["test"]["accuracy"] <= 1.0 and "| test" in done.stdout
  # Not a run directory: one line.
  bad = subprocess.run([sys.executable, evaluate, f"--workdir={tmp_path / 'nope'}"],
                       env=helpers.env(1), capture_output=True, text=True, timeout=120)
  assert bad.returncode == 2 and "is not a run's workdir" in bad.stderr


@pytest.mark.parametrize("args,expected", [
    (["--config=" + MLP + ":runlokal"], "unknown arg 'runlokal'"),
    (["--config=" + os.path.join(helpers.REPO_ROOT, "configs", "data", "table.py") + ":tme"],
     "unknown arg 'tme'"),
    (["--config=configs/nope.py"], "configs/nope.py does not exist"),
    (["--config=" + os.path.join(helpers.REPO_ROOT, "configs", "example")],
     "is a directory, not a config file"),
    (["--config=" + MLP, "--config.optim.learning_rate=-0.1"], "must be a finite number > 0"),
    (["--config=" + MLP, "--config.optim.learning_rate=inf"], "must be a finite number > 0"),
])
def test_bad_config_arguments_are_one_line(tmp_path, args, expected):
  cmd = [sys.executable, helpers.TRAIN, f"--workdir={tmp_path}", *args]
  proc = subprocess.run(cmd, env=helpers.env(1), capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2
  err = [l for l in proc.stderr.strip().splitlines() if l.strip()]
  assert len(err) == 1 and expected in err[0], proc.stderr[-2000:]


def test_override_of_a_key_without_default_is_typed():
  """Keys that default to None are typed placeholders: an override is parsed, not refused."""
  from configs.data import ml100k  # pylint: disable=g-import-not-at-top
  c = ml100k.get_config()
  assert c.preprocess.rating_threshold is None
  c.preprocess.rating_threshold = 4.0
  with pytest.raises(TypeError):
    c.preprocess.rating_threshold = "high"


def test_negative_learning_rate_is_a_config_error():
  config = helpers.tiny_config()
  config.optim.learning_rate = -1e-3
  with pytest.raises(config_checks.ConfigError, match="optim.learning_rate"):
    train_loop.check_config(config)
