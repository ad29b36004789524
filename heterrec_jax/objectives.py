"""HeterRec's training objectives, and ``make_loss_fn``: the loss training calls, built from them.

LMP, listwise multi-step prediction: the state at position ``t`` predicts each of the items
``t+1 .. t+k`` with a softmax over the catalogue; the ``j``-th step has weight ``gamma**(j-1)``. A
term ``(t, j)`` is valid when the item at ``t`` and the item at ``t+j`` are both real (not padding),
``t+j < L`` and, with a ``target_mask`` (strided training windows), the item at ``t+j`` is a
counted target. Normalisation (``normalize``):

* ``weight`` (default): ``sum(w * nll) / sum(w)`` over the valid terms, a weighted mean whose
  scale does not depend on ``k`` or ``gamma``;
* ``count``: ``sum(w * nll) / (number of valid terms)``.

For ``k = 1`` both are the plain mean next-item cross-entropy over the valid positions.

Cloze (BERT4Rec): each real item is replaced by the mask token with some probability
(``mask_items``); the loss is the mean cross-entropy over the masked positions.

Each loss function returns ``(loss, aux)``: ``aux`` has ``loss_sum`` and ``loss_weight`` (their
ratio is the loss; a data-parallel step sums both across devices for an exact global mean) and
``num_targets`` (next-item or masked-item targets, the unit of throughput). ``make_loss_fn``
calls exactly these functions, so the functions the tests check are the ones training runs.
The softmaxes themselves (full, sampled with logQ) are ``common.recsys.losses``.
"""

from __future__ import annotations

from collections.abc import Callable
import functools
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from common.recsys import losses
from heterrec_jax.config import LossConfig

Array = Any
LossAux = dict[str, Array]
EmbedFn = Callable[[Array], Array]


def _ahead(x: Array, k: int) -> Array:
  """``[B, L, k]``: ``x`` at ``t + 1 .. t + k`` (0 past the end)."""
  length = x.shape[1]
  padded = jnp.pad(x, ((0, 0), (0, k)))
  return jnp.stack([padded[:, j:j + length] for j in range(1, k + 1)], axis=-1)


def lmp_targets(item_ids: Array, k: int, target_mask: Optional[Array] = None,
                segment_ids: Optional[Array] = None) -> tuple[Array, Array]:
  """The LMP targets ``[B, L, k]`` (item at ``t + j``, 0 past the end) and their validity.

  Args:
    item_ids: ``[B, L]``, 0 = padding.
    k: steps predicted from each position.
    target_mask: ``[B, L]`` bool, the items that count as targets (all real items when None).
    segment_ids: ``[B, L]``, the packed sequence of each position (``common.recsys.packing``); a
      target must be in the same segment as its position. None = one sequence per row.
  """
  if k < 1:
    raise ValueError(f"LMP needs k >= 1, got {k}.")
  targets = _ahead(item_ids, k)
  valid = (item_ids != 0)[..., None] & (targets != 0)
  if target_mask is not None:
    valid &= _ahead(target_mask.astype(jnp.int32), k) != 0
  if segment_ids is not None:
    valid &= _ahead(segment_ids, k) == segment_ids[..., None]
  return targets, valid


def step_weights(k: int, gamma: float) -> Array:
  """``[gamma**0, ..., gamma**(k-1)]``, a concrete array even inside a traced function.

  Computed eagerly, it enters a jitted loss as a constant (not as ops of the program), which
  is how the trainer's numbers were fixed (one program computing it gave other float rounding in
  the loss sum).
  """
  with jax.ensure_compile_time_eval():
    return jnp.asarray(gamma, jnp.float32) ** jnp.arange(k, dtype=jnp.float32)


def _full_nll(hidden: Array, cand_emb: Array, targets: Array, valid: Array, chunk: int) -> Array:
  """Full-softmax terms: dense over every position (``chunk`` 0) or only where a term is valid."""
  if not chunk:
    return losses.full_softmax_nll(hidden, cand_emb, targets)
  return losses.needed_full_softmax_nll(hidden, cand_emb, targets, jnp.any(valid, axis=-1), chunk)


def _finish(nll: Array, valid: Array, weights: Array, normalize: str) -> tuple[Array, LossAux]:
  total, denom = losses.weighted_sums(nll, valid, weights, normalize)
  loss = losses.ratio(total, denom)
  return loss, {"loss_sum": total, "loss_weight": denom,
                "num_targets": jnp.sum(valid[..., 0].astype(jnp.int32))}


def lmp_loss(hidden: Array, cand_emb: Array, item_ids: Array, *, k: int = 1, gamma: float = 1.0,
             normalize: str = "weight", target_mask: Optional[Array] = None,
             softmax_chunk: int = 0,
             segment_ids: Optional[Array] = None) -> tuple[Array, LossAux]:
  """LMP with a full softmax over the catalogue.

  Args:
    hidden: ``[B, L, d]`` states; position ``t`` predicts ``t+1 .. t+k``.
    cand_emb: ``[N + 1, d]`` candidate embeddings (row 0 = padding, masked).
    item_ids: ``[B, L]`` the sequences the states were computed from (0 = padding).
    k: steps predicted from each position.
    gamma: step decay; step ``j`` has weight ``gamma**(j-1)``.
    normalize: ``weight`` or ``count`` (module docstring).
    target_mask: ``[B, L]`` bool, the items that count as targets, or None (every real item).
    softmax_chunk: 0 = the softmax at every position; ``c`` > 0 = only at the positions with a
      valid term, ``c`` rows at a time (``losses.needed_full_softmax_nll``).
    segment_ids: ``[B, L]`` packed-row segments (``lmp_targets``), or None.

  Returns:
    ``(loss, aux)``; the loss is 0 when the batch has no valid term.
  """
  targets, valid = lmp_targets(item_ids, k, target_mask, segment_ids)
  nll = _full_nll(hidden, cand_emb, targets, valid, softmax_chunk)
  return _finish(nll, valid, step_weights(k, gamma), normalize)


def sampled_lmp_loss(hidden: Array, item_ids: Array, neg_ids: Array, embed: EmbedFn, *,
                     k: int = 1, gamma: float = 1.0, log_q: Optional[Array] = None,
                     normalize: str = "weight", target_mask: Optional[Array] = None,
                     segment_ids: Optional[Array] = None) -> tuple[Array, LossAux]:
  """LMP with a sampled softmax over shared negatives (``losses.sampled_softmax_nll``).

  Args:
    hidden: ``[B, L, d]``.
    item_ids: ``[B, L]``.
    neg_ids: ``[S]`` negatives shared by the whole batch (``losses.sample_negatives``).
    embed: ``ids -> [*ids.shape, d]`` candidate embeddings (of the targets and the negatives).
    k: steps.
    gamma: step decay.
    log_q: ``[N + 1]`` log sampling probability of every item for logQ correction, or None.
    normalize: ``weight`` or ``count``.
    target_mask: ``[B, L]`` bool, the items that count as targets, or None.
    segment_ids: ``[B, L]`` packed-row segments, or None.

  Returns:
    ``(loss, aux)``.
  """
  targets, valid = lmp_targets(item_ids, k, target_mask, segment_ids)
  target_emb, neg_emb = embed(targets), embed(neg_ids)
  target_log_q = None if log_q is None else log_q[targets]
  neg_log_q = None if log_q is None else log_q[neg_ids]
  nll = losses.sampled_softmax_nll(hidden, target_emb, targets, neg_emb, neg_ids, target_log_q,
                                   neg_log_q)
  return _finish(nll, valid, step_weights(k, gamma), normalize)


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


def _cloze_valid(labels: Array, target_mask: Optional[Array]) -> Array:
  valid = labels != 0
  if target_mask is not None:
    valid &= target_mask
  return valid[..., None]


def masked_item_loss(hidden: Array, cand_emb: Array, labels: Array,
                     target_mask: Optional[Array] = None,
                     softmax_chunk: int = 0) -> tuple[Array, LossAux]:
  """Cloze loss: mean full-softmax cross-entropy over the masked positions (``labels != 0``).

  Args:
    hidden: ``[B, L, d]`` states of the masked inputs.
    cand_emb: ``[N + 1, d]``.
    labels: ``[B, L]`` from ``mask_items``.
    target_mask: ``[B, L]`` bool, the items that count as targets, or None.
    softmax_chunk: as for ``lmp_loss``.
  """
  targets = labels[..., None]
  valid = _cloze_valid(labels, target_mask)
  nll = _full_nll(hidden, cand_emb, targets, valid, softmax_chunk)
  return _finish(nll, valid, jnp.ones((1,)), "count")


def sampled_masked_item_loss(hidden: Array, labels: Array, neg_ids: Array, embed: EmbedFn,
                             log_q: Optional[Array] = None,
                             target_mask: Optional[Array] = None) -> tuple[Array, LossAux]:
  """Cloze loss with the sampled softmax of ``losses.sampled_softmax_nll``.

  Args:
    hidden: ``[B, L, d]``.
    labels: ``[B, L]`` from ``mask_items``.
    neg_ids: ``[S]`` shared negatives.
    embed: ``ids -> [*ids.shape, d]`` candidate embeddings.
    log_q: ``[N + 1]`` log sampling probabilities for logQ correction, or None.
    target_mask: ``[B, L]`` bool, the items that count as targets, or None.
  """
  targets = labels[..., None]
  target_emb, neg_emb = embed(targets), embed(neg_ids)
  target_log_q = None if log_q is None else log_q[targets]
  neg_log_q = None if log_q is None else log_q[neg_ids]
  nll = losses.sampled_softmax_nll(hidden, target_emb, targets, neg_emb, neg_ids, target_log_q,
                                   neg_log_q)
  return _finish(nll, _cloze_valid(labels, target_mask), jnp.ones((1,)), "count")


def make_loss_fn(model: nn.Module, config: LossConfig) -> Callable[..., Any]:
  """Builds the training loss of ``model`` under ``config``.

  Args:
    model: a model from ``models.get_model``.
    config: from ``config.loss_config`` (or ``config.validate``), which has checked that the
      objective fits the model.

  Returns:
    ``loss_fn(params, batch, features, rng, train=True, log_q=None) -> (loss, aux)``. ``batch``
    holds ``item_ids [B, L]`` and, optionally, ``target_mask [B, L]`` bool: the items that count
    as targets (strided training windows; every real item when absent). ``log_q [N + 1]`` is the
    popularity sampler's log probability per item (``losses.popularity_log_q``; required by that
    sampler, ignored otherwise). ``aux`` as in the module docstring.
  """
  c = config
  num_items = model.num_items

  def embed(params, features, ids):
    return model.apply({"params": params}, features, ids, method="item_embeddings")

  def negatives(rng, log_q):
    if c.sampler == "uniform":
      log_q = losses.uniform_log_q(num_items)
    elif log_q is None:
      raise ValueError("The popularity sampler needs log_q (losses.popularity_log_q).")
    return losses.sample_negatives(rng, c.num_negatives, log_q), log_q

  def loss_fn(params, batch, features, rng, train=True, log_q=None):
    rng_dropout, rng_mask, rng_neg = jax.random.split(rng, 3)
    ids = jnp.asarray(batch["item_ids"], jnp.int32)
    counted = batch.get("target_mask")  # [B, L] bool: which items of the window are targets
    if c.objective == "cloze":
      inputs, labels = mask_items(rng_mask, ids, c.mask_prob, model.mask_token_id,
                                  c.mask_last_prob)
    else:
      inputs = ids
    segments = batch.get("segment_ids")  # packed rows (common.recsys.packing), or None
    model_batch = {"item_ids": inputs}
    for key in ("segment_ids", "positions"):
      if key in batch:
        model_batch[key] = jnp.asarray(batch[key], jnp.int32)
    hidden = model.apply({"params": params}, model_batch, features, train=train,
                         rngs={"dropout": rng_dropout})
    if c.num_negatives == 0:
      cand_emb = embed(params, features, jnp.arange(num_items + 1))
      if c.objective == "cloze":
        return masked_item_loss(hidden, cand_emb, labels, counted, c.softmax_chunk)
      return lmp_loss(hidden, cand_emb, ids, k=c.k, gamma=c.gamma, normalize=c.normalize,
                      target_mask=counted, softmax_chunk=c.softmax_chunk, segment_ids=segments)
    neg_ids, log_q = negatives(rng_neg, log_q)
    log_q = log_q if c.logq_correction else None
    embed_ids = functools.partial(embed, params, features)
    if c.objective == "cloze":
      return sampled_masked_item_loss(hidden, labels, neg_ids, embed_ids, log_q, counted)
    return sampled_lmp_loss(hidden, ids, neg_ids, embed_ids, k=c.k, gamma=c.gamma, log_q=log_q,
                            normalize=c.normalize, target_mask=counted, segment_ids=segments)

  return loss_fn
