"""Resource collection: the MPE-style task of the CORD paper, as a pure-JAX Jumanji environment.

A continuous square world [-1, 1]^2 holds a base (a disc at `base_pos`) and `num_resources` piles of
integer units. Each of `num_agents` agents has a type with a speed (distance per step) and a
capacity (units it can carry). An agent within `pickup_radius` of a non-empty pile, with room left,
picks up one unit per step; an agent inside the base drops everything it carries, and the team is
rewarded per unit delivered. Fast scouts carry little and slow haulers carry much, so a team does
best when it divides the work: haulers on the big piles, scouts on the far small ones.

Units are integers, so `remaining + carried + delivered == total` holds exactly at every step.
An episode terminates (discount 0) when every unit is delivered and truncates (discount 1) after
`time_limit` steps.

Actions (per agent): 0 stay, 1 up (+y), 2 down (-y), 3 left (-x), 4 right (+x).

Observation (`core.Observation`), all entries in [-1, 1]:
  agents_view[i] = own features (9): x, y, (base - pos) / 2, load / capacity_scale,
                   capacity / capacity_scale, speed / speed_scale, load / capacity,
                   step / time_limit;
                 + per resource slot (4): dx / obs_radius, dy / obs_radius, amount / max_amount,
                   visible;
                 + per teammate slot (6): dx / obs_radius, dy / obs_radius, load / capacity_scale,
                   capacity / capacity_scale, speed / speed_scale, visible.
  Entities farther than `obs_radius` (and empty piles) read as zeros with visible = 0. By default
  the slots follow entity index; `nearest_agents` / `nearest_resources` switch to the k nearest,
  which keeps `obs_dim` fixed when the team size changes at evaluation time.
  global_state = per agent (x, y, load / capacity_scale, capacity / capacity_scale,
                 speed / speed_scale), per resource (x, y, amount / max_amount),
                 step / time_limit, delivered / total.
Reward: the team reward `delivery_reward * units delivered + pickup_reward * units picked up`,
repeated for every agent.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence, Tuple, Union

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jumanji.types import TimeStep

from cord_jax.envs import core
from cord_jax.envs import sampling
from cord_jax.envs import validation

# (dx, dy) per action: stay, up, down, left, right.
MOVES = jnp.array([[0.0, 0.0], [0.0, 1.0], [0.0, -1.0], [-1.0, 0.0], [1.0, 0.0]], jnp.float32)
NUM_OWN_FEATURES = 9
NUM_RESOURCE_FEATURES = 4
NUM_TEAMMATE_FEATURES = 6


@dataclasses.dataclass(frozen=True)
class AgentType:
  """A kind of agent: how far it moves per step and how many units it carries."""

  name: str
  speed: float
  capacity: int


DEFAULT_AGENT_TYPES = (
    AgentType("scout", speed=0.12, capacity=1),
    AgentType("worker", speed=0.09, capacity=2),
    AgentType("hauler", speed=0.06, capacity=4),
)


@chex.dataclass
class ResourceCollectionState:
  """State of one resource-collection episode.

  Attributes:
    agent_pos: float32 (N, 2) positions in [-1, 1]^2.
    agent_load: int32 (N,) units carried.
    agent_type: int32 (N,) index into the env's `agent_types`.
    agent_speed: float32 (N,) distance per step.
    agent_capacity: int32 (N,) units an agent can carry.
    resource_pos: float32 (M, 2) pile positions.
    resource_amount: int32 (M,) units left in each pile.
    delivered: int32 () units delivered to the base so far.
    total: int32 () units at the start of the episode (the conserved quantity).
    step_count: int32 () steps since reset.
    key: the key the episode was generated from (used by auto-reset wrappers).
    invalid_team: bool (N,) True for agents whose type index given to `reset_with_team` under
      `jit` was out of range and was clamped (eagerly that is a ValueError); reported in every
      timestep's `extras["invalid_team"]` until the episode ends.
  """

  agent_pos: chex.Array
  agent_load: chex.Array
  agent_type: chex.Array
  agent_speed: chex.Array
  agent_capacity: chex.Array
  resource_pos: chex.Array
  resource_amount: chex.Array
  delivered: chex.Array
  total: chex.Array
  step_count: chex.Array
  key: chex.PRNGKey
  invalid_team: chex.Array


def _pad_slots(view: chex.Array, slots: int) -> chex.Array:
  """Pads (N, k, F) slot features with invisible (all-zero) slots up to (N, slots, F)."""
  return jnp.pad(view, ((0, 0), (0, slots - view.shape[1]), (0, 0)))


class ResourceCollection(core.MultiAgentEnv):
  """Heterogeneous-team resource collection with partial views, a global state and team reward.

  Example:
    env = ResourceCollection(num_agents=4, team=("scout", "scout", "hauler", "hauler"))
    state, timestep = jax.jit(env.reset)(jax.random.key(0))
    state, timestep = jax.jit(env.step)(state, jnp.zeros(4, jnp.int32))
  """

  view_bounds = (-1.0, 1.0)
  state_bounds = (-1.0, 1.0)
  fused_reset = True

  def __init__(
      self,
      num_agents: int = 4,
      num_resources: int = 6,
      agent_types: Sequence[AgentType] = DEFAULT_AGENT_TYPES,
      team: Optional[Sequence[Union[int, str]]] = None,
      max_amount: int = 3,
      base_pos: Tuple[float, float] = (0.0, 0.0),
      base_radius: float = 0.2,
      pickup_radius: float = 0.1,
      obs_radius: float = 0.6,
      nearest_agents: Optional[int] = None,
      nearest_resources: Optional[int] = None,
      time_limit: int = 100,
      delivery_reward: float = 1.0,
      pickup_reward: float = 0.1,
      speed_scale: Optional[float] = None,
      capacity_scale: Optional[int] = None,
  ):
    """Builds the env.

    Args:
      num_agents: team size N (static: it fixes array shapes).
      num_resources: number of piles M.
      agent_types: the catalogue of agent types the team is drawn from.
      team: a fixed composition, one type name or index per agent; None draws each agent's type
        uniformly from `agent_types` at every reset.
      max_amount: piles start with a uniform number of units in [1, max_amount].
      base_pos: centre of the base.
      base_radius: radius of the base; an agent inside delivers its load.
      pickup_radius: an agent this close to a pile can pick up from it.
      obs_radius: how far an agent sees other agents and piles.
      nearest_agents: if set, observe this many nearest teammates (sorted by distance; padded
        with invisible slots for smaller teams) instead of all N - 1 in index order.
      nearest_resources: if set, observe this many nearest non-empty piles likewise.
      time_limit: steps before truncation.
      delivery_reward: team reward per unit delivered.
      pickup_reward: team reward per unit picked up (shaping; 0 disables it).
      speed_scale: divisor for speeds in observations (default: the fastest type). Keep the
        training value when evaluating with unseen types so features mean the same.
      capacity_scale: divisor for capacities and loads (default: the largest capacity).
    """
    if num_agents < 1 or num_resources < 1:
      raise ValueError(f"need num_agents >= 1 and num_resources >= 1; got {num_agents}, "
                       f"{num_resources}.")
    if not agent_types:
      raise ValueError("agent_types must name at least one AgentType.")
    for t in agent_types:
      if t.speed <= 0 or t.capacity < 1:
        raise ValueError(f"agent type {t} needs speed > 0 and capacity >= 1.")
    if max_amount < 1 or time_limit < 1:
      raise ValueError(f"need max_amount >= 1 and time_limit >= 1; got {max_amount}, {time_limit}.")
    self.num_agents = int(num_agents)
    self.num_resources = int(num_resources)
    self.agent_types = tuple(agent_types)
    self.team = None if team is None else self._resolve_team(team)
    self.max_amount = int(max_amount)
    self.base_pos = tuple(float(b) for b in base_pos)
    self.base_radius = float(base_radius)
    self.pickup_radius = float(pickup_radius)
    self.obs_radius = float(obs_radius)
    self.time_limit = int(time_limit)
    self.delivery_reward = float(delivery_reward)
    self.pickup_reward = float(pickup_reward)
    self.speed_scale = float(speed_scale or max(t.speed for t in agent_types))
    self.capacity_scale = int(capacity_scale or max(t.capacity for t in agent_types))
    # With nearest_* set, the slot count is exactly that number (padded with invisible slots when
    # there are fewer entities), so obs_dim does not depend on the team size or pile count.
    self.num_agent_slots = self._slots("nearest_agents", nearest_agents, num_agents - 1)
    self.num_resource_slots = self._slots("nearest_resources", nearest_resources, num_resources)
    self._nearest_agents = nearest_agents is not None
    self._nearest_resources = nearest_resources is not None
    self.num_actions = int(MOVES.shape[0])
    self.obs_dim = (NUM_OWN_FEATURES + NUM_RESOURCE_FEATURES * self.num_resource_slots
                    + NUM_TEAMMATE_FEATURES * self.num_agent_slots)
    self.state_dim = 5 * self.num_agents + 3 * self.num_resources + 2
    # Others-than-self index table, static, so the default teammate slots are a plain gather.
    self._others = np.array([[j for j in range(num_agents) if j != i] for i in range(num_agents)],
                            np.int32).reshape(num_agents, num_agents - 1)
    self._type_speed = jnp.array([t.speed for t in self.agent_types], jnp.float32)
    self._type_capacity = jnp.array([t.capacity for t in self.agent_types], jnp.int32)
    super().__init__()

  def _resolve_team(self, team: Sequence[Union[int, str]]) -> Tuple[int, ...]:
    validation.check_team_size("team", team, self.num_agents)
    names = [t.name for t in self.agent_types]
    out = []
    for member in team:
      if isinstance(member, str):
        if member not in names:
          raise ValueError(f"unknown agent type {member!r}; known types: {names}.")
        out.append(names.index(member))
      elif 0 <= int(member) < len(names):
        out.append(int(member))
      else:
        raise ValueError(f"agent type index {member} out of range [0, {len(names)}).")
    return tuple(out)

  @staticmethod
  def _slots(name: str, value: Optional[int], maximum: int) -> int:
    if value is None:
      return maximum
    if value < 1:
      raise ValueError(f"{name} must be >= 1; got {value}.")
    return int(value)

  # ----------------------------------------------------------------------------------------------
  # Reset.

  def init_state(self, key: chex.PRNGKey) -> ResourceCollectionState:
    """Samples an episode; the team is `self.team` or, if None, drawn uniformly per agent."""
    return self._init_state(key, None)

  def reset_with_team(self, key: chex.PRNGKey,
                      team: chex.Array) -> Tuple[ResourceCollectionState, TimeStep]:
    """Starts an episode with a given composition: int (N,) indices into `agent_types`.

    Jittable and vmappable over `team`, so an evaluator can sweep unseen compositions in one call.
    With a fixed `self.team`, `reset(key)` equals `reset_with_team(key, self.team)`. An index
    out of range raises a ValueError when `team` is concrete; under `jit`/`vmap` it is clamped and
    flagged in `state.invalid_team` and `timestep.extras["invalid_team"]`.
    """
    validation.check_key(key, "reset_with_team")
    validation.check_team_size("team", team, self.num_agents)
    names = [t.name for t in self.agent_types]
    team, invalid = validation.check_team_values(
        "team", team, 0, len(names) - 1, f"indices into agent_types {names}")
    state = self._init_state(key, team, invalid)
    return state, core.make_restart(self.observe(state), self.num_agents,
                                    self.initial_extras(state))

  def _init_state(self, key: chex.PRNGKey, team: Optional[chex.Array],
                  invalid_team: Optional[chex.Array] = None) -> ResourceCollectionState:
    n, m = self.num_agents, self.num_resources
    # One hash of the key, expanded cheaply: the layout is resampled at every auto-reset step.
    u = sampling.uniform(key, 3 * n + 3 * m)
    team_u, jitter_u, res_u, amount_u = jnp.split(u, [n, 3 * n, 3 * n + 2 * m])
    if team is None:
      team = (jnp.array(self.team, jnp.int32) if self.team is not None
              else jnp.floor(team_u * len(self.agent_types)).astype(jnp.int32))
    if invalid_team is None:
      invalid_team = jnp.zeros((n,), bool)
    base = jnp.array(self.base_pos, jnp.float32)
    # Agents start inside the base, so the first trip out is part of the task.
    jitter = 0.7 * self.base_radius / np.sqrt(2.0)
    agent_pos = base + (2.0 * jitter_u.reshape(n, 2) - 1.0) * jitter
    # Piles are uniform in the world but pushed out of the base and its pickup margin, so a unit
    # can never be picked up and delivered in the same place.
    res = 1.9 * res_u.reshape(m, 2) - 0.95
    exclusion = self.base_radius + self.pickup_radius + 0.05
    offset = res - base
    dist = jnp.sqrt(jnp.sum(jnp.square(offset), axis=-1, keepdims=True))
    direction = jnp.where(dist > 1e-6, offset / jnp.maximum(dist, 1e-6), jnp.array([1.0, 0.0]))
    res = jnp.clip(jnp.where(dist < exclusion, base + direction * exclusion, res), -1.0, 1.0)
    amount = jnp.minimum(1 + jnp.floor(amount_u * self.max_amount), self.max_amount)
    amount = amount.astype(jnp.int32)
    return ResourceCollectionState(
        agent_pos=jnp.clip(agent_pos, -1.0, 1.0),
        agent_load=jnp.zeros((n,), jnp.int32),
        agent_type=team,
        agent_speed=self._type_speed[team],
        agent_capacity=self._type_capacity[team],
        resource_pos=res,
        resource_amount=amount,
        delivered=jnp.zeros((), jnp.int32),
        total=jnp.sum(amount),
        step_count=jnp.zeros((), jnp.int32),
        key=key,
        invalid_team=invalid_team,
    )

  def initial_extras(self, state: ResourceCollectionState) -> dict:
    """Extras of the first timestep (no invalid actions yet)."""
    return self._extras(state, jnp.zeros((self.num_agents,), bool))

  # ----------------------------------------------------------------------------------------------
  # Step.

  def transition(self, state: ResourceCollectionState, action: chex.Array) -> core.Transition:
    """Moves every agent, delivers at the base, picks up at piles, and scores the team."""
    action, invalid = validation.sanitize_actions(self.check_action(action), self.num_actions)
    validation.check_state_team_size(state.agent_pos.shape[0], self.num_agents)
    pos = state.agent_pos + state.agent_speed[:, None] * MOVES[action]
    pos = jnp.clip(pos, -1.0, 1.0)

    base = jnp.array(self.base_pos, jnp.float32)
    in_base = jnp.sum(jnp.square(pos - base), axis=-1) <= self.base_radius ** 2
    dropped = jnp.where(in_base, state.agent_load, 0)
    load = state.agent_load - dropped
    delivered_now = jnp.sum(dropped)

    # Every agent with room claims one unit from its nearest non-empty pile in reach; a pile with
    # fewer units than claimants serves them in agent-index order, so units are never duplicated.
    d2 = jnp.sum(jnp.square(pos[:, None, :] - state.resource_pos[None, :, :]), axis=-1)
    eligible = ((d2 <= self.pickup_radius ** 2) & (state.resource_amount > 0)[None, :]
                & (load < state.agent_capacity)[:, None])
    target = sampling.first_min_index(jnp.where(eligible, d2, jnp.inf), axis=-1)
    claim = (jnp.arange(self.num_resources)[None, :] == target[:, None]) & jnp.any(
        eligible, axis=-1, keepdims=True)
    claim = claim.astype(jnp.int32)
    rank = jnp.cumsum(claim, axis=0) - claim
    granted = claim * (rank < state.resource_amount[None, :])
    amount = state.resource_amount - jnp.sum(granted, axis=0)
    picked = jnp.sum(granted, axis=1)
    load = load + picked

    new_state = state.replace(
        agent_pos=pos, agent_load=load, resource_amount=amount,
        delivered=state.delivered + delivered_now, step_count=state.step_count + 1)
    reward = self.delivery_reward * delivered_now + self.pickup_reward * jnp.sum(picked)
    return core.Transition(
        state=new_state, reward=reward,
        terminated=(jnp.sum(amount) == 0) & (jnp.sum(load) == 0),
        truncated=new_state.step_count >= self.time_limit,
        extras=self._extras(new_state, invalid))

  def _extras(self, state: ResourceCollectionState, invalid: chex.Array) -> dict:
    return {
        "invalid_action": invalid,
        "invalid_team": state.invalid_team,
        "delivered": state.delivered,
        "remaining": jnp.sum(state.resource_amount),
        "carried": jnp.sum(state.agent_load),
    }

  # ----------------------------------------------------------------------------------------------
  # Observations.

  def observe(self, state: ResourceCollectionState) -> core.Observation:
    """Partial per-agent views and the global state (see the module docstring)."""
    n, r = self.num_agents, self.obs_radius
    pos = state.agent_pos
    base = jnp.array(self.base_pos, jnp.float32)
    cap = state.agent_capacity.astype(jnp.float32)
    load = state.agent_load.astype(jnp.float32)
    time_frac = state.step_count.astype(jnp.float32) / self.time_limit
    agent_feats = jnp.stack([load / self.capacity_scale, cap / self.capacity_scale,
                             state.agent_speed / self.speed_scale], axis=-1)
    own = jnp.concatenate([
        pos, (base - pos) / 2.0, agent_feats, (load / cap)[:, None],
        jnp.broadcast_to(time_frac, (n, 1))], axis=-1)

    # Resource slots.
    rel = state.resource_pos[None, :, :] - pos[:, None, :]  # (N, M, 2)
    d2 = jnp.sum(jnp.square(rel), axis=-1)
    alive = (state.resource_amount > 0)[None, :]
    if self._nearest_resources:
      _, idx = jax.lax.top_k(-jnp.where(alive, d2, jnp.inf),
                             min(self.num_resource_slots, self.num_resources))
      rel = jnp.take_along_axis(rel, idx[..., None], axis=1)
      d2 = jnp.take_along_axis(d2, idx, axis=1)
      amount = state.resource_amount[idx]
    else:
      amount = jnp.broadcast_to(state.resource_amount, (n, self.num_resources))
    visible = (d2 <= r * r) & (amount > 0)
    res_view = jnp.concatenate([
        rel / r, (amount.astype(jnp.float32) / self.max_amount)[..., None],
        jnp.ones_like(d2)[..., None]], axis=-1) * visible[..., None]
    res_view = _pad_slots(res_view, self.num_resource_slots)

    # Teammate slots.
    if n > 1:
      rel_a = pos[None, :, :] - pos[:, None, :]  # (N, N, 2): [i, j] = pos_j - pos_i
      d2_a = jnp.sum(jnp.square(rel_a), axis=-1)
      if self._nearest_agents:
        d2_masked = jnp.where(jnp.eye(n, dtype=bool), jnp.inf, d2_a)
        _, idx = jax.lax.top_k(-d2_masked, min(self.num_agent_slots, n - 1))
      else:
        idx = jnp.asarray(self._others)
      rel_a = jnp.take_along_axis(rel_a, idx[..., None], axis=1)
      d2_a = jnp.take_along_axis(d2_a, idx, axis=1)
      visible_a = d2_a <= r * r
      mate_view = jnp.concatenate([
          rel_a / r, agent_feats[idx], jnp.ones_like(d2_a)[..., None]], axis=-1)
      mate_view = _pad_slots(mate_view * visible_a[..., None], self.num_agent_slots)
    else:
      mate_view = jnp.zeros((n, self.num_agent_slots, NUM_TEAMMATE_FEATURES), jnp.float32)

    view = jnp.concatenate([own, res_view.reshape(n, -1), mate_view.reshape(n, -1)], axis=-1)
    global_state = jnp.concatenate([
        jnp.concatenate([pos, agent_feats], axis=-1).reshape(-1),
        jnp.concatenate([state.resource_pos, (state.resource_amount.astype(jnp.float32)
                                              / self.max_amount)[:, None]], axis=-1).reshape(-1),
        jnp.stack([time_frac, state.delivered.astype(jnp.float32)
                   / jnp.maximum(state.total, 1).astype(jnp.float32)]),
    ])
    return core.Observation(
        agents_view=jnp.clip(view, -1.0, 1.0).astype(jnp.float32),
        global_state=jnp.clip(global_state, -1.0, 1.0).astype(jnp.float32),
        action_mask=jnp.ones((n, self.num_actions), bool),
        step_count=state.step_count,
    )

  # ----------------------------------------------------------------------------------------------
  # Drawing.

  def draw(self, ax: Any, state: ResourceCollectionState) -> None:
    """Draws the base, piles (size ~ units left), agents (colour = type) and their loads."""
    import matplotlib.patches as mpatches  # pylint: disable=g-import-not-at-top
    s = jax.tree_util.tree_map(np.asarray, state.replace(key=None))
    ax.set_xlim(-1.05, 1.05)
    ax.set_ylim(-1.05, 1.05)
    ax.set_aspect("equal")
    ax.add_patch(mpatches.Circle(self.base_pos, self.base_radius, color="#b0c4de", zorder=0))
    for pos, amount in zip(s.resource_pos, s.resource_amount):
      if amount > 0:
        ax.scatter(*pos, marker="s", s=40 + 40 * amount, color="#2e8b57", zorder=1)
        ax.text(pos[0], pos[1], str(int(amount)), color="white", ha="center", va="center",
                fontsize=7, zorder=2)
    cmap = __import__("matplotlib").colormaps["tab10"]
    for i, (pos, load, kind) in enumerate(zip(s.agent_pos, s.agent_load, s.agent_type)):
      ax.add_patch(mpatches.Circle(pos, self.obs_radius, fill=False, lw=0.3, alpha=0.3,
                                   color=cmap(int(kind))))
      ax.scatter(*pos, s=120, color=cmap(int(kind)), edgecolors="black", zorder=3)
      ax.text(pos[0], pos[1] + 0.07, f"{i}:{int(load)}", ha="center", fontsize=7, zorder=4)
    handles = [mpatches.Patch(color=cmap(k), label=f"{t.name} (v={t.speed:g}, c={t.capacity})")
               for k, t in enumerate(self.agent_types)]
    ax.legend(handles=handles, loc="upper right", fontsize=6)
    ax.set_title(f"step {int(s.step_count)}  delivered {int(s.delivered)}/{int(s.total)}")
