"""Cooperative level-based foraging on a grid, as a pure-JAX Jumanji environment.

Agents and food items have levels. A food item is eaten when the agents standing next to it
(4-neighbourhood) that choose LOAD in the same step have levels summing to at least the food's
level. "Co-op" food is heavier than the strongest agent of the team, so it needs two or three
agents at once; "solo" food can be eaten by the strongest agent alone. The team shares one
reward: the eaten food's level over the total food level, so a perfect episode returns 1.

The team size and its composition (the agents' levels) are constructor arguments, and
`reset_with_team` takes the levels as an array, so unseen compositions can be built or swept
(with `vmap`) at evaluation time.

Actions (per agent, as in Jumanji's LevelBasedForaging): 0 stay, 1 up (row - 1), 2 down (row + 1),
3 left (col - 1), 4 right (col + 1), 5 load. A move into a wall, a food item or a cell occupied by
another agent at the start of the step fails; agents that pick the same cell all stay.

Observation (`core.Observation`), all entries in [-1, 1]:
  agents_view[i] = own (4): row / (G - 1), col / (G - 1), level / max_agent_level,
                   step / time_limit;
                 + per food slot (4): drow / sight, dcol / sight, level / food_level_scale, visible;
                 + per teammate slot (4): drow / sight, dcol / sight, level / max_agent_level,
                   visible.
  Items farther than `sight` (Chebyshev distance) or already eaten read as zeros, visible = 0.
  global_state = per agent (row, col, level), per food (row, col, level, eaten), step / time_limit,
                 each scaled as above.
  action_mask: moves into walls, food or occupied cells are masked; LOAD only next to food.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import chex
import jax.numpy as jnp
import numpy as np
from jumanji.types import TimeStep

from cord_jax.envs import core
from cord_jax.envs import sampling
from cord_jax.envs import validation

# (drow, dcol) per action: stay, up, down, left, right, load.
MOVES = jnp.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1], [0, 0]], jnp.int32)
LOAD = 5


@chex.dataclass
class ForagingState:
  """State of one foraging episode.

  Attributes:
    agent_pos: int32 (N, 2) (row, col).
    agent_level: int32 (N,).
    food_pos: int32 (F, 2) (row, col).
    food_level: int32 (F,).
    food_eaten: bool (F,).
    step_count: int32 ().
    key: the key the episode was generated from.
    invalid_team: bool (N,) True for agents whose level given to `reset_with_team` under `jit`
      was out of range and was clamped (eagerly that is a ValueError); reported in every
      timestep's `extras["invalid_team"]` until the episode ends.
  """

  agent_pos: chex.Array
  agent_level: chex.Array
  food_pos: chex.Array
  food_level: chex.Array
  food_eaten: chex.Array
  step_count: chex.Array
  key: chex.PRNGKey
  invalid_team: chex.Array


class CooperativeForaging(core.MultiAgentEnv):
  """Level-based foraging with a configurable team size and composition and a team reward.

  Example:
    env = CooperativeForaging(num_agents=3, agent_levels=(1, 2, 2), num_food=4)
    state, timestep = jax.jit(env.reset)(jax.random.key(0))
  """

  view_bounds = (-1.0, 1.0)
  state_bounds = (-1.0, 1.0)
  fused_reset = True

  def __init__(
      self,
      grid_size: int = 8,
      num_agents: int = 3,
      num_food: int = 4,
      agent_levels: Optional[Sequence[int]] = None,
      max_agent_level: int = 3,
      coop_prob: float = 0.5,
      sight: int = 3,
      time_limit: int = 50,
  ):
    """Builds the env.

    Args:
      grid_size: side G of the square grid (>= 5).
      num_agents: team size N.
      num_food: number of food items F; at most ((G - 1) // 2) ** 2, because food sits on the
        interior cells with odd row and column so that no two items touch and none is on a wall.
      agent_levels: a fixed composition (one level per agent, each in [1, max_agent_level]); None
        draws every agent's level uniformly at each reset.
      max_agent_level: the highest agent level (also the scale of levels in observations).
      coop_prob: probability that a food item is co-op (needs several agents). 0 makes every item
        solo; 1 makes every item co-op.
      sight: Chebyshev radius of an agent's view.
      time_limit: steps before truncation.
    """
    lattice = [(r, c) for r in range(1, grid_size - 1, 2) for c in range(1, grid_size - 1, 2)]
    if grid_size < 5:
      raise ValueError(f"grid_size must be >= 5; got {grid_size}.")
    if num_agents < 1 or not 1 <= num_food <= len(lattice):
      raise ValueError(f"need num_agents >= 1 and 1 <= num_food <= {len(lattice)} on a "
                       f"{grid_size}x{grid_size} grid; got {num_agents}, {num_food}.")
    if num_agents + num_food > grid_size * grid_size:
      raise ValueError("the grid has too few cells for all agents and food items.")
    if not 0.0 <= coop_prob <= 1.0:
      raise ValueError(f"coop_prob must lie in [0, 1]; got {coop_prob}.")
    if coop_prob > 0 and num_agents < 2:
      raise ValueError("co-op food needs at least two agents; use coop_prob=0 for one agent.")
    if max_agent_level < 1 or sight < 1 or time_limit < 1:
      raise ValueError("max_agent_level, sight and time_limit must be >= 1.")
    if agent_levels is not None:
      validation.check_team_size("agent_levels", agent_levels, num_agents)
      if any(not 1 <= int(l) <= max_agent_level for l in agent_levels):
        raise ValueError(f"agent_levels must lie in [1, {max_agent_level}]; got {agent_levels}.")
      agent_levels = tuple(int(l) for l in agent_levels)
    self.grid_size = int(grid_size)
    self.num_agents = int(num_agents)
    self.num_food = int(num_food)
    self.agent_levels = agent_levels
    self.max_agent_level = int(max_agent_level)
    self.food_level_scale = 3 * self.max_agent_level
    self.coop_prob = float(coop_prob)
    self.sight = int(sight)
    self.time_limit = int(time_limit)
    self.num_actions = int(MOVES.shape[0])
    self.obs_dim = 4 + 4 * self.num_food + 4 * (self.num_agents - 1)
    self.state_dim = 3 * self.num_agents + 4 * self.num_food + 1
    self._lattice = jnp.array(lattice, jnp.int32)
    self._others = np.array([[j for j in range(num_agents) if j != i] for i in range(num_agents)],
                            np.int32).reshape(num_agents, num_agents - 1)
    super().__init__()

  # ----------------------------------------------------------------------------------------------
  # Reset.

  def init_state(self, key: chex.PRNGKey) -> ForagingState:
    """Samples an episode with `self.agent_levels` or, if None, uniformly drawn levels."""
    return self._init_state(key, None)

  def reset_with_team(self, key: chex.PRNGKey,
                      levels: chex.Array) -> Tuple[ForagingState, TimeStep]:
    """Starts an episode with the given agent levels, int (N,); jittable and vmappable.

    With fixed `self.agent_levels`, `reset(key)` equals `reset_with_team(key, agent_levels)`. A
    level out of range raises a ValueError when `levels` is concrete; under `jit`/`vmap` it is
    clamped and flagged in `state.invalid_team` and `timestep.extras["invalid_team"]`.
    """
    validation.check_key(key, "reset_with_team")
    validation.check_team_size("levels", levels, self.num_agents)
    levels, invalid = validation.check_team_values(
        "levels", levels, 1, self.max_agent_level,
        f"agent levels (max_agent_level={self.max_agent_level})")
    state = self._init_state(key, levels, invalid)
    return state, core.make_restart(self.observe(state), self.num_agents,
                                    self.initial_extras(state))

  def _init_state(self, key: chex.PRNGKey, levels: Optional[chex.Array],
                  invalid_team: Optional[chex.Array] = None) -> ForagingState:
    n, f, g = self.num_agents, self.num_food, self.grid_size
    cells = self._lattice.shape[0]
    # One hash of the key, expanded cheaply: the layout is resampled at every auto-reset step.
    u = sampling.uniform(key, n + f + n + 3 * f)
    level_u, food_u, agent_u, coop_u, solo_u, heavy_u = jnp.split(
        u, np.cumsum([n, f, n, f, f]))
    if levels is None:
      levels = (jnp.array(self.agent_levels, jnp.int32) if self.agent_levels is not None
                else 1 + jnp.floor(level_u * self.max_agent_level).astype(jnp.int32))
    if invalid_team is None:
      invalid_team = jnp.zeros((n,), bool)
    # Food on distinct lattice cells; agents on distinct cells that hold no food.
    food_pos = self._lattice[sampling.distinct_cells(food_u[:f], jnp.zeros((cells,), bool))]
    food_flat = food_pos[:, 0] * g + food_pos[:, 1]
    taken = jnp.any(jnp.arange(g * g)[:, None] == food_flat[None, :], axis=-1)
    agent_cells = sampling.distinct_cells(agent_u[:n], taken)
    agent_pos = jnp.stack([agent_cells // g, agent_cells % g], axis=-1).astype(jnp.int32)

    # Solo food: level in [1, strongest]. Co-op food: level in [strongest + 1, top-3 sum], so no
    # agent eats it alone but the three strongest always can.
    strongest, top3 = jnp.max(levels), sampling.top_sum(levels, 3)
    solo = 1 + jnp.floor(solo_u * strongest).astype(jnp.int32)
    heavy_span = jnp.maximum(top3 - strongest, 1)
    heavy = strongest + 1 + jnp.floor(heavy_u * heavy_span).astype(jnp.int32)
    coop = (coop_u < self.coop_prob) & (n > 1)
    food_level = jnp.where(coop, jnp.minimum(heavy, top3), jnp.minimum(solo, strongest))
    return ForagingState(
        agent_pos=agent_pos, agent_level=levels, food_pos=food_pos,
        food_level=food_level.astype(jnp.int32), food_eaten=jnp.zeros((f,), bool),
        step_count=jnp.zeros((), jnp.int32), key=key, invalid_team=invalid_team)

  def initial_extras(self, state: ForagingState) -> dict:
    """Extras of the first timestep."""
    return self._extras(state, jnp.zeros((self.num_agents,), bool), jnp.zeros((), jnp.int32))

  # ----------------------------------------------------------------------------------------------
  # Step.

  def transition(self, state: ForagingState, action: chex.Array) -> core.Transition:
    """Moves agents (resolving collisions), then eats food whose loaders are strong enough."""
    action, invalid = validation.sanitize_actions(self.check_action(action), self.num_actions)
    validation.check_state_team_size(state.agent_pos.shape[0], self.num_agents)
    pos = state.agent_pos
    not_self = ~jnp.eye(self.num_agents, dtype=bool)
    target = pos + MOVES[action]
    in_bounds = jnp.all((target >= 0) & (target < self.grid_size), axis=-1)
    on_food = jnp.any(jnp.all(target[:, None] == state.food_pos[None], axis=-1)
                      & ~state.food_eaten[None], axis=-1)
    occupied = jnp.any(jnp.all(target[:, None] == pos[None], axis=-1) & not_self, axis=-1)
    target = jnp.where((in_bounds & ~on_food & ~occupied)[:, None], target, pos)
    # Moves into occupied cells already failed, so agents sent back to their own cell cannot
    # collide with anyone: one pass resolves all clashes.
    clash = jnp.any(jnp.all(target[:, None] == target[None], axis=-1) & not_self, axis=-1)
    pos = jnp.where(clash[:, None], pos, target)

    loading = action == LOAD
    adjacent = jnp.sum(jnp.abs(pos[:, None] - state.food_pos[None]), axis=-1) == 1
    helping = adjacent & loading[:, None] & ~state.food_eaten[None]
    strength = jnp.sum(jnp.where(helping, state.agent_level[:, None], 0), axis=0)
    eaten_now = (strength >= state.food_level) & ~state.food_eaten
    failed = jnp.sum(helping & ~eaten_now[None])
    reward = (jnp.sum(jnp.where(eaten_now, state.food_level, 0)).astype(jnp.float32)
              / jnp.sum(state.food_level).astype(jnp.float32))

    new_state = state.replace(agent_pos=pos, food_eaten=state.food_eaten | eaten_now,
                              step_count=state.step_count + 1)
    return core.Transition(
        state=new_state, reward=reward, terminated=jnp.all(new_state.food_eaten),
        truncated=new_state.step_count >= self.time_limit,
        extras=self._extras(new_state, invalid, failed))

  def _extras(self, state: ForagingState, invalid: chex.Array, failed: chex.Array) -> dict:
    return {
        "invalid_action": invalid,
        "invalid_team": state.invalid_team,
        "eaten": jnp.sum(state.food_eaten).astype(jnp.int32),
        "failed_loads": failed.astype(jnp.int32),
    }

  # ----------------------------------------------------------------------------------------------
  # Observations.

  def action_mask(self, state: ForagingState) -> chex.Array:
    """Bool (N, 6): legal moves from the current cells; LOAD only next to uneaten food."""
    pos, food, live = state.agent_pos, state.food_pos, ~state.food_eaten
    target = pos[:, None, :] + MOVES[None, :5, :]  # (N, 5, 2)
    in_bounds = jnp.all((target >= 0) & (target < self.grid_size), axis=-1)
    on_food = jnp.any(jnp.all(target[:, :, None] == food[None, None], axis=-1) & live, axis=-1)
    others = jnp.all(target[:, :, None] == pos[None, None], axis=-1)  # (N, 5, N)
    others = others & ~jnp.eye(self.num_agents, dtype=bool)[:, None, :]
    move_ok = in_bounds & ~on_food & ~jnp.any(others, axis=-1)
    move_ok = move_ok.at[:, 0].set(True)
    adjacent = jnp.sum(jnp.abs(pos[:, None] - food[None]), axis=-1) == 1
    can_load = jnp.any(adjacent & live[None], axis=-1)
    return jnp.concatenate([move_ok, can_load[:, None]], axis=-1)

  def observe(self, state: ForagingState) -> core.Observation:
    """Partial per-agent views, the global state and the action mask."""
    n, g, s = self.num_agents, self.grid_size, float(self.sight)
    pos = state.agent_pos
    levels = state.agent_level.astype(jnp.float32) / self.max_agent_level
    time_frac = state.step_count.astype(jnp.float32) / self.time_limit
    own = jnp.concatenate([pos.astype(jnp.float32) / (g - 1), levels[:, None],
                           jnp.broadcast_to(time_frac, (n, 1))], axis=-1)

    rel = (state.food_pos[None] - pos[:, None]).astype(jnp.float32)  # (N, F, 2)
    seen = (jnp.max(jnp.abs(rel), axis=-1) <= s) & ~state.food_eaten[None]
    food_lvl = jnp.broadcast_to(state.food_level.astype(jnp.float32) / self.food_level_scale,
                                seen.shape)
    food_view = jnp.concatenate([rel / s, food_lvl[..., None], jnp.ones_like(food_lvl)[..., None]],
                                axis=-1) * seen[..., None]

    others = jnp.asarray(self._others)
    rel_a = (pos[others] - pos[:, None]).astype(jnp.float32)  # (N, N - 1, 2)
    seen_a = jnp.max(jnp.abs(rel_a), axis=-1) <= s
    mate_view = jnp.concatenate([rel_a / s, levels[others][..., None],
                                 jnp.ones_like(levels[others])[..., None]], axis=-1)
    mate_view = mate_view * seen_a[..., None]

    view = jnp.concatenate([own, food_view.reshape(n, -1), mate_view.reshape(n, -1)], axis=-1)
    global_state = jnp.concatenate([
        jnp.concatenate([pos.astype(jnp.float32) / (g - 1), levels[:, None]], -1).reshape(-1),
        jnp.concatenate([state.food_pos.astype(jnp.float32) / (g - 1),
                         (state.food_level.astype(jnp.float32) / self.food_level_scale)[:, None],
                         state.food_eaten.astype(jnp.float32)[:, None]], -1).reshape(-1),
        time_frac[None],
    ])
    return core.Observation(
        agents_view=jnp.clip(view, -1.0, 1.0).astype(jnp.float32),
        global_state=jnp.clip(global_state, -1.0, 1.0).astype(jnp.float32),
        action_mask=self.action_mask(state),
        step_count=state.step_count)

  # ----------------------------------------------------------------------------------------------
  # Drawing.

  def draw(self, ax: Any, state: ForagingState) -> None:
    """Draws the grid, uneaten food (square, level inside) and agents (circle, level inside)."""
    draw_grid_foraging(ax, self.grid_size, np.asarray(state.agent_pos),
                       np.asarray(state.agent_level), np.asarray(state.food_pos),
                       np.asarray(state.food_level), np.asarray(state.food_eaten),
                       int(state.step_count), sight=self.sight)


def draw_grid_foraging(ax: Any, grid_size: int, agent_pos: np.ndarray, agent_level: np.ndarray,
                       food_pos: np.ndarray, food_level: np.ndarray, food_eaten: np.ndarray,
                       step: int, sight: Optional[int] = None) -> None:
  """Draws a level-based foraging grid (shared with the Jumanji LBF adapter)."""
  import matplotlib.patches as mpatches  # pylint: disable=g-import-not-at-top
  ax.set_xlim(-0.5, grid_size - 0.5)
  ax.set_ylim(grid_size - 0.5, -0.5)
  ax.set_aspect("equal")
  ax.set_xticks(np.arange(-0.5, grid_size, 1.0), minor=True)
  ax.set_yticks(np.arange(-0.5, grid_size, 1.0), minor=True)
  ax.grid(which="minor", color="#dddddd", lw=0.5)
  ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
  for (r, c), lvl, eaten in zip(food_pos, food_level, food_eaten):
    if not eaten:
      ax.add_patch(mpatches.Rectangle((c - 0.35, r - 0.35), 0.7, 0.7, color="#2e8b57"))
      ax.text(c, r, str(int(lvl)), color="white", ha="center", va="center", fontsize=8)
  for i, ((r, c), lvl) in enumerate(zip(agent_pos, agent_level)):
    if sight is not None:
      ax.add_patch(mpatches.Rectangle((c - sight - 0.5, r - sight - 0.5), 2 * sight + 1,
                                      2 * sight + 1, fill=False, lw=0.3, alpha=0.4))
    ax.add_patch(mpatches.Circle((c, r), 0.35, color="#e07b39", ec="black"))
    ax.text(c, r, str(int(lvl)), ha="center", va="center", fontsize=8)
    ax.text(c + 0.3, r - 0.3, str(i), fontsize=6)
  ax.set_title(f"step {step}  eaten {int(np.sum(food_eaten))}/{len(food_eaten)}")
