"""GAE, the controller's interval GAE and the PPO losses against plain numpy (float64) loops."""

import jax.numpy as jnp
import numpy as np
import pytest

from cord_jax import mappo
from cord_jax import roles


def _gae_reference(rewards, values, dones, last_value, gamma, lam):
  adv = np.zeros_like(rewards)
  next_adv, next_value = np.zeros_like(last_value), last_value
  for t in reversed(range(len(rewards))):
    live = 1.0 - dones[t]
    delta = rewards[t] + gamma * live * next_value - values[t]
    next_adv = delta + gamma * lam * live * next_adv
    adv[t], next_value = next_adv, values[t]
  return adv, adv + values


def test_gae_equals_numpy():
  rng = np.random.default_rng(0)
  rewards, values = rng.normal(size=(2, 12, 5, 3))
  dones = (rng.random((12, 5, 3)) < 0.2).astype(np.float64)
  last = rng.normal(size=(5, 3))
  adv, target = mappo.gae(jnp.asarray(rewards, jnp.float32), jnp.asarray(values, jnp.float32),
                          jnp.asarray(dones, jnp.float32), jnp.asarray(last, jnp.float32),
                          0.97, 0.9)
  ref_adv, ref_target = _gae_reference(rewards, values, dones, last, 0.97, 0.9)
  np.testing.assert_allclose(adv, ref_adv, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(target, ref_target, rtol=1e-5, atol=1e-5)


def _interval_reference(rewards, values, dones, decisions, last_value, gamma, lam):
  """Per env: list the decisions, sum each interval's discounted reward, then GAE over them."""
  t_len, e_len = rewards.shape
  adv = np.full((t_len, e_len), np.nan)
  for e in range(e_len):
    starts = [t for t in range(t_len) if decisions[t, e]]
    next_adv = 0.0
    for k in reversed(range(len(starts))):
      t0 = starts[k]
      end = starts[k + 1] if k + 1 < len(starts) else t_len
      ret, disc = 0.0, 1.0
      for t in range(t0, end):
        ret += disc * rewards[t, e]
        disc *= gamma
        if dones[t, e]:
          disc = 0.0
          break
      v_next = values[end, e] if end < t_len else last_value[e]
      next_adv = ret + disc * v_next - values[t0, e] + disc * lam * next_adv
      adv[t0, e] = next_adv
  return adv


def test_interval_gae_equals_numpy():
  rng = np.random.default_rng(1)
  t_len, e_len = 20, 4
  rewards, values = rng.normal(size=(2, t_len, e_len))
  dones = rng.random((t_len, e_len)) < 0.1
  # Decisions every 3 steps since the last one, and at every episode start.
  decisions = np.zeros((t_len, e_len), bool)
  since = np.full(e_len, 99)
  first = np.ones(e_len, bool)
  for t in range(t_len):
    decisions[t] = first | (since >= 3)
    since = np.where(decisions[t], 0, since) + 1
    first = dones[t]
  last = rng.normal(size=e_len)
  adv, target = roles.interval_gae(jnp.asarray(rewards, jnp.float32),
                                   jnp.asarray(values, jnp.float32), jnp.asarray(dones),
                                   jnp.asarray(decisions), jnp.asarray(last, jnp.float32), 0.9, 0.8)
  ref = _interval_reference(rewards, values, dones, decisions, last, 0.9, 0.8)
  np.testing.assert_allclose(np.asarray(adv)[decisions], ref[decisions], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(target)[decisions], (ref + values)[decisions],
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("masked", [False, True])
def test_ppo_losses_equal_numpy(masked):
  rng = np.random.default_rng(2)
  logp, old_logp = -rng.random((2, 64))
  adv, value, old_value, target = rng.normal(size=(4, 64))
  mask = rng.random(64) < 0.5 if masked else np.ones(64, bool)
  eps = 0.2
  ratio = np.exp(logp - old_logp)
  surrogate = np.minimum(ratio * adv, np.clip(ratio, 1 - eps, 1 + eps) * adv)
  ref_pi = -surrogate[mask].mean()
  clipped = old_value + np.clip(value - old_value, -eps, eps)
  v_terms = np.maximum((value - target) ** 2, (clipped - target) ** 2)
  ref_v = 0.5 * v_terms[mask].mean()
  ref_v_plain = 0.5 * ((value - target) ** 2)[mask].mean()
  m = jnp.asarray(mask) if masked else None
  f32 = lambda x: jnp.asarray(x, jnp.float32)
  np.testing.assert_allclose(mappo.policy_loss(f32(logp), f32(old_logp), f32(adv), eps, m),
                             ref_pi, rtol=1e-5)
  np.testing.assert_allclose(mappo.value_loss(f32(value), f32(old_value), f32(target), eps, True,
                                              m), ref_v, rtol=1e-5)
  np.testing.assert_allclose(mappo.value_loss(f32(value), f32(old_value), f32(target), eps, False,
                                              m), ref_v_plain, rtol=1e-5)
  # The clipping really bites on this data (else the test could not tell the losses apart).
  assert not np.isclose(ref_v, ref_v_plain)
  assert np.any(np.abs(ratio - 1) > eps)


def test_advantage_normalisation_and_entropy():
  rng = np.random.default_rng(3)
  x = rng.normal(3.0, 2.0, size=100)
  mask = rng.random(100) < 0.3
  out = np.asarray(mappo.normalize(jnp.asarray(x, jnp.float32), jnp.asarray(mask)))
  assert abs(out[mask].mean()) < 1e-5 and abs(out[mask].std() - 1) < 1e-3
  logits = rng.normal(size=(7, 5))
  p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  np.testing.assert_allclose(mappo.entropy(jnp.asarray(logits, jnp.float32)),
                             -(p * np.log(p)).sum(-1), rtol=1e-5)
