"""Scripted partner policies: simple per-task heuristics that serve as held-out collaborators.

Every policy has the signature of `wrappers.Policy`,

  policy(key, env_state, observation) -> int32 (num_agents,) joint action,

where `env_state` is the innermost (unwrapped) state. Heuristics read the state directly
(privileged, but fixed and cheap), pure JAX, so they run under `jit`/`vmap` beside learned agents.
`mix_policies` seats different policies in one team, e.g. learned agents with scripted partners,
for the cross-play evaluation.

`make_scripted_policy(env, name)` picks the heuristic for the (possibly wrapped) env;
`scripted_policy_names(env)` lists what exists for it; "random" (uniform over legal actions) exists
for every env.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np

from cord_jax.envs import core
from cord_jax.envs import foraging
from cord_jax.envs import jumanji_adapters
from cord_jax.envs import resource_collection
from cord_jax.envs import sampling
from cord_jax.envs import wrappers

Policy = wrappers.Policy


def random_policy(env: Any) -> Policy:
  """Uniformly random legal actions (from `observation.action_mask`)."""
  del env

  def policy(key: chex.PRNGKey, state: Any, obs: core.Observation) -> chex.Array:
    del state
    logits = jnp.where(obs.action_mask, 0.0, -jnp.inf)
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)

  return policy


def mix_policies(policies: Sequence[Policy], seats: Sequence[int]) -> Policy:
  """Seats several policies in one team: agent i acts with `policies[seats[i]]`.

  Args:
    policies: the policies, each producing a full joint action.
    seats: one index into `policies` per agent.

  Returns:
    A policy whose action for agent i comes from its seated policy.
  """
  seats = np.asarray(seats, np.int32)
  if seats.ndim != 1 or np.any(seats < 0) or np.any(seats >= len(policies)):
    raise ValueError(f"seats must be a 1-D list of indices into {len(policies)} policies; "
                     f"got {seats.tolist()}.")

  def policy(key: chex.PRNGKey, state: Any, obs: core.Observation) -> chex.Array:
    if obs.action_mask.shape[0] != seats.shape[0]:
      raise ValueError(f"seats has {seats.shape[0]} entries for a team of "
                       f"{obs.action_mask.shape[0]}.")
    keys = jax.random.split(key, len(policies))
    actions = jnp.stack([p(k, state, obs) for p, k in zip(policies, keys)])  # (P, N)
    return actions[jnp.asarray(seats), jnp.arange(seats.shape[0])]

  return policy


def _axis_action(delta: chex.Array, tol: chex.Array, pos_x: int, neg_x: int, pos_y: int,
                 neg_y: int, stay: int = 0) -> chex.Array:
  """Moves along the axis with the larger gap; stays when both gaps are within `tol`."""
  dx, dy = delta[..., 0], delta[..., 1]
  along_x = jnp.abs(dx) >= jnp.abs(dy)
  action = jnp.where(along_x, jnp.where(dx > 0, pos_x, neg_x), jnp.where(dy > 0, pos_y, neg_y))
  return jnp.where(jnp.max(jnp.abs(delta), axis=-1) <= tol, stay, action).astype(jnp.int32)


# --------------------------------------------------------------------------------------------------
# Resource collection.


def resource_policy(env: resource_collection.ResourceCollection, mode: str = "nearest") -> Policy:
  """Fill up at a pile, carry the load home, repeat.

  Args:
    env: the ResourceCollection env.
    mode: "nearest" heads for the nearest non-empty pile; "efficient" for the pile with the most
      units it can take per unit of distance, which sends haulers to big piles.

  Returns:
    The policy.
  """
  if mode not in ("nearest", "efficient"):
    raise ValueError(f"mode must be 'nearest' or 'efficient'; got {mode!r}.")
  base = jnp.array(env.base_pos, jnp.float32)

  def policy(key: chex.PRNGKey, state: Any, obs: core.Observation) -> chex.Array:
    del key, obs
    pos, load, cap = state.agent_pos, state.agent_load, state.agent_capacity
    alive = state.resource_amount > 0
    dist = jnp.linalg.norm(pos[:, None] - state.resource_pos[None], axis=-1)
    if mode == "nearest":
      score = dist
    else:
      room = jnp.maximum(cap - load, 1)[:, None]
      score = dist / jnp.minimum(state.resource_amount[None], room)
    target = state.resource_pos[jnp.argmin(jnp.where(alive[None], score, jnp.inf), axis=-1)]
    go_home = (load >= cap) | ((load > 0) & ~jnp.any(alive))
    target = jnp.where(go_home[:, None], base, target)
    idle = (load == 0) & ~jnp.any(alive)
    action = _axis_action(target - pos, 0.5 * state.agent_speed, 4, 3, 1, 2)
    return jnp.where(idle, 0, action)

  return policy


# --------------------------------------------------------------------------------------------------
# Level-based foraging (ours and Jumanji's share the grid, the actions and this heuristic).


def _foraging_actions(agent_pos: chex.Array, food_pos: chex.Array, food_eaten: chex.Array,
                      action_mask: chex.Array, key: chex.PRNGKey, mode: str) -> chex.Array:
  dist = jnp.sum(jnp.abs(agent_pos[:, None] - food_pos[None]), axis=-1)  # (N, F)
  dist = jnp.where(food_eaten[None], 10 ** 6, dist)
  if mode == "nearest":
    target = jnp.argmin(dist, axis=-1)
  else:
    # Everyone heads for the food nearest the team's centre, so heavy food gets enough helpers.
    centre = jnp.mean(agent_pos.astype(jnp.float32), axis=0)
    to_centre = jnp.sum(jnp.abs(food_pos - centre), axis=-1)
    target = jnp.broadcast_to(jnp.argmin(jnp.where(food_eaten, jnp.inf, to_centre)),
                              (agent_pos.shape[0],))
  target_dist = jnp.take_along_axis(dist, target[:, None], axis=-1)[:, 0]
  delta = (food_pos[target] - agent_pos).astype(jnp.float32)
  # Rows grow downwards: "up" (1) is row - 1; "left" (3) is col - 1. Try the axis with the larger
  # gap first, then the other one, then any legal move, so agents slide around blockers.
  dr, dc = delta[:, 0], delta[:, 1]
  vertical = jnp.where(dr < 0, 1, 2)
  horizontal = jnp.where(dc < 0, 3, 4)
  rows_first = jnp.abs(dr) >= jnp.abs(dc)
  primary = jnp.where(rows_first, vertical, horizontal)
  secondary = jnp.where(rows_first, horizontal, vertical)
  secondary_useful = jnp.where(rows_first, dc != 0, dr != 0)
  legal = lambda a: jnp.take_along_axis(action_mask, a[:, None], axis=-1)[:, 0]
  fallback = jax.random.categorical(key, jnp.where(action_mask, 0.0, -jnp.inf)).astype(jnp.int32)
  move = jnp.where(legal(primary), primary,
                   jnp.where(legal(secondary) & secondary_useful, secondary, fallback))
  load_now = (target_dist == 1) & action_mask[:, foraging.LOAD]
  all_gone = jnp.all(food_eaten)
  return jnp.where(all_gone, 0, jnp.where(load_now, foraging.LOAD, move)).astype(jnp.int32)


def foraging_policy(env: Any, mode: str = "nearest") -> Policy:
  """Walk to a food item and LOAD once adjacent.

  Works for `CooperativeForaging` and `JumanjiLBFAdapter`.

  Args:
    env: the foraging env.
    mode: "nearest" goes for each agent's nearest food (good for solo food); "team" sends all
      agents to the same food (good for co-op food).

  Returns:
    The policy.
  """
  if mode not in ("nearest", "team"):
    raise ValueError(f"mode must be 'nearest' or 'team'; got {mode!r}.")
  jumanji = isinstance(env, jumanji_adapters.JumanjiLBFAdapter)

  def policy(key: chex.PRNGKey, state: Any, obs: core.Observation) -> chex.Array:
    if jumanji:
      agent_pos, food = state.agents.position, state.food_items
      food_pos, food_eaten = food.position, food.eaten
    else:
      agent_pos, food_pos, food_eaten = state.agent_pos, state.food_pos, state.food_eaten
    return _foraging_actions(agent_pos, food_pos, food_eaten, obs.action_mask, key, mode)

  return policy


# --------------------------------------------------------------------------------------------------
# Robot warehouse.


def _distance_field(targets: chex.Array, passable: chex.Array, iters: int) -> chex.Array:
  """Shortest 4-neighbour path lengths to any target through passable cells (Bellman relaxation)."""
  big = jnp.int32(10 ** 4)

  def relax(d, _):
    pad = jnp.pad(d, 1, constant_values=big)
    near = jnp.minimum(jnp.minimum(pad[:-2, 1:-1], pad[2:, 1:-1]),
                       jnp.minimum(pad[1:-1, :-2], pad[1:-1, 2:]))
    return jnp.minimum(d, jnp.where(passable, near + 1, big)), None

  field, _ = jax.lax.scan(relax, jnp.where(targets, 0, big).astype(jnp.int32), None, length=iters)
  return field


def warehouse_policy(env: jumanji_adapters.JumanjiWarehouseAdapter) -> Policy:
  """Fetch the nearest requested shelf, bring it to a goal, put it back on an empty shelf cell.

  Each mode follows a shortest-path distance field recomputed every step (agents carrying a shelf
  may not pass under other shelves), turning to face the best neighbour and driving forward. An
  agent waits, or turns at random, rather than drive into another agent, because collisions end
  Jumanji's episode.
  """
  rows, cols = env.grid_shape
  goals = np.asarray(env.goals)[:, ::-1]  # Jumanji stores goals as (col, row).
  goal_cells = jnp.zeros((rows, cols), bool).at[goals[:, 0], goals[:, 1]].set(True)
  highway = jnp.asarray(env.highways.astype(bool))
  heading = jnp.array([[-1, 0], [0, 1], [1, 0], [0, -1]], jnp.int32)  # up, right, down, left.
  iters = 2 * (rows + cols)

  def policy(key: chex.PRNGKey, state: Any, obs: core.Observation) -> chex.Array:
    agents, shelves = state.agents, state.shelves
    pos = jnp.stack([agents.position.x, agents.position.y], -1)
    shelf_grid = state.grid[0]  # Shelf id + 1 per cell, 0 when empty.
    under = shelf_grid[pos[:, 0], pos[:, 1]] - 1  # Shelf at each agent's cell, -1 if none.
    carrying = agents.is_carrying.astype(bool)
    requested = shelves.is_requested.astype(bool)
    on_requested = (under >= 0) & requested[jnp.maximum(under, 0)]

    requested_cells = jnp.zeros((rows, cols), bool).at[
        shelves.position.x, shelves.position.y].max(requested)
    open_cells = shelf_grid == 0
    fields = jnp.stack([
        _distance_field(requested_cells, jnp.ones((rows, cols), bool), iters),  # fetch
        _distance_field(goal_cells, open_cells | goal_cells, iters),  # deliver
        _distance_field(~highway & open_cells, open_cells, iters),  # store
    ])
    mode = jnp.where(carrying, jnp.where(on_requested, 1, 2), 0)

    nxt = pos[:, None, :] + heading[None]  # (N, 4, 2)
    inside = jnp.all((nxt >= 0) & (nxt < jnp.array([rows, cols])), axis=-1)
    nxt = jnp.clip(nxt, 0, jnp.array([rows - 1, cols - 1]))
    dist = jnp.where(inside, fields[mode[:, None], nxt[..., 0], nxt[..., 1]], 10 ** 5)
    # Prefer the current heading on ties, so agents do not turn needlessly.
    dist = dist * 4 + (jnp.arange(4)[None, :] != agents.direction[:, None])
    want = sampling.first_min_index(dist, axis=-1)
    turn = (want - agents.direction) % 4
    ahead = nxt[jnp.arange(pos.shape[0]), agents.direction]
    blocked = state.grid[1][ahead[:, 0], ahead[:, 1]] > 0
    dodge = jax.random.bernoulli(key, 0.3, blocked.shape)
    forward = jnp.where(blocked, jnp.where(dodge, 3, 0), 1)
    action = jnp.where(turn == 0, forward, jnp.where(turn == 3, 2, 3))
    load = ~carrying & on_requested
    unload = carrying & ~on_requested & ~highway[pos[:, 0], pos[:, 1]]
    action = jnp.where(load | unload, 4, action)
    legal = jnp.take_along_axis(obs.action_mask, action[:, None], axis=-1)[:, 0]
    return jnp.where(legal, action, 0).astype(jnp.int32)

  return policy


# --------------------------------------------------------------------------------------------------
# JaxMARL: MPE simple_spread and SMAX.


def spread_policy(env: Any) -> Policy:
  """MPE simple_spread: agent i drives to landmark i mod L (a fixed assignment, no search)."""
  n = env.num_agents
  landmarks = n + np.arange(n) % env.env.num_landmarks

  def policy(key: chex.PRNGKey, state: Any, obs: core.Observation) -> chex.Array:
    del key, obs
    inner = state.env_state
    # Aim short of the gap by the current velocity so the damped point mass does not overshoot.
    delta = inner.p_pos[landmarks] - inner.p_pos[:n] - 0.5 * inner.p_vel[:n]
    # JaxMARL's discrete MPE actions: 1 -x, 2 +x, 3 -y, 4 +y.
    return _axis_action(delta, jnp.asarray(0.02), 2, 1, 4, 3)

  return policy


def smax_policy(env: Any) -> Policy:
  """SMAX allies (HeuristicEnemySMAX): shoot the weakest enemy in range, else close in."""
  n = env.num_agents
  moves = env.env.num_movement_actions  # 4 directions + stop; attacks follow.

  def policy(key: chex.PRNGKey, state: Any, obs: core.Observation) -> chex.Array:
    del key
    inner = state.env_state
    inner = getattr(inner, "state", inner)
    pos, alive, health = inner.unit_positions, inner.unit_alive, inner.unit_health
    enemy_pos, enemy_alive = pos[n:], alive[n:]
    can_shoot = obs.action_mask[:, moves:moves + enemy_pos.shape[0]]
    weakest = jnp.argmin(jnp.where(can_shoot, health[n:][None], jnp.inf), axis=-1)
    d = jnp.linalg.norm(pos[:n, None] - enemy_pos[None], axis=-1)
    nearest = jnp.argmin(jnp.where(enemy_alive[None], d, jnp.inf), axis=-1)
    delta = enemy_pos[nearest] - pos[:n]
    # SMAX discrete moves: 0 +y, 1 +x, 2 -y, 3 -x, 4 stop.
    walk = _axis_action(delta, jnp.asarray(0.0), 1, 3, 0, 2, stay=moves - 1)
    action = jnp.where(jnp.any(can_shoot, axis=-1), moves + weakest, walk)
    legal = jnp.take_along_axis(obs.action_mask, action[:, None], axis=-1)[:, 0]
    return jnp.where(legal, action, moves - 1).astype(jnp.int32)

  return policy


# --------------------------------------------------------------------------------------------------
# Registry.


def _registry(env: Any) -> Dict[str, Callable[[], Policy]]:
  table: Dict[str, Callable[[], Policy]] = {"random": lambda: random_policy(env)}
  if isinstance(env, resource_collection.ResourceCollection):
    table["greedy"] = lambda: resource_policy(env, "nearest")
    table["efficient"] = lambda: resource_policy(env, "efficient")
  elif isinstance(env, (foraging.CooperativeForaging, jumanji_adapters.JumanjiLBFAdapter)):
    table["greedy"] = lambda: foraging_policy(env, "nearest")
    table["team"] = lambda: foraging_policy(env, "team")
  elif isinstance(env, jumanji_adapters.JumanjiWarehouseAdapter):
    table["greedy"] = lambda: warehouse_policy(env)
  elif type(env).__name__ == "JaxMARLAdapter":
    if hasattr(env.env, "enemy_agents"):  # SMAX against scripted or learned enemies.
      table["greedy"] = lambda: smax_policy(env)
    elif "spread" in env.env_id.lower():
      table["greedy"] = lambda: spread_policy(env)
  return table


def scripted_policy_names(env: Any) -> list:
  """Names of the scripted policies available for `env` (wrappers are looked through)."""
  return sorted(_registry(wrappers.unwrap_env(env)))


def make_scripted_policy(env: Any, name: str = "greedy") -> Policy:
  """Returns the scripted policy `name` for `env` (wrappers are looked through).

  Raises:
    ValueError: if `env` has no policy of that name; the message lists the ones it has.
  """
  table = _registry(wrappers.unwrap_env(env))
  if name not in table:
    raise ValueError(f"no scripted policy {name!r} for {type(wrappers.unwrap_env(env)).__name__};"
                     f" available: {sorted(table)}.")
  return table[name]()
