"""From raw events to per-user chronological sequences, remapped ids and a train/valid/test split.

The steps, in order:

  1. Implicit feedback: keep events with ``rating >= rating_threshold`` (when set).
  2. Chronological order per user. Ties (equal timestamps) are broken by ``tie_break``:
     ``file_order`` (default): the order the events appear in the input, i.e. a stable sort by
     timestamp, which is what RecBole does; ``item_id``: by raw item id (numeric where all ids are
     integers), then file order. Without timestamps the file order is the order.
  3. Optionally drop repeated (user, item) events, keeping the earliest (``dedup``).
  4. k-core: repeatedly drop users with fewer than ``user_core`` events and items with fewer than
     ``item_core`` until both hold (the result is the unique largest such subset).
  5. Id remapping: users and items become 1..U and 1..N in the sorted order of their raw ids
     (numeric where all ids are integers); 0 is the padding id.
  6. Split each user's sequence into contiguous chronological segments [train | valid | test]:
     ``leave_one_out``: the last event is test, the one before it valid, the rest train (a user
     with 2 events has train and test only, with 1 event train only); ``time``: global cutoffs,
     events at or after ``test_start`` are test, at or after ``valid_start`` valid, the rest
     train; the cutoffs are given as timestamps or derived from ``valid_frac``/``test_frac`` of all
     events.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from common.data.errors import DataError, config_error
from common.data.raw import RawInteractions

TIE_BREAKS = ("file_order", "item_id")
SPLITS = ("leave_one_out", "time")


@dataclasses.dataclass
class Sequences:
  """Per-user chronological sequences in CSR form, indexed by remapped user id.

  Attributes:
    user_raw_ids: raw id of user u at index u (index 0 is the padding user, ``None``).
    item_raw_ids: raw id of item i at index i (index 0 is the padding item).
    offsets: int64 ``[num_users + 2]``; user u's events are ``items[offsets[u]:offsets[u + 1]]``
      (user 0 has none).
    items: int32 ``[num_events]``, remapped item ids in 1..num_items, chronological per user.
    timestamps: float64 ``[num_events]`` (the event's index in the file where there were none).
    n_train: int32 ``[num_users + 1]``, the length of each user's train segment.
    n_valid: int32 ``[num_users + 1]``, the length of the valid segment; test is the rest.
    counts: events left after each step, for the statistics summary.
  """

  user_raw_ids: np.ndarray
  item_raw_ids: np.ndarray
  offsets: np.ndarray
  items: np.ndarray
  timestamps: np.ndarray
  n_train: np.ndarray
  n_valid: np.ndarray
  counts: dict

  @property
  def num_users(self) -> int:
    return len(self.user_raw_ids) - 1

  @property
  def num_items(self) -> int:
    return len(self.item_raw_ids) - 1


def check_core(key: str, value) -> None:
  """Refuses a k-core that is not a count >= 0 (a negative one would silently filter nothing)."""
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
    raise config_error(f"preprocess.{key}", f"a k-core is a count of events >= 0, got {value!r}",
                       f"set preprocess.{key}=0 for no filtering, or a positive count such as 5")


def _with_padding(raw_ids: np.ndarray) -> np.ndarray:
  out = np.empty(len(raw_ids) + 1, dtype=object)
  out[0] = None
  out[1:] = raw_ids
  return out


def _empty(inter: RawInteractions, stage: str) -> DataError:
  return DataError(f"no interactions are left after {stage}; loosen the setting or check the "
                   "input.", path=inter.path)


def preprocess(inter: RawInteractions, *, rating_threshold: Optional[float] = None,
               user_core: int = 0, item_core: int = 0, dedup: bool = False,
               tie_break: str = "file_order", split: str = "leave_one_out",
               valid_frac: float = 0.1, test_frac: float = 0.1,
               valid_start: Optional[float] = None, test_start: Optional[float] = None,
               rating_column: str = "rating", time_column: str = "timestamp") -> Sequences:
  """Filters, orders, remaps and splits events (see the module docstring for the rules).

  Args:
    inter: the events, as read.
    rating_threshold: keep events with a rating at or above this; None keeps all.
    user_core: the minimum number of events per user (0 or 1: no constraint).
    item_core: the minimum number of events per item.
    dedup: drop repeated (user, item) events, keeping the earliest.
    tie_break: ``file_order`` or ``item_id``, for events of a user with equal timestamps.
    split: ``leave_one_out`` or ``time``.
    valid_frac: for ``time`` without explicit cutoffs, the fraction of events in valid.
    test_frac: likewise for test.
    valid_start: for ``time``, the first timestamp that is valid (overrides ``valid_frac``).
    test_start: for ``time``, the first timestamp that is test (overrides ``test_frac``).
    rating_column: the rating column's name, for messages.
    time_column: the timestamp column's name, for messages.

  Returns:
    The sequences and split.

  Raises:
    DataError: a needed column is absent, a setting is invalid, or nothing is left.
  """
  if tie_break not in TIE_BREAKS:
    raise DataError(f"preprocess.tie_break {tie_break!r} is not one of {TIE_BREAKS}.")
  if split not in SPLITS:
    raise DataError(f"preprocess.split {split!r} is not one of {SPLITS}.")
  check_core("user_core", user_core)
  check_core("item_core", item_core)
  counts = {"read": len(inter)}
  if len(inter) == 0:
    raise _empty(inter, "reading (the file has no events)")
  if rating_threshold is not None:
    if inter.ratings is None:
      raise DataError(f"preprocess.rating_threshold is set but the events have no rating column "
                      f"({rating_column!r}).", path=inter.path, line=1, column=rating_column)
    inter = inter.take(inter.ratings >= rating_threshold)
    counts["after_threshold"] = len(inter)
    if len(inter) == 0:
      raise _empty(inter, f"the rating threshold ({rating_threshold})")
  has_time = inter.timestamps is not None
  if split == "time" and not has_time:
    raise DataError(f"preprocess.split='time' needs timestamps, and the events have no time "
                    f"column ({time_column!r}).", path=inter.path, line=1, column=time_column)

  user_raw, u = np.unique(inter.users, return_inverse=True)
  item_raw, i = np.unique(inter.items, return_inverse=True)
  u, i = u.ravel(), i.ravel()
  row = np.arange(len(inter))
  ts = inter.timestamps if has_time else row.astype(np.float64)
  keys = (row, ts, u) if tie_break == "file_order" else (row, i, ts, u)
  order = np.lexsort(keys)
  u, i, ts = u[order], i[order], ts[order]

  keep = np.ones(len(u), dtype=bool)
  if dedup:
    # After the sort, the first occurrence of a pair is its earliest event.
    _, first = np.unique(u.astype(np.int64) * len(item_raw) + i, return_index=True)
    keep[:] = False
    keep[first] = True
    counts["after_dedup"] = int(keep.sum())
  if user_core > 1 or item_core > 1:
    while True:
      uc = np.bincount(u[keep], minlength=len(user_raw))
      ic = np.bincount(i[keep], minlength=len(item_raw))
      bad = keep & ((uc[u] < user_core) | (ic[i] < item_core))
      if not bad.any():
        break
      keep &= ~bad
    counts["after_k_core"] = int(keep.sum())
    if not keep.any():
      raise _empty(inter, f"k-core filtering (user_core={user_core}, item_core={item_core})")
  u, i, ts = u[keep], i[keep], ts[keep]

  # Remapping through np.unique keeps the sorted raw-id order, so ids do not depend on file order.
  users_kept, u = np.unique(u, return_inverse=True)
  items_kept, i = np.unique(i, return_inverse=True)
  u, i = u.ravel() + 1, i.ravel() + 1
  num_users = len(users_kept)
  lengths = np.bincount(u, minlength=num_users + 1)
  offsets = np.zeros(num_users + 2, dtype=np.int64)
  offsets[1:] = np.cumsum(lengths)
  n_train, n_valid = _split(lengths, ts, offsets, split, valid_frac, test_frac, valid_start,
                            test_start)
  counts["final"] = len(u)
  return Sequences(_with_padding(user_raw[users_kept]), _with_padding(item_raw[items_kept]),
                   offsets, i.astype(np.int32), ts, n_train, n_valid, counts)


def _split(lengths, ts, offsets, split, valid_frac, test_frac, valid_start, test_start):
  """The lengths of each user's train and valid segments."""
  if split == "leave_one_out":
    n_train = np.where(lengths >= 3, lengths - 2, np.minimum(lengths, 1))
    n_valid = (lengths >= 3).astype(np.int64)
    return n_train.astype(np.int32), n_valid.astype(np.int32)
  if test_start is None or valid_start is None:
    if not (0 <= valid_frac and 0 <= test_frac and valid_frac + test_frac < 1):
      raise DataError(f"preprocess.valid_frac={valid_frac} and test_frac={test_frac} must be >= 0 "
                      "and sum to less than 1.")
    sorted_ts = np.sort(ts)
    n = len(ts)
    if test_start is None:
      k = int(np.floor(n * (1 - test_frac)))
      test_start = sorted_ts[min(n - 1, k)] if test_frac else np.inf
    if valid_start is None:
      k = int(np.floor(n * (1 - test_frac - valid_frac)))
      valid_start = sorted_ts[min(n - 1, k)] if valid_frac else test_start
  if valid_start > test_start:
    raise DataError(f"preprocess.valid_start ({valid_start}) is after test_start ({test_start}).")
  user_of = np.repeat(np.arange(len(lengths)), lengths)
  n_train = np.bincount(user_of, weights=ts < valid_start, minlength=len(lengths))
  n_valid = np.bincount(user_of, weights=(ts >= valid_start) & (ts < test_start),
                        minlength=len(lengths))
  return n_train.astype(np.int32), n_valid.astype(np.int32)
