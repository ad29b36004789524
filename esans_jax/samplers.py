"""ESANS's negative samplers: one interface, every sampler chosen and combined from the config.

A training example is a user vector ``u [d]`` and its positive item ``p``; both towers' outputs
are L2-normalised and a score is ``u . e / temperature``. Each row's softmax runs over

1. the positive (its exact score),
2. a **shared pool** of negatives, common to every row of the device's batch, each corrected by
   the log of its expected count in the pool (logQ; ``sampler.logq``):

   - ``in_batch``: the positives of the whole global batch (``B`` draws from the training item
     distribution, i.e. popularity),
   - ``num_uniform``: ``S_u`` items drawn uniformly,
   - ``num_popularity``: ``S_p`` items drawn by training popularity,

   so that one correction covers any mix (the debiased mixed negative sampling of Yang et al.,
   2020: in-batch + uniform):
   ``log E[count of j] = log(B * pop_j + S_u / N + S_p * pop_j)``;
3. **per-row negatives**, exact terms (no correction, as hard negatives are used):

   - ``hard_k``: dynamic hard-negative mining, the ``hard_k`` top-scored items (for this user) of
     a pool of ``hard_pool`` uniform items;
   - MSAC (``msac.enabled``): ``m_c`` items of the positive's primary cluster ``c1`` but another
     residual code ``c2``, and ``m_o`` items of other primary clusters ``C_j`` drawn with
     ``P(C_j | C_i) ~ exp(-dist(C_i, C_j) / (T * mean distance))``; an item that shares
     ``(c1, c2)`` with the positive is never drawn (the false-negative guard);
4. **virtual negatives** from EDIS (``edis.mode``), built on the tower outputs of the row's base
   negatives (its MSAC draws, else ``m_o`` picks from the shared pool), no extra forward pass:

   - ``simple``: for ``k = 2..m_o``, ``k`` convex mixes of ``k`` of the ``m_o`` base negatives
     (a random subset, flat-Dirichlet weights): ``(m_o + 2)(m_o - 1) / 2`` of them;
   - ``hard``: ``beta * e_pos + (1 - beta) * e_neg`` for every base negative, ``beta`` uniform in
     ``[beta_min, beta_max]``;

   renormalised to unit length (``edis.renormalize``); gradients flow into both towers through
   them.

Shared negatives equal to the row's positive, and the padding item, are masked out. Every function
here is pure and works on one device's rows; ``vmap`` carries the per-row ones over the batch.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Optional

import flax.struct
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

Array = Any
NEG_INF = -1e9
EDIS_MODES = ("none", "simple", "hard", "both")
# Preset name -> what it sets in the sampler config (the rest keeps its value).
PRESETS = {
    "uniform": dict(in_batch=False, num_uniform=-1, num_popularity=0, hard_k=0,
                    msac=False, edis="none"),
    "popularity": dict(in_batch=False, num_uniform=0, num_popularity=-1, hard_k=0,
                       msac=False, edis="none"),
    "in_batch": dict(in_batch=True, num_uniform=0, num_popularity=0, hard_k=0,
                     msac=False, edis="none"),
    "mixed": dict(in_batch=True, num_uniform=-1, num_popularity=0, hard_k=0,
                  msac=False, edis="none"),
    "hard": dict(in_batch=True, num_uniform=-1, num_popularity=0, hard_k=-1,
                 msac=False, edis="none"),
    "msac": dict(in_batch=True, num_uniform=-1, num_popularity=0, hard_k=0,
                 msac=True, edis="none"),
    "edis_simple": dict(in_batch=True, num_uniform=-1, num_popularity=0, hard_k=0,
                        msac=False, edis="simple"),
    "edis_hard": dict(in_batch=True, num_uniform=-1, num_popularity=0, hard_k=0,
                      msac=False, edis="hard"),
    "edis": dict(in_batch=True, num_uniform=-1, num_popularity=0, hard_k=0,
                 msac=False, edis="both"),
    "esans": dict(in_batch=True, num_uniform=-1, num_popularity=0, hard_k=0,
                  msac=True, edis="both"),
    "esans_simple": dict(in_batch=True, num_uniform=-1, num_popularity=0, hard_k=0,
                         msac=True, edis="simple"),
    "esans_hard": dict(in_batch=True, num_uniform=-1, num_popularity=0, hard_k=0,
                       msac=True, edis="hard"),
    "custom": {},
}


@dataclasses.dataclass(frozen=True)
class SamplerConfig:
  """The resolved sampler (``esans_jax.config.validate`` builds it from ``config.sampler``).

  Attributes:
    name: the preset it came from.
    in_batch: the global batch's positives are shared negatives.
    num_uniform: uniform shared negatives per device batch.
    num_popularity: popularity-drawn shared negatives per device batch.
    hard_k: per-row hard negatives mined from ``hard_pool`` uniform items (0: off).
    hard_pool: the mining pool's size.
    msac: MSAC per-row negatives.
    m_c: MSAC same-primary-cluster negatives per row.
    m_o: MSAC other-cluster negatives per row (and EDIS's base size).
    cluster_temperature: ``T`` of the other-cluster distribution.
    edis: ``none``, ``simple``, ``hard`` or ``both``.
    beta_min, beta_max: the hard interpolation weight's range.
    renormalize: project virtual negatives back onto the unit sphere.
    logq: correct the shared pool by log expected counts.
  """

  name: str = "mixed"
  in_batch: bool = True
  num_uniform: int = 128
  num_popularity: int = 0
  hard_k: int = 0
  hard_pool: int = 256
  msac: bool = False
  m_c: int = 2
  m_o: int = 5
  cluster_temperature: float = 1.0
  edis: str = "none"
  beta_min: float = 0.1
  beta_max: float = 0.3
  renormalize: bool = True
  logq: bool = True

  @property
  def num_simple(self) -> int:
    """Simple virtual negatives per row: ``(m_o + 2)(m_o - 1) / 2`` (0 when off)."""
    return (self.m_o + 2) * (self.m_o - 1) // 2 if self.edis in ("simple", "both") else 0

  @property
  def num_base(self) -> int:
    """EDIS's base negatives per row: the MSAC draws, else ``m_o`` picks of the shared pool."""
    return self.m_c + self.m_o if self.msac else self.m_o

  @property
  def num_hard_virtual(self) -> int:
    return self.num_base if self.edis in ("hard", "both") else 0


# -- logQ -----------------------------------------------------------------------------------------

def pool_log_count(item_ids: Array, popularity: Array, num_items: int, in_batch: int,
                   num_uniform: int, num_popularity: int) -> Array:
  """``log E[count of item j in the shared pool]`` for ``item_ids`` (any shape).

  The pool holds ``in_batch`` draws from the training distribution ``popularity`` (the global
  batch's positives), ``num_uniform`` uniform draws over ``1..num_items`` and ``num_popularity``
  popularity draws: ``E[count_j] = (in_batch + num_popularity) * pop_j + num_uniform / N``.
  """
  pop = popularity[item_ids]
  count = (in_batch + num_popularity) * pop + num_uniform / num_items
  return jnp.log(jnp.maximum(count, 1e-30))


# -- MSAC -----------------------------------------------------------------------------------------

class MsacTables(flax.struct.PyTreeNode):
  """The two-level cluster hierarchy, laid out for sampling (a refreshable state constant).

  Attributes:
    codes: int32 ``[N + 1, 2]``: each item's ``(c1, c2)``; row 0 (padding) is ``(-1, -1)``.
    order: int32 ``[N]``: the items sorted by ``(c1, c2)``.
    c1_start: int32 ``[K1 + 1]``: cluster ``c1``'s items are ``order[c1_start[c1]:c1_start[c1+1]]``.
    c12_start: int32 ``[K1 * K2 + 1]``: likewise for the cell ``c1 * K2 + c2``.
    log_p: float32 ``[K1, K1]``: ``log P(C_j | C_i)`` for the other-cluster draws (the diagonal
      and empty clusters at ``NEG_INF``).
    inertia: float32 ``[2]``: each level's k-means inertia.
    counts1: int32 ``[K1]``; counts2: int32 ``[K2]``: the cluster-size histograms.
    refreshed_at: int32: the step whose refresh built the tables (-1: never).
  """

  codes: Array
  order: Array
  c1_start: Array
  c12_start: Array
  log_p: Array
  inertia: Array
  counts1: Array
  counts2: Array
  refreshed_at: Array

  @classmethod
  def empty(cls, num_items: int, k1: int, k2: int) -> "MsacTables":
    """Placeholder tables of the right shapes (before the first refresh)."""
    return cls(codes=jnp.full((num_items + 1, 2), -1, jnp.int32),
               order=jnp.arange(1, num_items + 1, dtype=jnp.int32),
               c1_start=jnp.zeros((k1 + 1,), jnp.int32),
               c12_start=jnp.zeros((k1 * k2 + 1,), jnp.int32),
               log_p=jnp.full((k1, k1), NEG_INF, jnp.float32),
               inertia=jnp.zeros((2,), jnp.float32),
               counts1=jnp.zeros((k1,), jnp.int32), counts2=jnp.zeros((k2,), jnp.int32),
               refreshed_at=jnp.asarray(-1, jnp.int32))


def build_tables(c1: Array, c2: Array, centroids1: Array, k2: int, temperature: float,
                 inertia: Array, step: Array) -> MsacTables:
  """The sampling tables of items ``1..N`` with codes ``c1 [N]``, ``c2 [N]`` (jittable).

  ``P(C_j | C_i)`` is a softmax over ``j != i`` (non-empty) of ``-d_ij / (T * mean d)``, ``d`` the
  Euclidean distance between primary centroids and ``mean d`` its mean over distinct pairs, so
  ``T`` does not depend on the vectors' scale.
  """
  k1 = centroids1.shape[0]
  cell = c1 * k2 + c2
  order = jnp.argsort(cell, stable=True).astype(jnp.int32) + 1
  c1_start = jnp.searchsorted(jnp.sort(c1), jnp.arange(k1 + 1), side="left").astype(jnp.int32)
  c12_start = jnp.searchsorted(jnp.sort(cell), jnp.arange(k1 * k2 + 1),
                               side="left").astype(jnp.int32)
  counts1 = jnp.diff(c1_start)
  sq = jnp.sum(centroids1 ** 2, axis=1)
  d2 = sq[:, None] + sq[None, :] - 2.0 * jnp.dot(centroids1, centroids1.T,
                                                  precision=lax.Precision.HIGHEST)
  dist = jnp.sqrt(jnp.maximum(d2, 0.0))
  off = ~jnp.eye(k1, dtype=bool) & (counts1[None, :] > 0) & (counts1[:, None] > 0)
  mean = jnp.sum(jnp.where(off, dist, 0.0)) / jnp.maximum(jnp.sum(off), 1)
  logits = jnp.where(off, -dist / (temperature * jnp.maximum(mean, 1e-12)), NEG_INF)
  log_p = jnp.where(off, jax.nn.log_softmax(logits, axis=1), NEG_INF)
  codes = jnp.concatenate([jnp.full((1, 2), -1, jnp.int32),
                           jnp.stack([c1, c2], axis=1).astype(jnp.int32)])
  return MsacTables(codes=codes, order=order, c1_start=c1_start, c12_start=c12_start,
                    log_p=log_p.astype(jnp.float32), inertia=inertia.astype(jnp.float32),
                    counts1=counts1.astype(jnp.int32),
                    counts2=jnp.bincount(c2, length=k2).astype(jnp.int32),
                    refreshed_at=jnp.asarray(step, jnp.int32))


def msac_sample(rng: Array, tables: MsacTables, positive: Array, m_c: int, m_o: int
                ) -> tuple[Array, Array]:
  """MSAC negatives of one positive: ``(ids [m_c + m_o], valid [m_c + m_o])`` (``vmap`` it).

  The first ``m_c`` are uniform over the positive's primary cluster minus its own cell
  ``(c1, c2)``; where that set is empty they are not valid (and hold item 0). The other ``m_o``
  are uniform members of a primary cluster ``j != c1`` drawn from ``P(C_j | C_i)``; they are
  invalid only if no other non-empty cluster exists.
  """
  k1 = tables.c1_start.shape[0] - 1
  k2 = (tables.c12_start.shape[0] - 1) // k1
  c1, c2 = tables.codes[positive, 0], tables.codes[positive, 1]
  c1 = jnp.maximum(c1, 0)
  same_rng, pick_rng, other_rng = jax.random.split(rng, 3)
  lo, hi = tables.c1_start[c1], tables.c1_start[c1 + 1]
  cell = c1 * k2 + jnp.maximum(c2, 0)
  s12, e12 = tables.c12_start[cell], tables.c12_start[cell + 1]
  room = (hi - lo) - (e12 - s12)
  u = jax.random.randint(same_rng, (m_c,), 0, jnp.maximum(room, 1))
  idx = lo + u
  idx = jnp.where(idx >= s12, idx + (e12 - s12), idx)
  same_ok = jnp.broadcast_to(room > 0, (m_c,))
  same = jnp.where(same_ok, tables.order[jnp.clip(idx, 0, tables.order.shape[0] - 1)], 0)

  log_p = tables.log_p[c1]
  clusters = jax.random.categorical(pick_rng, log_p, shape=(m_o,))
  other_ok = jnp.broadcast_to(jnp.max(log_p) > NEG_INF / 2, (m_o,))
  start = tables.c1_start[clusters]
  size = tables.c1_start[clusters + 1] - start
  v = jax.random.randint(other_rng, (m_o,), 0, jnp.maximum(size, 1))
  other = jnp.where(other_ok, tables.order[jnp.clip(start + v, 0, tables.order.shape[0] - 1)], 0)
  return (jnp.concatenate([same, other]).astype(jnp.int32),
          jnp.concatenate([same_ok, other_ok]))


# -- EDIS -----------------------------------------------------------------------------------------

def simple_mix_sizes(m_o: int) -> np.ndarray:
  """``k`` of each simple virtual negative: ``k`` copies of ``k`` for ``k = 2..m_o``."""
  return np.concatenate([np.full((k,), k, np.int32) for k in range(2, m_o + 1)]) if m_o >= 2 \
      else np.zeros((0,), np.int32)


def simple_weights(rng: Array, m_o: int) -> Array:
  """The convex weights ``[V, m_o]`` of one row's simple virtual negatives (rows sum to 1).

  Row ``v`` mixes a uniformly random subset of ``k_v`` of the base negatives with flat-Dirichlet
  weights (normalised exponentials); the others weigh 0.
  """
  sizes = jnp.asarray(simple_mix_sizes(m_o))
  v = sizes.shape[0]
  subset_rng, weight_rng = jax.random.split(rng)
  keys = jax.random.uniform(subset_rng, (v, m_o))
  rank = jnp.argsort(jnp.argsort(keys, axis=1), axis=1)
  member = rank < sizes[:, None]
  g = jax.random.exponential(weight_rng, (v, m_o)) * member
  return g / jnp.sum(g, axis=1, keepdims=True)


def _unit(x: Array) -> Array:
  return x * lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), 1e-12))


def edis_virtual(rng: Array, positive: Array, base: Array, base_valid: Array,
                 config: SamplerConfig) -> tuple[Array, Array]:
  """One row's virtual negatives: ``(vectors [V, d], valid [V])`` (``vmap`` it over rows).

  Args:
    rng: this row's key.
    positive: ``[d]`` the positive's tower output.
    base: ``[num_base, d]`` the base negatives' tower outputs; the simple mixes use the last
      ``m_o`` (MSAC's other-cluster draws).
    base_valid: ``[num_base]`` bool.
    config: the sampler.
  """
  simple_rng, hard_rng = jax.random.split(rng)
  out, valid = [], []
  if config.num_simple:
    w = simple_weights(simple_rng, config.m_o)
    others, others_ok = base[-config.m_o:], base_valid[-config.m_o:]
    mixes = jnp.dot(w, others.astype(jnp.float32), precision=lax.Precision.HIGHEST)
    out.append(mixes)
    valid.append(jnp.all(others_ok | (w == 0), axis=1))
  if config.num_hard_virtual:
    beta = jax.random.uniform(hard_rng, (base.shape[0], 1), minval=config.beta_min,
                              maxval=config.beta_max)
    out.append(beta * positive[None, :] + (1.0 - beta) * base)
    valid.append(base_valid)
  if not out:
    return jnp.zeros((0, base.shape[-1]), base.dtype), jnp.zeros((0,), bool)
  vectors = jnp.concatenate(out)
  if config.renormalize:
    vectors = _unit(vectors)
  return vectors, jnp.concatenate(valid)


# -- the loss -------------------------------------------------------------------------------------

class Negatives(NamedTuple):
  """What a step's samplers chose, before the towers embed it.

  Attributes:
    shared_ids: int32 ``[S]`` this device's uniform/popularity shared negatives.
    hard_pool: int32 ``[P]`` the mining pool (``P = 0`` when off).
    row_ids: int32 ``[b, R]`` per-row negatives (MSAC) to embed; ``R = 0`` when off.
    row_valid: bool ``[b, R]``.
  """
  shared_ids: Array
  hard_pool: Array
  row_ids: Array
  row_valid: Array


def draw(rng: Array, config: SamplerConfig, positives: Array, popularity_log: Array,
         num_items: int, tables: Optional[MsacTables]) -> Negatives:
  """Draws the step's item ids (no embeddings yet) for the device's ``positives [b]``."""
  uni_rng, pop_rng, pool_rng, msac_rng = jax.random.split(rng, 4)
  shared = []
  if config.num_uniform:
    shared.append(jax.random.randint(uni_rng, (config.num_uniform,), 1, num_items + 1))
  if config.num_popularity:
    shared.append(jax.random.categorical(pop_rng, popularity_log, shape=(config.num_popularity,)))
  shared_ids = (jnp.concatenate(shared) if shared else jnp.zeros((0,), jnp.int32)).astype(
      jnp.int32)
  pool = (jax.random.randint(pool_rng, (config.hard_pool,), 1, num_items + 1).astype(jnp.int32)
          if config.hard_k else jnp.zeros((0,), jnp.int32))
  b = positives.shape[0]
  if config.msac:
    keys = jax.random.split(msac_rng, b)
    row_ids, row_valid = jax.vmap(lambda k, p: msac_sample(k, tables, p, config.m_c,
                                                           config.m_o))(keys, positives)
  else:
    row_ids, row_valid = jnp.zeros((b, 0), jnp.int32), jnp.zeros((b, 0), bool)
  return Negatives(shared_ids, pool, row_ids, row_valid)


def softmax_loss(rng: Array, config: SamplerConfig, user: Array, positive: Array,
                 positive_ids: Array, row_mask: Array, shared_emb: Array, shared_ids: Array,
                 shared_log_count: Optional[Array], row_emb: Array, row_valid: Array,
                 pool_emb: Array, pool_ids: Array, temperature: Array
                 ) -> tuple[Array, Array, dict]:
  """The per-device sampled-softmax loss sums: ``(sum of row losses, number of rows, stats)``.

  Args:
    rng: key for EDIS.
    config: the sampler.
    user: ``[b, d]`` unit user vectors.
    positive: ``[b, d]`` unit positive item vectors.
    positive_ids: ``[b]``.
    row_mask: ``[b]`` bool, the real rows.
    shared_emb: ``[S, d]`` the shared pool (in-batch positives of the global batch first, then
      the drawn ones); ``shared_ids [S]``; ``shared_log_count [S]`` its logQ term or None.
    row_emb: ``[b, R, d]`` MSAC negatives; ``row_valid [b, R]``.
    pool_emb: ``[P, d]`` the hard-mining pool; ``pool_ids [P]``.
    temperature: the scores' divisor.
  """
  inv_t = 1.0 / temperature
  f32 = lambda x: x.astype(jnp.float32)
  pos = jnp.sum(f32(user) * f32(positive), axis=-1) * inv_t  # [b]
  parts, masks = [pos[:, None]], [jnp.ones_like(pos[:, None], bool)]
  stats = {}
  if shared_emb.shape[0]:
    s = jnp.einsum("bd,sd->bs", f32(user), f32(shared_emb)) * inv_t
    if shared_log_count is not None:
      s = s - shared_log_count[None, :]
    ok = (shared_ids[None, :] != positive_ids[:, None]) & (shared_ids[None, :] != 0)
    parts.append(s)
    masks.append(ok)
    stats["false_negative_share"] = 1.0 - jnp.mean(ok)
  if config.hard_k:
    scores = lax.stop_gradient(jnp.einsum("bd,pd->bp", f32(user), f32(pool_emb)))
    scores = jnp.where(pool_ids[None, :] == positive_ids[:, None], -jnp.inf, scores)
    _, top = lax.top_k(scores, config.hard_k)
    hard = pool_emb[top]  # [b, h, d], gradients flow into the gathered rows
    parts.append(jnp.einsum("bd,bhd->bh", f32(user), f32(hard)) * inv_t)
    masks.append(jnp.take_along_axis(pool_ids[None, :] != positive_ids[:, None], top, axis=1))
  if row_emb.shape[1]:
    parts.append(jnp.einsum("bd,brd->br", f32(user), f32(row_emb)) * inv_t)
    masks.append(row_valid)
    stats["msac_valid_share"] = jnp.mean(row_valid)
  if config.edis != "none":
    if config.msac:
      base, base_valid = row_emb, row_valid
    else:  # m_o picks of the shared pool per row (no extra forward pass)
      pick_rng, rng = jax.random.split(rng)
      picks = jax.random.randint(pick_rng, (user.shape[0], config.m_o), 0, shared_emb.shape[0])
      base = shared_emb[picks]
      base_valid = (shared_ids[picks] != positive_ids[:, None]) & (shared_ids[picks] != 0)
    keys = jax.random.split(rng, user.shape[0])
    virtual, v_valid = jax.vmap(lambda k, p, b_, v: edis_virtual(k, p, b_, v, config))(
        keys, positive, base, base_valid)
    parts.append(jnp.einsum("bd,bvd->bv", f32(user), f32(virtual)) * inv_t)
    masks.append(v_valid)
    stats["virtual_per_row"] = jnp.asarray(virtual.shape[1], jnp.float32)
  logits = jnp.concatenate(parts, axis=1)
  mask = jnp.concatenate(masks, axis=1)
  logits = jnp.where(mask, logits, NEG_INF)
  nll = jax.nn.logsumexp(logits, axis=1) - pos
  # Where the softmax's mass sits (a diagnostic): the positive, the shared pool, the rest.
  prob = lax.stop_gradient(jax.nn.softmax(logits, axis=1))
  stats["mass/positive"] = jnp.mean(prob[:, 0])
  if shared_emb.shape[0]:
    stats["mass/shared"] = jnp.mean(jnp.sum(prob[:, 1:1 + shared_emb.shape[0]], axis=1))
  widths = [x.shape[1] for x in parts]
  if config.edis != "none":
    stats["mass/virtual"] = jnp.mean(jnp.sum(prob[:, -widths[-1]:], axis=1))
  if row_emb.shape[1]:
    start = sum(widths[:-2]) if config.edis != "none" else sum(widths[:-1])
    stats["mass/msac"] = jnp.mean(jnp.sum(prob[:, start:start + row_emb.shape[1]], axis=1))
  total = jnp.sum(jnp.where(row_mask, nll, 0.0))
  stats["negatives_per_row"] = jnp.mean(jnp.sum(mask, axis=1).astype(jnp.float32) - 1.0)
  return total, jnp.sum(row_mask.astype(jnp.float32)), stats


def expected_simple_count(m_o: int) -> int:
  """``(m_o + 2)(m_o - 1) / 2``, the paper's count of simple virtual negatives."""
  return int(sum(range(2, m_o + 1))) if m_o >= 2 else 0

