"""Jumanji's own multi-agent envs (LevelBasedForaging, RobotWarehouse) behind the CORD interface.

Each adapter is a `core.MultiAgentEnv` whose state *is* the wrapped env's state, so Jumanji's own
tools (viewers, generators) still apply to it. The adapters only translate: integer views become
float32 views scaled to [-1, 1], a global state is assembled from the env state, and rewards and
discounts get one entry per agent. Out-of-range actions are checked as in our own envs.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jumanji.environments import LevelBasedForaging, RobotWarehouse
from jumanji.environments.routing.lbf.generator import RandomGenerator as LbfGenerator
from jumanji.environments.routing.robot_warehouse.generator import (
    RandomGenerator as WarehouseGenerator)
from jumanji.types import TimeStep

from cord_jax.envs import core
from cord_jax.envs import foraging
from cord_jax.envs import validation


class JumanjiLBFAdapter(core.MultiAgentEnv):
  """Jumanji's `LevelBasedForaging` with the common interface.

  agents_view: Jumanji's per-agent view (vector or grid observer, flattened) divided by its spec
    maximum. global_state: per agent (row, col, level), per food (row, col, level, eaten), step
    fraction, scaled to [0, 1]. reward: with `team_reward` (the CORD setting) every agent gets the
    team's total, otherwise Jumanji's level-weighted individual share.
  """

  view_bounds = (-1.0, 1.0)
  state_bounds = (0.0, 1.0)

  def __init__(self, env: Optional[LevelBasedForaging] = None, team_reward: bool = True,
               grid_size: int = 8, fov: int = 8, num_agents: int = 2, num_food: int = 2,
               max_agent_level: int = 2, force_coop: bool = True, time_limit: int = 100):
    """Wraps `env`, or builds a LevelBasedForaging from the remaining arguments.

    Args:
      env: an existing LevelBasedForaging; if given, the other size arguments are ignored.
      team_reward: give every agent the summed team reward.
      grid_size: grid side (Jumanji's RandomGenerator argument).
      fov: field of view radius.
      num_agents: team size.
      num_food: number of food items.
      max_agent_level: highest agent level.
      force_coop: every food needs (up to three of) the weakest agents together.
      time_limit: steps before truncation.
    """
    if env is None:
      env = LevelBasedForaging(
          generator=LbfGenerator(grid_size=grid_size, fov=fov, num_agents=num_agents,
                                 num_food=num_food, max_agent_level=max_agent_level,
                                 force_coop=force_coop),
          time_limit=time_limit)
    self.env = env
    self.team_reward = team_reward
    self.num_agents = env.num_agents
    self.num_food = env.num_food
    self.grid_size = env.grid_size
    self.time_limit = env.time_limit
    self.max_agent_level = env._generator.max_agent_level  # pylint: disable=protected-access
    self.max_food_level = 3 * self.max_agent_level
    view_spec = env.observation_spec.agents_view
    self._view_scale = float(np.max(np.asarray(view_spec.maximum)))
    self.num_actions = int(env.action_spec.num_values[0])
    self.obs_dim = int(np.prod(view_spec.shape[1:]))
    self.state_dim = 3 * self.num_agents + 4 * self.num_food + 1
    super().__init__()

  def reset(self, key: chex.PRNGKey) -> Tuple[Any, TimeStep]:
    """Resets the wrapped env."""
    validation.check_key(key, "reset")
    state, ts = self.env.reset(key)
    extras = self._extras(ts, jnp.zeros((self.num_agents,), bool))
    return state, core.make_restart(self._observe(state, ts.observation), self.num_agents, extras)

  def step(self, state: Any, action: chex.Array) -> Tuple[Any, TimeStep]:
    """Steps the wrapped env; out-of-range actions become the no-op."""
    action, invalid = validation.sanitize_actions(self.check_action(action), self.num_actions)
    validation.check_state_team_size(state.agents.position.shape[0], self.num_agents)
    state, ts = self.env.step(state, action)
    reward = ts.reward.astype(jnp.float32)
    if self.team_reward:
      reward = jnp.broadcast_to(jnp.sum(reward), (self.num_agents,))
    return state, TimeStep(
        step_type=ts.step_type.astype(jnp.int8), reward=reward,
        discount=ts.discount.astype(jnp.float32), observation=self._observe(state, ts.observation),
        extras=self._extras(ts, invalid))

  def _extras(self, ts: TimeStep, invalid: chex.Array) -> dict:
    return {"invalid_action": invalid,
            "percent_eaten": jnp.asarray(ts.extras["percent_eaten"], jnp.float32)}

  def _observe(self, state: Any, obs: Any) -> core.Observation:
    g = float(self.grid_size - 1)
    view = obs.agents_view.reshape(self.num_agents, -1).astype(jnp.float32) / self._view_scale
    agents, food = state.agents, state.food_items
    global_state = jnp.concatenate([
        jnp.concatenate([agents.position / g, agents.level[:, None] / self.max_agent_level],
                        -1).reshape(-1),
        jnp.concatenate([food.position / g, food.level[:, None] / self.max_food_level,
                         food.eaten[:, None]], -1).reshape(-1),
        (state.step_count / self.time_limit)[None],
    ]).astype(jnp.float32)
    return core.Observation(
        agents_view=view, global_state=jnp.clip(global_state, 0.0, 1.0),
        action_mask=obs.action_mask.astype(bool), step_count=obs.step_count.astype(jnp.int32))

  def draw(self, ax: Any, state: Any) -> None:
    """Draws the grid with the same routine as our CooperativeForaging."""
    foraging.draw_grid_foraging(
        ax, self.grid_size, np.asarray(state.agents.position), np.asarray(state.agents.level),
        np.asarray(state.food_items.position), np.asarray(state.food_items.level),
        np.asarray(state.food_items.eaten), int(state.step_count))


class JumanjiWarehouseAdapter(core.MultiAgentEnv):
  """Jumanji's `RobotWarehouse` with the common interface.

  agents_view: Jumanji's per-agent vector with the two position entries divided by the grid
    size (the rest are already binary). global_state: per agent (row, col, direction one-hot,
    carrying), per shelf (row, col, requested), step fraction, in [0, 1]. reward: the shared team
    reward repeated per agent. Collisions end the episode (Jumanji's rule) with discount 0.
  """

  view_bounds = (0.0, 1.0)
  state_bounds = (0.0, 1.0)

  def __init__(self, env: Optional[RobotWarehouse] = None, shelf_rows: int = 2,
               shelf_columns: int = 3, column_height: int = 8, num_agents: int = 4,
               sensor_range: int = 1, request_queue_size: int = 8, time_limit: int = 500):
    """Wraps `env`, or builds a RobotWarehouse from the remaining (generator) arguments.

    The defaults are Jumanji's own (the "tiny, 4 agents" layout of the original RWARE).
    """
    if env is None:
      env = RobotWarehouse(
          generator=WarehouseGenerator(
              shelf_rows=shelf_rows, shelf_columns=shelf_columns, column_height=column_height,
              num_agents=num_agents, sensor_range=sensor_range,
              request_queue_size=request_queue_size),
          time_limit=time_limit)
    self.env = env
    self.num_agents = env.num_agents
    self.grid_shape = tuple(int(g) for g in env.grid_size)
    self.time_limit = env.time_limit
    self.num_shelves = int(np.asarray(env.shelf_ids).shape[0])
    self.goals = np.asarray(env.goals)  # (num_goals, 2) as (col, row), Jumanji's convention.
    self.highways = np.asarray(env.highways)
    self.num_actions = int(env.action_spec.num_values[0])
    self.obs_dim = int(env.num_obs_features)
    self.state_dim = 7 * self.num_agents + 3 * self.num_shelves + 1
    super().__init__()

  def reset(self, key: chex.PRNGKey) -> Tuple[Any, TimeStep]:
    """Resets the wrapped env."""
    validation.check_key(key, "reset")
    state, ts = self.env.reset(key)
    return state, core.make_restart(self._observe(state, ts.observation), self.num_agents,
                                    {"invalid_action": jnp.zeros((self.num_agents,), bool)})

  def step(self, state: Any, action: chex.Array) -> Tuple[Any, TimeStep]:
    """Steps the wrapped env; out-of-range actions become the no-op."""
    action, invalid = validation.sanitize_actions(self.check_action(action), self.num_actions)
    validation.check_state_team_size(state.agents.direction.shape[0], self.num_agents)
    state, ts = self.env.step(state, action)
    n = self.num_agents
    return state, TimeStep(
        step_type=ts.step_type.astype(jnp.int8),
        reward=jnp.broadcast_to(ts.reward.astype(jnp.float32), (n,)),
        discount=jnp.broadcast_to(ts.discount.astype(jnp.float32), (n,)),
        observation=self._observe(state, ts.observation), extras={"invalid_action": invalid})

  def _observe(self, state: Any, obs: Any) -> core.Observation:
    scale = float(max(self.grid_shape) - 1)
    view = obs.agents_view.astype(jnp.float32)
    view = view.at[:, :2].divide(scale)
    agents, shelves = state.agents, state.shelves
    agent_pos = jnp.stack([agents.position.x, agents.position.y], -1) / scale
    shelf_pos = jnp.stack([shelves.position.x, shelves.position.y], -1) / scale
    global_state = jnp.concatenate([
        jnp.concatenate([agent_pos, jax.nn.one_hot(agents.direction, 4),
                         agents.is_carrying[:, None]], -1).reshape(-1),
        jnp.concatenate([shelf_pos, shelves.is_requested[:, None]], -1).reshape(-1),
        (state.step_count / self.time_limit)[None],
    ]).astype(jnp.float32)
    return core.Observation(
        agents_view=view, global_state=global_state, action_mask=obs.action_mask.astype(bool),
        step_count=obs.step_count.astype(jnp.int32))

  def draw(self, ax: Any, state: Any) -> None:
    """Draws shelves (teal when requested), goals, and agents with their heading."""
    import matplotlib.patches as mpatches  # pylint: disable=g-import-not-at-top
    rows, cols = self.grid_shape
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_aspect("equal")
    ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
    for col, row in self.goals:
      ax.add_patch(mpatches.Rectangle((col - 0.5, row - 0.5), 1, 1, color="#444444"))
    sx, sy = np.asarray(state.shelves.position.x), np.asarray(state.shelves.position.y)
    for r, c, req in zip(sx, sy, np.asarray(state.shelves.is_requested)):
      ax.add_patch(mpatches.Rectangle((c - 0.4, r - 0.4), 0.8, 0.8,
                                      color="#008080" if req else "#483d8b"))
    arrows = {0: (0, -0.3), 1: (0.3, 0), 2: (0, 0.3), 3: (-0.3, 0)}
    ax_, ay_ = np.asarray(state.agents.position.x), np.asarray(state.agents.position.y)
    for i, (r, c, d, carry) in enumerate(zip(ax_, ay_, np.asarray(state.agents.direction),
                                             np.asarray(state.agents.is_carrying))):
      ax.add_patch(mpatches.Circle((c, r), 0.3, color="red" if carry else "#ff8c00", ec="black"))
      dx, dy = arrows[int(d)]
      ax.arrow(c, r, dx, dy, head_width=0.15, color="black")
      ax.text(c + 0.3, r - 0.3, str(i), fontsize=6)
    ax.set_title(f"step {int(state.step_count)}")
