"""k-means in JAX for ESANS's MSAC: k-means++ init, jitted Lloyd iterations, points sharded over
devices, and the two-level residual (cascaded) codebooks.

Everything here is a pure, jittable function of arrays and a PRNG key; states and results are
NamedTuples::

    result = kmeans.kmeans(points, 256, key)                  # one device
    result = kmeans.sharded_kmeans(dp, points, 256, key)      # dp = parallel.DataParallel(mode)
    codes = kmeans.residual_kmeans(points, 64, 32, key).codes  # MSAC's (c1, c2) per item

The Lloyd loop is written once for one device's points (``lloyd(..., axis_name=None)``); with an
``axis_name`` the per-cluster partial sums, masses, counts and inertia are ``lax.psum``-ed over that
axis, so the same function is the per-device body of ``sharded_kmeans``. Padding rows carry weight 0
and change nothing.

Conventions, the same on every path:

- Distances are ``||x||^2 - 2 x.c + ||c||^2`` computed over blocks of ``chunk_size`` points in a
  ``lax.scan``, so the working set is O(chunk_size * K); float32 throughout (points of another
  dtype are cast block by block). The nearest centroid is the argmin of ``||c||^2 - 2 x.c``, one
  matmul of ``[x, 1]`` against ``[-2 c, ||c||^2]`` (``||x||^2`` is added back only for the
  distance to the winner), at ``precision`` (``HIGHEST`` by default: TPUs and recent GPUs
  otherwise multiply float32 in bf16/TF32, ``||c||^2`` included, which flips near-tied
  assignments).
- Ties go to the lowest cluster index (``argmin``).
- One *iteration* is an update of the centroids (means of their members) followed by a new
  assignment pass; the assignment pass of the initial centroids comes first. So the returned
  ``assignments``, ``inertia`` and ``counts`` always belong to the returned ``centroids``.
- Convergence: ``prev_inertia - inertia <= tol * prev_inertia`` after an iteration, and no
  repairable empty cluster left; ``tol=None`` runs exactly ``max_iter`` iterations.
- Empty-cluster repair: a cluster with no member (of positive weight) after an assignment pass is
  re-seeded, at the next update, at the point farthest from its own centroid; the r-th empty
  cluster (by index) takes the r-th farthest point (ties to the lower point index), so several
  empty clusters get distinct points. Its seed point then joins it at the next assignment, so with
  at least K distinct points of positive weight no cluster ends empty.
- ``weights`` (default 1) scale each point's pull on its centroid and its share of the inertia;
  they must be >= 0, and 0 marks padding. ``counts`` counts members of positive weight.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from common import parallel

DEFAULT_CHUNK = 4096  # points per distance block on an accelerator
CPU_CHUNK = 128  # on CPU: the [K, chunk] score block stays in cache (see ``default_chunk_size``)
HIGHEST = lax.Precision.HIGHEST


class KMeansResult(NamedTuple):
  """The outcome of a k-means run.

  Attributes:
    centroids: ``[K, d]`` float32.
    assignments: ``[N]`` int32, each point's cluster under ``centroids``.
    inertia: ``[]`` float32, ``sum_i w_i ||x_i - centroids[assignments_i]||^2``.
    counts: ``[K]`` int32, members (of positive weight) per cluster: the cluster-size histogram.
    iterations: ``[]`` int32, centroid updates done.
    converged: ``[]`` bool, whether the tolerance test passed before ``max_iter``.
  """
  centroids: jax.Array
  assignments: jax.Array
  inertia: jax.Array
  counts: jax.Array
  iterations: jax.Array
  converged: jax.Array


class AssignStats(NamedTuple):
  """One assignment pass over a device's points (``[n_chunks, chunk]`` blocks).

  ``sums``, ``mass``, ``counts`` and ``inertia`` are totals over every device of the axis.
  """
  assignments: jax.Array  # [n_chunks, chunk] int32
  sq_dists: jax.Array  # [n_chunks, chunk] float32, to the assigned centroid
  sums: jax.Array  # [K, d] float32, weighted sums of the members
  mass: jax.Array  # [K] float32, total weight of the members
  counts: jax.Array  # [K] int32, members of positive weight
  inertia: jax.Array  # [] float32


class KMeansState(NamedTuple):
  """The carry of the Lloyd ``while_loop``."""
  centroids: jax.Array  # [K, d]
  stats: AssignStats  # the assignment pass of ``centroids``
  iteration: jax.Array  # [] int32
  converged: jax.Array  # [] bool


class ResidualKMeansResult(NamedTuple):
  """The two-level cascaded (residual) codebooks of MSAC.

  Attributes:
    level1: k-means of the points; ``level1.centroids`` is the ``[K1, d]`` primary codebook.
    level2: k-means of the residuals ``x - c1[a1]``; ``level2.centroids`` is the ``[K2, d]``
      residual codebook, shared by every primary cluster.
    codes: ``[N, 2]`` int32, each item's ``(c1, c2)``.
    reconstruction_error: ``[]`` float32, ``sum_i w_i ||x_i - c1[a1_i] - c2[a2_i]||^2`` (equal to
      ``level2.inertia`` up to rounding, computed afresh).
  """
  level1: KMeansResult
  level2: KMeansResult
  codes: jax.Array
  reconstruction_error: jax.Array


# -- blocks of points ----------------------------------------------------------------------------


def _weights(points: jax.Array, weights: Optional[jax.Array]) -> jax.Array:
  if weights is None:
    return jnp.ones(points.shape[:1], jnp.float32)
  return jnp.asarray(weights, jnp.float32)


def default_chunk_size(backend: Optional[str] = None) -> int:
  """Points per distance block when ``chunk_size`` is None: ``CPU_CHUNK`` on CPU, else 4096.

  On CPU a block's ``[K, chunk]`` scores are written by the matmul and read by two reductions,
  so they should stay in the core's cache: at 200k x 64 into 4096 on one core, 128 points run at
  ~90% of the matmul's own speed, 4096 at ~45%. Accelerators want big matmuls instead.
  """
  return CPU_CHUNK if (backend or jax.default_backend()) == "cpu" else DEFAULT_CHUNK


def _blocks(points: jax.Array, weights: jax.Array,
            chunk_size: Optional[int]) -> tuple[jax.Array, jax.Array]:
  """``[N, d]``, ``[N]`` -> ``[n_chunks, chunk, d]``, ``[n_chunks, chunk]``; padding weighs 0."""
  n, d = points.shape
  chunk = max(1, min(default_chunk_size() if chunk_size is None else chunk_size, n))
  n_chunks = -(-n // chunk)
  pad = n_chunks * chunk - n
  if pad:
    points = jnp.pad(points, ((0, pad), (0, 0)))
    weights = jnp.pad(weights, (0, pad))
  return points.reshape(n_chunks, chunk, d), weights.reshape(n_chunks, chunk)


def _psum(tree, axis_name: Optional[str]):
  return tree if axis_name is None else lax.psum(tree, axis_name)


def _score_matrix(centroids: jax.Array) -> jax.Array:
  """``[K, d + 1]``: ``[-2 c, ||c||^2]``, so that ``[x, 1] . row = ||x - c||^2 - ||x||^2``."""
  centroids = centroids.astype(jnp.float32)
  c_sq = jnp.sum(centroids * centroids, axis=1, keepdims=True)
  return jnp.concatenate([-2.0 * centroids, c_sq], axis=1)


def _nearest(x: jax.Array, c_aug: jax.Array,
             precision: lax.Precision) -> tuple[jax.Array, jax.Array]:
  """Nearest centroid of each row of ``x`` (float32) and the squared distance to it.

  The scores come out of one matmul, ``[K, d + 1] x [d + 1, chunk]``, laid out ``[K, chunk]``:
  on CPU (XLA's YNNPACK path) both reductions below then run over the major axis, which
  vectorises (over ``[chunk, K]`` rows they ran 1.2-3x slower), and ``||c||^2`` costs no pass of
  its own over the scores.
  """
  k = c_aug.shape[0]
  x1 = jnp.concatenate([x, jnp.ones((x.shape[0], 1), jnp.float32)], axis=1)
  scores = jnp.dot(c_aug, x1.T, precision=precision, preferred_element_type=jnp.float32)
  best = jnp.min(scores, axis=0)
  # argmin as the least index attaining the min: two plain min-reductions (the index as a float,
  # exact below 2^24, so that both go to YNNPACK), ~4x faster than XLA:CPU's (index, value)
  # argmin reduction; same ties.
  index = lax.broadcasted_iota(jnp.float32 if k < 2**24 else jnp.int32, scores.shape, 0)
  assign = jnp.min(jnp.where(scores == best[None, :], index, k - 1), axis=0).astype(jnp.int32)
  # The expansion can go slightly negative from rounding when x sits on a centroid.
  return assign, jnp.maximum(jnp.sum(x * x, axis=1) + best, 0.0)


def _assign_blocks(xs: jax.Array, ws: jax.Array, centroids: jax.Array, precision: lax.Precision,
                   axis_name: Optional[str]) -> AssignStats:
  """Assigns every block of points and accumulates the per-cluster statistics."""
  k, d = centroids.shape
  c_aug = _score_matrix(centroids)  # once per pass, not per block

  def block(carry, xw):
    sums, mass, counts, inertia = carry
    x, w = xw
    x = x.astype(jnp.float32)
    assign, sq = _nearest(x, c_aug, precision)
    # Scatter-adds are O(chunk * d), not the O(chunk * K * d) of a one-hot matmul; into the
    # carry itself, not into fresh zeros added after (an O(K * d) pass per block).
    sums = sums.at[assign].add(x * w[:, None])
    mass = mass.at[assign].add(w)
    counts = counts.at[assign].add((w > 0).astype(jnp.int32))
    inertia = inertia + jnp.sum(w * sq)
    return (sums, mass, counts, inertia), (assign, sq)

  init = (jnp.zeros((k, d), jnp.float32), jnp.zeros((k,), jnp.float32),
          jnp.zeros((k,), jnp.int32), jnp.zeros((), jnp.float32))
  (sums, mass, counts, inertia), (assign, sq) = lax.scan(block, init, (xs, ws))
  sums, mass, counts, inertia = _psum((sums, mass, counts, inertia), axis_name)
  return AssignStats(assign, sq, sums, mass, counts, inertia)


def _farthest(xs: jax.Array, ws: jax.Array, stats: AssignStats, k: int,
              axis_name: Optional[str]) -> tuple[jax.Array, jax.Array]:
  """The (up to) ``k`` points farthest from their centroids over all devices, farthest first.

  Returns their squared distances (``-inf`` for missing ones) and the points, in float32.
  """
  d = xs.shape[-1]
  dist = jnp.where(ws > 0, stats.sq_dists, -jnp.inf).reshape(-1)
  vals, idx = lax.top_k(dist, min(k, dist.shape[0]))
  pts = xs.reshape(-1, d)[idx].astype(jnp.float32)
  if axis_name is not None:
    # Device order is global point order, and top_k keeps the lower index first on ties, so
    # the merged top-k is the one a single device would pick.
    vals = lax.all_gather(vals, axis_name).reshape(-1)
    pts = lax.all_gather(pts, axis_name).reshape(-1, d)
    vals, idx = lax.top_k(vals, min(k, vals.shape[0]))
    pts = pts[idx]
  return vals, pts


def _update(xs: jax.Array, ws: jax.Array, centroids: jax.Array, stats: AssignStats,
            axis_name: Optional[str]) -> jax.Array:
  """Centroids <- means of their members; empty clusters re-seeded at the farthest points."""
  k = centroids.shape[0]
  means = jnp.where(stats.mass[:, None] > 0,
                    stats.sums / jnp.maximum(stats.mass, 1e-30)[:, None], centroids)
  empty = stats.counts == 0

  def repair(means):
    vals, pts = _farthest(xs, ws, stats, k, axis_name)
    rank = jnp.clip(jnp.cumsum(empty) - 1, 0, vals.shape[0] - 1)
    ok = empty & (jnp.cumsum(empty) <= vals.shape[0]) & jnp.isfinite(vals[rank])
    return jnp.where(ok[:, None], pts[rank], means)

  return lax.cond(jnp.any(empty), repair, lambda m: m, means)


def _tol(tol: Optional[float]) -> jax.Array:
  # -inf never passes the test below (nor does nan, from -inf * 0), so it means "never stop".
  return jnp.asarray(-jnp.inf if tol is None else tol, jnp.float32)


def _converged(prev: AssignStats, new: AssignStats, tol: jax.Array) -> jax.Array:
  small = prev.inertia - new.inertia <= tol * prev.inertia
  # An empty cluster that a point could fill is not a fixed point: keep going.
  repairable = jnp.any(new.counts == 0) & (jnp.sum(new.counts) >= new.counts.shape[0])
  return small & ~repairable


# -- public API ----------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("k", "init_sample"))
def kmeans_plusplus(points: jax.Array, k: int, key: jax.Array,
                    weights: Optional[jax.Array] = None, *,
                    init_sample: Optional[int] = None) -> jax.Array:
  """k-means++ seeding (D^2 sampling), jittable: a ``lax.fori_loop`` over the ``k`` picks.

  The first centroid is a point drawn with probability proportional to its weight; each next one
  a point drawn with probability proportional to ``w * D(x)^2``, ``D`` the distance to the nearest
  centroid so far (``jax.random.categorical`` on log-weights plus log-distances, exact differences,
  not the matmul expansion). Each pick costs O(N d), the whole seeding O(N K d): one Lloyd pass.
  If fewer than ``k`` distinct points have positive weight, later picks repeat points.

  Args:
    points: ``[N, d]``.
    k: number of centroids.
    key: PRNG key.
    weights: ``[N]`` non-negative point weights; 0 points are never picked (padding).
    init_sample: if set and smaller than N, seed from this many points drawn uniformly without
      replacement from those of positive weight (keeping their weights): the cost drops to
      O(init_sample K d), at the price of centroids drawn from a sample. None: use every point.

  Returns:
    ``[k, d]`` float32 initial centroids, each one of the points.
  """
  x = jnp.asarray(points, jnp.float32)
  w = _weights(x, weights)
  key_sample, key_first, key_picks = jax.random.split(key, 3)
  if init_sample is not None and init_sample < x.shape[0]:
    gumbel = jax.random.gumbel(key_sample, w.shape)
    _, idx = lax.top_k(jnp.where(w > 0, gumbel, -jnp.inf), init_sample)
    x, w = x[idx], w[idx]
  log_w = jnp.where(w > 0, jnp.log(jnp.maximum(w, 1e-30)), -jnp.inf)

  first = x[jax.random.categorical(key_first, log_w)]
  d2 = jnp.sum((x - first) ** 2, axis=1)
  centroids = jnp.zeros((k, x.shape[1]), jnp.float32).at[0].set(first)

  def pick(i, carry):
    centroids, d2 = carry
    logits = jnp.where((w > 0) & (d2 > 0), log_w + jnp.log(jnp.maximum(d2, 1e-30)), -jnp.inf)
    logits = jnp.where(jnp.any(jnp.isfinite(logits)), logits, log_w)  # every point taken
    c = x[jax.random.categorical(jax.random.fold_in(key_picks, i), logits)]
    return centroids.at[i].set(c), jnp.minimum(d2, jnp.sum((x - c) ** 2, axis=1))

  centroids, _ = lax.fori_loop(1, k, pick, (centroids, d2))
  return centroids


@functools.partial(jax.jit, static_argnames=("chunk_size", "precision"))
def assign(points: jax.Array, centroids: jax.Array, *, chunk_size: Optional[int] = None,
           precision: lax.Precision = HIGHEST) -> tuple[jax.Array, jax.Array]:
  """Nearest centroid of every point, in blocks of ``chunk_size`` points.

  Args:
    points: ``[N, d]``.
    centroids: ``[K, d]``.
    chunk_size: points per block; memory is O(chunk_size * K). None: ``default_chunk_size()``.
    precision: matmul precision of ``x . c``.

  Returns:
    ``[N]`` int32 assignments and ``[N]`` float32 squared distances to the assigned centroid.
  """
  n = points.shape[0]
  xs, ws = _blocks(points, jnp.ones((n,), jnp.float32), chunk_size)
  stats = _assign_blocks(xs, ws, centroids, precision, None)
  return stats.assignments.reshape(-1)[:n], stats.sq_dists.reshape(-1)[:n]


def lloyd(points: jax.Array, init_centroids: jax.Array, weights: Optional[jax.Array] = None, *,
          max_iter: int | jax.Array = 100, tol: Optional[float] | jax.Array = 1e-4,
          chunk_size: Optional[int] = None, precision: lax.Precision = HIGHEST,
          axis_name: Optional[str] = None) -> KMeansResult:
  """Lloyd iterations from given centroids in a ``lax.while_loop``.

  Written for one device's points: with ``axis_name`` set (inside ``pmap``/``shard_map``) every
  device passes its shard, the statistics are summed over the axis, and all devices hold the same
  centroids; ``assignments`` are then this device's points'.

  Args:
    points: ``[N, d]`` (this device's shard under ``axis_name``).
    init_centroids: ``[K, d]``, the same on every device.
    weights: ``[N]`` non-negative point weights (0 for padding); None: all 1.
    max_iter: most centroid updates (traced: changing it does not recompile).
    tol: stop once an iteration lowers the inertia by at most ``tol`` times its previous value
      (and no repairable cluster is empty); None: never stop early. Traced, as ``max_iter``.
    chunk_size: points per distance block; None: ``default_chunk_size()`` (128 on CPU, 4096
      on an accelerator).
    precision: matmul precision of ``x . c``.
    axis_name: the device axis to reduce over; None on one device.

  Returns:
    A ``KMeansResult``.
  """
  return _lloyd(points, init_centroids, weights, jnp.asarray(max_iter, jnp.int32), _tol(tol),
                chunk_size=chunk_size, precision=precision, axis_name=axis_name)


@functools.partial(jax.jit,
                   static_argnames=("chunk_size", "precision", "axis_name"))
def _lloyd(points, init_centroids, weights, max_iter, tol, *, chunk_size, precision, axis_name):
  n = points.shape[0]
  # The barrier makes XLA write the padded blocks once instead of fusing the padding into the
  # reads of the points (on the CPU bench: ~25% off the first assignment pass, ~15% overall).
  xs, ws = lax.optimization_barrier(_blocks(points, _weights(points, weights), chunk_size))
  centroids = jnp.asarray(init_centroids, jnp.float32)
  stats = _assign_blocks(xs, ws, centroids, precision, axis_name)
  state = KMeansState(centroids, stats, jnp.zeros((), jnp.int32), jnp.zeros((), bool))

  def cond(state):
    return (state.iteration < max_iter) & ~state.converged

  def body(state):
    centroids = _update(xs, ws, state.centroids, state.stats, axis_name)
    stats = _assign_blocks(xs, ws, centroids, precision, axis_name)
    return KMeansState(centroids, stats, state.iteration + 1,
                       _converged(state.stats, stats, tol))

  state = lax.while_loop(cond, body, state)
  return KMeansResult(state.centroids, state.stats.assignments.reshape(-1)[:n],
                      state.stats.inertia, state.stats.counts, state.iteration, state.converged)


def kmeans(points: jax.Array, k: int, key: jax.Array, weights: Optional[jax.Array] = None, *,
           max_iter: int | jax.Array = 100, tol: Optional[float] | jax.Array = 1e-4,
           chunk_size: Optional[int] = None, init_sample: Optional[int] = None,
           precision: lax.Precision = HIGHEST) -> KMeansResult:
  """k-means on one device: ``kmeans_plusplus`` seeding, then ``lloyd``.

  Args:
    points: ``[N, d]``.
    k: number of clusters.
    key: PRNG key for the seeding.
    weights: ``[N]`` non-negative point weights; None: all 1.
    max_iter, tol, chunk_size, precision: as for ``lloyd``.
    init_sample: as for ``kmeans_plusplus``.

  Returns:
    A ``KMeansResult``.
  """
  return _kmeans(points, k, key, weights, jnp.asarray(max_iter, jnp.int32), _tol(tol),
                 chunk_size=chunk_size, init_sample=init_sample, precision=precision)


@functools.partial(jax.jit,
                   static_argnames=("k", "chunk_size", "init_sample", "precision"))
def _kmeans(points, k, key, weights, max_iter, tol, *, chunk_size, init_sample, precision):
  init = kmeans_plusplus(points, k, key, weights, init_sample=init_sample)
  return _lloyd(points, init, weights, max_iter, tol, chunk_size=chunk_size, precision=precision,
                axis_name=None)


@functools.lru_cache(maxsize=None)
def _sharded_lloyd(dp: parallel.DataParallel, chunk_size: Optional[int], precision: lax.Precision):
  """The data-parallel ``lloyd``, built once per layout and options (so compiled once)."""
  def per_device(points, weights, init_centroids, max_iter, tol):
    return _lloyd(points, init_centroids, weights, max_iter, tol, chunk_size=chunk_size,
                  precision=precision, axis_name=parallel.DATA_AXIS)
  out_specs = KMeansResult(parallel.REPLICATED, parallel.SHARDED, *[parallel.REPLICATED] * 4)
  in_specs = (parallel.SHARDED, parallel.SHARDED) + (parallel.REPLICATED,) * 3
  # all_gather (empty-cluster repair) is replicated by construction, which shard_map cannot infer.
  return dp.wrap(per_device, in_specs, out_specs, check_vma=False), out_specs


def sharded_kmeans(dp: parallel.DataParallel, points: np.ndarray, k: int, key: jax.Array,
                   weights: Optional[np.ndarray] = None, *,
                   init_centroids: Optional[np.ndarray] = None, max_iter: int = 100,
                   tol: Optional[float] = 1e-4, chunk_size: Optional[int] = None,
                   init_sample: Optional[int] = None,
                   precision: lax.Precision = HIGHEST) -> KMeansResult:
  """k-means with the points split over ``dp``'s devices; the result of ``kmeans`` on one device.

  The k-means++ seeding runs on one device over the whole ``points`` (the host's copy; with
  ``init_sample`` only that many points matter), exactly as ``kmeans`` does, so the same key gives
  the same start. The Lloyd loop then runs per device on its shard (``lloyd`` with
  ``axis_name=parallel.DATA_AXIS``) under ``dp.wrap``, in ``pmap`` or ``mesh`` mode. Rows added to
  make N divide over the devices carry weight 0. Single-process only: ``points`` is the whole set.

  Args:
    dp: the device layout.
    points: ``[N, d]`` host array.
    k: number of clusters.
    key: PRNG key for the seeding (unused when ``init_centroids`` is given).
    weights: ``[N]`` non-negative point weights; None: all 1.
    init_centroids: ``[k, d]`` start instead of k-means++.
    max_iter, tol, chunk_size, precision: as for ``lloyd``.
    init_sample: as for ``kmeans_plusplus``.

  Returns:
    A ``KMeansResult`` of host (numpy) arrays, ``assignments`` of length N.
  """
  if jax.process_count() > 1:
    raise NotImplementedError("sharded_kmeans takes the whole point set: single-process only")
  points = np.asarray(points)
  n = points.shape[0]
  w = np.ones((n,), np.float32) if weights is None else np.asarray(weights, np.float32)
  if init_centroids is None:
    init_centroids = kmeans_plusplus(jnp.asarray(points), k, key, jnp.asarray(w),
                                     init_sample=init_sample)
  init_centroids = np.asarray(init_centroids, np.float32)
  if init_centroids.shape[0] != k:
    raise ValueError(f"init_centroids has {init_centroids.shape[0]} rows, k is {k}")
  pad = -n % dp.num_devices
  if pad:
    points = np.concatenate([points, np.zeros((pad,) + points.shape[1:], points.dtype)])
    w = np.concatenate([w, np.zeros((pad,), np.float32)])
  fn, out_specs = _sharded_lloyd(dp, chunk_size, precision)
  out = fn(dp.put(points, parallel.SHARDED, key="kmeans.points"),
           dp.put(w, parallel.SHARDED, key="kmeans.points"),
           *dp.replicate((init_centroids, np.int32(max_iter), np.asarray(_tol(tol)))))
  out = dp.to_host(out, out_specs)
  return out._replace(assignments=out.assignments[:n])


@jax.jit
def _residuals(points, centroids, assignments):
  return jnp.asarray(points, jnp.float32) - centroids[assignments]


@jax.jit
def _reconstruction_error(points, weights, c1, a1, c2, a2):
  err = jnp.asarray(points, jnp.float32) - c1[a1] - c2[a2]
  return jnp.sum(_weights(points, weights) * jnp.sum(err * err, axis=1))


def residual_kmeans(points: jax.Array, k1: int, k2: int, key: jax.Array,
                    weights: Optional[jax.Array] = None, *,
                    dp: Optional[parallel.DataParallel] = None, max_iter: int = 100,
                    tol: Optional[float] = 1e-4, chunk_size: Optional[int] = None,
                    init_sample: Optional[int] = None,
                    precision: lax.Precision = HIGHEST) -> ResidualKMeansResult:
  """Two-level cascaded (residual) k-means: MSAC's codebooks.

  Level 1 clusters the points into ``k1``; level 2 clusters the residuals ``x - c1[a1]`` into
  ``k2`` codes shared by all primary clusters. An item's code is ``(a1, a2)`` and its
  reconstruction ``c1[a1] + c2[a2]``.

  Args:
    points: ``[N, d]``.
    k1: primary clusters.
    k2: residual codes.
    key: PRNG key; level 1 seeds from ``split(key)[0]``, level 2 from ``split(key)[1]``.
    weights: ``[N]`` non-negative point weights, used at both levels.
    dp: if given, each level runs ``sharded_kmeans`` over its devices (same result).
    max_iter, tol, chunk_size, init_sample, precision: as for ``kmeans``, both levels.

  Returns:
    A ``ResidualKMeansResult`` (host arrays when ``dp`` is given).
  """
  key1, key2 = jax.random.split(key)
  opts = dict(max_iter=max_iter, tol=tol, chunk_size=chunk_size, init_sample=init_sample,
              precision=precision)
  if dp is None:
    run = lambda x, k, key: kmeans(x, k, key, weights, **opts)
  else:
    run = lambda x, k, key: sharded_kmeans(dp, x, k, key, weights, **opts)
  level1 = run(points, k1, key1)
  residuals = _residuals(points, level1.centroids, level1.assignments)
  level2 = run(residuals if dp is None else np.asarray(residuals), k2, key2)
  error = _reconstruction_error(points, weights, level1.centroids, level1.assignments,
                                level2.centroids, level2.assignments)
  codes = jnp.stack([level1.assignments, level2.assignments], axis=1)
  if dp is not None:
    codes, error = np.asarray(codes), np.asarray(error)
  return ResidualKMeansResult(level1, level2, codes, error)
