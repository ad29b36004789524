"""Cross-play: teams whose agents come from different training runs (seeds) or are scripted.

A run of ``make_train`` trains ``S`` independent teams at once (one per seed). Self-play puts one
seed's agents together; cross-play seats agents of seed a and seed b in one team (agent i from a
when i is even, from b when odd), so each half meets collaborators it never trained with. Each
agent brings its own actor *and* its own controller: agent i's role is the one its seed's
controller draws for seat i, and its action comes from its seed's actor, which sees the team's
roles as they were actually assigned. A held-out scripted partner (``cord_jax.envs.scripted``)
can take the odd seats instead.

``crossplay_matrix`` evaluates every (a, b) pair in one ``vmap``; ``summary`` reduces it to
self-play (the diagonal), cross-play (off the diagonal) and the gap.
"""

from __future__ import annotations

import copy
import functools
from typing import Any, Optional

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from cord_jax import envs
from cord_jax import mappo
from cord_jax import roles as roles_lib
from cord_jax import train


def _per_seat(x: jax.Array, seats: jax.Array) -> jax.Array:
  """``[K, E, N, ...]`` (every policy's output for every agent) -> ``[E, N, ...]``: seat i's own."""
  n = x.shape[2]
  return jnp.moveaxis(x[seats, :, jnp.arange(n)], 0, 1)


def team_return(learner: train.Learner, params: dict, seats: jax.Array, key: jax.Array,
                num_envs: int, partner: Optional[envs.Policy] = None) -> jax.Array:
  """Mean first-episode team return of a mixed team on ``num_envs`` fresh envs.

  Args:
    learner: the trained config's ``Learner``.
    params: K parameter sets stacked on a leading axis (e.g. two seeds' ``train.params``).
    seats: int ``[N]``: agent i acts with parameter set ``seats[i]``; ``K`` seats the scripted
      ``partner`` there.
    key: PRNG key (with K = 1 and no partner, the same draws as ``Learner.evaluate_one``).
    num_envs: how many envs (episodes) to average over.
    partner: a scripted policy for the seats equal to K.

  Returns:
    The mean team return, a scalar.
  """
  r = learner.config.roles
  k_env, k_roll = jax.random.split(key)
  c0 = learner.reset(k_env, num_envs)
  num_sets = jax.tree.leaves(params)[0].shape[0]
  own = jnp.minimum(seats, num_sets - 1)  # partner seats borrow set K-1's (unused) outputs

  def step(c: train.EnvCarry, key):
    k_role, k_act = jax.random.split(key)
    obs = c.obs
    ctrl_logits = jax.vmap(lambda p: learner.controller.apply(
        {"params": p["controller"]}, obs.global_state)[0])(params)
    decision = roles_lib.decide(c.first, c.since, r.T_role)
    roles = roles_lib.assign(learner.mode, k_role, _per_seat(ctrl_logits, own), c.roles,
                             decision)
    carry = jnp.where(c.first[:, None, None], 0.0, c.carry)
    views = mappo.with_agent_ids(obs.agents_view)
    feats = mappo.role_features(roles, learner.num_roles)
    carries, logits = jax.vmap(lambda p: learner.actor.apply({"params": p["actor"]}, views, feats,
                                                             carry))(params)
    logits = mappo.mask_logits(_per_seat(logits, own), obs.action_mask)
    action = jax.random.categorical(k_act, logits).astype(jnp.int32)
    if partner is not None:
      keys = jax.random.split(jax.random.fold_in(k_act, 1), num_envs)
      scripted = jax.vmap(partner)(keys, envs.unwrap_state(c.env_state), obs)
      action = jnp.where(seats == num_sets, scripted, action)
    env_state, timestep = jax.vmap(learner.env.step)(c.env_state, action)
    since = jnp.where(decision, 0, c.since) + 1
    out = (timestep.reward.mean(-1), timestep.last())
    return train.EnvCarry(env_state, timestep.observation, timestep.last(), roles, since,
                          _per_seat(carries, own)), out

  _, (reward, done) = lax.scan(step, c0, jax.random.split(k_roll, learner.raw_env.time_limit))
  return train.first_episode_return(reward, done).mean()


def alternating_seats(num_agents: int) -> jax.Array:
  """Agent i sits in set 0 when i is even, set 1 when odd."""
  return jnp.arange(num_agents) % 2


def crossplay_matrix(learner: train.Learner, params: dict, key: jax.Array,
                     num_envs: int) -> np.ndarray:
  """``[S, S]``: entry (a, b) is the return of seed a's agents (even seats) with seed b's (odd).

  ``params`` is a run's ``train.params`` (leading seed axis S). Every entry uses the same key, so
  two identical seeds give identical entries.
  """
  s = jax.tree.leaves(params)[0].shape[0]
  a, b = np.meshgrid(np.arange(s), np.arange(s), indexing="ij")
  run = _pairs_fn(learner, num_envs)
  return np.asarray(run(params, key, jnp.asarray(a.ravel()), jnp.asarray(b.ravel()))).reshape(s, s)


@functools.lru_cache(maxsize=8)
def _pairs_fn(learner: train.Learner, num_envs: int):
  """One compiled program per learner and env count: the returns of the (a[k], b[k]) teams."""
  seats = alternating_seats(learner.num_agents)

  @jax.jit
  def run(params, key, a, b):
    def pair(i, j):
      team = jax.tree.map(lambda x: x[jnp.stack([i, j])], params)
      return team_return(learner, team, seats, key, num_envs)
    return jax.vmap(pair)(a, b)

  return run


def partner_returns(learner: train.Learner, params: dict, partner_name: str, key: jax.Array,
                    num_envs: int) -> np.ndarray:
  """``[S]``: each seed's agents in the even seats with a scripted partner in the odd ones."""
  partner = envs.make_scripted_policy(learner.env, partner_name)
  seats = alternating_seats(learner.num_agents)

  @jax.jit
  def run(params):
    return jax.vmap(lambda p: team_return(
        learner, jax.tree.map(lambda x: x[None], p), seats, key, num_envs, partner))(params)

  return np.asarray(run(params))


def composition_returns(config: Any, params: dict, key: jax.Array, num_envs: int,
                        **env_kwargs: Any) -> np.ndarray:
  """``[S]``: each seed's self-play return on the env rebuilt with other ``env_kwargs``.

  For unseen team compositions, e.g. ``team=("hauler",) * 3`` on resource collection or
  ``agent_levels=(1, 1, 3)`` on foraging. The networks' input sizes are fixed, so the rebuilt env
  must keep the observation, state and action sizes (a larger team needs an env whose views
  do not grow with it, e.g. ``nearest_agents``); otherwise a ValueError says which size changed.
  """
  c = copy.deepcopy(config)
  for k, v in env_kwargs.items():
    c.env.kwargs[k] = v
  trained, learner = train.Learner(config).raw_env, train.Learner(c)
  for attr in ("num_agents", "obs_dim", "state_dim", "num_actions"):
    if getattr(learner.raw_env, attr) != getattr(trained, attr):
      raise ValueError(f"{env_kwargs} changes the env's {attr} from {getattr(trained, attr)} to "
                       f"{getattr(learner.raw_env, attr)}; the trained networks cannot read it.")
  run = jax.jit(jax.vmap(lambda p: learner.evaluate_one(p, key, num_envs)["return"]))
  return np.asarray(run(params))


def summary(matrix: np.ndarray) -> dict:
  """Self-play (diagonal), cross-play (off-diagonal) means and spreads, and the gap."""
  s = matrix.shape[0]
  off = matrix[~np.eye(s, dtype=bool)]
  diag = np.diag(matrix)
  return {"self_play": float(diag.mean()), "self_play_std": float(diag.std()),
          "cross_play": float(off.mean()) if off.size else float("nan"),
          "cross_play_std": float(off.std()) if off.size else float("nan"),
          "gap": float(diag.mean() - off.mean()) if off.size else float("nan")}


def save_heatmap(matrix: np.ndarray, path: str, title: str = "") -> str:
  """Writes the cross-play matrix as a PNG heat map (rows: even seats' seed, columns: odd's)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(3.4 + 0.5 * matrix.shape[0], 2.8 + 0.5 * matrix.shape[0]))
  im = ax.imshow(matrix, cmap="viridis")
  for (i, j), v in np.ndenumerate(matrix):
    ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white", fontsize=7)
  ax.set_xlabel("seed of odd seats")
  ax.set_ylabel("seed of even seats")
  ax.set_title(title, fontsize=8)
  fig.colorbar(im, ax=ax)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path
