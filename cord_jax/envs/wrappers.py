"""Auto-reset and rollouts for `MultiAgentEnv`s.

`AutoResetWrapper` follows Jumanji's convention (the LAST timestep of an episode carries the
terminal reward and discount but the *reset* observation, so the next `step` already acts in the
new episode) and adds what a learner logs: the running per-agent episode return and length, and on
the LAST step the finished episode's return and length. Unlike Jumanji's wrapper it keeps its own
key chain, so envs whose state key is never advanced still get a fresh layout every episode.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

import chex
import jax
import jax.numpy as jnp
from jumanji.types import TimeStep
from jumanji.wrappers import Wrapper

from cord_jax.envs import core
from cord_jax.envs import validation

# policy(key, env_state, observation) -> int32 (num_agents,) joint action.
Policy = Callable[[chex.PRNGKey, Any, core.Observation], chex.Array]


@chex.dataclass
class AutoResetState:
  """State of `AutoResetWrapper`.

  Attributes:
    env_state: the wrapped env's state.
    key: key chain for the next resets.
    episode_return: float32 (N,) return of the running episode so far.
    episode_length: int32 () steps of the running episode so far.
  """

  env_state: Any
  key: chex.PRNGKey
  episode_return: chex.Array
  episode_length: chex.Array


class AutoResetWrapper(Wrapper):
  """Resets the wrapped env when an episode ends, inside `jit`/`vmap`.

  Extras added to every timestep:
    episode_return: float32 (N,) the episode's return so far (on LAST: the finished return).
    episode_length: int32 () the episode's length so far (on LAST: the finished length).
    next_obs: (if `next_obs_in_extras`) the true next observation, which differs from
      `timestep.observation` on LAST steps; use it to bootstrap values on truncation.
  """

  def __init__(self, env: core.MultiAgentEnv, next_obs_in_extras: bool = False,
               fused: Optional[bool] = None):
    """Wraps `env`.

    Args:
      env: a `MultiAgentEnv` (any Jumanji env with per-agent rewards works).
      next_obs_in_extras: also return the pre-reset observation in extras["next_obs"].
      fused: use the env's split protocol (`transition`, `init_state`, `observe`) so that only one
        observation is computed per step. Default: whenever the env supports it. Both paths give
        identical results; False forces the generic `reset`/`step` path.
    """
    super().__init__(env)
    self.next_obs_in_extras = next_obs_in_extras
    supported = bool(getattr(env, "fused_reset", False))
    if fused and not supported:
      raise ValueError(f"{type(env).__name__} does not implement the split protocol.")
    self.fused = supported if fused is None else bool(fused)

  @property
  def env(self) -> core.MultiAgentEnv:
    return self._env

  def reset(self, key: chex.PRNGKey) -> Tuple[AutoResetState, TimeStep]:
    """Resets the wrapped env and the episode statistics."""
    validation.check_key(key, "reset")
    key, reset_key = jax.random.split(key)
    env_state, timestep = self._env.reset(reset_key)
    n = timestep.reward.shape[0]
    state = AutoResetState(env_state=env_state, key=key,
                           episode_return=jnp.zeros((n,), jnp.float32),
                           episode_length=jnp.zeros((), jnp.int32))
    return state, self._with_extras(timestep, timestep.observation, state.episode_return,
                                    state.episode_length)

  def step(self, state: AutoResetState, action: chex.Array) -> Tuple[AutoResetState, TimeStep]:
    """Steps the wrapped env; on a LAST step swaps in a freshly reset state and observation."""
    key, reset_key = jax.random.split(state.key)
    # lax.cond runs one branch when unbatched; under vmap it becomes a select, which is what a
    # batched reset costs anyway.
    if self.fused:
      env = self._env
      tr = env.transition(state.env_state, action)
      done = tr.terminated | tr.truncated
      next_env_state = jax.lax.cond(done, lambda: env.init_state(reset_key), lambda: tr.state)
      timestep = core.make_timestep(env.observe(next_env_state), tr.reward, tr.terminated,
                                    tr.truncated, env.num_agents, tr.extras)
      next_obs = env.observe(tr.state) if self.next_obs_in_extras else None
    else:
      env_state, timestep = self._env.step(state.env_state, action)
      done = timestep.last()
      next_env_state, reset_timestep = jax.lax.cond(
          done, lambda: self._env.reset(reset_key), lambda: (env_state, timestep))
      next_obs = timestep.observation
      timestep = timestep.replace(observation=reset_timestep.observation)
    episode_return = state.episode_return + timestep.reward
    episode_length = state.episode_length + 1
    new_state = AutoResetState(
        env_state=next_env_state, key=key,
        episode_return=jnp.where(done, 0.0, episode_return),
        episode_length=jnp.where(done, 0, episode_length))
    return new_state, self._with_extras(timestep, next_obs, episode_return, episode_length)

  def _with_extras(self, timestep: TimeStep, next_obs: Any, episode_return: chex.Array,
                   episode_length: chex.Array) -> TimeStep:
    extras = dict(timestep.extras)
    extras["episode_return"] = episode_return
    extras["episode_length"] = episode_length
    if self.next_obs_in_extras:
      extras["next_obs"] = next_obs
    return timestep.replace(extras=extras)


def unwrap_state(state: Any) -> Any:
  """Returns the innermost env state under any number of `AutoResetWrapper`s."""
  while isinstance(state, AutoResetState):
    state = state.env_state
  return state


def unwrap_env(env: Any) -> Any:
  """Returns the innermost env under any number of Jumanji wrappers."""
  while isinstance(env, Wrapper):
    env = env._env  # pylint: disable=protected-access
  return env


def rollout(env: Any, policy: Policy, key: chex.PRNGKey, num_steps: int,
            keep_states: bool = False) -> Tuple[Any, TimeStep, Any]:
  """Runs `policy` for `num_steps` steps from a reset with `lax.scan`; jittable and vmappable.

  Args:
    env: a `MultiAgentEnv`, usually wrapped in `AutoResetWrapper` so episodes chain.
    policy: maps (key, innermost env state, observation) to an int32 (num_agents,) action.
    key: PRNG key for the reset and the policy.
    num_steps: number of steps (static).
    keep_states: also return the stacked states (for rendering; costs memory).

  Returns:
    (final state, stacked timesteps (num_steps, ...), stacked states or None). The stacked
    states are the ones each action was taken in, so states[t] pairs with the action that led to
    timesteps[t].
  """
  reset_key, key = jax.random.split(key)
  state, timestep = env.reset(reset_key)

  def body(carry, step_key):
    state, obs = carry
    action = policy(step_key, unwrap_state(state), obs)
    next_state, timestep = env.step(state, action)
    out = (timestep, state if keep_states else None)
    return (next_state, timestep.observation), out

  (state, _), (timesteps, states) = jax.lax.scan(
      body, (state, timestep.observation), jax.random.split(key, num_steps))
  return state, timesteps, states
