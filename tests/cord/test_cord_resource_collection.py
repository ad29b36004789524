"""ResourceCollection: specs, vmap vs loop, determinism, invariants, episode ends, compositions."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jumanji.types import StepType

from cord_jax import envs
from cord_testutil import assert_trees_equal
from cord_testutil import assert_vmapped_steps_match_single

N, M, T = 3, 4, 40


@functools.lru_cache(maxsize=None)
def _env(**kwargs):
  return envs.ResourceCollection(**{"num_agents": N, "num_resources": M, "time_limit": 25,
                                    **kwargs})


@functools.lru_cache(maxsize=None)
def _rollout_fn(env, num_steps):
  """jit(vmap(rollout)) keeping states; per env, `greedy` picks the scripted or random team.

  One compiled function serves every test of this module, because compiling dominates the time.
  """
  wrapped = envs.AutoResetWrapper(env)
  scripted = envs.make_scripted_policy(wrapped, "greedy")
  rand = envs.random_policy(wrapped)

  def run(key, greedy):
    def policy(k, state, obs):
      return jnp.where(greedy, scripted(k, state, obs), rand(k, state, obs))
    return envs.rollout(wrapped, policy, key, num_steps, keep_states=True)

  return jax.jit(jax.vmap(run))


ENV = _env()
STEP = jax.jit(ENV.step)
RESET_TEAM = jax.jit(ENV.reset_with_team)
KEYS = jax.random.split(jax.random.key(1), 4)
GREEDY = jnp.array([True, True, False, False])


@pytest.fixture(scope="module")
def rollouts():
  _, timesteps, states = _rollout_fn(ENV, T)(KEYS, GREEDY)
  return ENV, timesteps, states


def test_specs_validate_reset_and_every_step(rollouts):
  env, timesteps, _ = rollouts
  _, timestep = jax.jit(env.reset)(jax.random.key(0))
  envs.validate_timestep(env, timestep)  # Jumanji's own Spec.validate.
  envs.validate_batched_timestep(env, timesteps, batch_ndim=2)
  assert env.action_spec.shape == (N,)
  assert env.reward_spec.shape == (N,) and env.discount_spec.shape == (N,)


def test_invariants_bounds_and_conservation(rollouts):
  _, timesteps, states = rollouts
  s = envs.unwrap_state(states)
  pos = np.asarray(s.agent_pos)
  assert np.all(pos >= -1.0) and np.all(pos <= 1.0)
  remaining = np.asarray(s.resource_amount).sum(-1)
  carried = np.asarray(s.agent_load).sum(-1)
  np.testing.assert_array_equal(remaining + carried + np.asarray(s.delivered), np.asarray(s.total))
  assert np.all(np.asarray(s.agent_load) <= np.asarray(s.agent_capacity))
  assert np.all(np.asarray(s.resource_amount) >= 0)
  # The extras count the post-step state of the transition out of states[t] (before any reset),
  # so the same total holds there too.
  ex = timesteps.extras
  after = np.asarray(ex["remaining"] + ex["carried"] + ex["delivered"])
  np.testing.assert_array_equal(after, np.asarray(s.total))


def test_scripted_team_collects_and_random_rarely(rollouts):
  _, timesteps, _ = rollouts
  r = np.asarray(timesteps.reward)
  greedy_return = float(r[:2, :, 0].sum())
  random_return = float(r[2:, :, 0].sum())
  assert greedy_return > 2 * max(random_return, 1.0)
  # Team reward: every agent gets the same reward.
  np.testing.assert_array_equal(r, np.repeat(r[..., :1], N, axis=-1))


def test_episodes_end_and_auto_reset(rollouts):
  env, timesteps, states = rollouts
  steps = np.asarray(timesteps.observation.step_count)
  last = np.asarray(timesteps.step_type) == int(StepType.LAST)
  lengths = np.asarray(timesteps.extras["episode_length"])
  assert last.any()
  # Every episode ends by the time limit; after a LAST step the observation is a fresh episode's.
  assert lengths.max() <= env.time_limit
  np.testing.assert_array_equal(steps[last], 0)
  np.testing.assert_array_equal(lengths[~last] , steps[~last])
  # The state that follows a LAST step is a fresh layout: step 0, nothing delivered or carried.
  s = envs.unwrap_state(states)
  after = np.roll(last, 1, axis=1)
  after[:, 0] = False
  np.testing.assert_array_equal(np.asarray(s.step_count)[after], 0)
  np.testing.assert_array_equal(np.asarray(s.delivered)[after], 0)


def test_jit_vmap_step_equals_python_loop():
  keys = jax.random.split(jax.random.key(3), 3)
  states, _ = jax.jit(jax.vmap(ENV.reset))(keys)
  assert_vmapped_steps_match_single(ENV, states, N)


def test_determinism_same_key_same_rollout(rollouts):
  env, timesteps, states = rollouts
  again = _rollout_fn(env, T)(KEYS, GREEDY)
  assert_trees_equal(again[1], timesteps)
  assert_trees_equal(again[2], states)
  other = _rollout_fn(env, T)(jax.random.split(jax.random.key(2), 4), GREEDY)
  assert not np.array_equal(np.asarray(other[1].observation.agents_view),
                            np.asarray(timesteps.observation.agents_view))


def test_truncation_at_time_limit():
  state, _ = RESET_TEAM(jax.random.key(0), jnp.array([0, 1, 2]))
  state = state.replace(step_count=jnp.asarray(ENV.time_limit - 2))
  state, ts = STEP(state, jnp.zeros((N,), jnp.int32))
  assert int(ts.step_type) == int(StepType.MID)
  state, ts = STEP(state, jnp.zeros((N,), jnp.int32))
  assert int(ts.step_type) == int(StepType.LAST) and int(state.step_count) == ENV.time_limit
  np.testing.assert_array_equal(ts.discount, np.ones(N))


def test_termination_when_everything_is_delivered():
  state, _ = RESET_TEAM(jax.random.key(0), jnp.array([0, 1, 2]))
  # One unit left, carried by agent 0 just outside the base, walking in: the episode terminates.
  state = state.replace(
      resource_amount=jnp.zeros((M,), jnp.int32),
      agent_load=jnp.array([1, 0, 0], jnp.int32),
      agent_pos=state.agent_pos.at[0].set(jnp.array([-0.25, 0.0])),
      delivered=state.total - 1)
  state, ts = STEP(state, jnp.array([4, 0, 0], jnp.int32))  # 4 = right (+x).
  assert int(ts.step_type) == int(StepType.LAST)
  np.testing.assert_array_equal(ts.discount, np.zeros(N))
  np.testing.assert_allclose(ts.reward, np.full(N, ENV.delivery_reward))
  assert int(state.delivered) == int(state.total)


def test_shared_pile_serves_claimants_in_order():
  state, _ = RESET_TEAM(jax.random.key(0), jnp.array([2, 2, 2]))  # Three haulers.
  pile = jnp.array([0.7, 0.7])
  amount = jnp.array([2, 1, 1, 1], jnp.int32)
  state = state.replace(
      agent_pos=jnp.stack([pile, pile + 0.01, pile - 0.01]),
      resource_pos=jnp.array([[0.7, 0.7], [-0.9, -0.9], [-0.9, 0.9], [0.9, -0.9]]),
      resource_amount=amount, total=jnp.sum(amount))
  new, ts = STEP(state, jnp.zeros((N,), jnp.int32))
  # Three claimants, two units: agents 0 and 1 get one each, nothing is created.
  np.testing.assert_array_equal(new.agent_load, [1, 1, 0])
  np.testing.assert_array_equal(new.resource_amount, [0, 1, 1, 1])
  np.testing.assert_allclose(ts.reward, np.full(N, 2 * ENV.pickup_reward), rtol=1e-6)


def test_types_set_speed_and_capacity():
  state, _ = RESET_TEAM(jax.random.key(0), jnp.array([0, 1, 2]))
  speeds = [t.speed for t in ENV.agent_types]
  np.testing.assert_allclose(state.agent_speed, speeds)
  np.testing.assert_array_equal(state.agent_capacity, [1, 2, 4])
  moved, _ = STEP(state, jnp.array([1, 1, 1], jnp.int32))  # All move up.
  np.testing.assert_allclose(moved.agent_pos[:, 1] - state.agent_pos[:, 1], speeds, atol=1e-6)


def test_fixed_team_reset_equals_reset_with_team_and_compositions_sweep():
  fixed = _env(team=("hauler", "scout", "scout"))
  key = jax.random.key(5)
  assert_trees_equal(jax.jit(fixed.reset)(key), RESET_TEAM(key, jnp.array([2, 0, 0])))
  # Unseen compositions in one vmapped call (ENV itself draws random teams).
  teams = jnp.array([[0, 0, 0], [2, 2, 2], [0, 1, 2]])
  states, ts = jax.vmap(RESET_TEAM, in_axes=(None, 0))(key, teams)
  np.testing.assert_array_equal(states.agent_type, teams)
  np.testing.assert_array_equal(states.agent_capacity, [[1, 1, 1], [4, 4, 4], [1, 2, 4]])
  envs.validate_batched_timestep(ENV, ts, batch_ndim=1)


def test_nearest_slots_keep_obs_dim_fixed_across_team_sizes():
  dims = {envs.ResourceCollection(num_agents=n, num_resources=m, nearest_agents=2,
                                  nearest_resources=3).obs_dim
          for n, m in ((1, 2), (2, 3), (3, 4), (6, 8))}
  assert dims == {9 + 4 * 3 + 6 * 2}  # Fewer entities than slots: padded, same width.
  large = envs.ResourceCollection(num_agents=6, num_resources=8, nearest_agents=2,
                                  nearest_resources=3)
  first, ts = jax.jit(lambda k: (large.reset(k)[1],
                                 large.step(large.reset(k)[0], jnp.ones((6,), jnp.int32))[1]))(
                                     jax.random.key(0))
  envs.validate_timestep(large, first)
  envs.validate_timestep(large, ts)
  # The first teammate slot is the nearest visible teammate.
  view = np.asarray(ts.observation.agents_view)
  first = view[:, 9 + 4 * 3: 9 + 4 * 3 + 6]
  second = view[:, 9 + 4 * 3 + 6: 9 + 4 * 3 + 12]
  both = (first[:, 5] > 0) & (second[:, 5] > 0)
  d1 = np.linalg.norm(first[:, :2], axis=-1)
  d2 = np.linalg.norm(second[:, :2], axis=-1)
  assert np.all(d1[both] <= d2[both] + 1e-6)


def test_partial_observation_hides_far_piles():
  state, _ = RESET_TEAM(jax.random.key(0), jnp.array([0, 1, 2]))
  r = ENV.obs_radius
  state = state.replace(agent_pos=jnp.zeros((N, 2)),
                        resource_pos=jnp.array([[0.5 * r, 0.0], [0.9, 0.9], [-0.9, 0.0],
                                                [0.0, -0.9 * r]]))
  view = np.asarray(jax.jit(ENV.observe)(state).agents_view)
  visible = view[:, 9 + 3: 9 + 4 * M: 4]
  np.testing.assert_array_equal(visible, np.tile([1.0, 0.0, 0.0, 1.0], (N, 1)))
  np.testing.assert_allclose(view[0, 9:12], [0.5, 0.0, state.resource_amount[0] / 3], rtol=1e-5)
  np.testing.assert_array_equal(view[0, 13:16], 0.0)  # The far pile reads as zeros.
