"""esans_jax.kmeans against a plain float64 numpy Lloyd, on planted blobs, and sharded over 8
fake devices (pmap and mesh) against one device."""

import jax
import numpy as np
import pytest

from common import parallel
from esans_jax import kmeans as km

N, D, K = 1003, 8, 12  # N not divisible by 8
CHUNK = 64  # with N, D, K the same in most tests, so that they share compiled programs


def numpy_lloyd(x, centroids, w=None, max_iter=20, tol=None):
  """The reference: float64, exact distances, the module's documented conventions."""
  x = np.asarray(x, np.float64)
  c = np.asarray(centroids, np.float64).copy()
  w = np.ones(len(x)) if w is None else np.asarray(w, np.float64)
  k = len(c)

  def estep(c):
    dist = ((x[:, None, :] - c[None, :, :]) ** 2).sum(-1)
    a = dist.argmin(1)
    sq = dist[np.arange(len(x)), a]
    counts = np.bincount(a[w > 0], minlength=k)
    return a, sq, counts, float((w * sq).sum())

  a, sq, counts, inertia = estep(c)
  it, converged = 0, False
  while it < max_iter and not converged:
    new = c.copy()
    for j in range(k):
      mass = w[a == j].sum()
      if mass > 0:
        new[j] = (w[a == j, None] * x[a == j]).sum(0) / mass
    empty = np.flatnonzero(counts == 0)
    if len(empty):
      far = np.where(w > 0, sq, -np.inf)
      order = sorted(range(len(x)), key=lambda i: (-far[i], i))  # farthest first, low index on ties
      for r, j in enumerate(empty):
        if r < len(order) and np.isfinite(far[order[r]]):
          new[j] = x[order[r]]
    c = new
    prev = inertia
    a, sq, counts, inertia = estep(c)
    it += 1
    if tol is not None:
      repairable = (counts == 0).any() and counts.sum() >= k
      converged = prev - inertia <= tol * prev and not repairable
  return c, a, inertia, counts, it, converged


def blobs(n, d, k, seed=0, spread=0.3, sep=10.0):
  rng = np.random.default_rng(seed)
  means = rng.normal(size=(k, d)) * sep
  labels = rng.integers(0, k, n)
  return (means[labels] + spread * rng.normal(size=(n, d))).astype(np.float32), labels


@pytest.fixture(scope="module")
def data():
  rng = np.random.default_rng(1)
  x, _ = blobs(N, D, 6, seed=1, spread=2.0, sep=3.0)  # overlapping: boundaries move for a while
  w = rng.uniform(0.5, 2.0, N).astype(np.float32)
  w[rng.choice(N, 50, replace=False)] = 0.0
  init = x[rng.choice(N, K, replace=False)]
  return x, w, init


def assert_same(result, ref):
  c, a, inertia, counts, it, converged = ref
  np.testing.assert_array_equal(np.asarray(result.assignments), a)
  np.testing.assert_allclose(np.asarray(result.centroids), c, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(float(result.inertia), inertia, rtol=1e-5)
  np.testing.assert_array_equal(np.asarray(result.counts), counts)
  assert int(result.iterations) == it and bool(result.converged) == converged


@pytest.mark.parametrize("weighted", [False, True])
def test_matches_numpy_float64_reference(data, weighted):
  x, w, init = data
  w = w if weighted else None
  result = km.lloyd(x, init, w, max_iter=15, tol=None, chunk_size=CHUNK)
  assert_same(result, numpy_lloyd(x, init, w, max_iter=15))
  # Run to convergence too (tol=0: until the inertia stops falling).
  result = km.lloyd(x, init, w, max_iter=100, tol=0.0, chunk_size=CHUNK)
  assert_same(result, numpy_lloyd(x, init, w, max_iter=100, tol=0.0))
  assert bool(result.converged)


def test_chunk_size_does_not_change_the_result(data):
  x, w, init = data
  a = km.lloyd(x, init, w, max_iter=15, tol=None, chunk_size=CHUNK)
  b = km.lloyd(x, init, w, max_iter=15, tol=None, chunk_size=37)  # 1003 = 27*37 + 4: padded
  np.testing.assert_array_equal(np.asarray(a.assignments), np.asarray(b.assignments))
  np.testing.assert_allclose(np.asarray(a.centroids), np.asarray(b.centroids), atol=1e-5)


def test_recovers_planted_blobs():
  x, labels = blobs(N, D, K, seed=3)
  result = km.kmeans(x, K, jax.random.PRNGKey(0), np.ones(N, np.float32), chunk_size=CHUNK)
  table = np.zeros((K, K), int)
  np.add.at(table, (labels, np.asarray(result.assignments)), 1)
  # Purity and inverse purity both 1: the contingency table is a permutation of the blobs.
  assert table.max(0).sum() == len(x) and table.max(1).sum() == len(x)
  assert (table > 0).sum() == K
  assert bool(result.converged) and int(result.iterations) < 100


def test_tolerance_stops_early_and_none_runs_max_iter(data):
  x, w, init = data
  loose = km.lloyd(x, init, w, max_iter=100, tol=1e-2, chunk_size=CHUNK)
  exact = km.lloyd(x, init, w, max_iter=100, tol=0.0, chunk_size=CHUNK)
  assert bool(loose.converged) and int(loose.iterations) < int(exact.iterations) < 100
  fixed = km.lloyd(x, init, w, max_iter=7, tol=None, chunk_size=CHUNK)
  assert int(fixed.iterations) == 7 and not bool(fixed.converged)


def test_empty_cluster_repair(data):
  x, w, _ = data
  bad = np.repeat(x[:3], 4, axis=0)  # 12 centroids, 3 distinct: 9 empty after the first pass
  one = km.lloyd(x, bad, w, max_iter=1, tol=None, chunk_size=CHUNK)
  assert (np.asarray(one.counts) > 0).all()  # one repair suffices: each seed takes its point
  assert len(np.unique(np.asarray(one.centroids), axis=0)) == K
  result = km.lloyd(x, bad, w, max_iter=15, tol=None, chunk_size=CHUNK)
  assert (np.asarray(result.counts) > 0).all()
  assert_same(result, numpy_lloyd(x, bad, w, max_iter=15))
  # More empty clusters than points of positive weight: the extra ones keep their centroids.
  tiny = np.array([[0.0], [1.0], [5.0]], np.float32)
  r = km.lloyd(tiny, np.zeros((4, 1), np.float32), np.array([1, 1, 0], np.float32), max_iter=3,
               tol=None)
  assert sorted(np.asarray(r.counts).tolist()) == [0, 0, 1, 1]


def test_kmeans_plusplus_picks_distinct_weighted_points(data):
  x, w, _ = data
  c = np.asarray(km.kmeans_plusplus(x, K, jax.random.PRNGKey(2), w))
  idx = [np.flatnonzero((x == row).all(1))[0] for row in c]  # every centroid is a point...
  assert len(set(idx)) == K and (w[idx] > 0).all()  # ...distinct, never a weight-0 one
  c = np.asarray(km.kmeans_plusplus(x, K, jax.random.PRNGKey(2), w, init_sample=200))
  assert all((x == row).all(1).any() for row in c) and len(np.unique(c, axis=0)) == K


@pytest.mark.parametrize("mode", ["pmap", "mesh"])
def test_sharded_equals_one_device(data, mode):
  x, w, _ = data
  dp = parallel.DataParallel(mode)
  assert dp.num_devices == 8 and N % 8
  key = jax.random.PRNGKey(4)
  opts = dict(max_iter=30, tol=1e-6, chunk_size=CHUNK)
  one = km.kmeans(x, K, key, w, **opts)
  many = km.sharded_kmeans(dp, x, K, key, w, **opts)
  np.testing.assert_array_equal(many.assignments, np.asarray(one.assignments))
  np.testing.assert_allclose(many.centroids, np.asarray(one.centroids), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(many.inertia, float(one.inertia), rtol=1e-5)
  np.testing.assert_array_equal(many.counts, np.asarray(one.counts))
  assert int(many.iterations) == int(one.iterations)
  # Empty-cluster repair picks the same farthest points across devices.
  bad = np.repeat(x[:3], 4, axis=0)
  one = km.lloyd(x, bad, w, **opts)
  many = km.sharded_kmeans(dp, x, K, key, w, init_centroids=bad, **opts)
  np.testing.assert_array_equal(many.assignments, np.asarray(one.assignments))
  np.testing.assert_allclose(many.centroids, np.asarray(one.centroids), rtol=1e-5, atol=1e-5)


def test_residual_hierarchy(data):
  x, w, _ = data
  key = jax.random.PRNGKey(5)
  k1, k2 = K, K  # a K of its own per level would only cost compile time here
  r = km.residual_kmeans(x, k1, k2, key, w, chunk_size=CHUNK)
  assert r.codes.shape == (N, 2)
  np.testing.assert_array_equal(np.asarray(r.codes[:, 0]), np.asarray(r.level1.assignments))
  assert r.level1.centroids.shape == (k1, D) and r.level2.centroids.shape == (k2, D)
  assert int(r.level1.counts.sum()) == int(r.level2.counts.sum()) == int((w > 0).sum())
  assert float(r.reconstruction_error) < float(r.level1.inertia)
  np.testing.assert_allclose(float(r.reconstruction_error), float(r.level2.inertia), rtol=1e-4)
  x64 = x.astype(np.float64)
  c1, c2 = np.asarray(r.level1.centroids), np.asarray(r.level2.centroids)
  recon = c1[np.asarray(r.codes[:, 0])] + c2[np.asarray(r.codes[:, 1])]
  np.testing.assert_allclose(float(r.reconstruction_error),
                             (w * ((x64 - recon) ** 2).sum(1)).sum(), rtol=1e-4)
  # Level 2 really is k-means of the residuals from level 1's result.
  residuals = x - c1[np.asarray(r.codes[:, 0])]
  level2 = km.kmeans(residuals, k2, jax.random.split(key)[1], w, chunk_size=CHUNK)
  np.testing.assert_array_equal(np.asarray(level2.assignments), np.asarray(r.codes[:, 1]))
  # And the sharded hierarchy gives the same codes.
  s = km.residual_kmeans(x, k1, k2, key, w, chunk_size=CHUNK, dp=parallel.DataParallel("mesh"))
  np.testing.assert_array_equal(s.codes, np.asarray(r.codes))
  np.testing.assert_allclose(s.reconstruction_error, float(r.reconstruction_error), rtol=1e-5)


def test_compiles_once_for_repeated_calls(data):
  x, w, _ = data
  compiled = km._kmeans._cache_size  # pylint: disable=protected-access
  km.kmeans(x, K, jax.random.PRNGKey(0), w, chunk_size=CHUNK)
  before = compiled()
  for seed, (max_iter, tol) in enumerate([(5, 1e-4), (9, None), (3, 0.0)], 1):
    xs = x + np.float32(seed)  # new values, same shapes; max_iter and tol are traced
    result = km.kmeans(xs, K, jax.random.PRNGKey(seed), w, max_iter=max_iter, tol=tol,
                       chunk_size=CHUNK)
    assert int(result.iterations) <= max_iter
  assert compiled() == before
