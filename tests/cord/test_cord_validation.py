"""Bad input gives clear errors: keys, actions, team sizes, compositions, constructor arguments."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

from cord_jax import envs
from cord_testutil import warehouse

ENV = envs.ResourceCollection(num_agents=3, num_resources=3, time_limit=10)
STEP = jax.jit(ENV.step)


@functools.lru_cache(maxsize=None)
def _state():
  return jax.jit(ENV.reset)(jax.random.key(0))[0]


@pytest.mark.parametrize("bad_key", [
    jax.random.split(jax.random.key(0), 4),  # a batch of typed keys
    jax.random.split(jax.random.PRNGKey(0), 4),  # a batch of raw keys
    jnp.zeros((2,), jnp.int32),  # wrong dtype
    jnp.zeros((3,), jnp.uint32),  # wrong shape
])
def test_reset_rejects_keys_of_the_wrong_shape(bad_key):
  with pytest.raises(ValueError, match="single PRNG key"):
    ENV.reset(bad_key)
  with pytest.raises(ValueError, match="jax.vmap"):
    jax.jit(ENV.reset)(bad_key)  # Shapes are static: the check runs under jit too.


def test_raw_and_typed_keys_both_work():
  a, _ = jax.jit(ENV.reset)(jax.random.PRNGKey(3))
  b, _ = jax.jit(ENV.reset)(jax.random.key(3))
  np.testing.assert_array_equal(a.resource_pos, b.resource_pos)


def test_wrong_team_size_in_actions():
  for bad in (jnp.zeros((2,), jnp.int32), jnp.zeros((4,), jnp.int32),
              jnp.zeros((1, 3), jnp.int32)):
    with pytest.raises(ValueError, match="built for a team of 3"):
      STEP(_state(), bad)


def test_non_integer_actions():
  with pytest.raises(TypeError, match="integers"):
    STEP(_state(), jnp.zeros((3,), jnp.float32))


def test_out_of_range_actions_eager_raise_and_jitted_become_noops():
  with pytest.raises(ValueError, match=r"agent\(s\) \[1\] chose \[7\]"):
    ENV.step(_state(), jnp.array([0, 7, 1]))
  with pytest.raises(ValueError, match="chose"):
    ENV.step(_state(), np.array([-1, 0, 0]))
  state, ts = STEP(_state(), jnp.array([0, 7, 1]))
  np.testing.assert_array_equal(ts.extras["invalid_action"], [False, True, False])
  noop, _ = STEP(_state(), jnp.array([0, 0, 1]))
  np.testing.assert_array_equal(state.agent_pos, noop.agent_pos)


def test_checkify_step_raises_inside_jit():
  checked = jax.jit(envs.checkify_step(ENV))
  err, _ = checked(_state(), jnp.array([0, 1, 2]))
  err.throw()  # No error for valid actions.
  err, _ = checked(_state(), jnp.array([0, 9, 2]))
  with pytest.raises(checkify.JaxRuntimeError, match="agent 1 chose 9"):
    err.throw()


def test_state_of_another_team_size():
  other = envs.ResourceCollection(num_agents=4, num_resources=3)
  # Shapes suffice: the check runs at trace time, so abstract values show it without compiling.
  state, _ = jax.eval_shape(other.reset, jax.random.key(0))
  with pytest.raises(ValueError, match="holds 4 agents but the env was built for 3"):
    jax.eval_shape(ENV.step, state, jnp.zeros((3,), jnp.int32))


def test_reset_with_team_checks():
  with pytest.raises(ValueError, match=r"shape \(3,\)"):
    ENV.reset_with_team(jax.random.key(0), jnp.array([0, 1]))
  with pytest.raises(ValueError, match="must lie in"):
    ENV.reset_with_team(jax.random.key(0), jnp.array([0, 1, 5]))
  foraging = envs.CooperativeForaging(num_agents=3)
  with pytest.raises(ValueError, match="must lie in"):
    foraging.reset_with_team(jax.random.key(0), jnp.array([0, 1, 2]))


@pytest.mark.parametrize("build, message", [
    (lambda: envs.ResourceCollection(num_agents=3, team=("scout", "hauler")), "one entry per"),
    (lambda: envs.ResourceCollection(num_agents=2, team=("scout", "pilot")), "unknown agent"),
    (lambda: envs.ResourceCollection(num_agents=2, team=(0, 9)), "out of range"),
    (lambda: envs.ResourceCollection(num_agents=0), "num_agents >= 1"),
    (lambda: envs.ResourceCollection(nearest_agents=0), ">= 1"),
    (lambda: envs.ResourceCollection(agent_types=(envs.AgentType("x", 0.0, 1),)), "speed > 0"),
    (lambda: envs.CooperativeForaging(grid_size=7, num_food=10), "num_food <= 9"),
    (lambda: envs.CooperativeForaging(num_agents=1), "at least two agents"),
    (lambda: envs.CooperativeForaging(num_agents=2, agent_levels=(1, 4)), "must lie in"),
    (lambda: envs.CooperativeForaging(num_agents=2, agent_levels=(1,)), "one entry per"),
    (lambda: envs.make("no_such_env"), "unknown env"),
])
def test_constructor_errors(build, message):
  with pytest.raises(ValueError, match=message):
    build()


def test_adapters_check_actions_too():
  # Actions are checked before the state is touched, so no state is needed here.
  for env in (envs.JumanjiLBFAdapter(), warehouse()):
    n = env.num_agents
    with pytest.raises(ValueError, match=f"built for a team of {n}"):
      env.step(None, jnp.zeros((n + 1,), jnp.int32))
    with pytest.raises(ValueError, match="chose"):
      env.step(None, jnp.full((n,), env.num_actions))


def test_policy_helpers_errors():
  with pytest.raises(ValueError, match="available"):
    envs.make_scripted_policy(ENV, "telepathy")
  with pytest.raises(ValueError, match="seats"):
    envs.mix_policies([envs.random_policy(ENV)], [0, 1, 0])
