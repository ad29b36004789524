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


@functools.lru_cache(maxsize=None)
def warehouse():
  """One RobotWarehouse adapter for every test module (building Jumanji's layout takes seconds)."""
  from cord_jax import envs  # pylint: disable=g-import-not-at-top
  return envs.JumanjiWarehouseAdapter(time_limit=50)
