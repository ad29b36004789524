"""Softmax losses over an item catalogue (full, and sampled with shared negatives and logQ),
and the negative samplers that feed the sampled one.

Every loss scores a query ``q`` against candidate embeddings ``e`` by ``q . e`` and is a pure
function of arrays. The padding item 0 is never a target and never a candidate: its logit is
masked to ``NEG_INF``, a large negative number that is finite, so a masked term times zero stays
zero.

The reductions return ``(sum of weighted terms, normaliser)`` apart, so a data-parallel caller can
sum both across devices before dividing (an exact global mean).

A sampling distribution is a ``[N + 1]`` array of log probabilities indexed by item id; item 0
has ``NEG_INF`` and is never drawn. The same array gives the logQ correction of
``sampled_softmax_nll``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

Array = Any
NEG_INF = -1e30  # the masked logit; finite so that 0 * masked stays 0
NORMALIZATIONS = ("weight", "count")


def catalogue_logits(query: Array, cand_emb: Array) -> Array:
  """Logits ``[..., N + 1]``: ``query [..., d]`` against ``cand_emb [N + 1, d]``; item 0 masked."""
  logits = jnp.einsum("...d,nd->...n", query, cand_emb, preferred_element_type=jnp.float32)
  return logits.at[..., 0].set(NEG_INF)


def full_softmax_nll(query: Array, cand_emb: Array, targets: Array) -> Array:
  """Negative log-likelihoods of ``targets [..., k]`` under the softmax of ``query [..., d]``.

  The softmax runs over the whole catalogue ``cand_emb [N + 1, d]`` minus item 0; one softmax per
  query serves all its ``k`` targets. Terms whose target is 0 are garbage; mask them.
  """
  logits = catalogue_logits(query, cand_emb)
  lse = jax.nn.logsumexp(logits, axis=-1)
  target_logits = jnp.take_along_axis(logits, targets, axis=-1)
  return lse[..., None] - target_logits


def needed_full_softmax_nll(query: Array, cand_emb: Array, targets: Array, needed: Array,
                            chunk: int = 256) -> Array:
  """``full_softmax_nll`` computed only for the queries that have a valid term.

  A training window is mostly padding on short-history data (Amazon Toys: 8.6 items per user
  against a window of 51), and the catalogue softmax is the largest matmul of a step. Here the
  queries are ordered needed-first (a stable sort, so their order is kept), cut into chunks of
  ``chunk`` rows, and each chunk runs the full softmax only when it holds a needed query
  (``lax.cond`` under ``lax.map``; the backward pass skips the same chunks). So the softmax costs
  about ``ceil(needed / chunk) * chunk`` rows instead of all of them, with static shapes and one
  compiled program whatever the number of real targets.

  Args:
    query: ``[..., d]``.
    cand_emb: ``[N + 1, d]``.
    targets: ``[..., k]``.
    needed: ``[...]`` bool: the queries with at least one valid term.
    chunk: rows per chunk.

  Returns:
    ``[..., k]``: the terms of ``full_softmax_nll`` (equal up to float rounding) for the needed
    queries, 0 for the others.
  """
  lead = needed.shape
  q = query.reshape(-1, query.shape[-1])
  t = targets.reshape(-1, targets.shape[-1])
  m = q.shape[0]
  chunk = max(1, min(chunk, m))
  chunks = -(-m // chunk)
  order = jnp.argsort(~needed.reshape(-1), stable=True)  # needed rows first
  pad = chunks * chunk - m
  q_sorted = jnp.pad(q[order], ((0, pad), (0, 0))).reshape(chunks, chunk, -1)
  t_sorted = jnp.pad(t[order], ((0, pad), (0, 0))).reshape(chunks, chunk, -1)
  n_sorted = jnp.pad(needed.reshape(-1)[order], (0, pad)).reshape(chunks, chunk)
  num_needed = jnp.sum(needed.astype(jnp.int32))

  def one(args):
    i, qc, tc, nc = args
    return jax.lax.cond(i * chunk < num_needed,
                        lambda: jnp.where(nc[:, None], full_softmax_nll(qc, cand_emb, tc), 0.0),
                        lambda: jnp.zeros(tc.shape, jnp.float32))

  nll = jax.lax.map(one, (jnp.arange(chunks), q_sorted, t_sorted, n_sorted))
  nll = nll.reshape(chunks * chunk, -1)[:m]
  out = jnp.zeros_like(nll).at[order].set(nll, unique_indices=True)
  return out.reshape(*lead, -1)


def sampled_softmax_nll(query: Array, target_emb: Array, targets: Array, neg_emb: Array,
                        neg_ids: Array, target_log_q: Array | None = None,
                        neg_log_q: Array | None = None) -> Array:
  """Sampled-softmax negative log-likelihoods with shared negatives and logQ correction.

  Each term's softmax runs over its target and the ``S`` shared negatives. With logQ correction
  every logit ``s_i`` becomes ``s_i - log q(i)`` (target included, as in TensorFlow's
  ``sampled_softmax_loss``), which makes the sampled softmax an unbiased-in-the-limit estimate
  of the full one. A negative equal to the term's target (an accidental hit) or to the padding
  item is masked out.

  Args:
    query: ``[..., d]``.
    target_emb: ``[..., k, d]``, the embeddings of ``targets``.
    targets: ``[..., k]`` item ids.
    neg_emb: ``[S, d]``.
    neg_ids: ``[S]`` item ids.
    target_log_q: ``[..., k]`` log sampling probabilities of the targets, or None (no correction).
    neg_log_q: ``[S]`` log sampling probabilities of the negatives, or None.

  Returns:
    ``[..., k]`` negative log-likelihoods.

  Raises:
    ValueError: only one of ``target_log_q`` and ``neg_log_q`` given.
  """
  pos = jnp.einsum("...d,...kd->...k", query, target_emb, preferred_element_type=jnp.float32)
  neg = jnp.einsum("...d,sd->...s", query, neg_emb, preferred_element_type=jnp.float32)
  if (target_log_q is None) != (neg_log_q is None):
    raise ValueError("Give both target_log_q and neg_log_q for logQ correction, or neither.")
  if target_log_q is not None:
    pos = pos - target_log_q
    neg = neg - neg_log_q
  hit = (neg_ids == targets[..., None]) | (neg_ids == 0)  # [..., k, S]
  neg = jnp.where(hit, NEG_INF, neg[..., None, :])
  lse = jax.nn.logsumexp(jnp.concatenate([pos[..., None], neg], axis=-1), axis=-1)
  return lse - pos


def weighted_sums(nll: Array, valid: Array, weights: Array,
                  normalize: str = "weight") -> tuple[Array, Array]:
  """``(sum of weighted valid terms, normaliser)``; their ratio is the loss.

  Args:
    nll: ``[..., k]`` per-term losses (garbage where not ``valid``).
    valid: bool, the shape of ``nll``.
    weights: broadcast against ``nll`` (e.g. ``[k]`` per-step weights).
    normalize: ``weight`` (divide by the sum of the valid terms' weights: a weighted mean) or
      ``count`` (divide by the number of valid terms).

  Returns:
    Both scalars, apart, so a data-parallel caller can sum them across devices before dividing.
  """
  if normalize not in NORMALIZATIONS:
    raise ValueError(f"Unknown normalize {normalize!r}; use one of {NORMALIZATIONS}.")
  w = jnp.where(valid, weights, 0.0)
  total = jnp.sum(jnp.where(valid, nll, 0.0) * w)
  denom = jnp.sum(w) if normalize == "weight" else jnp.sum(valid.astype(jnp.float32))
  return total, denom


def ratio(total: Array, denom: Array) -> Array:
  """``total / denom``, and 0 (not NaN) when there is no valid term."""
  return total / jnp.maximum(denom, 1e-9)


# -- negative samplers ---------------------------------------------------------------------------

def uniform_log_q(num_items: int) -> Array:
  """Log probabilities ``[N + 1]`` of uniform sampling over items ``1..N`` (item 0 never)."""
  log_q = jnp.full((num_items + 1,), -jnp.log(float(num_items)), jnp.float32)
  return log_q.at[0].set(NEG_INF)


def popularity_log_q(counts: Array, power: float = 1.0) -> Array:
  """Log probabilities ``[N + 1]`` proportional to ``counts**power`` (item 0 never sampled).

  Every real item keeps a count of at least 1, so none has probability zero.
  """
  counts = jnp.maximum(jnp.asarray(counts, jnp.float32), 1.0) ** power
  counts = counts.at[0].set(0.0)
  log_q = jnp.log(counts) - jnp.log(jnp.sum(counts))
  return jnp.where(jnp.arange(counts.shape[0]) == 0, NEG_INF, log_q)


def sample_negatives(rng: Array, num_negatives: int, log_q: Array) -> Array:
  """``[S]`` negatives drawn with replacement from ``exp(log_q)`` (one draw per batch)."""
  return jax.random.categorical(rng, log_q, shape=(num_negatives,)).astype(jnp.int32)
