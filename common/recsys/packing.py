"""Packing short training windows into shared rows, as LLM trainers pack documents.

A training window is ``L + 1`` columns, left-padded. On short-history data most of it is padding
(Amazon Toys: 9.6 real items per window of 51 at history 50), and the transformer and the
catalogue softmax pay for every column. ``pack_windows`` places the windows of one batch side by
side in as few rows as first-fit-decreasing finds, each window a contiguous *segment* with

* ``segment_ids``: 1, 2, ... within a row (0 = padding), so attention stays inside a segment
  (``transformer.same_segment``) and an LMP target must be in its position's segment
  (``objectives.lmp_targets``);
* ``positions``: each item's column in its own left-padded window, so the position embeddings
  are the ones the window would get alone.

The batch keeps exactly its windows, targets and loss normalisation; only the layout changes.
So a packed step computes the unpacked step's loss and gradients (up to float rounding and the
dropout draws, which depend on the array shape). The number of rows is rounded up to a multiple
of ``row_multiple`` (at most the number of windows) so that few distinct shapes, and so few
compiled programs, occur; the multiple must split evenly over the devices.

``pack_histories`` does the same for evaluation: each device's users' histories are packed into
that device's rows, and ``user_row`` / ``user_col`` say where each user's last item (the state
that scores the catalogue) landed.
"""

from __future__ import annotations

from typing import Optional

import numpy as np


def pack_windows(item_ids: np.ndarray, target_mask: np.ndarray,
                 row_multiple: int = 8) -> dict[str, np.ndarray]:
  """Packs left-padded windows ``[B, W]`` into ``[R, W]`` rows, ``R <= B``.

  Args:
    item_ids: ``[B, W]`` int, each row's real items contiguous at its right end (left padding).
    target_mask: ``[B, W]`` bool, the items that count as targets.
    row_multiple: ``R`` is the rows needed rounded up to a multiple of this (capped at ``B``).

  Returns:
    ``item_ids``, ``target_mask``, ``segment_ids`` (int32, 0 = padding) and ``positions``
    (int32), each ``[R, W]``; and ``window_row``, ``window_last`` (int32 ``[B]``): the row and
    column of each window's last item (-1 for an empty window).

  Raises:
    ValueError: a window that is not left-padded, or ``row_multiple < 1``.
  """
  item_ids = np.asarray(item_ids)
  target_mask = np.asarray(target_mask, bool)
  if row_multiple < 1:
    raise ValueError(f"row_multiple must be >= 1, got {row_multiple}.")
  num, width = item_ids.shape
  lengths = np.sum(item_ids != 0, axis=1)
  columns = np.arange(width)
  if np.any((item_ids != 0) != (columns[None, :] >= width - lengths[:, None])):
    raise ValueError("pack_windows needs left-padded windows (each row's items contiguous at "
                     "its right end).")
  free: list[int] = []  # remaining columns of each row
  place = np.zeros(num, np.int64)
  start = np.zeros(num, np.int64)
  for i in np.argsort(-lengths, kind="stable"):  # first fit, longest first
    n = int(lengths[i])
    if n == 0:
      place[i] = -1
      continue
    row = next((r for r, f in enumerate(free) if f >= n), len(free))
    if row == len(free):
      free.append(width)
    place[i], start[i] = row, width - free[row]
    free[row] -= n
  rows = max(len(free), 1)
  rows = min(num, -(-rows // row_multiple) * row_multiple) if num else rows
  out = {"item_ids": np.zeros((rows, width), item_ids.dtype),
         "target_mask": np.zeros((rows, width), bool),
         "segment_ids": np.zeros((rows, width), np.int32),
         "positions": np.zeros((rows, width), np.int32),
         "window_row": np.full(num, -1, np.int32), "window_last": np.full(num, -1, np.int32)}
  segment = np.zeros(rows, np.int32)
  for i in range(num):  # in batch order, so segment ids follow it within a row
    n, row = int(lengths[i]), place[i]
    if n == 0:
      continue
    segment[row] += 1
    src, dst = slice(width - n, width), slice(start[i], start[i] + n)
    out["item_ids"][row, dst] = item_ids[i, src]
    out["target_mask"][row, dst] = target_mask[i, src]
    out["segment_ids"][row, dst] = segment[row]
    out["positions"][row, dst] = columns[src]
    out["window_row"][i], out["window_last"][i] = row, start[i] + n - 1
  return out


ROW_KEYS = ("item_ids", "target_mask", "segment_ids", "positions")


def pack_histories(history_ids: np.ndarray, num_devices: int,
                   row_multiple: int = 8) -> Optional[dict[str, np.ndarray]]:
  """Packs a batch of evaluation histories ``[B, L]`` (left-padded) device block by block.

  The batch splits over ``num_devices`` in equal blocks of users (as ``DataParallel.shard_batch``
  splits it); each block's histories are packed into the same number of rows, a multiple of
  ``row_multiple`` (at most the block's users), so that the rows split the same way.

  Returns:
    ``history_ids``, ``segment_ids``, ``positions`` (``[D * R, L]``), and ``user_row``,
    ``user_col`` (``[B]``: where each user's last history item is, the row counted within its
    device's block); or None when a history is empty (nothing to pack it into: unpacked, that
    user's state is the padding state).
  """
  history_ids = np.asarray(history_ids)
  num, _ = history_ids.shape
  if num % num_devices:
    raise ValueError(f"{num} users do not split over {num_devices} devices.")
  if not np.all(np.any(history_ids != 0, axis=1)):
    return None
  per = num // num_devices
  blocks = [pack_windows(h, h != 0, 1) for h in np.split(history_ids, num_devices)]
  rows = max(len(b["item_ids"]) for b in blocks)
  rows = min(per, -(-rows // row_multiple) * row_multiple)
  pad = lambda x: np.pad(x, ((0, rows - len(x)), (0, 0)))  # noqa: E731
  return {"history_ids": np.concatenate([pad(b["item_ids"]) for b in blocks]),
          "segment_ids": np.concatenate([pad(b["segment_ids"]) for b in blocks]),
          "positions": np.concatenate([pad(b["positions"]) for b in blocks]),
          "user_row": np.concatenate([b["window_row"] for b in blocks]),
          "user_col": np.concatenate([b["window_last"] for b in blocks])}


def padding_fraction(item_ids: np.ndarray) -> float:
  """The share of an array's columns that are padding (item 0)."""
  item_ids = np.asarray(item_ids)
  return float(np.mean(item_ids == 0)) if item_ids.size else 0.0
