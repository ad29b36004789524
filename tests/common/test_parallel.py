"""pmap, mesh and single-device runs of the same per-device step agree."""

import jax
import numpy as np
import pytest

from common import example_task
from common import parallel
from common import train_loop
from tests.common import helpers


def _train(mode, num_devices, steps=6):
  config = helpers.tiny_config()
  dp = parallel.DataParallel(mode, num_devices)
  state = dp.replicate(example_task.init(config, jax.random.PRNGKey(0)))
  stream = example_task.TeacherStream(0, 32, config.data.dim, config.data.num_classes, 0.05)
  step = dp.wrap_step(example_task.train_step)
  losses = []
  for _ in range(steps):
    state, metrics = step(state, dp.shard_batch(next(stream)))
    losses.append(float(dp.to_host(metrics)["loss"]))
  return dp.to_host(state), losses


def test_eight_fake_devices_present():
  assert jax.device_count() == 8, "tests/conftest.py must give 8 fake CPU devices"


def test_pmap_mesh_and_single_device_agree():
  single, single_losses = _train("mesh", 1)
  for mode in ("pmap", "mesh"):
    state, losses = _train(mode, 8)
    np.testing.assert_allclose(losses, single_losses, rtol=2e-5, atol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6),
                 state.params, single.params)
    assert int(state.step) == 6
  # The run really trained: the loss fell and params moved from their initial values.
  assert single_losses[-1] < single_losses[0]


@pytest.mark.parametrize("mode", ["pmap", "mesh"])
def test_averaged_gradients_equal_the_whole_batch_gradient(mode):
  # Adam's update barely changes when every gradient is scaled, so the loop tests above could not
  # see a mesh step whose "mean" gradient was the sum over devices; compare the gradients.
  x = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
  w = np.linspace(0.5, 1.5, 3).astype(np.float32)
  loss = lambda w, x: jax.numpy.mean((x @ w) ** 2)
  dp = parallel.DataParallel(mode, 8)
  grad = dp.wrap(lambda w, x: parallel.pmean(jax.grad(loss)(w, x)),
                 (parallel.REPLICATED, parallel.SHARDED), parallel.REPLICATED)
  got = dp.to_host(grad(dp.replicate(w), dp.put(x, parallel.SHARDED)))
  np.testing.assert_allclose(got, jax.grad(loss)(w, x), rtol=1e-5)


def test_full_loop_pmap_equals_mesh(tmp_path):
  results = {}
  for mode in ("pmap", "mesh"):
    config = helpers.tiny_config(num_steps=8)
    config.parallel.mode = mode
    results[mode] = example_task.train_and_evaluate(config, str(tmp_path / mode))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6),
               results["pmap"]["state"].params, results["mesh"]["state"].params)
  assert results["pmap"]["test"]["accuracy"] == pytest.approx(results["mesh"]["test"]["accuracy"])


def test_devices_draw_different_rngs_but_runs_repeat():
  dp = parallel.DataParallel("mesh", 8)
  state = example_task.init(helpers.tiny_config(), jax.random.PRNGKey(3))
  fn = dp.wrap_step(lambda s, b, r: (s, {"loss": jax.random.uniform(r)}), donate=False)
  batch = dp.shard_batch({"x": np.zeros((8, 1), np.float32)})
  a = float(dp.to_host(fn(dp.replicate(state), batch)[1])["loss"])
  b = float(dp.to_host(fn(dp.replicate(state), batch)[1])["loss"])
  assert a == b  # deterministic given state.rng and state.step
  # The mean over 8 devices of their uniform draws is not device 0's draw alone.
  one = float(jax.random.uniform(jax.random.fold_in(jax.random.fold_in(state.rng, 0), 0)))
  assert a != pytest.approx(one)


def test_check_config_rejects_bad_mode():
  config = helpers.tiny_config()
  config.parallel.mode = "ddp"
  with pytest.raises(ValueError, match="parallel.mode"):
    train_loop.check_config(config)
