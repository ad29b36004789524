"""Filtering, chronological order with its tie-break, remapping and splits, on tiny inputs."""

import numpy as np
import pytest

from common.data.errors import DataError
from common.data.preprocess import preprocess
from common.data.raw import RawInteractions


def _inter(rows, ratings=True, times=True):
  """rows: (user, item, rating, time) tuples in file order."""
  u, i, r, t = zip(*rows)
  return RawInteractions("events.csv", np.array(u), np.array(i),
                         np.array(r, float) if ratings else None,
                         np.array(t, float) if times else None, np.arange(2, len(rows) + 2))


def _seqs(s):
  return {s.user_raw_ids[u]: [s.item_raw_ids[j] for j in s.items[s.offsets[u]:s.offsets[u + 1]]]
          for u in range(1, s.num_users + 1)}


def test_chronological_with_file_order_tie_break():
  # Items 30 and 10 share timestamp 5 for user 1: file order (30 first) decides.
  s = preprocess(_inter([(1, 20, 5, 9), (1, 30, 5, 5), (1, 10, 5, 5), (2, 10, 5, 1)]))
  assert _seqs(s) == {1: [30, 10, 20], 2: [10]}
  s = preprocess(_inter([(1, 20, 5, 9), (1, 30, 5, 5), (1, 10, 5, 5), (2, 10, 5, 1)]),
                 tie_break="item_id")
  assert _seqs(s)[1] == [10, 30, 20]


def test_no_timestamps_keeps_file_order():
  s = preprocess(_inter([(1, 3, 0, 0), (1, 1, 0, 0), (1, 2, 0, 0)], times=False))
  assert _seqs(s) == {1: [3, 1, 2]}


def test_remap_sorted_raw_ids_with_zero_padding():
  s = preprocess(_inter([(7, 30, 5, 1), (3, 10, 5, 2), (7, 10, 5, 3)]))
  assert list(s.user_raw_ids) == [None, 3, 7] and list(s.item_raw_ids) == [None, 10, 30]
  assert s.items.min() >= 1 and s.offsets[0] == s.offsets[1] == 0


def test_threshold_and_k_core():
  rows = [(u, i, 5 if (u + i) % 4 else 1, u * 10 + i) for u in range(1, 7) for i in range(1, 6)]
  rows += [(9, 1, 5, 1)]  # a user with one event, removed by user_core=2
  s = preprocess(_inter(rows), rating_threshold=4, user_core=2, item_core=4)
  kept = [(u, i) for u, i, r, _ in rows if r >= 4]
  while True:  # the plain fixed point
    uc = {u: sum(1 for a, _ in kept if a == u) for u, _ in kept}
    ic = {i: sum(1 for _, b in kept if b == i) for _, i in kept}
    nxt = [(u, i) for u, i in kept if uc[u] >= 2 and ic[i] >= 4]
    if nxt == kept:
      break
    kept = nxt
  assert s.counts["final"] == len(kept) and s.counts["read"] == len(rows)
  assert sorted(set(u for u, _ in kept)) == list(s.user_raw_ids[1:])


def test_dedup_keeps_earliest():
  s = preprocess(_inter([(1, 5, 1, 3), (1, 5, 1, 1), (1, 6, 1, 2)]), dedup=True)
  assert _seqs(s) == {1: [5, 6]}
  np.testing.assert_array_equal(s.timestamps, [1, 2])


def test_leave_one_out_lengths():
  rows = [(1, i, 1, i) for i in range(1, 6)] + [(2, 1, 1, 1), (2, 2, 1, 2)] + [(3, 1, 1, 1)]
  s = preprocess(_inter(rows))
  np.testing.assert_array_equal(s.n_train, [0, 3, 1, 1])
  np.testing.assert_array_equal(s.n_valid, [0, 1, 0, 0])


def test_time_split_global_cutoffs():
  rows = [(1, 1, 1, 1), (1, 2, 1, 5), (1, 3, 1, 9), (2, 1, 1, 2), (2, 3, 1, 6), (2, 2, 1, 10)]
  s = preprocess(_inter(rows), split="time", valid_start=5, test_start=9)
  np.testing.assert_array_equal(s.n_train, [0, 1, 1])
  np.testing.assert_array_equal(s.n_valid, [0, 1, 1])
  s = preprocess(_inter(rows), split="time", valid_frac=1 / 3, test_frac=1 / 3)
  assert s.n_train[1:].sum() == 2 and s.n_valid[1:].sum() == 2


def test_time_split_needs_timestamps():
  with pytest.raises(DataError, match="timestamps") as e:
    preprocess(_inter([(1, 1, 1, 1)], times=False), split="time", time_column="ts")
  assert e.value.path == "events.csv" and e.value.column == "ts"


def test_threshold_needs_ratings():
  with pytest.raises(DataError, match="rating") as e:
    preprocess(_inter([(1, 1, 1, 1)], ratings=False), rating_threshold=3)
  assert e.value.column == "rating"


@pytest.mark.parametrize("kwargs,stage", [
    (dict(rating_threshold=10), "rating threshold"),
    (dict(user_core=5), "k-core"),
])
def test_empty_after_filtering(kwargs, stage):
  with pytest.raises(DataError, match=stage) as e:
    preprocess(_inter([(1, 1, 4, 1), (1, 2, 4, 2)]), **kwargs)
  assert e.value.path == "events.csv"
