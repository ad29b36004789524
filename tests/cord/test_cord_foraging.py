"""CooperativeForaging: specs, vmap vs loop, determinism, invariants, co-op rules, compositions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jumanji.types import StepType

from cord_jax import envs
from cord_testutil import assert_trees_equal
from cord_testutil import assert_vmapped_steps_match_single

N, F, G, T = 3, 4, 7, 40
ENV = envs.CooperativeForaging(grid_size=G, num_agents=N, num_food=F, time_limit=20)
STEP = jax.jit(ENV.step)
RESET_TEAM = jax.jit(ENV.reset_with_team)
KEYS = jax.random.split(jax.random.key(1), 4)
POLICY = jnp.array([0, 1, 2, 2])  # Per env: 0 greedy, 1 team, 2 random.


def _run(key, which):
  wrapped = envs.AutoResetWrapper(ENV)
  pols = [envs.make_scripted_policy(wrapped, n) for n in ("greedy", "team", "random")]

  def policy(k, state, obs):
    return jnp.stack([p(k, state, obs) for p in pols])[which]
  return envs.rollout(wrapped, policy, key, T, keep_states=True)


ROLLOUT = jax.jit(jax.vmap(_run))


@pytest.fixture(scope="module")
def rollouts():
  _, timesteps, states = ROLLOUT(KEYS, POLICY)
  return timesteps, envs.unwrap_state(states)


def test_specs_validate_reset_and_every_step(rollouts):
  timesteps, _ = rollouts
  _, timestep = jax.jit(ENV.reset)(jax.random.key(0))
  envs.validate_timestep(ENV, timestep)
  envs.validate_batched_timestep(ENV, timesteps, batch_ndim=2)


def test_invariants_cells_bounds_and_masks(rollouts):
  timesteps, s = rollouts
  pos = np.asarray(s.agent_pos)  # (B, T, N, 2)
  assert pos.min() >= 0 and pos.max() < G
  flat = pos[..., 0] * G + pos[..., 1]
  for row in flat.reshape(-1, N):
    assert len(set(row.tolist())) == N  # No two agents share a cell.
  food = np.asarray(s.food_pos)[..., None, :, :]  # (B, T, 1, F, 2)
  on_food = np.all(pos[..., :, None, :] == food, axis=-1) & ~np.asarray(s.food_eaten)[..., None, :]
  assert not on_food.any()
  # The observation after step t belongs to states[t + 1]; its mask never offers a move off the
  # grid and always offers "stay".
  mask = np.asarray(timesteps.observation.action_mask)[:, :-1]
  nxt = pos[:, 1:]
  moves = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]])
  target = nxt[..., None, :] + moves  # (B, T - 1, N, 4, 2)
  off_grid = np.any((target < 0) | (target >= G), axis=-1)
  assert not np.any(mask[..., 1:5] & off_grid)
  assert mask[..., 0].all()


def test_rewards_sum_to_eaten_fraction_and_team_helps(rollouts):
  timesteps, _ = rollouts
  r = np.asarray(timesteps.reward)
  np.testing.assert_array_equal(r, np.repeat(r[..., :1], N, axis=-1))  # Team reward.
  last = np.asarray(timesteps.step_type) == int(StepType.LAST)
  # Episode returns never exceed 1 (all food eaten).
  ret = np.asarray(timesteps.extras["episode_return"])[..., 0]
  assert ret.max() <= 1.0 + 1e-5
  assert last.any()
  scripted = r[:2, :, 0].sum()
  random = r[2:, :, 0].sum()
  assert scripted > random


def test_jit_vmap_step_equals_python_loop():
  states, _ = jax.vmap(RESET_TEAM)(jax.random.split(jax.random.key(3), 3),
                                  jnp.array([[1, 2, 3]] * 3))
  assert_vmapped_steps_match_single(ENV, states, N)


def test_determinism(rollouts):
  timesteps, s = rollouts
  _, again, states = ROLLOUT(KEYS, POLICY)
  assert_trees_equal(again, timesteps)
  assert_trees_equal(envs.unwrap_state(states), s)


def _layout(levels, agents, food, food_levels):
  state, _ = RESET_TEAM(jax.random.key(0), jnp.array(levels))
  return state.replace(agent_pos=jnp.array(agents, jnp.int32),
                       food_pos=jnp.array(food, jnp.int32),
                       food_level=jnp.array(food_levels, jnp.int32),
                       food_eaten=jnp.zeros((F,), bool))


FAR_FOOD = [[1, 1], [1, 5], [5, 1], [5, 5]]


def test_coop_food_needs_enough_loaders():
  # Food 3 at (5, 5) has level 3; agents of levels 1 and 2 stand next to it.
  state = _layout([1, 2, 1], [[4, 5], [5, 4], [0, 0]], FAR_FOOD, [1, 1, 1, 3])
  load, stay = 5, 0
  alone, ts = STEP(state, jnp.array([stay, load, stay]))
  assert not bool(alone.food_eaten[3]) and float(ts.reward[0]) == 0.0
  assert int(ts.extras["failed_loads"]) == 1
  together, ts = STEP(state, jnp.array([load, load, stay]))
  assert bool(together.food_eaten[3])
  np.testing.assert_allclose(ts.reward, np.full(N, 3 / 6), rtol=1e-6)


def test_moves_are_blocked_by_walls_food_and_agents():
  up, down, left, right = 1, 2, 3, 4
  # Agent 0 at a wall corner; agent 1 next to food at (1, 1); agents 1 and 2 aim at one cell.
  state = _layout([1, 1, 1], [[0, 0], [1, 2], [3, 2]], FAR_FOOD, [1, 1, 1, 1])
  new, _ = STEP(state, jnp.array([up, left, up]))
  np.testing.assert_array_equal(new.agent_pos, [[0, 0], [1, 2], [2, 2]])
  new, _ = STEP(new, jnp.array([left, down, 0]))  # Agent 1 is blocked by agent 2 at (2, 2).
  np.testing.assert_array_equal(new.agent_pos, [[0, 0], [1, 2], [2, 2]])
  # Two agents choosing the same free cell both stay put.
  state = _layout([1, 1, 1], [[3, 2], [3, 4], [6, 6]], FAR_FOOD, [1, 1, 1, 1])
  new, _ = STEP(state, jnp.array([right, left, 0]))
  np.testing.assert_array_equal(new.agent_pos, state.agent_pos)


def test_action_mask_matches_legal_moves():
  state = _layout([1, 1, 1], [[0, 0], [1, 2], [2, 1]], FAR_FOOD, [1, 1, 1, 1])
  mask = np.asarray(jax.jit(ENV.action_mask)(state))
  # Agent 0 in the corner: no up, no left. Agents 1 and 2 touch food (1, 1): LOAD allowed,
  # and their moves onto the food cell are masked.
  np.testing.assert_array_equal(mask[0], [True, False, True, False, True, False])
  np.testing.assert_array_equal(mask[1], [True, True, True, False, True, True])
  np.testing.assert_array_equal(mask[2], [True, False, True, True, True, True])


def test_episode_end_termination_and_truncation():
  state = _layout([1, 2, 1], [[0, 1], [4, 5], [5, 0]], FAR_FOOD, [1, 1, 1, 2])
  state = state.replace(food_eaten=jnp.array([False, True, True, False]))
  # Eat the last two items in one step: terminated, discount 0.
  new, ts = STEP(state, jnp.array([5, 5, 5]))
  assert bool(new.food_eaten.all()) and int(ts.step_type) == int(StepType.LAST)
  np.testing.assert_array_equal(ts.discount, np.zeros(N))
  # Time limit: truncated, discount 1.
  state = state.replace(step_count=jnp.asarray(ENV.time_limit - 1))
  _, ts = STEP(state, jnp.zeros((N,), jnp.int32))
  assert int(ts.step_type) == int(StepType.LAST)
  np.testing.assert_array_equal(ts.discount, np.ones(N))


def test_compositions_and_food_levels():
  # One vmapped reset serves every check: rows 0-2 are three compositions, the rest draw many
  # layouts of composition (1, 2, 2).
  levels = jnp.concatenate([jnp.array([[1, 1, 1], [3, 3, 3], [1, 2, 3]]),
                            jnp.tile(jnp.array([[1, 2, 2]]), (61, 1))])
  states, ts = jax.jit(jax.vmap(RESET_TEAM))(jax.random.split(jax.random.key(4), 64), levels)
  np.testing.assert_array_equal(states.agent_level, levels)
  envs.validate_batched_timestep(ENV, ts, batch_ndim=1)
  food = np.asarray(states.food_level)
  top3 = np.asarray(levels).sum(-1, keepdims=True)
  assert np.all((food >= 1) & (food <= top3))
  # Both solo (<= strongest) and co-op (> strongest) food appear.
  lv = food[3:]
  assert (lv <= 2).any() and (lv > 2).any() and lv.max() <= 5
  # Fixed composition: reset(key) equals reset_with_team(key, levels).
  fixed = envs.CooperativeForaging(grid_size=G, num_agents=N, num_food=F, time_limit=20,
                                   agent_levels=(1, 2, 3))
  key = jax.random.key(9)
  assert_trees_equal(jax.jit(fixed.reset)(key), RESET_TEAM(key, jnp.array([1, 2, 3])))


def test_partial_view_hides_far_items():
  state = _layout([1, 1, 1], [[0, 0], [6, 6], [3, 3]], FAR_FOOD, [1, 1, 1, 1])
  view = np.asarray(jax.jit(ENV.observe)(state).agents_view)
  seen = view[:, 4 + 3: 4 + 4 * F: 4]  # visible flags of the food slots
  # sight 3 (Chebyshev): agent 0 at (0, 0) sees (1, 1) only; agent 2 at (3, 3) sees all four.
  np.testing.assert_array_equal(seen[0], [1, 0, 0, 0])
  np.testing.assert_array_equal(seen[2], [1, 1, 1, 1])
