"""The training loss of a model under a ``config.loss`` section, as one pure function.

``make_loss_fn(model, config)`` returns ``loss_fn(params, batch, features, rng, train=True,
log_q=None) -> (loss, aux)``, ready for ``jax.value_and_grad(..., has_aux=True)`` inside a train
step. It chooses the objective (LMP or the masked-item cloze loss), the full or sampled softmax,
and draws the dropout, masking and negative-sampling randomness from ``rng``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from heterrec_jax import losses

Array = Any
OBJECTIVES = ("lmp", "cloze")
SAMPLERS = ("uniform", "popularity")


def default_loss_config() -> ml_collections.ConfigDict:
  """The ``config.loss`` keys ``make_loss_fn`` reads, with their defaults."""
  c = ml_collections.ConfigDict()
  c.objective = "lmp"  # lmp | cloze (cloze needs the bert4rec model)
  c.k = 1  # LMP steps; 1 = next-item cross-entropy
  c.gamma = 1.0  # LMP step decay, weight gamma**(j-1)
  c.normalize = "weight"  # weight | count (losses module docstring)
  c.num_negatives = 0  # 0 = full softmax; > 0 = sampled softmax with this many shared negatives
  c.sampler = "uniform"  # uniform | popularity (popularity needs log_q passed to loss_fn)
  c.logq_correction = True
  c.mask_prob = 0.2  # cloze masking probability
  c.mask_last_prob = 0.0  # cloze: share of rows that mask only their last item (next-item rows)
  return c


def _config_with_defaults(config: Mapping[str, Any] | None) -> ml_collections.ConfigDict:
  merged = default_loss_config()
  config = config or {}
  unknown = sorted(set(config.keys()) - set(merged.keys()))
  if unknown:
    raise ValueError(f"Unknown loss config keys {unknown}; known: {sorted(merged.keys())}.")
  for key in config.keys():
    merged[key] = config[key]
  if merged.objective not in OBJECTIVES:
    raise ValueError(f"Unknown loss.objective {merged.objective!r}; use one of {OBJECTIVES}.")
  if merged.sampler not in SAMPLERS:
    raise ValueError(f"Unknown loss.sampler {merged.sampler!r}; use one of {SAMPLERS}.")
  if merged.normalize not in losses.NORMALIZATIONS:
    raise ValueError(f"Unknown loss.normalize {merged.normalize!r}.")
  for key in ("mask_prob", "mask_last_prob"):
    if not 0.0 <= merged[key] <= 1.0:
      raise ValueError(f"loss.{key} must be in [0, 1], got {merged[key]}.")
  if merged.k < 1:
    raise ValueError(f"loss.k must be >= 1, got {merged.k}.")
  return merged


def make_loss_fn(model: nn.Module, config: Mapping[str, Any] | None = None) -> Callable[..., Any]:
  """Builds the loss function of ``model`` under the ``config.loss`` section.

  Args:
    model: a model from ``models.get_model``.
    config: keys of ``default_loss_config``; missing keys take defaults.

  Returns:
    ``loss_fn(params, batch, features, rng, train=True, log_q=None) -> (loss, aux)``. ``batch``
    holds ``item_ids [B, L]`` and, optionally, ``target_mask [B, L]`` bool: the items that count
    as targets (strided training windows; every real item when absent). ``log_q [N + 1]`` is the
    popularity sampler's log probability per item (``losses.popularity_log_q``; required by that
    sampler, ignored otherwise). ``aux`` has ``loss_sum`` and ``loss_weight`` (their ratio is the
    loss; sum both across devices for an exact global mean) and ``num_targets`` (next-item or masked-item targets, for throughput).

  Raises:
    ValueError: a bad key or value, or the cloze objective on a model without a mask token.
  """
  c = _config_with_defaults(config)
  if c.objective == "cloze" and model.mask_token_id is None:
    raise ValueError("The cloze objective needs a model with a mask token (model.name bert4rec).")
  if c.objective == "lmp" and model.mask_token_id is not None:
    raise ValueError("LMP needs a causal model; bert4rec attends both ways and would see its "
                     "targets. Use loss.objective = 'cloze'.")
  num_items = model.num_items
  sampled = c.num_negatives > 0
  weights = losses.step_weights(c.k, c.gamma)

  def embed(params, features, ids):
    return model.apply({"params": params}, features, ids, method="item_embeddings")

  def loss_fn(params, batch, features, rng, train=True, log_q=None):
    rng_dropout, rng_mask, rng_neg = jax.random.split(rng, 3)
    ids = jnp.asarray(batch["item_ids"], jnp.int32)
    counts = batch.get("target_mask")  # [B, L] bool: which items of the window are targets
    if c.objective == "cloze":
      inputs, targets = losses.mask_items(rng_mask, ids, c.mask_prob, model.mask_token_id,
                                          c.mask_last_prob)
      valid = targets != 0
      if counts is not None:
        valid &= counts
      targets, valid, step_w = targets[..., None], valid[..., None], jnp.ones((1,))
      normalize = "count"
    else:
      inputs = ids
      targets, valid = losses.lmp_targets(ids, c.k)
      if counts is not None:
        valid &= losses.lmp_targets(counts.astype(jnp.int32), c.k)[0] != 0
      step_w, normalize = weights, c.normalize
    hidden = model.apply({"params": params}, {"item_ids": inputs}, features, train=train,
                         rngs={"dropout": rng_dropout})
    if not sampled:
      nll = losses.full_softmax_nll(hidden, embed(params, features, jnp.arange(num_items + 1)),
                                    targets)
    else:
      if c.sampler == "uniform":
        log_q = losses.uniform_log_q(num_items)
      elif log_q is None:
        raise ValueError("The popularity sampler needs log_q (losses.popularity_log_q).")
      neg_ids = losses.sample_negatives(rng_neg, c.num_negatives, log_q)
      correct = c.logq_correction
      nll = losses.sampled_softmax_nll(
          hidden, embed(params, features, targets), targets, embed(params, features, neg_ids),
          neg_ids, log_q[targets] if correct else None, log_q[neg_ids] if correct else None)
    total, denom = losses.weighted_sums(nll, valid, step_w, normalize)
    loss = total / jnp.maximum(denom, 1e-9)
    aux = {"loss_sum": total, "loss_weight": denom,
           "num_targets": jnp.sum(valid[..., 0].astype(jnp.int32))}
    return loss, aux

  return loss_fn
