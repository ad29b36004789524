"""AutoResetWrapper: fused and generic paths agree; LAST-step semantics; Jumanji compatibility."""

import jax
import jax.numpy as jnp
import numpy as np
from jumanji.types import StepType
from jumanji.wrappers import AutoResetWrapper as JumanjiAutoReset

from cord_jax import envs
from cord_testutil import assert_trees_equal

ENV = envs.ResourceCollection(num_agents=2, num_resources=3, time_limit=6)
T = 20


def _rollout(fused):
  wrapped = envs.AutoResetWrapper(ENV, next_obs_in_extras=True, fused=fused)
  policy = envs.make_scripted_policy(wrapped, "random")
  return jax.jit(lambda k: envs.rollout(wrapped, policy, k, T, keep_states=True))


def test_fused_and_generic_paths_agree_and_last_steps_carry_the_reset_observation():
  key = jax.random.key(0)
  fused = _rollout(True)(key)
  generic = _rollout(False)(key)
  assert_trees_equal(fused, generic)

  _, ts, states = fused
  last = np.asarray(ts.step_type) == int(StepType.LAST)
  np.testing.assert_array_equal(np.nonzero(last)[0], [5, 11, 17])  # time_limit = 6.
  view = np.asarray(ts.observation.agents_view)
  next_view = np.asarray(ts.extras["next_obs"].agents_view)
  # Mid-episode the true next observation is the observation; on LAST steps it is the terminal
  # one while `observation` already shows the next episode (step_count 0).
  np.testing.assert_array_equal(view[~last], next_view[~last])
  assert not np.array_equal(view[last], next_view[last])
  np.testing.assert_array_equal(np.asarray(ts.observation.step_count)[last], 0)
  np.testing.assert_array_equal(np.asarray(ts.extras["next_obs"].step_count)[last], 6)
  # Episode statistics: running sums that restart after each LAST step.
  rewards = np.asarray(ts.reward)
  returns = np.asarray(ts.extras["episode_return"])
  np.testing.assert_allclose(returns[5], rewards[:6].sum(0), rtol=1e-6)
  np.testing.assert_allclose(returns[11], rewards[6:12].sum(0), rtol=1e-6)
  np.testing.assert_array_equal(np.asarray(ts.extras["episode_length"])[last], 6)
  # Each episode starts from a new layout (the wrapper keeps its own key chain).
  piles = np.asarray(envs.unwrap_state(states).resource_pos)
  assert not np.array_equal(piles[0], piles[6]) and not np.array_equal(piles[6], piles[12])


def test_jumanji_autoreset_wrapper_runs_our_env():
  env = JumanjiAutoReset(ENV)
  state, ts = jax.jit(env.reset)(jax.random.key(1))
  step = jax.jit(env.step)
  types = []
  for _ in range(7):
    state, ts = step(state, jnp.zeros((2,), jnp.int32))
    types.append(int(ts.step_type))
  assert types[5] == int(StepType.LAST) and int(ts.observation.step_count) == 1
  envs.validate_timestep(ENV, ts)


def test_unwrap_helpers():
  wrapped = envs.AutoResetWrapper(envs.AutoResetWrapper(ENV))
  assert envs.unwrap_env(wrapped) is ENV
  assert wrapped.num_agents == ENV.num_agents  # Attributes pass through Jumanji's Wrapper.
  assert wrapped.observation_spec == ENV.observation_spec
