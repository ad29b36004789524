"""Full-ranking evaluation and exact top-K retrieval, with the catalogue sharded across devices.

Both work for any two towers: ``user_fn(params, consts, batch) -> [B, d]`` encodes the users of a
batch, ``item_fn(params, consts, ids) -> [..., d]`` embeds items, a score is their dot product.
``consts`` is whatever replicated, read-only pytree the towers need (item features).

Per evaluation batch, each device:

1. encodes its shard of the users (the batch is split along the data axis, as in training);
2. gathers every user vector, target id and seen-item list of the global batch (small arrays);
3. embeds its own slice of the catalogue (``ceil((N + 1) / D)`` items) and scores all users
   against it: for ranking it counts, per user, the eligible items of its slice that score
   strictly higher than the user's target; for retrieval it keeps its slice's top ``k``;
4. combines across devices: the counts are summed (``psum``), the global 0-based rank of each
   target; the ``D * k`` candidates are gathered and their top ``k`` kept, the exact global top k.

No device ever holds the whole ``[B, N + 1]`` score matrix or the whole catalogue's embeddings, so
a catalogue larger than one device's memory still evaluates, and the work of scoring is split
``D`` ways. The counting rule is ``metrics.target_ranks`` (optimistic ties; the padding item and,
with history masking, the user's seen items other than the target are not ranked);
``tests/recsys/test_recsys_evaluation.py`` checks both functions against dense references.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Optional

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from common import parallel
from common.recsys import metrics as metrics_lib

Array = Any
UserFn = Callable[[Any, Any, dict], Array]
ItemFn = Callable[[Any, Any, Array], Array]
EVAL_KEYS = ("history_ids", "target_ids", "seen_ids", "valid")


def score_catalogue(user: Array, items: Array) -> Array:
  """Scores ``[B, M]`` (float32) of users ``[B, d]`` against item embeddings ``[M, d]``."""
  return jnp.einsum("bd,nd->bn", user, items, preferred_element_type=jnp.float32)


def _gather(x: Array) -> Array:
  """The global batch's rows of a per-device array, on every device."""
  return lax.all_gather(x, parallel.DATA_AXIS, tiled=True)


def _catalogue_slice(num_items: int, num_devices: int) -> tuple[int, Array, Array, Array]:
  """This device's slice of item ids: ``(start, ids, real, safe_ids)``, each of length ``shard``.

  ``real`` is False for the padding item 0 and for ids past the catalogue (the last slice is
  padded); ``safe_ids`` replaces those by 0 so the towers never read out of range.
  """
  shard = -(-(num_items + 1) // num_devices)
  start = lax.axis_index(parallel.DATA_AXIS) * shard
  ids = start + jnp.arange(shard)
  real = (ids >= 1) & (ids <= num_items)
  return start, ids, real, jnp.where(real, ids, 0)


def _embed_items(item_fn: ItemFn, params, consts, ids: Array, chunk_size: int) -> Array:
  """``item_fn`` over ``ids``, ``chunk_size`` items at a time under ``lax.map`` (0 = at once)."""
  n = ids.shape[0]
  if not chunk_size or chunk_size >= n:
    return item_fn(params, consts, ids)
  chunks = -(-n // chunk_size)
  padded = jnp.pad(ids, (0, chunks * chunk_size - n)).reshape(chunks, chunk_size)
  emb = lax.map(lambda c: item_fn(params, consts, c), padded)
  return emb.reshape(chunks * chunk_size, -1)[:n]


def _seen_in_slice(seen: Array, start: Array, shard: int, shape: tuple[int, int]) -> Array:
  """``[B, shard]`` bool: which items of this device's slice each user has seen (0 = padding)."""
  local = seen - start
  in_shard = (seen > 0) & (local >= 0) & (local < shard)
  rows = jnp.broadcast_to(jnp.arange(seen.shape[0])[:, None], seen.shape)
  return jnp.zeros(shape, bool).at[rows, jnp.where(in_shard, local, shard)].set(True, mode="drop")


def make_catalogue_fn(item_fn: ItemFn, num_items: int, dp: parallel.DataParallel, *,
                      chunk_size: int = 0):
  """A data-parallel ``embed(params, consts) -> catalogue``: each device's slice of the item table.

  The result is split over ``dp``'s devices (device ``i`` holds the embeddings of its slice of
  ids, ``_catalogue_slice``) and is what ``make_rank_fn``'s and ``make_topk_fn``'s functions take
  as ``catalogue=``: an evaluation embeds the catalogue once and ranks every batch of users
  against it, instead of re-embedding all items for each batch.
  """
  def per_device(params, consts):
    _, _, _, safe_ids = _catalogue_slice(num_items, dp.num_devices)
    return _embed_items(item_fn, params, consts, safe_ids, chunk_size)

  return dp.wrap(per_device, (parallel.REPLICATED, parallel.REPLICATED), parallel.SHARDED)


def _with_catalogue(embed, ranked):
  """``fn(params, consts, batch, catalogue=None)``: embeds the catalogue when not given one."""
  def fn(params, consts, batch, catalogue=None):
    if catalogue is None:
      catalogue = embed(params, consts)
    return ranked(params, consts, catalogue, batch)

  fn.embed_catalogue = embed
  return fn


def make_rank_fn(user_fn: UserFn, item_fn: ItemFn, num_items: int, dp: parallel.DataParallel, *,
                 mask_history: bool = True, chunk_size: int = 0):
  """A data-parallel ``rank(params, consts, batch, catalogue=None) -> ranks [B_global]``.

  Args:
    user_fn: ``(params, consts, batch) -> [B, d]``, for one device's rows of the batch.
    item_fn: ``(params, consts, ids) -> [*ids.shape, d]``.
    num_items: real items ``1..num_items``; item 0 is padding and never ranked.
    dp: the data-parallel layout (its devices shard the catalogue).
    mask_history: exclude each user's seen items (``batch["seen_ids"]``) other than the target.
    chunk_size: embed the local catalogue slice this many items at a time (0 = at once).

  Returns:
    ``rank(params, consts, batch, catalogue=None)``; ``params`` and ``consts`` in ``dp``'s
    replicated layout, ``batch`` from ``dp.shard_batch`` with ``target_ids`` (and ``seen_ids``
    when masking) and whatever ``user_fn`` reads; ``catalogue`` from ``rank.embed_catalogue(params,
    consts)`` (``make_catalogue_fn``), computed per call when None. The 0-based ranks come back
    replicated (``dp.to_host``).
  """
  def per_device(params, consts, catalogue, batch):
    user = user_fn(params, consts, batch)
    target_ids = batch["target_ids"].astype(jnp.int32)
    target_emb = item_fn(params, consts, target_ids)
    target_score = jnp.sum(user.astype(jnp.float32) * target_emb.astype(jnp.float32), axis=-1)
    user, target_ids, target_score = _gather(user), _gather(target_ids), _gather(target_score)

    start, ids, real, _ = _catalogue_slice(num_items, dp.num_devices)
    scores = score_catalogue(user, catalogue)
    eligible = real[None, :] & (ids[None, :] != target_ids[:, None])
    if mask_history:
      seen = _gather(batch["seen_ids"].astype(jnp.int32))
      eligible = eligible & ~_seen_in_slice(seen, start, ids.shape[0], scores.shape)
    higher = jnp.sum(eligible & (scores > target_score[:, None]), axis=1)
    ranks = lax.psum(higher, parallel.DATA_AXIS)
    # A NaN target score gets the worst rank, as in metrics.target_ranks.
    worst = lax.psum(jnp.sum(eligible, axis=1), parallel.DATA_AXIS)
    return jnp.where(jnp.isnan(target_score), worst, ranks).astype(jnp.int32)

  # The ranks are psums, replicated by construction; all_gather's output is not inferred so.
  ranked = dp.wrap(per_device, (parallel.REPLICATED, parallel.REPLICATED, parallel.SHARDED,
                                parallel.SHARDED), parallel.REPLICATED, check_vma=False)
  return _with_catalogue(make_catalogue_fn(item_fn, num_items, dp, chunk_size=chunk_size),
                         ranked)


def make_topk_fn(user_fn: UserFn, item_fn: ItemFn, num_items: int, dp: parallel.DataParallel,
                 k: int, *, exclude_history: bool = True, chunk_size: int = 0):
  """A data-parallel ``topk(params, consts, batch) -> (ids [B, k], scores [B, k])``: exact top k.

  Each device scores its slice of the catalogue against every user of the global batch and keeps
  its local top ``k``; the ``D * k`` candidates of all devices are gathered and their top ``k``
  is the global top ``k`` (each global winner is among its own device's local top ``k``).

  Args:
    user_fn: ``(params, consts, batch) -> [B, d]``, for one device's rows of the batch.
    item_fn: ``(params, consts, ids) -> [*ids.shape, d]``.
    num_items: real items ``1..num_items``; the padding item 0 is never returned.
    dp: the data-parallel layout.
    k: items per user, ``1 <= k <= num_items``.
    exclude_history: never return a user's seen items (``batch["seen_ids"]``, 0 = padding).
    chunk_size: embed the local catalogue slice this many items at a time (0 = at once).

  Returns:
    ``topk(params, consts, batch, catalogue=None)``, arguments as for ``make_rank_fn``'s
    function (``topk.embed_catalogue`` embeds the catalogue once for many batches); the results are
    replicated, best first; equal scores are ordered by item id. Where fewer than ``k`` items are
    eligible, the remaining slots hold id 0 with score ``-inf``.

  Raises:
    ValueError: ``k`` outside ``[1, num_items]``.
  """
  if not 1 <= k <= num_items:
    raise ValueError(f"top-k needs 1 <= k <= num_items = {num_items}, got k = {k}.")

  def per_device(params, consts, catalogue, batch):
    user = _gather(user_fn(params, consts, batch))
    start, ids, real, _ = _catalogue_slice(num_items, dp.num_devices)
    scores = score_catalogue(user, catalogue)
    eligible = jnp.broadcast_to(real[None, :], scores.shape)
    if exclude_history:
      seen = _gather(batch["seen_ids"].astype(jnp.int32))
      eligible = eligible & ~_seen_in_slice(seen, start, ids.shape[0], scores.shape)
    scores = jnp.where(eligible, scores, -jnp.inf)
    # lax.top_k puts the lower index first among equal values; the device slices ascend in id,
    # so the merge below breaks ties by item id too.
    local_scores, local_pos = lax.top_k(scores, min(k, ids.shape[0]))
    gather = lambda x: lax.all_gather(x, parallel.DATA_AXIS, axis=1, tiled=True)
    cand_scores, cand_ids = gather(local_scores), gather(start + local_pos)  # [B, D * k_local]
    top_scores, pos = lax.top_k(cand_scores, k)
    top_ids = jnp.take_along_axis(cand_ids, pos, axis=1)
    return jnp.where(jnp.isneginf(top_scores), 0, top_ids).astype(jnp.int32), top_scores

  ranked = dp.wrap(per_device, (parallel.REPLICATED, parallel.REPLICATED, parallel.SHARDED,
                                parallel.SHARDED), parallel.REPLICATED, check_vma=False)
  return _with_catalogue(make_catalogue_fn(item_fn, num_items, dp, chunk_size=chunk_size),
                         ranked)


def evaluate(rank_fn, dp: parallel.DataParallel, params, consts, batches,
             ks: Sequence[int] = metrics_lib.DEFAULT_KS, max_batches: int = 0,
             ranks_out: Optional[list] = None,
             keys: Sequence[str] = EVAL_KEYS) -> dict[str, float]:
  """Mean HR/NDCG/MRR@K over ``batches`` (e.g. ``common.data.EvalBatches``), full ranking.

  Args:
    rank_fn: from ``make_rank_fn``.
    dp: the data-parallel layout.
    params: replicated params (``dp.replicate`` layout).
    consts: the towers' replicated constants (item features).
    batches: iterable of process-local eval batches with ``target_ids`` and ``valid``.
    ks: cut-offs.
    max_batches: stop after this many batches (0 = all).
    ranks_out: if a list, each batch's 0-based ranks of the target, valid rows only, global batch
      order, are appended to it (``np.concatenate`` gives one rank per evaluated row, in the order
      of ``batches.users``): the per-user input of a paired significance test.
    keys: the batch entries sent to the devices (those present; ``seen_ids`` defaults to none).

  Returns:
    ``{"hr@10": ..., "ndcg@10": ..., "mrr@10": ..., ..., "num_users": n}``.
  """
  sums: dict[str, float] = {}
  count = 0
  # The catalogue is embedded once for all batches (the params do not change during evaluation).
  embed = getattr(rank_fn, "embed_catalogue", None)
  catalogue = None if embed is None else embed(params, consts)
  for i, batch in enumerate(batches):
    if max_batches and i >= max_batches:
      break
    local = {k: batch[k] for k in keys if k in batch}
    local.setdefault("seen_ids", np.zeros_like(local["target_ids"][:, None]))
    valid = local.pop("valid")
    sharded = dp.shard_batch(local)
    ranks = dp.to_host(rank_fn(params, consts, sharded) if catalogue is None
                       else rank_fn(params, consts, sharded, catalogue))
    # Every process holds the global batch's ranks; the validity flags come from the same rows.
    valid_global = _global_valid(valid)
    per_user = metrics_lib.metrics_from_ranks(ranks, valid_global, ks)
    if ranks_out is not None:
      ranks_out.append(np.asarray(ranks)[np.asarray(valid_global, bool)])
    for name, value in per_user.items():
      if name != "valid":
        sums[name] = sums.get(name, 0.0) + float(np.sum(np.asarray(value)))
    count += int(np.sum(valid_global))
  out = {name: total / max(count, 1) for name, total in sorted(sums.items())}
  out["num_users"] = float(count)
  return out


def _global_valid(valid: np.ndarray) -> np.ndarray:
  if jax.process_count() == 1:
    return valid
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return np.asarray(multihost_utils.process_allgather(valid, tiled=True))
