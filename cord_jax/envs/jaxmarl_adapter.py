"""JaxMARL's envs (MPE, SMAX, ...) behind the CORD interface, through the optional `bench` extra.

JaxMARL is imported lazily, on first construction of an adapter, because the core install and CI
do not ship it (`pip install .[bench]` does). The adapter calls JaxMARL's `step_env` (the step
without JaxMARL's own auto-reset), so resets are handled by `wrappers.AutoResetWrapper` exactly as
for every other env and the terminal reward and discount are never lost.

Translation:
  agents_view: the per-agent observation dict stacked in agent order, zero-padded to the widest.
  global_state: JaxMARL's "world_state" when the env provides one (SMAX), else all agents'
    observations concatenated (JaxMARL's MAPPO baselines do the same for MPE).
  action_mask: `get_avail_actions` where the env implements it, else all True; agents with fewer
    actions than the widest have the extra ones masked.
  reward: the per-agent reward dict, stacked. discount: 0 when JaxMARL ends the episode before its
    time limit (termination), 1 otherwise (truncation at the limit).
JaxMARL ends an episode after `max_steps + 1` steps (its done flag compares the step counter
before incrementing it), so `time_limit = max_steps + 1` here.
"""

from __future__ import annotations

from typing import Any, Tuple, Union

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jumanji.types import TimeStep

from cord_jax.envs import core
from cord_jax.envs import validation


def import_jaxmarl() -> Any:
  """Imports jaxmarl or explains how to get it."""
  try:
    import jaxmarl  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
        "JaxMARL adapters need the optional `bench` extra: pip install -e '.[bench]' "
        "(jaxmarl==0.2.0).") from e
  return jaxmarl


@chex.dataclass
class JaxMARLState:
  """Adapter state: the JaxMARL state, a key chain for its stochastic steps, the step count."""

  env_state: Any
  key: chex.PRNGKey
  step_count: chex.Array


class JaxMARLAdapter(core.MultiAgentEnv):
  """Any discrete-action JaxMARL `MultiAgentEnv` with the common interface.

  Example:
    env = JaxMARLAdapter("MPE_simple_spread_v3", num_agents=3)
    env = JaxMARLAdapter("HeuristicEnemySMAX", scenario="3m")  # map name or a Scenario
  """

  def __init__(self, env: Union[str, Any] = "MPE_simple_spread_v3", **kwargs: Any):
    """Builds `jaxmarl.make(env, **kwargs)`, or wraps an existing JaxMARL env.

    Args:
      env: a JaxMARL env id or env instance.
      **kwargs: passed to `jaxmarl.make`. For SMAX, `scenario` may be a map name such as "3m".
    """
    jaxmarl = import_jaxmarl()
    if isinstance(env, str):
      if isinstance(kwargs.get("scenario"), str):
        smax = jaxmarl.environments.smax
        kwargs["scenario"] = smax.map_name_to_scenario(kwargs["scenario"])
      self.env_id = env
      env = jaxmarl.make(env, **kwargs)
    else:
      self.env_id = type(env).__name__
    self.env = env
    self.agent_names = list(env.agents)
    self.num_agents = len(self.agent_names)
    obs_dims = [int(np.prod(env.observation_space(a).shape)) for a in self.agent_names]
    act_dims = []
    for a in self.agent_names:
      space = env.action_space(a)
      if not hasattr(space, "n"):
        raise ValueError(f"{self.env_id}: agent {a} has a non-discrete action space {space}; "
                         "the CORD interface needs discrete actions.")
      act_dims.append(int(space.n))
    self._act_dims = np.array(act_dims, np.int32)
    self.obs_dim = max(obs_dims)
    self.num_actions = max(act_dims)
    self.max_steps = int(env.max_steps)
    self.time_limit = self.max_steps + 1

    obs_shape, _ = jax.eval_shape(env.reset, jax.random.key(0))
    self._has_world_state = "world_state" in obs_shape
    self.state_dim = (int(np.prod(obs_shape["world_state"].shape)) if self._has_world_state
                      else self.num_agents * self.obs_dim)
    try:
      _, state_shape = jax.eval_shape(env.reset, jax.random.key(0))
      jax.eval_shape(env.get_avail_actions, state_shape)
      self._has_avail = True
    except NotImplementedError:
      self._has_avail = False
    super().__init__()

  def reset(self, key: chex.PRNGKey) -> Tuple[JaxMARLState, TimeStep]:
    """Resets the JaxMARL env."""
    validation.check_key(key, "reset")
    key, reset_key = jax.random.split(key)
    obs, env_state = self.env.reset(reset_key)
    state = JaxMARLState(env_state=env_state, key=key, step_count=jnp.zeros((), jnp.int32))
    extras = {"invalid_action": jnp.zeros((self.num_agents,), bool)}
    return state, core.make_restart(self._observe(obs, state), self.num_agents, extras)

  def step(self, state: JaxMARLState, action: chex.Array) -> Tuple[JaxMARLState, TimeStep]:
    """Steps the JaxMARL env without its own auto-reset; out-of-range actions become 0."""
    action, invalid = validation.sanitize_actions(self.check_action(action), self.num_actions)
    # An agent with fewer actions than the widest must not receive a padded one.
    too_big = action >= jnp.asarray(self._act_dims)
    action, invalid = jnp.where(too_big, 0, action), invalid | too_big
    key, step_key = jax.random.split(state.key)
    actions = {a: action[i] for i, a in enumerate(self.agent_names)}
    obs, env_state, rewards, dones, _ = self.env.step_env(step_key, state.env_state, actions)
    state = JaxMARLState(env_state=env_state, key=key, step_count=state.step_count + 1)
    at_limit = state.step_count >= self.time_limit
    done = jnp.asarray(dones["__all__"], bool) | at_limit
    reward = jnp.stack([jnp.asarray(rewards[a], jnp.float32) for a in self.agent_names])
    return state, core.make_timestep(self._observe(obs, state), reward, done & ~at_limit,
                                     done & at_limit, self.num_agents, {"invalid_action": invalid})

  def _observe(self, obs: dict, state: JaxMARLState) -> core.Observation:
    views = [jnp.asarray(obs[a], jnp.float32).reshape(-1) for a in self.agent_names]
    view = jnp.stack([jnp.pad(v, (0, self.obs_dim - v.shape[0])) for v in views])
    if self._has_world_state:
      global_state = jnp.asarray(obs["world_state"], jnp.float32).reshape(-1)
    else:
      global_state = view.reshape(-1)
    legal = jnp.arange(self.num_actions)[None, :] < jnp.asarray(self._act_dims)[:, None]
    if self._has_avail:
      avail = self.env.get_avail_actions(state.env_state)
      mask = jnp.stack([jnp.pad(jnp.asarray(avail[a], bool), (0, self.num_actions - int(n)))
                        for a, n in zip(self.agent_names, self._act_dims)])
      legal = legal & mask
    return core.Observation(agents_view=view, global_state=global_state, action_mask=legal,
                            step_count=jnp.minimum(state.step_count, self.time_limit))

  def draw(self, ax: Any, state: JaxMARLState) -> None:
    """Draws MPE entities or SMAX units (team colour; faded by lost health; x when dead)."""
    inner = state.env_state
    inner = getattr(inner, "state", inner)  # HeuristicEnemySMAX nests the SMAX state.
    ax.set_aspect("equal")
    if hasattr(inner, "p_pos"):
      pos = np.asarray(inner.p_pos)
      n = self.num_agents
      rad = np.asarray(getattr(self.env, "rad", np.full(len(pos), 0.05)))
      for i, p in enumerate(pos):
        agent = i < n
        ax.add_patch(__import__("matplotlib").patches.Circle(
            p, rad[i], color="#73f373" if agent else "#404040", alpha=0.8 if agent else 0.5))
      ax.set_xlim(-1.5, 1.5)
      ax.set_ylim(-1.5, 1.5)
    elif hasattr(inner, "unit_positions"):
      pos = np.asarray(inner.unit_positions)
      alive = np.asarray(inner.unit_alive)
      teams = np.asarray(inner.unit_teams)
      health = np.asarray(inner.unit_health)
      full = np.asarray(self.env.unit_type_health)[np.asarray(inner.unit_types)]
      for p, a, t, h, f in zip(pos, alive, teams, health, full):
        colour = "#1f77b4" if t == 0 else "#d62728"
        if a:
          ax.scatter(*p, color=colour, alpha=0.3 + 0.7 * float(h / f), s=60, edgecolors="black")
        else:
          ax.scatter(*p, color=colour, marker="x", s=40)
      ax.set_xlim(0, float(self.env.map_width))
      ax.set_ylim(0, float(self.env.map_height))
    else:
      raise NotImplementedError(f"no drawing routine for {self.env_id}.")
    ax.set_title(f"{self.env_id}  step {int(state.step_count)}")
