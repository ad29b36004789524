"""The CORD learner end to end: seeds under vmap, a short run that learns, and config errors."""

import os

import jax
import ml_collections
import numpy as np
import pytest

from common import config_checks
from common import parallel
from configs.cord import defaults
from configs.cord import foraging
from configs.cord import resource_collection
from cord_jax import train


def _as_numpy(tree):
  def data(x):
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      x = jax.random.key_data(x)
    return np.asarray(x, np.float64)
  return jax.tree.map(data, tree)


def _tiny_config():
  """Two agents, one solo food item on a 5x5 grid, 15-step episodes: learns in a few updates."""
  c = foraging.get_config("runlocal")
  c.env.num_agents = 2
  c.env.kwargs = ml_collections.ConfigDict(dict(grid_size=5, num_food=1, coop_prob=0.0,
                                                time_limit=15))
  c.env.num_envs = 16
  c.ppo.rollout_len, c.ppo.updates_per_chunk, c.ppo.num_epochs = 16, 10, 2
  c.model.hidden = 32
  c.optim.learning_rate = 3e-3
  c.train.num_steps = 4
  return c


@pytest.fixture(scope="module")
def tiny():
  """The tiny config's learner, initial runner (2 seeds) and one jitted chunk on one device."""
  c = _tiny_config()
  learner = train.Learner(c)
  init_state, chunk = train.make_train(c, learner)
  # One device, as a named axis of size 1, so that the chunk's collectives have their axis.
  run = jax.jit(lambda r: jax.tree.map(lambda x: x[0], jax.vmap(
      chunk, axis_name=parallel.DATA_AXIS)(jax.tree.map(lambda x: x[None], r))))
  # Threefry keys: their bits under vmap equal the unbatched ones (the tests' default, rbg,
  # promises no such thing).
  runner = jax.jit(init_state)(jax.random.key(0, impl="threefry2x32"))
  return learner, runner, run


def test_vmap_over_seeds_equals_separate_runs(tiny):  # pylint: disable=redefined-outer-name
  _, runner, run = tiny
  together, metrics = _as_numpy(run(runner))
  assert metrics["loss"].shape == (2,)
  for k in range(2):
    alone, m = _as_numpy(run(jax.tree.map(lambda x, k=k: x[k:k + 1], runner)))
    for (path, a), b in zip(jax.tree_util.tree_flatten_with_path(alone)[0],
                            jax.tree.leaves(together)):
      np.testing.assert_allclose(a[0], b[k], rtol=1e-4, atol=1e-5,
                                 err_msg=jax.tree_util.keystr(path))
    for name in m:
      np.testing.assert_allclose(m[name][0], metrics[name][k], rtol=1e-4, atol=1e-5,
                                 err_msg=name)
  assert not np.allclose(metrics["loss"][0], metrics["loss"][1])  # the seeds really differ


def test_short_run_beats_the_random_policy(tiny):  # pylint: disable=redefined-outer-name
  learner, runner, run = tiny
  c = learner.config
  for _ in range(c.train.num_steps):
    runner, metrics = run(runner)
  assert np.all(np.isfinite(metrics["loss"]))
  keys = jax.random.split(jax.random.key(5, impl="threefry2x32"), 2)
  returns = np.asarray(jax.jit(jax.vmap(lambda p, k: learner.evaluate_one(p, k, 64)))(
      runner.train.params, keys)["return"])
  random = train.baseline_returns(c, learner.raw_env, "random", 64)
  assert np.all(returns > random + 0.2), (returns, random)


def _bad(config_fn, key, value):
  c = config_fn()
  section, name = key.rsplit(".", 1)
  node = c
  for part in section.split("."):
    node = node[part]
  node[name] = value
  return c


@pytest.mark.parametrize("key,value,named", [
    ("roles.T_role", 0, "roles.T_role"),
    ("roles.num_roles", 0, "roles.num_roles"),
    ("env.name", "smac_10m", "env.name"),
    ("env.num_agents", 0, "env.num_agents"),
    ("eval.partner", "expert", "eval.partner"),
    ("roles.assign", "voted", "roles.assign"),
    ("model.core", "lstm", "model.core"),
])
def test_bad_config_names_the_key(key, value, named):
  c = _bad(lambda: resource_collection.get_config("runlocal"), key, value)
  with pytest.raises(config_checks.ConfigError, match=f"config key '{named}'"):
    train.Learner(c)


def test_team_the_env_cannot_hold():
  c = foraging.get_config("runlocal")
  c.env.kwargs.grid_size = 5  # 25 cells
  c.env.num_agents = 30
  with pytest.raises(config_checks.ConfigError, match="config key 'env.num_agents'.*cannot hold"):
    train.Learner(c)
  c = resource_collection.get_config("runlocal")
  c.env.kwargs.team = ("scout", "hauler")  # two types for a team of three
  with pytest.raises(config_checks.ConfigError, match="config key 'env.num_agents'"):
    train.Learner(c)


def test_bad_config_stops_before_training(tmp_path):
  c = resource_collection.get_config("runlocal,no_rd")
  c.roles.T_role = 0
  with pytest.raises(config_checks.ConfigError, match="roles.T_role"):
    train.train_and_evaluate(c, str(tmp_path))
  with pytest.raises(ValueError, match="unknown config argument 'cord2'"):
    resource_collection.get_config("cord2")


def test_config_methods():
  for method in defaults.METHODS:
    c = resource_collection.get_config(f"{method},runlocal")
    assert c.method == "cord"
  assert resource_collection.get_config("mappo").roles.assign == "none"
  assert resource_collection.get_config("no_rc").roles.alpha == 0.0
  assert resource_collection.get_config("no_rd").roles.beta == 0.0
  assert resource_collection.get_config("fixed_roles").roles.assign == "fixed"
  assert resource_collection.get_config("random_roles").roles.assign == "random"


@pytest.mark.parametrize("core", ["mlp", "gru"])
def test_minibatches_replay_the_rollouts_log_probs(core):
  """Before any update, every minibatch reproduces the rollout's log-probabilities (ratio 1).

  For the GRU this checks that the recurrent state is carried and reset at episode starts in
  training exactly as in acting.
  """
  c = _tiny_config()
  c.model.core = core
  c.env.kwargs.time_limit = 6  # several episode starts inside one rollout
  learner = train.Learner(c)

  @jax.jit
  def replay(key):
    params = learner.init_params(key)
    # Far from uniform (the output layer starts near 0), so that a wrong state shows.
    params["actor"]["out"]["kernel"] = 300.0 * params["actor"]["out"]["kernel"]
    env = learner.reset(jax.random.fold_in(key, 1), 4)
    env = env._replace(carry=jax.random.normal(key, env.carry.shape))  # a non-trivial start
    carry0 = env.carry
    _, traj = learner.rollout(params, env, jax.random.fold_in(key, 2), 16)
    batch = learner.advantages(params, env, traj)
    mbs, carries = learner.minibatches(batch, carry0, jax.random.fold_in(key, 3))
    logits = jax.vmap(lambda mb, c0: learner.replay_logits(params, mb.traj, c0))(mbs, carries)
    return mbs.traj.logp, mbs.traj.action, logits, traj.first

  old_logp, action, logits, first = replay(jax.random.key(0, impl="threefry2x32"))
  assert np.asarray(first)[1:].any()
  np.testing.assert_allclose(np.asarray(jax.vmap(lambda l, a: jax.numpy.take_along_axis(
      jax.nn.log_softmax(l), a[..., None], -1)[..., 0])(logits, action)), np.asarray(old_logp),
                             atol=1e-5)


def test_envs_that_do_not_split_over_devices():
  c = resource_collection.get_config("runlocal")  # 4 envs; the tests have 8 fake devices
  with pytest.raises(config_checks.ConfigError, match="config key 'env.num_envs'"):
    train.make_task(c)
  c.env.num_envs, c.ppo.rollout_len, c.ppo.num_minibatches = 8, 3, 2  # 1 env x 3 steps per device
  with pytest.raises(config_checks.ConfigError, match="config key 'ppo.num_minibatches'"):
    train.make_task(c)


_INIT_SCRIPT = """
import jax
from configs.cord import resource_collection
from cord_jax import train
c = resource_collection.get_config("runlocal")
c.model.hidden, c.env.num_seeds = 64, 2
learner = train.Learner(c)
init_state, _ = train.make_train(c, learner)
state = jax.device_get(jax.jit(init_state)(jax.random.PRNGKey(0)))
one = jax.device_get(jax.jit(lambda k: learner.init_one(k, c.env.num_envs)[0].params)(
    jax.random.split(jax.random.PRNGKey(0), 2)[1]))
same = jax.tree.all(jax.tree.map(lambda a, b: bool((a[1] == b).all()), state.train.params, one))
print("INIT_OK", same)
"""


def test_seed_init_finishes_on_every_core():
  """Hidden 64 x 2 seeds: vmapped orthogonal init deadlocked jaxlib's CPU QR on 2 cores.

  Run in a fresh process with the machine's own thread pool (the tests' fake devices and a
  one-core pin both hide it), bounded by a timeout; seed 1's parameters equal a lone init.
  """
  import subprocess
  import sys
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  root = os.path.join(os.path.dirname(__file__), "..", "..")
  try:
    out = subprocess.run([sys.executable, "-c", _INIT_SCRIPT], cwd=root, env=env,
                         capture_output=True, text=True, timeout=300)
  except subprocess.TimeoutExpired:
    pytest.fail("init_state of 2 seeds did not finish in 300 s (the batched-QR deadlock?)")
  assert out.returncode == 0, out.stderr[-2000:]
  assert "INIT_OK True" in out.stdout
