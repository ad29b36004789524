"""ESANS end to end on the tiny synthetic data: config errors, pmap == mesh, resume across a
refresh, the export, and a short run against popularity."""

import json
import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from common import checkpoints
from common import data as data_lib
from common import parallel
from configs.esans import synthetic
from esans_jax import config as config_lib
from esans_jax import train as esans_train
from tests.common import helpers

TRAIN = os.path.join(helpers.REPO_ROOT, "scripts", "train.py")
CONFIG = os.path.join(helpers.REPO_ROOT, "configs", "esans", "synthetic.py")


def _config(arg="runlocal"):
  c = synthetic.get_config(arg)
  c.train.progress_bar = False
  return c


@pytest.fixture(scope="module")
def tiny_ds():
  return data_lib.build_dataset(_config().data)


def test_unknown_sampler_name_is_a_config_error():
  c = _config()
  c.sampler.name = "esnas"
  with pytest.raises(config_lib.ConfigError, match="sampler.name"):
    config_lib.validate(c)


def test_more_clusters_than_items_is_a_config_error(tiny_ds):
  c = _config()
  c.sampler.k1 = tiny_ds.num_items + 1
  model_cfg, sampler = config_lib.validate(c)
  with pytest.raises(config_lib.ConfigError, match=r"sampler.k1.*at most"):
    esans_train.build(c, tiny_ds, model_cfg, sampler)


def test_absent_modality_is_a_config_error(tiny_ds):
  c = _config()
  c.mm.image_field = "photo"
  model_cfg, sampler = config_lib.validate(c)
  with pytest.raises(config_lib.ConfigError, match="image"):
    esans_train.build(c, tiny_ds, model_cfg, sampler)
  # Without it, the same data set builds: a missing modality is a config choice.
  c.mm.modalities = ("text", "behaviour")
  esans_train.build(c, tiny_ds, *config_lib.validate(c))


def test_no_modalities_but_the_tower_reads_them_is_a_config_error():
  c = _config()
  c.mm.modalities = ()
  with pytest.raises(config_lib.ConfigError, match="mm.modalities"):
    config_lib.validate(c)
  c.model.use_mm = False
  c.sampler.representation = "tower"
  config_lib.validate(c)


def _steps(c, ds, mode, n=3):
  task, _ = esans_train.make_task(c, ds)
  dp = parallel.DataParallel(mode, 8)
  state = jax.device_get(jax.jit(task.init_state)(jax.random.PRNGKey(0)))
  dstate = dp.replicate(state)
  consts = dp.replicate(task.consts)
  step = dp.wrap_step(task.train_step, with_consts=True)
  refresh = dp.wrap(task.refresh, (parallel.REPLICATED,) * 2, parallel.REPLICATED)
  dstate = refresh(dstate, consts)
  for _ in range(n):
    dstate, metrics = step(dstate, dp.shard_batch(next(task.train_iter)), consts)
  return dp.to_host(dstate), dp.to_host(metrics)


def test_pmap_and_mesh_steps_agree(tiny_ds):
  c = _config()
  c.train.batch_size = 64
  # SGD: an update proportional to the gradient (Adam's first steps are nearly its sign, which
  # would hide a gradient scaled by the device count).
  c.optim.name, c.optim.b1, c.optim.learning_rate = "sgd", 0.0, 0.1
  a, ma = _steps(c, tiny_ds, "pmap")
  b, mb = _steps(c, tiny_ds, "mesh")
  np.testing.assert_array_equal(np.asarray(a.msac.codes), np.asarray(b.msac.codes))
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=2e-5, atol=2e-6),
               a.params, b.params)
  assert np.isfinite(ma["loss"]) and abs(ma["loss"] - mb["loss"]) < 1e-4
  # MSAC's tables were built: every item has a code, the histogram covers the catalogue.
  assert (np.asarray(a.msac.codes)[1:] >= 0).all()
  assert int(np.asarray(a.msac.counts1).sum()) == tiny_ds.num_items


def _train(workdir, *overrides, timeout=600):
  cmd = [sys.executable, TRAIN, f"--config={CONFIG}:runlocal", f"--workdir={workdir}",
         "--config.train.progress_bar=False", "--config.train.num_steps=30",
         "--config.train.checkpoint_every=10", "--config.train.eval_every=0",
         "--config.sampler.refresh_every=12", "--config.export.enabled=False", *overrides]
  # Two devices: the refresh and the resume are the same code for any count, and each of the
  # three runs compiles and steps faster than with eight.
  return subprocess.run(cmd, env=helpers.env(2), capture_output=True, text=True,
                        timeout=timeout)


def _final_state(workdir):
  ckpt = checkpoints.Checkpointer(str(workdir), every=0)
  step = ckpt.latest_step()
  template = jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), ckpt.saved_structure(step))
  state, _ = ckpt.restore(template)
  ckpt.close()
  return step, state


def test_resume_across_a_refresh_is_bit_identical(tmp_path):
  straight = _train(tmp_path / "straight")
  assert straight.returncode == 0, straight.stderr[-3000:]
  killed = _train(tmp_path / "killed", "--config.debug.sigkill_at_step=15")
  assert killed.returncode == -signal.SIGKILL
  resumed = _train(tmp_path / "killed")
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  # Checkpoint 10 lies before the refresh of step 13; the resumed run redoes it (and step 25's).
  step_a, a = _final_state(tmp_path / "straight")
  step_b, b = _final_state(tmp_path / "killed")
  assert step_a == step_b == 30
  assert int(a["msac"]["refreshed_at"]) == 24  # built before step 25 (state.step was 24)
  jax.tree.map(np.testing.assert_array_equal, a, b)


def test_short_run_beats_popularity(tmp_path, tiny_ds):
  c = _config()
  c.train.update(num_steps=200, eval_every=100, checkpoint_every=0)
  c.optim.learning_rate = 3e-3
  c.parallel.num_devices = 1
  c.export.enabled = False
  results = esans_train.train_and_evaluate(c, str(tmp_path))
  for key in ("recall@50", "ndcg@10"):
    assert results["test"][key] > results["popularity_test"][key] + 0.03, key
  assert "msac" in results and sum(results["msac"]["cluster_sizes_l1"]) == tiny_ds.num_items


@pytest.mark.slow
def test_quick_run_beats_popularity_and_exports(tmp_path):
  cmd = [sys.executable, TRAIN, f"--config={CONFIG}:quick", f"--workdir={tmp_path}",
         "--config.train.progress_bar=False"]
  proc = subprocess.run(cmd, env=helpers.env(1), capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(tmp_path / "results.json") as f:
    results = json.load(f)
  assert results["test"]["recall@50"] > results["popularity_test"]["recall@50"]
  export = tmp_path / "export"
  items = np.load(export / "item_embeddings.npy")
  with open(export / "item_ids.json") as f:
    assert len(json.load(f)) == items.shape[0]
  np.testing.assert_allclose(np.linalg.norm(items, axis=1), 1.0, rtol=1e-4)
