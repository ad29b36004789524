"""The role controller's timing and the two intrinsic rewards, r_c and r_d."""

import jax
import jax.numpy as jnp
from jax import lax
import numpy as np
import optax

from configs.cord import resource_collection
from cord_jax import mappo
from cord_jax import roles
from cord_jax import train


def _learner(**overrides):
  c = resource_collection.get_config("runlocal")
  for key, value in overrides.items():
    section, name = key.split(".")
    c[section][name] = value
  return train.Learner(c)


def _start(learner, num_envs):
  """Initial parameters and envs (jitted: eager Flax init and env reset take seconds)."""
  return jax.jit(lambda k: (learner.init_params(k), learner.reset(jax.random.fold_in(k, 1),
                                                                  num_envs)))(
      jax.random.PRNGKey(0))


def test_controller_reassigns_every_t_role_steps_and_at_episode_starts():
  learner = _learner(**{"roles.T_role": 3})
  learner.config.env.kwargs.time_limit = 7
  learner = train.Learner(learner.config)
  params, c = _start(learner, 3)
  _, traj = jax.jit(lambda p, c: learner.rollout(p, c, jax.random.PRNGKey(2), 20))(params, c)
  decide, first, done = (np.asarray(x) for x in (traj.decide, traj.first, traj.done))
  assigned = np.asarray(traj.roles)
  # Episodes of 7 steps (nothing can finish sooner): starts at 0, 7, 14; decisions every 3 steps
  # in between.
  for e in range(3):
    np.testing.assert_array_equal(np.nonzero(first[:, e])[0], [0, 7, 14])
    np.testing.assert_array_equal(np.nonzero(decide[:, e])[0], [0, 3, 6, 7, 10, 13, 14, 17])
    np.testing.assert_array_equal(np.nonzero(done[:, e])[0], [6, 13])
  # Roles change only at decisions, and decisions do redraw them.
  changed = np.any(assigned[1:] != assigned[:-1], axis=-1)
  assert not np.any(changed & ~decide[1:])
  assert np.any(changed)


def test_assignment_modes():
  key = jax.random.PRNGKey(0)
  logits = jnp.zeros((5, 3, 4))  # 5 envs, 3 agents, 4 roles
  current = jnp.full((5, 3), 7, jnp.int32)
  decision = jnp.array([True, False, True, True, False])
  for mode, expected in (("fixed", [0, 1, 2]), ("none", [0, 0, 0])):
    got = np.asarray(roles.assign(mode, key, logits, current, decision))
    np.testing.assert_array_equal(got[decision], np.tile(expected, (3, 1)))
    np.testing.assert_array_equal(got[~decision], 7)
  # Learned: drawn from the controller's logits (here certain of role 2 for agent 1).
  peaked = logits.at[:, 1, 2].set(50.0)
  got = np.asarray(roles.assign("learned", key, peaked, current, decision))
  np.testing.assert_array_equal(got[decision][:, 1], 2)
  assert got[decision].min() >= 0 and got[decision].max() < 4
  # One role (MAPPO): no counterfactual and nothing to discriminate, so r_c = r_d = 0.
  one = jnp.zeros((5, 3), jnp.int32)
  np.testing.assert_array_equal(
      roles.causal_influence(lambda f: f @ jnp.ones((2, 6)), one, 1, jnp.ones((5, 3, 6), bool)), 0)
  np.testing.assert_array_equal(roles.heterogeneity(jnp.zeros((5, 3, 1)), one), 0)


def _kl(p, q):
  return np.sum(p * (np.log(p) - np.log(q)), axis=-1)


def test_causal_influence_equals_numpy_on_a_linear_team():
  rng = np.random.default_rng(0)
  n, r, a = 3, 3, 4
  weights = rng.normal(size=(n, 2 * r, a))  # agent j's logits = role_features_j @ weights[j]

  def team_logits(feats):
    return jnp.einsum("...nf,nfa->...na", feats, jnp.asarray(weights, jnp.float32))

  assigned = np.array([0, 2, 2])
  got = np.asarray(roles.causal_influence(team_logits, jnp.asarray(assigned), r,
                                          jnp.ones((n, a), bool)))

  def probs(z):
    feats = np.asarray(mappo.role_features(jnp.asarray(z), r))
    logits = np.einsum("nf,nfa->na", feats, weights)
    return np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)

  base = probs(assigned)
  for i in range(n):
    kls = []
    for z in range(r):
      if z == assigned[i]:
        continue
      cf = assigned.copy()
      cf[i] = z
      kls.append(np.mean([_kl(base[j], probs(cf)[j]) for j in range(n) if j != i]))
    np.testing.assert_allclose(got[i], np.mean(kls), rtol=1e-4)
  assert np.all(got > 1e-3)


def test_r_c_is_zero_when_policies_ignore_roles():
  learner = _learner(**{"roles.alpha": 1.0})
  params, c = _start(learner, 4)
  act = jax.jit(lambda p: learner.act(p, c, jax.random.PRNGKey(2)))
  before = act(params)
  assert before["r_c"].shape == (4, 3) and np.all(np.asarray(before["r_c"]) > 0)
  params["actor"]["role_in"]["kernel"] = jnp.zeros_like(params["actor"]["role_in"]["kernel"])
  out = act(params)
  np.testing.assert_array_equal(out["r_c"], 0.0)
  np.testing.assert_array_equal(out["roles"], before["roles"])  # the same roles were assigned


@jax.jit
def _trained_r_d(separation):
  """Mean r_d after training q on features whose role signal has strength ``separation``."""
  num_roles = 3
  disc = roles.Discriminator(num_roles, hidden=16)

  def sample(key):
    z = jax.random.randint(key, (2048,), 0, num_roles)
    noise = jax.random.normal(jax.random.fold_in(key, 1), (2048, 6))
    return noise.at[:, :num_roles].add(separation * jax.nn.one_hot(z, num_roles)), z

  key = jax.random.PRNGKey(0)
  feats, z = sample(key)
  params = disc.init(key, feats)
  tx = optax.adam(1e-2)

  def step(carry, _):
    params, opt = carry
    grads = jax.grad(lambda p: roles.discriminator_loss(disc.apply(p, feats), z))(params)
    updates, opt = tx.update(grads, opt)
    return (optax.apply_updates(params, updates), opt), None

  (params, _), _ = lax.scan(step, (params, tx.init(params)), None, length=200)
  held_out, z = sample(jax.random.PRNGKey(1))  # r_d of fresh samples, not memorised ones
  return roles.heterogeneity(disc.apply(params, held_out), z).mean()


def test_r_d_rises_as_roles_become_separable():
  r_d = np.asarray(jax.vmap(_trained_r_d)(jnp.array([0.0, 1.0, 4.0])))
  assert r_d[0] < r_d[1] < r_d[2], r_d
  assert r_d[0] < 0.05  # identical features: on fresh samples q does no better than 1 / R
  assert r_d[2] > 0.9 * np.log(3)  # separable: close to log R
