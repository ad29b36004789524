"""Full-ranking evaluation with the catalogue sharded across devices.

Per evaluation batch, each device:

1. encodes its shard of the users (the batch is split along the data axis, as in training);
2. gathers every user vector, target id and seen-item list of the global batch (small arrays);
3. embeds its own slice of the catalogue (``ceil((N + 1) / D)`` items) and scores all users
   against it, counting, per user, the eligible items of its slice that score strictly higher
   than the user's target;
4. sums those counts across devices (``psum``): the global 0-based rank of each target.

No device ever holds the whole ``[B, N + 1]`` score matrix or the whole catalogue's embeddings, so
a catalogue larger than one device's memory still evaluates, and the work of scoring is split
``D`` ways. The counting rule is ``heterrec_jax.metrics.target_ranks`` (optimistic ties; padding
item and, with history masking, the user's seen items other than the target are not ranked);
``tests/heterrec/test_heterrec_evaluation.py`` checks it against that dense reference.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import jax
from jax import lax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
import numpy as np

from common import parallel
from heterrec_jax import metrics as metrics_lib
from heterrec_jax import models

Array = Any
EVAL_KEYS = ("history_ids", "target_ids", "seen_ids", "valid")


def make_rank_fn(model, dp: parallel.DataParallel, *, mask_history: bool = True,
                 chunk_size: int = 0):
  """A jitted ``rank(params, features, batch) -> ranks [B_global]`` over ``dp``'s devices.

  Args:
    model: a model from ``models.get_model``.
    dp: the data-parallel layout (its mesh shards the catalogue).
    mask_history: exclude each user's seen items (``batch["seen_ids"]``) other than the target.
    chunk_size: embed the local catalogue slice this many items at a time (0 = at once).

  Returns:
    ``rank(params, features, batch)``; ``params`` and ``features`` in ``dp``'s replicated layout,
    ``batch`` from ``dp.shard_batch`` with keys ``history_ids``, ``target_ids``, ``seen_ids``.
    The result is replicated: ``[D_local, B]`` under pmap, ``[B]`` under mesh.
  """
  num_devices = dp.num_devices
  n_total = model.num_items + 1
  shard = -(-n_total // num_devices)

  def per_device(params, features, batch):
    variables = {"params": params}
    user = models.user_embeddings(model, variables, {"item_ids": batch["history_ids"]}, features)
    target_ids = batch["target_ids"].astype(jnp.int32)
    target_emb = model.apply(variables, features, target_ids, method="item_embeddings")
    target_score = jnp.sum(user.astype(jnp.float32) * target_emb.astype(jnp.float32), axis=-1)
    # Gather the (small) per-user arrays of the global batch onto every device.
    gather = lambda x: lax.all_gather(x, parallel.DATA_AXIS, tiled=True)
    user, target_ids, target_score = gather(user), gather(target_ids), gather(target_score)

    start = lax.axis_index(parallel.DATA_AXIS) * shard
    ids = start + jnp.arange(shard)
    real = (ids >= 1) & (ids < n_total)
    safe_ids = jnp.where(real, ids, 0)
    if chunk_size and chunk_size < shard:
      chunks = -(-shard // chunk_size)
      padded = jnp.pad(safe_ids, (0, chunks * chunk_size - shard)).reshape(chunks, chunk_size)
      emb = lax.map(lambda c: model.apply(variables, features, c, method="item_embeddings"),
                    padded).reshape(chunks * chunk_size, -1)[:shard]
    else:
      emb = model.apply(variables, features, safe_ids, method="item_embeddings")
    scores = models.score_catalogue(user, emb)  # [B, shard], float32
    eligible = real[None, :] & (ids[None, :] != target_ids[:, None])
    if mask_history:
      seen = gather(batch["seen_ids"].astype(jnp.int32))
      local = seen - start
      in_shard = (seen > 0) & (local >= 0) & (local < shard)
      rows = jnp.broadcast_to(jnp.arange(seen.shape[0])[:, None], seen.shape)
      hit = jnp.zeros(scores.shape, bool).at[rows, jnp.where(in_shard, local, shard)].set(
          True, mode="drop")
      eligible = eligible & ~hit
    higher = jnp.sum(eligible & (scores > target_score[:, None]), axis=1)
    ranks = lax.psum(higher, parallel.DATA_AXIS)
    # A NaN target score gets the worst rank, as in metrics.target_ranks.
    worst = lax.psum(jnp.sum(eligible, axis=1), parallel.DATA_AXIS)
    return jnp.where(jnp.isnan(target_score), worst, ranks).astype(jnp.int32)

  if dp.mode == "pmap":
    return jax.pmap(per_device, axis_name=parallel.DATA_AXIS, devices=dp._pmap_devices)  # pylint: disable=protected-access
  # The ranks are psums, replicated by construction; all_gather's output is not inferred so.
  return jax.jit(jax.shard_map(per_device, mesh=dp.mesh,
                               in_specs=(P(), P(), P(parallel.DATA_AXIS)), out_specs=P(),
                               check_vma=False))


def evaluate(rank_fn, dp: parallel.DataParallel, params, features, batches,
             ks: Sequence[int] = metrics_lib.DEFAULT_KS, max_batches: int = 0,
             ranks_out: Optional[list] = None) -> dict[str, float]:
  """Mean HR/NDCG/MRR@K over ``batches`` (an ``EvalBatches``), ranking the full catalogue.

  Args:
    rank_fn: from ``make_rank_fn``.
    dp: the data-parallel layout.
    params: replicated params (``dp.replicate`` layout).
    features: replicated item features.
    batches: iterable of process-local eval batches (``common.data.EvalBatches``).
    ks: cut-offs.
    max_batches: stop after this many batches (0 = all).
    ranks_out: if a list, each batch's 0-based ranks of the target, valid rows only, global batch
      order, are appended to it (``np.concatenate`` gives one rank per evaluated row, in the order
      of ``batches.users``): the per-user input of a paired significance test.

  Returns:
    ``{"hr@10": ..., "ndcg@10": ..., "mrr@10": ..., ..., "num_users": n}``.
  """
  sums: dict[str, float] = {}
  count = 0
  for i, batch in enumerate(batches):
    if max_batches and i >= max_batches:
      break
    local = {k: batch[k] for k in EVAL_KEYS if k in batch}
    local.setdefault("seen_ids", np.zeros_like(local["history_ids"][:, :1]))
    valid = local.pop("valid")
    ranks = rank_fn(params, features, dp.shard_batch(local))
    ranks = np.asarray(ranks.addressable_data(0) if dp.mode == "mesh" else
                       ranks.addressable_data(0)[0])
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
