"""The multi-agent interface shared by CORD's environments and the adapters.

Every environment a CORD or MAPPO learner sees is a `MultiAgentEnv`: a Jumanji `Environment`
whose observation is the same `Observation` record whatever the task underneath,

  agents_view   float32 (num_agents, obs_dim)        one partial observation per agent,
  global_state  float32 (state_dim,)                 what the centralised critic and the role
                                                     controller read,
  action_mask   bool    (num_agents, num_actions)    legal discrete actions per agent,
  step_count    int32   ()                           steps since the episode began,

whose action is one integer per agent (`specs.MultiDiscreteArray` of shape (num_agents,)) and whose
reward and discount have one entry per agent (shape (num_agents,), float32). Our own tasks produce
this record natively; the adapters translate Jumanji's and JaxMARL's envs into it, so a learner
written against this module runs on any of them unchanged.

Why one flat `agents_view` per agent instead of each task's native structure: the learner's networks
are shared across agents and tasks, so a fixed (num_agents, obs_dim) array is the narrowest contract
that still carries everything; richer native structure stays reachable through the env state.
"""

from __future__ import annotations

import abc
from functools import cached_property
from typing import Any, Dict, NamedTuple, Tuple

import chex
import jax.numpy as jnp
import numpy as np
from jumanji import specs
from jumanji.env import Environment
from jumanji.types import StepType, TimeStep

from cord_jax.envs import validation


class Observation(NamedTuple):
  """What every agent team sees at one step (see the module docstring for shapes)."""

  agents_view: chex.Array
  global_state: chex.Array
  action_mask: chex.Array
  step_count: chex.Array


class Transition(NamedTuple):
  """What `MultiAgentEnv.transition` returns: the next state and how the step went."""

  state: Any
  reward: chex.Array  # float32 (num_agents,) or a scalar team reward.
  terminated: chex.Array  # bool (): a terminal state was reached (discount 0).
  truncated: chex.Array  # bool (): the time limit was reached (discount 1).
  extras: Dict[str, chex.Array]


class MultiAgentEnv(Environment, abc.ABC):
  """A cooperative multi-agent Jumanji environment with the common CORD interface.

  Subclasses set `num_agents`, `num_actions`, `obs_dim`, `state_dim` and `time_limit` before calling
  `super().__init__()`. The four specs follow from those numbers, so every env and adapter
  describes itself the same way.

  There are two ways to implement one. Adapters override `reset` and `step` directly. Our own envs
  instead implement the split protocol `init_state(key)`, `transition(state, action)`,
  `observe(state)` and `initial_extras(state)`, set `fused_reset = True`, and inherit `reset` and
  `step`. The split lets `AutoResetWrapper` pick the next state (reset or not) *before* computing
  the one observation it needs, instead of observing both the terminal and the reset state: under
  `vmap` both branches are always computed, so this halves the observation cost of auto-reset.
  """

  fused_reset: bool = False

  num_agents: int
  num_actions: int
  obs_dim: int
  state_dim: int
  time_limit: int
  # Inclusive bounds on agents_view / global_state entries; subclasses narrow them when they can,
  # so that `observation_spec.validate` checks the normalisation as well as shape and dtype.
  view_bounds: Tuple[float, float] = (-jnp.inf, jnp.inf)
  state_bounds: Tuple[float, float] = (-jnp.inf, jnp.inf)

  @cached_property
  def observation_spec(self) -> specs.Spec[Observation]:
    """Spec of `Observation`: per-agent views, global state, action mask and step count."""
    return specs.Spec(
        Observation,
        "ObservationSpec",
        agents_view=specs.BoundedArray(
            (self.num_agents, self.obs_dim), jnp.float32, *self.view_bounds, name="agents_view"),
        global_state=specs.BoundedArray(
            (self.state_dim,), jnp.float32, *self.state_bounds, name="global_state"),
        action_mask=specs.BoundedArray(
            (self.num_agents, self.num_actions), bool, False, True, name="action_mask"),
        step_count=specs.BoundedArray((), jnp.int32, 0, self.time_limit, name="step_count"),
    )

  @cached_property
  def action_spec(self) -> specs.MultiDiscreteArray:
    """One discrete action in [0, num_actions) per agent."""
    return specs.MultiDiscreteArray(
        num_values=jnp.full((self.num_agents,), self.num_actions, jnp.int32),
        dtype=jnp.int32, name="action")

  @cached_property
  def reward_spec(self) -> specs.Array:
    """One float32 reward per agent (team tasks repeat the team reward)."""
    return specs.Array((self.num_agents,), jnp.float32, name="reward")

  @cached_property
  def discount_spec(self) -> specs.BoundedArray:
    """One float32 discount in [0, 1] per agent: 0 on termination, 1 otherwise."""
    return specs.BoundedArray((self.num_agents,), jnp.float32, 0.0, 1.0, name="discount")

  # ------------------------------------------------------------------------------------------------
  # Split protocol (our own envs); adapters override reset/step instead.

  def init_state(self, key: chex.PRNGKey) -> Any:
    """Samples the initial state of an episode (no observation)."""
    raise NotImplementedError

  def transition(self, state: Any, action: chex.Array) -> Transition:
    """Advances the dynamics one step (no observation)."""
    raise NotImplementedError

  def observe(self, state: Any) -> Observation:
    """Computes the observation of `state`."""
    raise NotImplementedError

  def initial_extras(self, state: Any) -> Dict[str, chex.Array]:
    """Extras of the FIRST timestep; same keys and dtypes as `transition`'s extras."""
    raise NotImplementedError

  def reset(self, key: chex.PRNGKey) -> Tuple[Any, TimeStep]:
    """Starts an episode: `init_state`, then its observation."""
    validation.check_key(key, "reset")
    state = self.init_state(key)
    return state, make_restart(self.observe(state), self.num_agents, self.initial_extras(state))

  def step(self, state: Any, action: chex.Array) -> Tuple[Any, TimeStep]:
    """Advances one step: `transition`, then the observation of the next state."""
    tr = self.transition(state, action)
    return tr.state, make_timestep(self.observe(tr.state), tr.reward, tr.terminated,
                                   tr.truncated, self.num_agents, tr.extras)

  def check_action(self, action: chex.Array) -> chex.Array:
    """Validates an action array against this env (see `validation.check_actions`)."""
    return validation.check_actions(action, self.num_agents, self.num_actions)

  def draw(self, ax: Any, state: Any) -> None:
    """Draws `state` onto a matplotlib Axes (used by `cord_jax.envs.rendering`)."""
    raise NotImplementedError(f"{type(self).__name__} has no drawing routine.")

  def render(self, state: Any) -> Any:
    """Returns an RGB uint8 array (H, W, 3) of `state`, drawn with matplotlib."""
    from cord_jax.envs import rendering  # pylint: disable=g-import-not-at-top
    return rendering.render_rgb(self, state)

  def __repr__(self) -> str:
    return (f"{type(self).__name__}(num_agents={self.num_agents}, num_actions="
            f"{self.num_actions}, obs_dim={self.obs_dim}, state_dim={self.state_dim})")


def make_timestep(
    observation: Observation,
    reward: chex.Array,
    terminated: chex.Array,
    truncated: chex.Array,
    num_agents: int,
    extras: Dict[str, chex.Array] | None = None,
) -> TimeStep:
  """Builds a MID or LAST `TimeStep` with per-agent reward and discount, without branching.

  Jumanji's own envs choose between `transition`, `termination` and `truncation` with `lax.switch`;
  under `vmap` that evaluates every branch anyway, so a few `jnp.where`s are cheaper and equal.

  Args:
    observation: the next observation.
    reward: float32 (num_agents,) or a scalar team reward to broadcast.
    terminated: bool scalar; the episode reached a terminal state (discount 0).
    truncated: bool scalar; the episode hit its time limit (discount stays 1).
    num_agents: number of agents, the length of reward and discount.
    extras: optional metrics; keep the same keys as the env's reset timestep.

  Returns:
    The TimeStep.
  """
  last = terminated | truncated
  step_type = jnp.where(last, StepType.LAST, StepType.MID).astype(jnp.int8)
  discount = jnp.broadcast_to(jnp.where(terminated, 0.0, 1.0), (num_agents,)).astype(jnp.float32)
  reward = jnp.broadcast_to(jnp.asarray(reward, jnp.float32), (num_agents,))
  return TimeStep(step_type=step_type, reward=reward, discount=discount, observation=observation,
                  extras=extras or {})


def make_restart(observation: Observation, num_agents: int,
                 extras: Dict[str, chex.Array] | None = None) -> TimeStep:
  """Builds the FIRST `TimeStep` of an episode (zero reward, unit discount per agent)."""
  return TimeStep(
      step_type=jnp.asarray(StepType.FIRST, jnp.int8),
      reward=jnp.zeros((num_agents,), jnp.float32),
      discount=jnp.ones((num_agents,), jnp.float32),
      observation=observation,
      extras=extras or {})


def validate_timestep(env: MultiAgentEnv, timestep: TimeStep) -> None:
  """Checks a single (unbatched) timestep against `env`'s specs; raises ValueError if it fails.

  Jumanji's `Spec.validate` checks one value, so batched timesteps (from `vmap`) are checked by
  `validate_batched_timestep`.
  """
  env.observation_spec.validate(timestep.observation)
  env.reward_spec.validate(timestep.reward)
  env.discount_spec.validate(timestep.discount)


def validate_batched_timestep(env: MultiAgentEnv, timestep: TimeStep, batch_ndim: int) -> None:
  """Checks every timestep of a batch against `env`'s specs at once; raises ValueError if one fails.

  Jumanji's `Spec.validate` checks one unbatched value; looping it over a (time, env) batch is slow,
  so this applies the same shape, dtype and bound checks to the trailing dims of each array.

  Args:
    env: the environment whose specs to use.
    timestep: a TimeStep whose arrays carry `batch_ndim` leading batch dims.
    batch_ndim: number of leading batch dims (e.g. 2 for a (time, env) rollout).
  """
  obs_spec = env.observation_spec
  pairs = [(obs_spec[name], getattr(timestep.observation, name)) for name in Observation._fields]
  pairs += [(env.reward_spec, timestep.reward), (env.discount_spec, timestep.discount)]
  for spec, value in pairs:
    value = np.asarray(value)
    if value.shape[batch_ndim:] != spec.shape:
      raise ValueError(f"{spec.name}: expected trailing shape {spec.shape}, got {value.shape}.")
    if value.dtype != spec.dtype:
      raise ValueError(f"{spec.name}: expected dtype {spec.dtype}, got {value.dtype}.")
    if isinstance(spec, specs.BoundedArray):
      low, high = np.asarray(spec.minimum), np.asarray(spec.maximum)
      if np.any(value < low) or np.any(value > high) or (
          np.issubdtype(value.dtype, np.floating) and np.any(np.isnan(value))):
        raise ValueError(f"{spec.name}: values outside [{low}, {high}] "
                         f"(min {value.min()}, max {value.max()}).")
