"""Training objectives: LMP (full and sampled softmax) and the masked-item (cloze) loss.

All losses score a state ``h`` against candidate embeddings ``e`` by ``h . e`` and are pure
functions of arrays. The padding item 0 is never a target and never a candidate: its logit is
masked to a large negative number (finite, so a masked term times zero stays zero).

LMP, listwise multi-step prediction: the state at position ``t`` predicts each of the items
``t+1 .. t+k`` with a softmax over the catalogue; the ``j``-th step has weight ``gamma**(j-1)``. A
term ``(t, j)`` is valid when the item at ``t`` and the item at ``t+j`` are both real (not padding)
and ``t+j < L``. Normalisation (a switch, ``normalize``):

* ``weight`` (default): ``sum(w * nll) / sum(w)`` over the valid terms, a weighted mean whose
  scale does not depend on ``k`` or ``gamma``;
* ``count``: ``sum(w * nll) / (number of valid terms)``.

For ``k = 1`` both are the plain mean next-item cross-entropy over the valid positions.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

Array = Any
NEG_INF = -1e30  # the masked logit; finite so that 0 * masked stays 0
NORMALIZATIONS = ("weight", "count")


def _logits(query: Array, cand_emb: Array) -> Array:
  logits = jnp.einsum("...d,nd->...n", query, cand_emb, preferred_element_type=jnp.float32)
  return logits.at[..., 0].set(NEG_INF)


def full_softmax_nll(query: Array, cand_emb: Array, targets: Array) -> Array:
  """Negative log-likelihoods of ``targets [..., k]`` under the softmax of ``query [..., d]``.

  The softmax runs over the whole catalogue ``cand_emb [N + 1, d]`` minus item 0; one softmax per
  query serves all its ``k`` targets. Terms whose target is 0 are garbage; mask them.
  """
  logits = _logits(query, cand_emb)
  lse = jax.nn.logsumexp(logits, axis=-1)
  target_logits = jnp.take_along_axis(logits, targets, axis=-1)
  return lse[..., None] - target_logits


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


def lmp_targets(item_ids: Array, k: int) -> tuple[Array, Array]:
  """The LMP targets ``[B, L, k]`` (item at ``t + j``, 0 past the end) and their validity mask."""
  if k < 1:
    raise ValueError(f"LMP needs k >= 1, got {k}.")
  length = item_ids.shape[1]
  padded = jnp.pad(item_ids, ((0, 0), (0, k)))
  targets = jnp.stack([padded[:, j:j + length] for j in range(1, k + 1)], axis=-1)
  valid = (item_ids != 0)[..., None] & (targets != 0)
  return targets, valid


def step_weights(k: int, gamma: float) -> Array:
  """``[gamma**0, ..., gamma**(k-1)]``."""
  return jnp.asarray(gamma, jnp.float32) ** jnp.arange(k, dtype=jnp.float32)


def weighted_sums(nll: Array, valid: Array, weights: Array,
                  normalize: str = "weight") -> tuple[Array, Array]:
  """``(sum of weighted valid terms, normaliser)``; their ratio is the loss.

  Returned apart so a data-parallel caller can sum both across devices before dividing.
  """
  if normalize not in NORMALIZATIONS:
    raise ValueError(f"Unknown normalize {normalize!r}; use one of {NORMALIZATIONS}.")
  w = jnp.where(valid, weights, 0.0)
  total = jnp.sum(jnp.where(valid, nll, 0.0) * w)
  denom = jnp.sum(w) if normalize == "weight" else jnp.sum(valid.astype(jnp.float32))
  return total, denom


def _ratio(total: Array, denom: Array) -> Array:
  return total / jnp.maximum(denom, 1e-9)


def lmp_loss(hidden: Array, cand_emb: Array, item_ids: Array, *, k: int = 1, gamma: float = 1.0,
             normalize: str = "weight") -> Array:
  """LMP with a full softmax over the catalogue.

  Args:
    hidden: ``[B, L, d]`` states; position ``t`` predicts ``t+1 .. t+k``.
    cand_emb: ``[N + 1, d]`` candidate embeddings (row 0 = padding, masked).
    item_ids: ``[B, L]`` the sequences the states were computed from (0 = padding).
    k: steps predicted from each position.
    gamma: step decay; step ``j`` has weight ``gamma**(j-1)``.
    normalize: ``weight`` or ``count`` (module docstring).

  Returns:
    The scalar loss (0 when the batch has no valid term).
  """
  targets, valid = lmp_targets(item_ids, k)
  nll = full_softmax_nll(hidden, cand_emb, targets)
  return _ratio(*weighted_sums(nll, valid, step_weights(k, gamma), normalize))


def sampled_lmp_loss(hidden: Array, item_ids: Array, target_emb: Array, neg_ids: Array,
                     neg_emb: Array, *, k: int = 1, gamma: float = 1.0,
                     log_q: Array | None = None, normalize: str = "weight") -> Array:
  """LMP with a sampled softmax over shared negatives.

  Args:
    hidden: ``[B, L, d]``.
    item_ids: ``[B, L]``.
    target_emb: ``[B, L, k, d]`` embeddings of ``lmp_targets(item_ids, k)[0]``.
    neg_ids: ``[S]`` negatives shared by the whole batch (``sample_negatives``).
    neg_emb: ``[S, d]`` their embeddings.
    k: steps.
    gamma: step decay.
    log_q: ``[N + 1]`` log sampling probability of every item for logQ correction, or None.
    normalize: ``weight`` or ``count``.

  Returns:
    The scalar loss.
  """
  targets, valid = lmp_targets(item_ids, k)
  target_log_q = None if log_q is None else log_q[targets]
  neg_log_q = None if log_q is None else log_q[neg_ids]
  nll = sampled_softmax_nll(hidden, target_emb, targets, neg_emb, neg_ids, target_log_q,
                            neg_log_q)
  return _ratio(*weighted_sums(nll, valid, step_weights(k, gamma), normalize))


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


def mask_items(rng: Array, item_ids: Array, mask_prob: float, mask_id: int,
               mask_last_prob: float = 0.0) -> tuple[Array, Array]:
  """BERT4Rec masking: each real item is replaced by ``mask_id`` with probability ``mask_prob``.

  With ``mask_last_prob > 0``, each row is instead, with that probability, a next-item sample:
  only its last real item is masked (BERT4Rec's paper, section 3.6; RecBole's ``ft_ratio``). That
  is exactly the inference input, the mask after the history, with nothing to its right.

  Returns:
    ``(inputs, labels)``, both ``[B, L]``; ``labels`` holds the original id at masked positions
    and 0 elsewhere.
  """
  rng_items, rng_rows = jax.random.split(rng) if mask_last_prob > 0 else (rng, None)
  real = item_ids != 0
  hidden = jax.random.bernoulli(rng_items, mask_prob, item_ids.shape) & real
  if mask_last_prob > 0:
    pos = jnp.arange(item_ids.shape[1])
    last = jnp.max(jnp.where(real, pos, -1), axis=1, keepdims=True)
    only_last = jax.random.bernoulli(rng_rows, mask_last_prob, (item_ids.shape[0], 1))
    hidden = jnp.where(only_last, pos[None] == last, hidden)
  return jnp.where(hidden, mask_id, item_ids), jnp.where(hidden, item_ids, 0)


def masked_item_loss(hidden: Array, cand_emb: Array, labels: Array) -> Array:
  """Cloze loss: mean full-softmax cross-entropy over the masked positions (``labels != 0``)."""
  nll = full_softmax_nll(hidden, cand_emb, labels[..., None])[..., 0]
  valid = labels != 0
  return _ratio(*weighted_sums(nll, valid, jnp.ones(()), "count"))


def sampled_masked_item_loss(hidden: Array, labels: Array, label_emb: Array, neg_ids: Array,
                             neg_emb: Array, log_q: Array | None = None) -> Array:
  """Cloze loss with the sampled softmax of ``sampled_softmax_nll`` (``label_emb [B, L, d]``)."""
  target_log_q = None if log_q is None else log_q[labels][..., None]
  neg_log_q = None if log_q is None else log_q[neg_ids]
  nll = sampled_softmax_nll(hidden, label_emb[..., None, :], labels[..., None], neg_emb, neg_ids,
                            target_log_q, neg_log_q)[..., 0]
  return _ratio(*weighted_sums(nll, labels != 0, jnp.ones(()), "count"))
