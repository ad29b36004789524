"""JaxMARL MPE and SMAX behind the common interface (needs the optional `bench` extra)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jumanji.types import StepType

pytest.importorskip(
    "jaxmarl", reason="JaxMARL adapters need the optional `bench` extra (jaxmarl==0.2.0); "
    "CI installs only `test`.", exc_type=ImportError)

# pylint: disable=wrong-import-position
from cord_jax import envs
from cord_jax.envs import jaxmarl_adapter


def _rollouts(env, steps):
  wrapped = envs.AutoResetWrapper(env)
  pols = [envs.make_scripted_policy(wrapped, n) for n in ("random", "greedy")]

  def run(key, which):
    def policy(k, state, obs):
      return jnp.stack([p(k, state, obs) for p in pols])[which]
    return envs.rollout(wrapped, policy, key, steps)

  which = jnp.array([0, 1, 0, 1])
  return jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(0), 4), which)


def test_mpe_simple_spread():
  env = envs.make("jaxmarl_mpe")
  assert (env.num_agents, env.num_actions) == (3, 5)
  assert env.state_dim == 3 * env.obs_dim  # All observations concatenated.
  _, ts, _ = _rollouts(env, 30)
  envs.validate_batched_timestep(env, ts, batch_ndim=2)
  last = np.asarray(ts.step_type) == int(StepType.LAST)
  # Episodes are cut by the time limit only: truncation, discount stays 1.
  np.testing.assert_array_equal(np.nonzero(last[0])[0], [env.time_limit - 1])
  assert np.all(np.asarray(ts.discount) == 1.0)
  # Driving to the landmarks beats random driving.
  r = np.asarray(ts.reward)[..., 0].sum(1)
  assert r[1::2].mean() > r[0::2].mean()


def test_smax_3m():
  env = envs.make("jaxmarl_smax")
  assert env.num_agents == 3 and env.state_dim > 0
  _, ts, _ = _rollouts(env, 60)
  envs.validate_batched_timestep(env, ts, batch_ndim=2)
  mask = np.asarray(ts.observation.action_mask)
  assert mask[..., 4].all()  # "stop" is always legal in SMAX.
  last = np.asarray(ts.step_type) == int(StepType.LAST)
  assert last.any()
  # Battles that end before the time limit terminate (discount 0).
  np.testing.assert_array_equal(np.asarray(ts.discount)[last], 0.0)
  r = np.asarray(ts.reward)[..., 0].sum(1)
  assert r[1::2].mean() > r[0::2].mean()


def test_wrapping_an_existing_instance_and_action_checks():
  import jaxmarl  # pylint: disable=g-import-not-at-top
  env = jaxmarl_adapter.JaxMARLAdapter(
      jaxmarl.make("MPE_simple_spread_v3", num_agents=2, num_landmarks=2))
  assert (env.num_agents, env.obs_dim, env.state_dim) == (2, 12, 24)
  assert env.time_limit == env.max_steps + 1
  # Actions are checked before the state is touched.
  with pytest.raises(ValueError, match="built for a team of 2"):
    env.step(None, jnp.zeros((3,), jnp.int32))
  with pytest.raises(ValueError, match="chose"):
    env.step(None, jnp.array([0, 5]))
