"""Softmax losses and negative samplers against plain float64 numpy."""

import math

import jax
import numpy as np
import pytest

from common.recsys import losses
from tests.recsys import recsys_testlib as lib

N, D = 12, 8


def _lse(x):
  m = max(x)
  return m + math.log(sum(math.exp(v - m) for v in x))


def _inputs(seed=0):
  rng = np.random.default_rng(seed)
  query = rng.normal(size=(4, D)).astype(np.float32)
  emb = rng.normal(size=(N + 1, D)).astype(np.float32)
  targets = np.array([[3, 7], [1, 12], [5, 5], [9, 2]], np.int32)
  return query, emb, targets


def test_full_softmax_nll_matches_numpy():
  query, emb, targets = _inputs()
  got = np.asarray(lib.jit(losses.full_softmax_nll)(query, emb, targets))
  q, e = query.astype(np.float64), emb.astype(np.float64)
  for b, row in enumerate(targets):
    logits = [float(q[b] @ e[i]) for i in range(1, N + 1)]  # item 0 is never a candidate
    for j, target in enumerate(row):
      np.testing.assert_allclose(got[b, j], _lse(logits) - logits[target - 1], rtol=1e-5)


@pytest.mark.parametrize("logq", [False, True])
def test_sampled_softmax_nll_matches_numpy(logq):
  query, emb, targets = _inputs(1)
  # Shared negatives with a repeat, accidental hits on targets and the padding item.
  neg_ids = np.array([2, 5, 5, 11, 0, 7, 3], np.int32)
  log_q = np.asarray(losses.popularity_log_q(np.arange(N + 1, dtype=np.float32)))
  args = (log_q[targets], log_q[neg_ids]) if logq else (None, None)
  got = np.asarray(lib.jit(losses.sampled_softmax_nll)(
      query, emb[targets], targets, emb[neg_ids], neg_ids, *args))
  q, e = query.astype(np.float64), emb.astype(np.float64)
  corr = (lambda i: float(log_q[i])) if logq else (lambda i: 0.0)
  for b, row in enumerate(targets):
    for j, target in enumerate(row):
      pos = float(q[b] @ e[target]) - corr(target)
      negs = [float(q[b] @ e[n]) - corr(n) for n in neg_ids if n != target and n != 0]
      np.testing.assert_allclose(got[b, j], _lse([pos] + negs) - pos, rtol=1e-5)
  with pytest.raises(ValueError, match="both"):
    losses.sampled_softmax_nll(query, emb[targets], targets, emb[neg_ids], neg_ids, args[0] if
                               logq else log_q[targets], None)


def test_weighted_sums_normalisations():
  nll = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
  valid = np.array([[True, False], [True, True]])
  weights = np.array([1.0, 0.5], np.float32)
  total, denom = losses.weighted_sums(nll, valid, weights, "weight")
  assert float(total) == 1.0 + 3.0 + 2.0 and float(denom) == 2.5
  total, denom = losses.weighted_sums(nll, valid, weights, "count")
  assert float(total) == 6.0 and float(denom) == 3.0
  assert float(losses.ratio(0.0, 0.0)) == 0.0
  with pytest.raises(ValueError, match="normalize"):
    losses.weighted_sums(nll, valid, weights, "mean")


def test_log_q_tables_and_sampler():
  uniform = np.asarray(lib.jit(losses.uniform_log_q, static_argnums=0)(N))
  np.testing.assert_allclose(np.exp(uniform[1:]), 1.0 / N, rtol=1e-6)
  popular = np.asarray(lib.jit(losses.popularity_log_q)(
      np.array([50, 0, 1, 3] + [1] * (N - 3))))
  assert np.exp(popular[0]) == 0.0
  np.testing.assert_allclose(np.exp(popular[1:]).sum(), 1.0, rtol=1e-6)
  assert popular[3] > popular[2] == popular[1]  # a zero count still gets a chance
  negs = np.asarray(lib.jit(losses.sample_negatives, static_argnums=1)(
      jax.random.key(0), 500, uniform))
  assert negs.min() >= 1 and negs.max() <= N and len(set(negs.tolist())) == N


@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_needed_full_softmax_nll_equals_dense_on_needed_rows(chunk):
  """Only the needed queries are computed; they equal the dense softmax, the rest are 0, and the
  gradients (of a loss over the needed terms) match too."""
  rng = np.random.default_rng(3)
  query = rng.normal(size=(3, 5, D)).astype(np.float32)
  emb = rng.normal(size=(N + 1, D)).astype(np.float32)
  targets = rng.integers(1, N + 1, size=(3, 5, 2)).astype(np.int32)
  needed = rng.random((3, 5)) < 0.4
  needed[0, 0] = True
  dense = np.asarray(lib.jit(losses.full_softmax_nll)(query, emb, targets))
  got = np.asarray(lib.jit(losses.needed_full_softmax_nll, static_argnums=4)(
      query, emb, targets, needed, chunk))
  np.testing.assert_allclose(got[needed], dense[needed], rtol=1e-6)
  assert np.all(got[~needed] == 0)

  def total(fn, q, e):
    return (fn(q, e) * needed[..., None]).sum()

  want_g = jax.grad(lambda q, e: total(lambda a, b: losses.full_softmax_nll(a, b, targets), q, e),
                    argnums=(0, 1))(query, emb)
  got_g = jax.grad(lambda q, e: total(
      lambda a, b: losses.needed_full_softmax_nll(a, b, targets, needed, chunk), q, e),
      argnums=(0, 1))(query, emb)
  for w, g in zip(want_g, got_g):
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-6)
