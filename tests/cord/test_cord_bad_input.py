"""Bad input to `reset_with_team` and actions given as Python lists (docs/cord_envs.md, "What
happens when"): out-of-range compositions raise eagerly and are flagged, never silently clamped,
under `jit`; list actions are converted to int32 arrays in every env and adapter."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cord_jax import envs
from cord_testutil import assert_trees_equal

RC = envs.ResourceCollection(num_agents=3, num_resources=3, time_limit=10)
FORAGING = envs.CooperativeForaging(num_agents=3, num_food=2, time_limit=10)
KEY = jax.random.key(0)


@functools.lru_cache(maxsize=None)
def _jit(env, name):
  return jax.jit(getattr(env, name))


@pytest.mark.parametrize("env, bad, message", [
    (RC, [0, 1, 7], r"team\[2\] = 7 is out of range; .* must lie in \[0, 2\]"),
    (RC, jnp.array([-1, 0, 0]), r"team\[0\] = -1 is out of range"),
    (FORAGING, (1, 0, 2), r"levels\[1\] = 0 is out of range; .*max_agent_level=3.* \[1, 3\]"),
    (FORAGING, np.array([1, 2, 4]), r"levels\[2\] = 4 is out of range"),
])
def test_reset_with_team_out_of_range_raises_eagerly(env, bad, message):
  with pytest.raises(ValueError, match=message):
    env.reset_with_team(KEY, bad)


def test_reset_with_team_rejects_non_integers():
  with pytest.raises(TypeError, match="team must hold integers"):
    RC.reset_with_team(KEY, [0.5, 1.0, 2.0])
  with pytest.raises(TypeError, match="levels must hold integers"):
    FORAGING.reset_with_team(KEY, jnp.array([1.0, 2.0, 3.0]))


def test_reset_with_team_out_of_range_under_jit_is_flagged():
  state, ts = _jit(RC, "reset_with_team")(KEY, jnp.array([0, 1, 7]))
  np.testing.assert_array_equal(ts.extras["invalid_team"], [False, False, True])
  np.testing.assert_array_equal(state.invalid_team, [False, False, True])
  # The flag stays for the whole episode, so a rollout's metrics show it too.
  _, ts = _jit(RC, "step")(state, jnp.zeros(3, jnp.int32))
  np.testing.assert_array_equal(ts.extras["invalid_team"], [False, False, True])
  _, ts = _jit(FORAGING, "reset_with_team")(KEY, jnp.array([0, 2, 9]))
  np.testing.assert_array_equal(ts.extras["invalid_team"], [True, False, True])
  # A valid team raises no flag, and neither does a plain reset.
  _, ts = _jit(RC, "reset_with_team")(KEY, jnp.array([0, 1, 2]))
  assert not np.any(ts.extras["invalid_team"])
  assert not np.any(_jit(RC, "reset")(KEY)[1].extras["invalid_team"])
  # vmap over compositions (the evaluation sweep) flags per row.
  sweep = jax.jit(jax.vmap(RC.reset_with_team, (None, 0)))
  _, ts = sweep(KEY, jnp.array([[0, 1, 2], [0, 3, -1]]))
  np.testing.assert_array_equal(ts.extras["invalid_team"], [[False] * 3, [False, True, True]])


def _shapes(tree):
  return jax.tree_util.tree_map(lambda x: (x.shape, x.dtype), tree)


def test_list_actions_are_converted_in_envs_wrappers_and_adapters():
  state, _ = _jit(RC, "reset")(KEY)
  step = _jit(RC, "step")
  assert_trees_equal(step(state, [0, 1, 2]), step(state, jnp.array([0, 1, 2], jnp.int32)))
  converted = RC.check_action((0, 1, 2))  # the eager path: every env and adapter calls this
  assert converted.dtype == jnp.int32 and converted.tolist() == [0, 1, 2]
  # Out-of-range values in a list follow the array rules: eagerly an error, under jit a flag.
  with pytest.raises(ValueError, match="chose"):
    RC.step(state, [0, 9, 2])
  np.testing.assert_array_equal(step(state, [0, 9, 2])[1].extras["invalid_action"],
                                [False, True, False])
  # Wrappers and adapters trace a list like an array (shapes only: no compile needed).
  wrapped = envs.AutoResetWrapper(RC)
  lbf = envs.JumanjiLBFAdapter()
  for env in (wrapped, lbf, FORAGING):
    env_state, _ = jax.eval_shape(env.reset, KEY)
    n = env.num_agents
    assert _shapes(jax.eval_shape(env.step, env_state, [0] * n)) == _shapes(
        jax.eval_shape(env.step, env_state, jnp.zeros(n, jnp.int32)))


def test_list_actions_that_are_not_integers_say_what_to_pass():
  state, _ = _jit(RC, "reset")(KEY)
  with pytest.raises(TypeError, match=r"Pass e.g. jnp.array\(\[0, 1, ...\], jnp.int32\) of shape "
                     r"\(3,\)"):
    RC.step(state, [0, 1, "up"])
  with pytest.raises(TypeError, match="integers"):
    RC.step(state, [0, 1.5, 2])
