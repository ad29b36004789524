"""What every recommendation trainer does around its loop: load the run's data, save per-user ranks.

- ``load_data(config)``: the data set of ``config.data``, prepared under ``config.data_dir`` once
  (process 0 prepares, every process waits, then reads it back), else built in memory;
- ``make_evaluator(...)``: the loop's ``evaluate(state, dp, split)`` for any two towers: sharded
  full ranking of each user's held-out item, mean metrics, and each split's per-user ranks;
- ``save_ranks(workdir, last_ranks)``: each split's per-user ranks to ``ranks_<split>.npz``, the
  input of the paired per-user test (``scripts/paired_test.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
import io
import os

import jax
import ml_collections
import numpy as np

from common import data as data_lib
from common import metric_writers
from common.recsys import evaluation
from common.recsys import metrics as metrics_lib
from common.recsys import packing


def load_data(config: ml_collections.ConfigDict) -> data_lib.RecDataset:
  """The data set of ``config.data``: prepared under ``config.data_dir`` once, else in memory."""
  if not config.data_dir:
    return data_lib.build_dataset(config.data)
  name = config.data.name
  if os.path.exists(data_lib.dataset_dir(config.data_dir, name)):
    return data_lib.load(name, config.data_dir)
  if jax.process_index() == 0:
    data_lib.prepare(config.data, config.data_dir)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(f"{config.method or 'recsys'} data prepared")
  return data_lib.load(name, config.data_dir)


def save_ranks(workdir: str, last_ranks: dict) -> None:
  """Writes each split's per-user ranks to ``<workdir>/ranks_<split>.npz``, atomically."""
  for split, arrays in last_ranks.items():
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    metric_writers.atomic_write_bytes(os.path.join(workdir, f"ranks_{split}.npz"),
                                      buffer.getvalue())


PACKED_KEYS = ("segment_ids", "positions", "user_row", "user_col")


def _packed(batches, num_devices: int, row_multiple: int):
  """The evaluation batches with their histories packed (``packing.pack_histories``)."""
  for batch in batches:
    packed = packing.pack_histories(batch["history_ids"], num_devices, row_multiple)
    yield batch if packed is None else {**batch, **packed}


def make_evaluator(ds: data_lib.RecDataset, user_fn, item_fn, consts, eval_config, max_len: int,
                   last_ranks: dict, ks: Sequence[int] = metrics_lib.DEFAULT_KS,
                   keys: Sequence[str] = evaluation.EVAL_KEYS, pack: bool = False):
  """The loop's ``evaluate(state, dp, split) -> metrics`` for two towers over ``ds``.

  The rank function and the replicated ``consts`` are built once per device layout. With
  ``eval_config.save_ranks``, each split's per-user ranks (users, held-out items, 0-based ranks,
  the items' training counts) are kept in ``last_ranks[split]`` for ``save_ranks``.

  Args:
    ds: the data set.
    user_fn, item_fn: the towers (``common.recsys.evaluation``).
    consts: the towers' constants (host arrays), replicated on first use.
    eval_config: ``config.eval`` (``mask_history``, ``chunk_size``, ``batch_size``,
      ``max_batches``, ``save_ranks``).
    max_len: history items per user.
    last_ranks: filled with each evaluated split's ranks.
    ks: metric cut-offs.
    keys: the batch entries the towers read.
    pack: pack each batch's histories into fewer rows (``packing.pack_histories``; the
      ``user_fn`` must read ``segment_ids``, ``positions``, ``user_row`` and ``user_col``). Single
      process only (the row count would differ between processes); ignored otherwise.
  """
  cache: dict = {}
  train_counts = np.asarray(ds.item_counts("train"))

  def evaluate(dstate, dp, split):
    if dp not in cache:
      cache[dp] = (evaluation.make_rank_fn(user_fn, item_fn, ds.num_items, dp,
                                           mask_history=eval_config.mask_history,
                                           chunk_size=eval_config.chunk_size),
                   dp.replicate(consts))
    rank_fn, dconsts = cache[dp]
    batches = data_lib.EvalBatches(ds, split=split, max_len=max_len,
                                   global_batch_size=eval_config.batch_size)
    fed, fed_keys = batches, keys
    if pack and jax.process_count() == 1:
      fed = _packed(batches, dp.num_devices, eval_config.pack_multiple)
      fed_keys = tuple(keys) + PACKED_KEYS
    ranks = [] if eval_config.save_ranks else None
    out = evaluation.evaluate(rank_fn, dp, dstate.params, dconsts, fed, ks=ks,
                              max_batches=eval_config.max_batches, ranks_out=ranks, keys=fed_keys)
    if ranks is None:
      return out
    ranks = np.concatenate(ranks) if ranks else np.zeros((0,), np.int32)
    n = len(ranks)  # fewer than batches.users with eval.max_batches
    targets = ds.items[ds.offsets[batches.users[:n]] + batches.positions[:n]]
    last_ranks[split] = dict(users=batches.users[:n].astype(np.int32),
                             targets=np.asarray(targets, np.int32), ranks=ranks.astype(np.int32),
                             target_train_count=train_counts[targets].astype(np.int32))
    return out

  return evaluate
