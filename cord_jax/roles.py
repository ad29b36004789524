"""CORD's high level: the role controller, its interval GAE, and the intrinsic rewards r_c and r_d.

- The controller reads the global state every ``T_role`` steps and at every episode start and
  samples a role z_i in {0..R-1} for each agent (independent categoricals from one network); it is
  trained with PPO on the team's env reward summed over its interval (``interval_gae``).
- r_c, causal influence of agent i's role (``causal_influence``): the mean, over the R - 1
  counterfactual roles z' != z_i, of the mean over teammates j != i of
  KL(pi_j(. | o_j, z) || pi_j(. | o_j, z with z_i := z')). Teammates see the team's roles through
  ``mappo.role_features``, so agent i's role can change what they do; it is 0 when the policies
  ignore roles.
- r_d, role heterogeneity (``heterogeneity``): log q(z_i | o_i, a_i) - log(1 / R), from a role
  discriminator q trained by cross-entropy on the rollout's (observation, action, role) triples.
  It is 0 on average for roles q cannot tell apart and up to log R for recognisable ones.

Assignment modes (``roles.assign`` in the config): ``learned`` (CORD's controller), ``random``
(uniform roles at the same times), ``fixed`` (agent i has role i mod R throughout) and ``none``
(MAPPO: one role, so role inputs are constant and r_c = r_d = 0).
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from cord_jax import mappo

ASSIGN_MODES = ("learned", "random", "fixed", "none")


class Controller(nn.Module):
  """pi_c(z | s) and V_c(s): role logits ``[..., N, R]`` and a value from the global state."""
  num_agents: int
  num_roles: int
  hidden: int = 64

  @nn.compact
  def __call__(self, global_state: jax.Array):
    x = global_state
    for _ in range(2):
      x = jnp.tanh(mappo.dense(self.hidden)(x))
    logits = mappo.dense(self.num_agents * self.num_roles, scale=0.01)(x)
    logits = logits.reshape(global_state.shape[:-1] + (self.num_agents, self.num_roles))
    return logits, mappo.Critic(self.hidden, name="value")(global_state)


class Discriminator(nn.Module):
  """q(z | feature): role logits ``[..., R]`` from an agent's (observation, action) feature."""
  num_roles: int
  hidden: int = 64

  @nn.compact
  def __call__(self, feature: jax.Array) -> jax.Array:
    x = jnp.tanh(mappo.dense(self.hidden)(feature))
    return mappo.dense(self.num_roles, scale=1.0)(x)


def discriminator_features(views: jax.Array, actions: jax.Array, num_actions: int) -> jax.Array:
  """``[..., N, O]`` views and ``[..., N]`` actions -> ``[..., N, O + A]``: what q sees."""
  return jnp.concatenate([views, jax.nn.one_hot(actions, num_actions)], axis=-1)


def decide(first: jax.Array, since: jax.Array, t_role: int) -> jax.Array:
  """True where roles are (re)assigned now: at episode starts and every ``t_role`` steps."""
  return first | (since >= t_role)


def assign(mode: str, key: jax.Array, logits: jax.Array, current: jax.Array,
           decision: jax.Array) -> jax.Array:
  """New roles ``[E, N]``: drawn where ``decision`` ``[E]`` is set, else ``current``.

  Args:
    mode: one of ``ASSIGN_MODES``.
    key: PRNG key.
    logits: the controller's ``[E, N, R]`` (its shape also gives R for ``random``).
    current: the roles in force, int ``[E, N]``.
    decision: bool ``[E]``.
  """
  if mode == "learned":
    drawn = jax.random.categorical(key, logits)
  elif mode == "random":
    drawn = jax.random.randint(key, current.shape, 0, logits.shape[-1])
  elif mode == "fixed":
    drawn = jnp.broadcast_to(jnp.arange(current.shape[-1]) % logits.shape[-1], current.shape)
  elif mode == "none":
    drawn = jnp.zeros_like(current)
  else:
    raise ValueError(f"unknown role assignment {mode!r}; one of {ASSIGN_MODES}.")
  return jnp.where(decision[..., None], drawn, current).astype(jnp.int32)


def interval_gae(rewards: jax.Array, values: jax.Array, dones: jax.Array, decisions: jax.Array,
                 last_value: jax.Array, gamma: float, lam: float):
  """GAE for the controller, whose steps are the intervals between its decisions (an SMDP).

  The reward of a decision at t is the discounted env reward summed until the next decision (or
  the episode's end); the bootstrap is gamma^(interval length) times the next decision's value.

  Args:
    rewards: ``[T, E]`` team env reward after step t.
    values: ``[T, E]`` V_c(s_t) (used only where ``decisions`` is set).
    dones: ``[T, E]`` 1 where the episode ended after step t.
    decisions: ``[T, E]`` bool, where the controller decided.
    last_value: ``[E]`` V_c of the state after the rollout (the bootstrap of the open interval).
    gamma: per-step discount.
    lam: GAE lambda, applied per decision.

  Returns:
    (advantages, value targets), ``[T, E]``; meaningful only where ``decisions`` is set.
  """
  def back(carry, x):
    acc, disc, v_next, adv_next = carry
    r, v, d, dec = x
    live = 1.0 - d
    acc = r + gamma * live * acc
    disc = gamma * live * disc
    adv = acc + disc * v_next - v + disc * lam * adv_next
    new = (jnp.zeros_like(acc), jnp.ones_like(disc), v, adv)
    carry = jax.tree.map(lambda a, b: jnp.where(dec, a, b), new, (acc, disc, v_next, adv_next))
    return carry, adv

  zeros = jnp.zeros_like(last_value)
  _, adv = lax.scan(back, (zeros, jnp.ones_like(last_value), last_value, zeros),
                    (rewards, values, dones.astype(values.dtype), decisions), reverse=True)
  return adv, adv + values


def causal_influence(team_logits: Callable[[jax.Array], jax.Array], roles: jax.Array,
                     num_roles: int, action_mask: jax.Array) -> jax.Array:
  """r_c ``[..., N]``: how much agent i's role moves its teammates' action distributions.

  Args:
    team_logits: ``role_features [..., N, 2R] -> logits [..., N, A]`` for the whole team, with
      everything but the roles (observations, recurrent state, parameters) held fixed.
    roles: the assigned roles, int ``[..., N]``.
    num_roles: R. With R = 1 there is no counterfactual and r_c = 0.
    action_mask: ``[..., N, A]`` legal actions.

  Returns:
    For each agent i, the mean over z' != z_i and over teammates j != i of
    KL(pi_j(. | z) || pi_j(. | z_i := z')).
  """
  n = roles.shape[-1]
  if num_roles < 2 or n < 2:
    return jnp.zeros(roles.shape, jnp.float32)

  def logp_of(r):
    return jax.nn.log_softmax(mappo.mask_logits(team_logits(mappo.role_features(r, num_roles)),
                                                action_mask))

  base = logp_of(roles)
  p = jnp.exp(base)
  agents = jnp.arange(n)

  def kl_to_mates(i, z):
    counterfactual = jnp.where(agents == i, z, roles)
    kl = jnp.sum(p * (base - logp_of(counterfactual)), axis=-1)  # [..., N]
    kl_mates = jnp.sum(jnp.where(agents == i, 0.0, kl), axis=-1) / (n - 1)
    return jnp.where(roles[..., i] == z, 0.0, kl_mates)  # the assigned role is no alternative

  i, z = np.meshgrid(np.arange(n), np.arange(num_roles), indexing="ij")
  per = jax.vmap(kl_to_mates)(jnp.asarray(i.ravel()), jnp.asarray(z.ravel()))  # [N * R, ...]
  per = per.reshape((n, num_roles) + roles.shape[:-1])
  return jnp.moveaxis(per.sum(1) / (num_roles - 1), 0, -1)


def heterogeneity(disc_logits: jax.Array, roles: jax.Array) -> jax.Array:
  """r_d = log q(z_i | feature_i) - log(1 / R), from logits ``[..., R]`` and roles ``[...]``."""
  num_roles = disc_logits.shape[-1]
  return mappo.log_prob(disc_logits, roles) + jnp.log(float(num_roles))


def discriminator_loss(disc_logits: jax.Array, roles: jax.Array) -> jax.Array:
  """Cross-entropy of q(z | feature) against the assigned roles."""
  return -jnp.mean(mappo.log_prob(disc_logits, roles))


def role_stats(roles: jax.Array, decisions: jax.Array, ctrl_logits: jax.Array,
               num_roles: int) -> dict:
  """Role-assignment metrics over a rollout's decisions.

  ``role_entropy``: the controller's per-agent entropy at its decisions (nats); ``role_hist/k``:
  the fraction of assignments to role k; ``role_hist_entropy``: the entropy of that histogram.
  """
  mask = decisions[..., None].astype(jnp.float32)  # [T, E, 1]
  count = jnp.maximum(jnp.sum(mask) * roles.shape[-1], 1.0)
  hist = jnp.sum(jax.nn.one_hot(roles, num_roles) * mask[..., None], axis=(0, 1, 2)) / count
  out = {"role_entropy": mappo.masked_mean(mappo.entropy(ctrl_logits), mask),
         "role_hist_entropy": -jnp.sum(hist * jnp.log(jnp.maximum(hist, 1e-12)))}
  out.update({f"role_hist/{k}": hist[k] for k in range(num_roles)})
  return out
