"""Input checks with clear errors, for keys, actions and team compositions.

Shapes and dtypes are static in JAX, so those checks run at trace time and cost nothing inside
`jit` or `vmap`. Values (an action of 7 where only 0..5 exist) are only known outside `jit`: there
they are checked eagerly; inside `jit` the envs treat an out-of-range action as the no-op (0) and
report it in `timestep.extras["invalid_action"]`, and `checkify_step` turns the same condition
into a `checkify` error for users who want a hard failure inside compiled code. Team compositions
given to `reset_with_team` follow the same rule: eagerly a ValueError, inside `jit` clamped into
range and flagged in `state.invalid_team` / `timestep.extras["invalid_team"]`.

A joint action given as a Python list or tuple (`[0, 3, 1]`) is converted to an int32 array, in
every env and adapter (they all go through `check_actions`), eagerly and under `jit` alike.
"""

from __future__ import annotations

from typing import Any, Callable, Tuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

# Raw (legacy) keys are uint32 arrays whose shape depends on the PRNG implementation in use.
_RAW_KEY_SHAPE = tuple(jax.eval_shape(lambda: jax.random.PRNGKey(0)).shape)


def is_concrete(x: Any) -> bool:
  """True when `x` holds values now (not a tracer inside jit/vmap/grad)."""
  return not isinstance(x, jax.core.Tracer)


def check_key(key: chex.PRNGKey, where: str = "reset") -> chex.PRNGKey:
  """Raises ValueError unless `key` is exactly one PRNG key.

  Accepts a typed key (`jax.random.key`, shape ()) or a raw uint32 key (`jax.random.PRNGKey`,
  shape (2,) for the default implementation).

  Args:
    key: the candidate key.
    where: name of the calling method, for the message.

  Returns:
    The key, unchanged.
  """
  shape = tuple(getattr(key, "shape", ()))
  dtype = getattr(key, "dtype", None)
  if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
    if shape == ():
      return key
  elif dtype == jnp.uint32 and shape == _RAW_KEY_SHAPE:
    return key
  raise ValueError(
      f"{where} expects a single PRNG key: a typed key of shape () (jax.random.key) or a raw "
      f"uint32 key of shape {_RAW_KEY_SHAPE} (jax.random.PRNGKey); got shape {shape} and dtype "
      f"{dtype}. For a batch of environments use jax.vmap({where})(keys) with "
      f"keys = jax.random.split(key, n).")


def check_actions(action: chex.Array, num_agents: int, num_actions: int) -> chex.Array:
  """Checks one joint action: shape (num_agents,), integer dtype, values in [0, num_actions).

  The shape and dtype checks run on tracers too; the value check only when `action` is concrete.

  Args:
    action: the joint action, one integer per agent.
    num_agents: the team size the env was built for.
    num_actions: the number of discrete actions per agent.

  Returns:
    The action as an int32 array.

  Raises:
    ValueError: on a wrong team size or an out-of-range value.
    TypeError: on a non-integer dtype, or a list that is not a flat list of integers.
  """
  if isinstance(action, (list, tuple)):
    try:
      action = jnp.asarray(action)
    except (TypeError, ValueError) as e:
      raise TypeError(
          f"step expects one integer action per agent; got a {type(action).__name__} that does "
          f"not convert to an integer array ({e}). Pass e.g. jnp.array([0, 1, ...], jnp.int32) "
          f"of shape ({num_agents},).") from None
  shape = tuple(jnp.shape(action))
  if shape != (num_agents,):
    raise ValueError(
        f"step expects one action per agent, shape ({num_agents},), because this env was built "
        f"for a team of {num_agents}; got shape {shape}. For a batch of environments use "
        "jax.vmap(env.step); for a different team size build a new env.")
  dtype = jnp.result_type(action)
  if not (jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.bool_)):
    raise TypeError(f"actions must be integers in [0, {num_actions}); got dtype {dtype}.")
  if is_concrete(action):
    values = np.asarray(action)
    bad = np.nonzero((values < 0) | (values >= num_actions))[0]
    if bad.size:
      raise ValueError(
          f"actions must lie in [0, {num_actions}); agent(s) {bad.tolist()} chose "
          f"{values[bad].tolist()}.")
  return jnp.asarray(action, jnp.int32)


def sanitize_actions(action: chex.Array, num_actions: int) -> Tuple[chex.Array, chex.Array]:
  """Replaces out-of-range actions by the no-op 0 and says which agents sent one."""
  invalid = (action < 0) | (action >= num_actions)
  return jnp.where(invalid, 0, action), invalid


def check_team_size(name: str, values: Any, num_agents: int) -> None:
  """Raises ValueError when a per-agent array or sequence does not have `num_agents` entries."""
  length = len(values) if not hasattr(values, "shape") else (
      values.shape[0] if len(values.shape) == 1 else None)
  if length != num_agents:
    shape = getattr(values, "shape", (len(values),))
    raise ValueError(
        f"{name} must have one entry per agent, i.e. shape ({num_agents},) for this env built for "
        f"{num_agents} agents; got shape {tuple(shape)}. Build a new env for another team size.")


def check_team_values(name: str, values: Any, low: int, high: int,
                      meaning: str) -> Tuple[chex.Array, chex.Array]:
  """Checks a per-agent composition (types or levels) against its valid range [low, high].

  Concrete values out of range raise; traced ones (inside `jit`/`vmap`) cannot, so they are
  clamped into range and flagged, like out-of-range actions.

  Args:
    name: the argument's name, for the message (`team`, `levels`).
    values: one integer per agent (an array, list or tuple).
    low: the smallest valid value.
    high: the largest valid value (inclusive).
    meaning: what the values are, for the message.

  Returns:
    (the values as int32, clamped into range; bool (N,) True where a value was out of range).

  Raises:
    TypeError: the values are not integers.
    ValueError: a concrete value is out of range.
  """
  values = jnp.asarray(values)
  if not jnp.issubdtype(values.dtype, jnp.integer):
    raise TypeError(f"reset_with_team: {name} must hold integers ({meaning}); got dtype "
                    f"{values.dtype}.")
  invalid = (values < low) | (values > high)
  if is_concrete(values) and bool(np.any(np.asarray(invalid))):
    i = int(np.argmax(np.asarray(invalid)))
    raise ValueError(f"reset_with_team: {name}[{i}] = {int(values[i])} is out of range; {name} "
                     f"entries are {meaning} and must lie in [{low}, {high}]; got "
                     f"{np.asarray(values).tolist()}.")
  return jnp.clip(values, low, high).astype(jnp.int32), invalid


def check_state_team_size(state_num_agents: int, num_agents: int) -> None:
  """Raises ValueError when a state from an env of another team size is passed in."""
  if state_num_agents != num_agents:
    raise ValueError(
        f"this state holds {state_num_agents} agents but the env was built for {num_agents}; "
        "pass a state produced by this env's reset.")


def checkify_step(env: Any) -> Callable[..., Tuple[checkify.Error, Any]]:
  """Wraps `env.step` so that out-of-range actions raise inside `jit` via `checkify`.

  Usage:
    step = jax.jit(checkify_step(env))
    err, (state, timestep) = step(state, action)
    err.throw()  # raises checkify.JaxRuntimeError naming the bad agent and value

  Args:
    env: a `MultiAgentEnv` (or a wrapper of one) with `num_agents` and `num_actions`.

  Returns:
    A checkified step function returning (error, (state, timestep)).
  """
  num_actions = env.num_actions

  def step(state, action):
    action = jnp.asarray(action)
    ok = (action >= 0) & (action < num_actions)
    first_bad = jnp.argmin(ok)
    checkify.check(
        jnp.all(ok),
        f"actions must lie in [0, {num_actions}); agent {{agent}} chose {{value}}",
        agent=first_bad, value=action[first_bad])
    return env.step(state, action)

  return checkify.checkify(step, errors=checkify.user_checks)
