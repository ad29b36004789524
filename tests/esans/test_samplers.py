"""ESANS's samplers: MSAC's guard and distribution, EDIS's virtual negatives, logQ, the loss."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats
import pytest

from esans_jax import samplers


def _tables(num_items=120, k1=6, k2=3, seed=0, temperature=1.0):
  rng = np.random.default_rng(seed)
  c1 = rng.integers(0, k1, num_items)
  c2 = rng.integers(0, k2, num_items)
  centroids = rng.normal(size=(k1, 4)).astype(np.float32)
  return samplers.build_tables(jnp.asarray(c1, jnp.int32), jnp.asarray(c2, jnp.int32),
                               jnp.asarray(centroids), k2, temperature,
                               jnp.zeros((2,)), 0), c1, c2, centroids


def test_tables_layout():
  tables, c1, c2, _ = _tables()
  order = np.asarray(tables.order)
  assert sorted(order.tolist()) == list(range(1, 121))
  start = np.asarray(tables.c1_start)
  for c in range(6):
    members = order[start[c]:start[c + 1]]
    assert set(members.tolist()) == set((np.flatnonzero(c1 == c) + 1).tolist())
  np.testing.assert_array_equal(np.asarray(tables.codes)[1:], np.stack([c1, c2], 1))
  np.testing.assert_array_equal(np.asarray(tables.counts1), np.bincount(c1, minlength=6))


def test_msac_never_returns_the_positive_cell():
  tables, c1, c2, _ = _tables()
  positives = jnp.arange(1, 121)
  keys = jax.random.split(jax.random.PRNGKey(0), 120 * 20).reshape(120, 20, -1)
  ids, valid = jax.vmap(jax.vmap(lambda k, p: samplers.msac_sample(k, tables, p, 3, 4),
                                 in_axes=(0, None)))(keys, positives)
  ids, valid = np.asarray(ids), np.asarray(valid)
  assert valid.all()
  codes = np.asarray(tables.codes)
  pos_codes = codes[np.arange(1, 121)][:, None, None, :]
  neg_codes = codes[ids]
  same_cell = np.all(neg_codes == pos_codes, axis=-1)
  assert not same_cell.any()
  # The first m_c share c1 (another c2); the other m_o are from other primary clusters.
  assert np.all(neg_codes[..., :3, 0] == pos_codes[..., 0])
  assert np.all(neg_codes[..., :3, 1] != pos_codes[..., 1])
  assert np.all(neg_codes[..., 3:, 0] != pos_codes[..., 0])


def test_msac_same_cluster_draw_is_invalid_when_the_cluster_has_one_cell():
  # Items 1..4 in cluster 0, all with code 0; items 5..8 in cluster 1.
  c1 = jnp.asarray([0, 0, 0, 0, 1, 1, 1, 1], jnp.int32)
  c2 = jnp.asarray([0, 0, 0, 0, 0, 1, 0, 1], jnp.int32)
  tables = samplers.build_tables(c1, c2, jnp.eye(2), 2, 1.0, jnp.zeros((2,)), 0)
  ids, valid = samplers.msac_sample(jax.random.PRNGKey(1), tables, jnp.int32(2), 2, 3)
  assert not np.asarray(valid)[:2].any() and np.asarray(valid)[2:].all()
  assert np.all(np.asarray(ids)[:2] == 0)
  assert np.all(np.isin(np.asarray(ids)[2:], [5, 6, 7, 8]))


def test_msac_other_cluster_draws_follow_the_distance_weighted_distribution():
  tables, c1, _, centroids = _tables(num_items=300, k1=5, k2=2, seed=3, temperature=0.5)
  positive = int(np.flatnonzero(c1 == 0)[0]) + 1
  n = 6000
  keys = jax.random.split(jax.random.PRNGKey(7), n)
  ids, _ = jax.vmap(lambda k: samplers.msac_sample(k, tables, positive, 0, 1))(keys)
  drawn = np.asarray(tables.codes)[np.asarray(ids)[:, 0], 0]
  observed = np.bincount(drawn, minlength=5)
  assert observed[0] == 0
  # The formula: softmax over j != 0 of -d_0j / (T * mean distance over distinct pairs).
  d = np.linalg.norm(centroids[:, None] - centroids[None], axis=-1).astype(np.float64)
  off = ~np.eye(5, dtype=bool)
  logits = -d[0, 1:] / (0.5 * d[off].mean())
  p = np.exp(logits - logits.max())
  p /= p.sum()
  np.testing.assert_allclose(np.exp(np.asarray(tables.log_p)[0, 1:]), p, rtol=1e-5)
  chi2 = stats.chisquare(observed[1:], p / p.sum() * observed[1:].sum())
  assert chi2.pvalue > 1e-3, (observed, p * n)
  # ... and it is not uniform (the test has power).
  assert stats.chisquare(observed[1:], np.full(4, n / 4)).pvalue < 1e-6


@pytest.mark.parametrize("m_o", [2, 5, 6])
def test_edis_counts_and_convexity(m_o):
  cfg = samplers.SamplerConfig(msac=True, m_c=2, m_o=m_o, edis="both", renormalize=False)
  assert cfg.num_simple == (m_o + 2) * (m_o - 1) // 2 == samplers.expected_simple_count(m_o)
  w = np.asarray(samplers.simple_weights(jax.random.PRNGKey(0), m_o))
  assert w.shape == (cfg.num_simple, m_o)
  np.testing.assert_allclose(w.sum(1), 1.0, rtol=1e-5)
  assert (w >= 0).all()
  sizes = samplers.simple_mix_sizes(m_o)
  np.testing.assert_array_equal((w > 0).sum(1), sizes)
  rng = np.random.default_rng(0)
  base = jnp.asarray(rng.normal(size=(2 + m_o, 8)), jnp.float32)
  pos = jnp.asarray(rng.normal(size=(8,)), jnp.float32)
  virtual, valid = samplers.edis_virtual(jax.random.PRNGKey(1), pos, base,
                                         jnp.ones((2 + m_o,), bool), cfg)
  assert virtual.shape == (cfg.num_simple + 2 + m_o, 8) and np.asarray(valid).all()
  # Simple mixes lie in the convex hull of the m_o other-cluster negatives: solve for weights.
  others = np.asarray(base[-m_o:])
  for v in np.asarray(virtual[:cfg.num_simple]):
    coef, *_ = np.linalg.lstsq(others.T, v, rcond=None)
    np.testing.assert_allclose(others.T @ coef, v, atol=1e-4)
    assert coef.min() > -1e-4 and abs(coef.sum() - 1) < 1e-4
  # Hard ones are beta * pos + (1 - beta) * neg with beta in range.
  for v, neg in zip(np.asarray(virtual[cfg.num_simple:]), np.asarray(base)):
    beta = np.dot(v - neg, np.asarray(pos) - neg) / np.dot(np.asarray(pos) - neg,
                                                          np.asarray(pos) - neg)
    np.testing.assert_allclose(beta * np.asarray(pos) + (1 - beta) * neg, v, atol=1e-4)
    assert cfg.beta_min - 1e-5 <= beta <= cfg.beta_max + 1e-5


def test_edis_renormalizes_and_masks_invalid_bases():
  cfg = samplers.SamplerConfig(msac=True, m_c=1, m_o=3, edis="both")
  base = jax.random.normal(jax.random.PRNGKey(0), (4, 6))
  valid = jnp.asarray([True, True, False, True])
  virtual, v_valid = samplers.edis_virtual(jax.random.PRNGKey(2), jnp.ones((6,)), base, valid,
                                           cfg)
  np.testing.assert_allclose(np.linalg.norm(np.asarray(virtual), axis=1), 1.0, rtol=1e-5)
  w = np.asarray(samplers.simple_weights(jax.random.split(jax.random.PRNGKey(2))[0], 3))
  # A simple mix that uses the invalid base (index 1 of the last three) is invalid.
  np.testing.assert_array_equal(np.asarray(v_valid[:cfg.num_simple]), w[:, 1] == 0)
  np.testing.assert_array_equal(np.asarray(v_valid[cfg.num_simple:]), np.asarray(valid))


def test_pool_log_count_equals_its_formula():
  pop = jnp.asarray([0.0, 0.5, 0.3, 0.2])
  ids = jnp.asarray([1, 2, 3, 3])
  got = samplers.pool_log_count(ids, pop, 3, in_batch=64, num_uniform=32, num_popularity=16)
  want = np.log((64 + 16) * np.asarray(pop)[np.asarray(ids)] + 32 / 3)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-6)


def _loss_inputs(b=4, s=6, r=7, d=8, seed=0):
  rng = np.random.default_rng(seed)
  unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)
  return dict(
      user=jnp.asarray(unit(rng.normal(size=(b, d))), jnp.float32),
      positive=jnp.asarray(unit(rng.normal(size=(b, d))), jnp.float32),
      positive_ids=jnp.asarray([1, 2, 3, 4][:b]),
      shared_emb=jnp.asarray(unit(rng.normal(size=(s, d))), jnp.float32),
      shared_ids=jnp.asarray([1, 5, 6, 7, 8, 0][:s]),
      row_emb=jnp.asarray(unit(rng.normal(size=(b, r, d))), jnp.float32))


def test_softmax_loss_equals_the_formula_with_logq():
  x = _loss_inputs()
  cfg = samplers.SamplerConfig(msac=False, edis="none")
  log_count = jnp.asarray([0.5, -1.0, 0.2, 0.0, 1.5, 0.3])
  total, count, _ = samplers.softmax_loss(
      jax.random.PRNGKey(0), cfg, x["user"], x["positive"], x["positive_ids"],
      jnp.ones((4,), bool), x["shared_emb"], x["shared_ids"], log_count,
      jnp.zeros((4, 0, 8)), jnp.zeros((4, 0), bool), jnp.zeros((0, 8)),
      jnp.zeros((0,), jnp.int32), 0.1)
  u, p, sh = (np.asarray(x[k], np.float64) for k in ("user", "positive", "shared_emb"))
  ids, pids = np.asarray(x["shared_ids"]), np.asarray(x["positive_ids"])
  want = 0.0
  for i in range(4):
    pos = u[i] @ p[i] / 0.1
    negs = [u[i] @ sh[j] / 0.1 - float(log_count[j]) for j in range(6)
            if ids[j] != pids[i] and ids[j] != 0]
    want += np.log(np.exp(pos) + np.sum(np.exp(negs))) - pos
  np.testing.assert_allclose(float(total), want, rtol=1e-5)
  assert float(count) == 4


def test_gradients_reach_the_towers_through_virtual_negatives():
  x = _loss_inputs(r=7)
  cfg = samplers.SamplerConfig(msac=True, m_c=2, m_o=5, edis="both", in_batch=False,
                               num_uniform=0)

  def loss(row_emb, positive, user):
    total, _, _ = samplers.softmax_loss(
        jax.random.PRNGKey(3), cfg, user, positive, x["positive_ids"], jnp.ones((4,), bool),
        jnp.zeros((0, 8)), jnp.zeros((0,), jnp.int32), None, row_emb,
        jnp.ones((4, 7), bool), jnp.zeros((0, 8)), jnp.zeros((0,), jnp.int32), 0.1)
    return total

  g_rows, g_pos, g_user = jax.grad(loss, argnums=(0, 1, 2))(x["row_emb"], x["positive"],
                                                             x["user"])
  assert np.abs(np.asarray(g_rows)).sum() > 0 and np.abs(np.asarray(g_user)).sum() > 0

  # With the real negatives masked out, the positive's gradient beyond its own score term comes
  # from the hard virtual negatives alone: it differs from the no-EDIS loss's.
  def loss_virtual_only(positive, edis):
    c = samplers.SamplerConfig(msac=True, m_c=2, m_o=5, edis=edis, in_batch=False,
                               num_uniform=0)
    total, _, _ = samplers.softmax_loss(
        jax.random.PRNGKey(3), c, x["user"], positive, x["positive_ids"], jnp.ones((4,), bool),
        jnp.zeros((0, 8)), jnp.zeros((0,), jnp.int32), None, x["row_emb"],
        jnp.ones((4, 7), bool), jnp.zeros((0, 8)), jnp.zeros((0,), jnp.int32), 0.1)
    return total

  g_hard = jax.grad(loss_virtual_only)(x["positive"], "hard")
  g_none = jax.grad(loss_virtual_only)(x["positive"], "none")
  assert np.abs(np.asarray(g_hard) - np.asarray(g_none)).max() > 1e-3


def test_hard_mining_picks_the_top_scored_pool_items():
  x = _loss_inputs()
  pool = x["row_emb"][0]  # 7 candidates
  pool_ids = jnp.arange(10, 17)
  cfg = samplers.SamplerConfig(in_batch=False, num_uniform=0, hard_k=2, hard_pool=7)
  total, _, st = samplers.softmax_loss(
      jax.random.PRNGKey(0), cfg, x["user"], x["positive"], x["positive_ids"],
      jnp.ones((4,), bool), jnp.zeros((0, 8)), jnp.zeros((0,), jnp.int32), None,
      jnp.zeros((4, 0, 8)), jnp.zeros((4, 0), bool), pool, pool_ids, 0.1)
  u, p, pl = (np.asarray(v, np.float64) for v in (x["user"], x["positive"], pool))
  want = 0.0
  for i in range(4):
    scores = pl @ u[i]
    top = np.sort(scores)[-2:] / 0.1
    pos = u[i] @ p[i] / 0.1
    want += np.log(np.exp(pos) + np.exp(top).sum()) - pos
  np.testing.assert_allclose(float(total), want, rtol=1e-5)
  assert float(st["negatives_per_row"]) == 2
