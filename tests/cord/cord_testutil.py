"""Helpers shared by the CORD environment tests."""

import functools

import jax
import jax.numpy as jnp
import numpy as np


def random_actions(key, mask):
  """Uniform legal actions for an (..., N, A) mask."""
  return jax.random.categorical(key, jnp.where(mask, 0.0, -jnp.inf), axis=-1).astype(jnp.int32)


def assert_trees_equal(a, b):
  """Exact equality of two pytrees of arrays (typed PRNG keys compared through their data)."""
  def data(x):
    if hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
      return np.asarray(jax.random.key_data(x))
    return np.asarray(x)
  la, ta = jax.tree_util.tree_flatten(a)
  lb, tb = jax.tree_util.tree_flatten(b)
  assert ta == tb
  for x, y in zip(la, lb):
    np.testing.assert_array_equal(data(x), data(y))


def assert_vmapped_steps_match_single(env, states, num_agents, steps=4):
  """``jit(vmap(env.step))`` over a batch of states equals stepping each state alone, bit for bit.

  ``states`` is a batch of env states (leading axis = batch); actions are uniform random ids.
  """
  batch = jax.tree_util.tree_leaves(states)[0].shape[0]
  vstep, step = jax.jit(jax.vmap(env.step)), jax.jit(env.step)
  singles = [jax.tree_util.tree_map(lambda x, b=b: x[b], states) for b in range(batch)]
  for t in range(steps):
    actions = jax.random.randint(jax.random.key(10 + t), (batch, num_agents), 0, env.num_actions)
    states, timesteps = vstep(states, actions)
    for b in range(batch):
      singles[b], timestep = step(singles[b], actions[b])
      assert_trees_equal(jax.tree_util.tree_map(lambda x, b=b: x[b], (states, timesteps)),
                         (singles[b], timestep))


@functools.lru_cache(maxsize=None)
def warehouse():
  """One RobotWarehouse adapter for every test module (building Jumanji's layout takes seconds)."""
  from cord_jax import envs  # pylint: disable=g-import-not-at-top
  return envs.JumanjiWarehouseAdapter(time_limit=50)
