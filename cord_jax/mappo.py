"""MAPPO pieces: the shared role-conditioned actor, the centralised critic, GAE and PPO losses.

Everything here is a pure function or a Linen module; ``cord_jax.train`` assembles them into one
``lax.scan`` program. The actor is shared by all agents (parameter sharing, as in MAPPO and
JaxMARL's baselines) and tells them apart by a one-hot agent id appended to each observation.

The actor reads roles through its own bias-free layer ``role_in``, added to the first hidden
pre-activation. That split is what makes the counterfactual-role reward (``roles.causal_influence``)
cheap: the observation part ``embed(obs)`` is computed once, and only ``head`` is re-run for each
counterfactual role assignment. Zeroing ``role_in``'s kernel gives a policy that ignores roles.
"""

from __future__ import annotations

from typing import Optional, Tuple

import flax.linen as nn
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

# Logit of an illegal action. Finite (not -inf), so that p * (log p - log q) is 0, not NaN.
MASKED_LOGIT = -1e9


def dense(features: int, scale: float = np.sqrt(2.0), **kwargs) -> nn.Dense:
  """A Dense layer with orthogonal init of gain ``scale`` (PPO's usual: sqrt 2, 0.01 for logits)."""
  return nn.Dense(features, kernel_init=nn.initializers.orthogonal(scale), **kwargs)


def role_features(roles: jax.Array, num_roles: int) -> jax.Array:
  """What each agent knows of the team's roles: int ``[..., N]`` -> float ``[..., N, 2R]``.

  Its own role (one-hot) and its teammates' role histogram (fractions of the other N - 1 agents),
  so a policy can react to its teammates' roles and the size stays fixed when N changes.
  """
  own = jax.nn.one_hot(roles, num_roles)
  n = roles.shape[-1]
  mates = (own.sum(-2, keepdims=True) - own) / max(n - 1, 1)
  return jnp.concatenate([own, mates], axis=-1)


def with_agent_ids(views: jax.Array) -> jax.Array:
  """``[..., N, O]`` -> ``[..., N, O + N]``: each agent's view with its one-hot id appended."""
  n = views.shape[-2]
  ids = jnp.broadcast_to(jnp.eye(n, dtype=views.dtype), views.shape[:-2] + (n, n))
  return jnp.concatenate([views, ids], axis=-1)


def mask_logits(logits: jax.Array, action_mask: jax.Array) -> jax.Array:
  return jnp.where(action_mask, logits, MASKED_LOGIT)


def entropy(logits: jax.Array) -> jax.Array:
  """Entropy of categorical ``logits`` (masked entries contribute 0) over the last axis."""
  logp = jax.nn.log_softmax(logits)
  return -jnp.sum(jnp.exp(logp) * logp, axis=-1)


def log_prob(logits: jax.Array, index: jax.Array) -> jax.Array:
  """``log softmax(logits)[index]`` over the last axis; ``index`` has the leading shape."""
  return jnp.take_along_axis(jax.nn.log_softmax(logits), index[..., None], axis=-1)[..., 0]


class Actor(nn.Module):
  """pi(a_i | o_i, id_i, roles): tanh MLP or a GRU core, shared by every agent.

  ``carry`` is the recurrent state ``[..., N, carry_size(...)]``; the feed-forward actor passes it
  through unchanged.
  """
  num_actions: int
  hidden: int = 64
  gru: bool = False

  def setup(self):
    self.obs_in = dense(self.hidden)
    self.role_in = dense(self.hidden, use_bias=False)
    self.core = nn.GRUCell(self.hidden) if self.gru else dense(self.hidden)
    self.out = dense(self.num_actions, scale=0.01)

  def embed(self, obs: jax.Array) -> jax.Array:
    """The observation part of the first pre-activation (obs with agent ids)."""
    return self.obs_in(obs)

  def head(self, pre_obs: jax.Array, roles: jax.Array,
           carry: jax.Array) -> Tuple[jax.Array, jax.Array]:
    """(carry, logits) from ``embed``'s output and ``role_features``."""
    x = jnp.tanh(pre_obs + self.role_in(roles))
    if self.gru:
      carry, x = self.core(carry, x)
    else:
      x = jnp.tanh(self.core(x))
    return carry, self.out(x)

  def __call__(self, obs: jax.Array, roles: jax.Array,
               carry: jax.Array) -> Tuple[jax.Array, jax.Array]:
    return self.head(self.embed(obs), roles, carry)


def carry_size(hidden: int, gru: bool) -> int:
  """Width of the actor's recurrent state (1, a dummy, for the feed-forward actor)."""
  return hidden if gru else 1


class Critic(nn.Module):
  """V_i(s): a tanh MLP on the global state, agent id and roles -> one value per agent."""
  hidden: int = 64

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = jnp.tanh(dense(self.hidden)(x))
    x = jnp.tanh(dense(self.hidden)(x))
    return dense(1, scale=1.0)(x)[..., 0]


def critic_inputs(global_state: jax.Array, roles: jax.Array) -> jax.Array:
  """``[..., S]`` and role features ``[..., N, 2R]`` -> ``[..., N, S + N + 2R]``."""
  n = roles.shape[-2]
  state = jnp.broadcast_to(global_state[..., None, :],
                           global_state.shape[:-1] + (n, global_state.shape[-1]))
  return jnp.concatenate([with_agent_ids(state), roles], axis=-1)


def gae(rewards: jax.Array, values: jax.Array, dones: jax.Array, last_value: jax.Array,
        gamma: float, lam: float) -> Tuple[jax.Array, jax.Array]:
  """Generalised advantage estimation over the leading (time) axis.

  Args:
    rewards: ``[T, ...]`` reward after the action at t.
    values: ``[T, ...]`` V(s_t).
    dones: ``[T, ...]`` 1 where the episode ended after step t (no bootstrap across it).
    last_value: ``[...]`` V(s_T), the state after the rollout.
    gamma: discount.
    lam: the GAE lambda.

  Returns:
    (advantages, value targets = advantages + values), both ``[T, ...]``.
  """
  def back(carry, x):
    adv_next, v_next = carry
    r, v, d = x
    live = 1.0 - d
    delta = r + gamma * live * v_next - v
    adv = delta + gamma * lam * live * adv_next
    return (adv, v), adv

  dones = dones.astype(values.dtype)
  _, adv = lax.scan(back, (jnp.zeros_like(last_value), last_value), (rewards, values, dones),
                    reverse=True)
  return adv, adv + values


def masked_mean(x: jax.Array, mask: Optional[jax.Array] = None) -> jax.Array:
  if mask is None:
    return jnp.mean(x)
  mask = jnp.broadcast_to(mask, x.shape).astype(x.dtype)
  return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def normalize(x: jax.Array, mask: Optional[jax.Array] = None) -> jax.Array:
  """(x - mean) / (std + 1e-8), the statistics over ``mask``ed entries."""
  mean = masked_mean(x, mask)
  std = jnp.sqrt(masked_mean(jnp.square(x - mean), mask))
  return (x - mean) / (std + 1e-8)


def policy_loss(logp: jax.Array, old_logp: jax.Array, adv: jax.Array, clip_eps: float,
                mask: Optional[jax.Array] = None) -> jax.Array:
  """PPO's clipped surrogate, negated: -mean(min(r A, clip(r, 1 - eps, 1 + eps) A))."""
  ratio = jnp.exp(logp - old_logp)
  surrogate = jnp.minimum(ratio * adv, jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * adv)
  return -masked_mean(surrogate, mask)


def value_loss(value: jax.Array, old_value: jax.Array, target: jax.Array, clip_eps: float,
               clip: bool = True, mask: Optional[jax.Array] = None) -> jax.Array:
  """0.5 * mean(max((v - R)^2, (v_old + clip(v - v_old, -eps, eps) - R)^2)) (or unclipped)."""
  loss = jnp.square(value - target)
  if clip:
    clipped = old_value + jnp.clip(value - old_value, -clip_eps, clip_eps)
    loss = jnp.maximum(loss, jnp.square(clipped - target))
  return 0.5 * masked_mean(loss, mask)
