"""Full-ranking metrics: HR@K, NDCG@K and MRR@K from catalogue scores, and the popularity baseline.

The metric functions are pure ``jnp`` and jittable.

The rank of a target is the number of *eligible* items whose score is strictly higher (0 = top).
Eligible: every item except the padding item 0 and, with history masking, the items of the user's
history other than the target itself (a target that also occurs in the history stays rankable).

Ties (``ties``): ``optimistic`` (default) counts only strictly higher scores, so a target tied with
other items ranks above all of them; ``pessimistic`` also counts every tied eligible item. They
agree whenever scores are distinct, which is the norm for float scores of a trained model; a model
that outputs a constant would look perfect under ``optimistic``, which ``pessimistic`` exposes
(report it when in doubt). A NaN target score gets the worst rank; NaN scores of other items
count as lower than the target.

With one target per user: HR@K = [rank < K], NDCG@K = [rank < K] / log2(rank + 2),
MRR@K = [rank < K] / (rank + 1). A user whose target is 0 is invalid: its metrics are 0 and
``valid`` is False. Ranks sum over the catalogue axis, so under jit with the scores sharded along
the catalogue, XLA reduces the partial counts across devices.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from common import data as data_lib

Array = Any
DEFAULT_KS = (5, 10, 20)
TIES = ("optimistic", "pessimistic")


def eligible_items(num_candidates: int, targets: Array, history: Array | None = None) -> Array:
  """``[B, N + 1]`` bool: the items a target is ranked against (and the target itself).

  Args:
    num_candidates: ``N + 1``, the catalogue size including the padding item.
    targets: ``[B]`` target ids.
    history: ``[B, H]`` ids to exclude (0 = padding, ignored), or None.
  """
  batch = targets.shape[0]
  eligible = jnp.ones((batch, num_candidates), bool)
  if history is not None:
    rows = jnp.arange(batch)[:, None]
    eligible = eligible.at[rows, history].set(False)
    eligible = eligible.at[jnp.arange(batch), targets].set(True)
  return eligible.at[:, 0].set(False)


def target_ranks(scores: Array, targets: Array, history: Array | None = None,
                 ties: str = "optimistic") -> Array:
  """0-based ranks ``[B]`` (int32) of ``targets [B]`` among ``scores [B, N + 1]``.

  See the module docstring for eligibility, ties and NaN handling.
  """
  if ties not in TIES:
    raise ValueError(f"Unknown ties {ties!r}; use one of {TIES}.")
  scores = scores.astype(jnp.float32)
  eligible = eligible_items(scores.shape[1], targets, history)
  target_score = jnp.take_along_axis(scores, targets[:, None], axis=1)
  higher = jnp.sum(eligible & (scores > target_score), axis=1)
  if ties == "pessimistic":
    # The target is eligible and equal to itself, so it is one of the ties; do not count it.
    higher = higher + jnp.sum(eligible & (scores == target_score), axis=1) - 1
  worst = jnp.sum(eligible, axis=1) - 1
  return jnp.where(jnp.isnan(target_score[:, 0]), worst, higher).astype(jnp.int32)


def metrics_from_ranks(ranks: Array, valid: Array | None = None,
                       ks: Sequence[int] = DEFAULT_KS) -> dict[str, Array]:
  """Per-user ``hr@K``, ``ndcg@K``, ``mrr@K`` (float32 ``[B]``) and ``valid`` from 0-based ranks."""
  ranks = jnp.asarray(ranks)
  valid = jnp.ones(ranks.shape, bool) if valid is None else valid
  rank_f = ranks.astype(jnp.float32)
  out = {}
  for k in ks:
    hit = valid & (ranks < k)
    out[f"hr@{k}"] = hit.astype(jnp.float32)
    out[f"ndcg@{k}"] = jnp.where(hit, 1.0 / jnp.log2(rank_f + 2.0), 0.0)
    out[f"mrr@{k}"] = jnp.where(hit, 1.0 / (rank_f + 1.0), 0.0)
  out["valid"] = valid
  return out


def ranking_metrics(scores: Array, targets: Array, history: Array | None = None, *,
                    ks: Sequence[int] = DEFAULT_KS, ties: str = "optimistic") -> dict[str, Array]:
  """Per-user full-ranking metrics.

  Args:
    scores: ``[B, N + 1]`` scores of every catalogue item (column 0 = padding, never ranked).
    targets: ``[B]`` the held-out item of each user (0 marks a padding row).
    history: ``[B, H]`` the user's history items to exclude (history masking), or None.
    ks: cut-offs.
    ties: ``optimistic`` or ``pessimistic``.

  Returns:
    ``hr@K``, ``ndcg@K``, ``mrr@K`` for each ``K`` as float32 ``[B]``, ``rank`` (int32 ``[B]``)
    and ``valid`` (bool ``[B]``); average with ``mean_metrics``.
  """
  targets = jnp.asarray(targets, jnp.int32)
  ranks = target_ranks(scores, targets, history, ties)
  out = metrics_from_ranks(ranks, targets != 0, ks)
  out["rank"] = ranks
  return out


def mean_metrics(per_user: Mapping[str, Array]) -> dict[str, Array]:
  """Averages per-user metrics over the valid users (``rank`` and ``valid`` are dropped)."""
  valid = per_user["valid"].astype(jnp.float32)
  count = jnp.maximum(jnp.sum(valid), 1.0)
  return {name: jnp.sum(value * valid) / count for name, value in per_user.items()
          if name not in ("valid", "rank")}


def popularity_metrics(ds: data_lib.RecDataset, split: str, batch_size: int = 512,
                       mask_history: bool = True,
                       ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
  """The popularity baseline: training counts as scores, the same ranking rule and users.

  Args:
    ds: the data set.
    split: ``valid`` (scores from the train split) or ``test`` (train + valid).
    batch_size: users per batch.
    mask_history: exclude each user's seen items other than the target.
    ks: cut-offs.

  Returns:
    Mean ``hr@K``, ``ndcg@K``, ``mrr@K`` over the split's users.
  """
  counts = ds.item_counts("train" if split == "valid" else "train_valid").astype(np.float32)
  sums, n = {}, 0
  for batch in data_lib.EvalBatches(ds, split=split, max_len=1, global_batch_size=batch_size,
                                    process_index=0, process_count=1):
    scores = np.broadcast_to(counts, (len(batch["target_ids"]), len(counts)))
    per_user = ranking_metrics(scores, np.where(batch["valid"], batch["target_ids"], 0),
                               batch["seen_ids"] if mask_history else None, ks=ks)
    for k, v in mean_metrics(per_user).items():
      sums[k] = sums.get(k, 0.0) + float(v) * int(batch["valid"].sum())
    n += int(batch["valid"].sum())
  return {k: v / max(n, 1) for k, v in sorted(sums.items())}
