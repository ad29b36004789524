"""Jumanji's LevelBasedForaging and RobotWarehouse behind the common interface."""

import jax
import jax.numpy as jnp
import numpy as np
from jumanji.types import StepType
from PIL import Image

from cord_jax import envs
from cord_testutil import warehouse

T = 60


def _rollouts(env, names, num_envs=2):
  """One compiled rollout; env b uses policy names[b % len(names)]."""
  wrapped = envs.AutoResetWrapper(env)
  pols = [envs.make_scripted_policy(wrapped, n) for n in names]

  def run(key, which):
    def policy(k, state, obs):
      return jnp.stack([p(k, state, obs) for p in pols])[which]
    return envs.rollout(wrapped, policy, key, T, keep_states=True)

  which = jnp.arange(num_envs * len(names)) % len(names)
  keys = jax.random.split(jax.random.key(0), which.shape[0])
  return jax.jit(jax.vmap(run))(keys, which)


def _check_common(env, timesteps):
  envs.validate_batched_timestep(env, timesteps, batch_ndim=2)
  assert env.action_spec.shape == (env.num_agents,)
  assert timesteps.observation.global_state.shape[-1] == env.state_dim


def test_lbf_adapter_random_and_scripted(tmp_path):
  env = envs.JumanjiLBFAdapter(grid_size=8, num_agents=3, num_food=3, time_limit=30)
  assert envs.scripted_policy_names(env) == ["greedy", "random", "team"]
  _, ts, states = _rollouts(env, ["random", "greedy", "team"])
  _renders_png(env, states, tmp_path / "lbf.png")
  _check_common(env, ts)
  r = np.asarray(ts.reward)
  np.testing.assert_array_equal(r, np.repeat(r[..., :1], env.num_agents, -1))  # Team reward.
  # force_coop food needs the whole (weak) team: only the "team" heuristic gets it regularly.
  team_return = r[2::3, :, 0].sum()
  assert team_return > r[0::3, :, 0].sum()
  assert np.asarray(ts.step_type).max() == int(StepType.LAST)


def test_lbf_team_reward_is_the_sum_of_jumanji_rewards():
  team = envs.JumanjiLBFAdapter(num_agents=2, num_food=2)
  solo = envs.JumanjiLBFAdapter(env=team.env, team_reward=False)

  @jax.jit
  def eat_first_food(key):
    state, _ = team.reset(key)
    # Put both agents next to food 0 (force_coop: it needs both) and let them load together.
    food = state.food_items.position[0]
    beside = jnp.stack([food + jnp.array([0, -1]), food + jnp.array([0, 1])])
    state = state.replace(agents=state.agents.replace(position=beside))
    load = jnp.full((2,), 5, jnp.int32)
    return team.step(state, load)[1].reward, solo.step(state, load)[1].reward

  team_r, solo_r = eat_first_food(jax.random.key(3))
  assert float(np.sum(solo_r)) > 0.0 and not np.allclose(solo_r, solo_r.sum())
  np.testing.assert_allclose(team_r, np.full(2, float(np.sum(solo_r))), rtol=1e-6)


def test_warehouse_adapter_random_and_scripted(tmp_path):
  env = warehouse()
  assert "greedy" in envs.scripted_policy_names(env)
  _, ts, states = _rollouts(env, ["random", "greedy"], num_envs=1)
  _check_common(env, ts)
  r = np.asarray(ts.reward)
  np.testing.assert_array_equal(r, np.repeat(r[..., :1], env.num_agents, -1))
  # The scripted agents turn and drive (they are not stuck on no-ops).
  pos = envs.unwrap_state(states).agents.position
  moved = np.abs(np.diff(np.asarray(pos.x[1]), axis=0)).sum() + np.abs(
      np.diff(np.asarray(pos.y[1]), axis=0)).sum()
  assert moved > 0
  _renders_png(env, states, tmp_path / "rware.png")


def _renders_png(env, states, path):
  state = jax.tree_util.tree_map(lambda x: x[0, 5], envs.unwrap_state(states))
  envs.save_png(env, state, path)
  with Image.open(path) as im:
    assert im.format == "PNG" and im.size[0] > 100
