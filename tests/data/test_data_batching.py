"""Iterators: contents and padding, determinism, resume, per-process slices, eval batches."""

import dataclasses
import json

import numpy as np
import pytest

from common import data
from common.data.batching import (EvalBatches, SequenceBatches, StridedWindowBatches,
                                  TwoTowerBatches)


@pytest.fixture(scope="module")
def ds():
  return data.build_dataset({"name": "b", "source": {
      "format": "synthetic", "num_users": 97, "num_items": 60, "num_categories": 4,
      "num_tags": 6, "mean_length": 15, "min_length": 3, "max_length": 40}})


def _take(it, n):
  return [next(it) for _ in range(n)]


def _same(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for k in x:
      np.testing.assert_array_equal(x[k], y[k], err_msg=k)


def test_sequence_batch_contents(ds):
  it = SequenceBatches(ds, max_len=10, global_batch_size=8, seed=1, process_index=0,
                       process_count=1)
  b = next(it)
  assert b["input_ids"].shape == (8, 10) and b["input_ids"].dtype == np.int32
  assert b["mask"].dtype == bool and b["user_ids"].shape == (8,)
  for r, u in enumerate(b["user_ids"]):
    seq = ds.sequence(u, "train")
    window = seq[-11:]
    n = len(window) - 1
    # Left-padded: real items are right-aligned, padding (0) in front.
    np.testing.assert_array_equal(b["input_ids"][r, 10 - n:], window[:-1])
    np.testing.assert_array_equal(b["target_ids"][r, 10 - n:], window[1:])
    assert not b["input_ids"][r, :10 - n].any() and not b["target_ids"][r, :10 - n].any()
    np.testing.assert_array_equal(b["mask"][r], b["input_ids"][r] > 0)


def test_epoch_covers_every_user_once_then_reshuffles(ds):
  n = SequenceBatches(ds, max_len=5, global_batch_size=1, process_index=0,
                      process_count=1).num_examples
  it = SequenceBatches(ds, max_len=5, global_batch_size=n, seed=3, process_index=0,
                       process_count=1)
  e0, e1 = next(it)["user_ids"], next(it)["user_ids"]
  assert sorted(e0) == sorted(e1) == sorted(it.users)
  assert not np.array_equal(e0, e1)
  assert it.epoch == 2


def test_determinism_and_seed(ds):
  mk = lambda seed: SequenceBatches(ds, max_len=6, global_batch_size=10, seed=seed,
                                    random_window=True, process_index=0, process_count=1)
  _same(_take(mk(5), 12), _take(mk(5), 12))
  assert not np.array_equal(next(mk(5))["user_ids"], next(mk(6))["user_ids"])


def test_random_window_varies_and_stays_in_sequence(ds):
  it = SequenceBatches(ds, max_len=4, global_batch_size=ds.num_users, random_window=True,
                       process_index=0, process_count=1)
  seen = {}
  for _ in range(6):
    b = next(it)
    for r, u in enumerate(b["user_ids"]):
      seq = ds.sequence(u, "train")
      row = b["input_ids"][r][b["mask"][r]]
      # The window is a contiguous run of the user's train sequence.
      starts = [s for s in range(len(seq)) if np.array_equal(seq[s:s + len(row)], row)]
      assert starts
      seen.setdefault(u, set()).add(tuple(row))
  long_users = [u for u in seen if ds.lengths("train")[u] > 8]
  assert long_users and any(len(seen[u]) > 1 for u in long_users)


@pytest.mark.parametrize("cls,kw", [(SequenceBatches, {"random_window": True}),
                                    (StridedWindowBatches, {"stride": 3}),
                                    (TwoTowerBatches, {})])
def test_resume_gives_the_same_next_batches(ds, cls, kw):
  it = cls(ds, max_len=7, global_batch_size=12, seed=2, process_index=0, process_count=1, **kw)
  _take(it, 9)  # crosses epoch boundaries
  state = json.loads(json.dumps(it.get_state()))  # survives a JSON checkpoint
  expected = _take(it, 15)
  fresh = cls(ds, max_len=7, global_batch_size=12, seed=2, process_index=0, process_count=1,
              **kw)
  fresh.set_state(state)
  _same(_take(fresh, 15), expected)
  assert all(isinstance(v, (int, str, bool)) for v in state.values())


def test_state_from_other_settings_is_refused(ds):
  a = SequenceBatches(ds, max_len=7, global_batch_size=12, seed=2, process_index=0,
                      process_count=1)
  b = SequenceBatches(ds, max_len=7, global_batch_size=12, seed=3, process_index=0,
                      process_count=1)
  with pytest.raises(ValueError, match="seed"):
    b.set_state(a.get_state())


@pytest.mark.parametrize("cls", [SequenceBatches, TwoTowerBatches])
def test_process_slices_are_disjoint_and_cover_the_global_batch(ds, cls):
  full = cls(ds, max_len=6, global_batch_size=12, seed=4, process_index=0, process_count=1)
  parts = [cls(ds, max_len=6, global_batch_size=12, seed=4, process_index=p, process_count=3)
           for p in range(3)]
  assert all(p.local_batch_size == 4 for p in parts)
  for _ in range(20):
    whole = next(full)
    pieces = [next(p) for p in parts]
    for k in whole:
      np.testing.assert_array_equal(np.concatenate([x[k] for x in pieces]), whole[k])
  # Disjoint: within the first epoch, no example reaches two processes (or one twice).
  if cls is SequenceBatches:
    parts = [cls(ds, max_len=6, global_batch_size=12, seed=4, process_index=p, process_count=3)
             for p in range(3)]
    rows = np.concatenate([next(p)["user_ids"] for _ in range(full.num_examples // 12)
                           for p in parts])
    assert len(rows) == len(set(rows.tolist()))


def test_indivisible_batch_names_the_config_key(ds):
  with pytest.raises(ValueError, match=r"train\.batch_size=10.*multiple of 4"):
    SequenceBatches(ds, max_len=5, global_batch_size=10, process_index=0, process_count=4)
  with pytest.raises(ValueError, match=r"eval\.batch_size"):
    EvalBatches(ds, max_len=5, global_batch_size=10, process_index=1, process_count=3)


def test_default_process_from_jax(ds):
  it = SequenceBatches(ds, max_len=5, global_batch_size=4)
  assert (it.process_index, it.process_count) == (0, 1)


@pytest.mark.parametrize("max_len,stride", [(6, 1), (6, 4), (6, 6), (40, 7)])
def test_strided_windows_count_every_target_once_with_context(ds, max_len, stride):
  # Items renumbered to their global position, so an id names its (user, position).
  uds = dataclasses.replace(ds, items=np.arange(1, len(ds.items) + 1, dtype=np.int32))
  it = StridedWindowBatches(uds, max_len=max_len, stride=stride, global_batch_size=1, seed=5,
                            process_index=0, process_count=1)
  b = StridedWindowBatches(uds, max_len=max_len, stride=stride, seed=5,
                           global_batch_size=it.num_examples, process_index=0, process_count=1)
  batch = next(b)  # exactly one epoch
  assert batch["target_mask"].dtype == bool and not (batch["target_mask"] & ~batch["mask"]).any()
  counted = []
  for r, c in zip(*np.nonzero(batch["target_mask"])):
    target = int(batch["target_ids"][r, c])
    context = batch["input_ids"][r, :c + 1]
    context = context[context > 0]
    user = int(batch["user_ids"][r])
    pos = target - 1 - int(uds.offsets[user])  # the target's position in the user's sequence
    assert 1 <= pos < uds.lengths("train")[user]
    # The context is the items right before the target, as many as the stride promises.
    np.testing.assert_array_equal(context, np.arange(target - len(context), target))
    assert len(context) >= min(pos, max_len + 1 - stride)
    counted.append(target)
  expected = [int(uds.offsets[u]) + 1 + p for u in range(1, uds.num_users + 1)
              for p in range(1, uds.lengths("train")[u])]
  assert sorted(counted) == sorted(expected)  # every target once, nothing else
  if stride == 1:  # RecBole's prefixes: one target per example, its full history of <= L items
    assert (batch["target_mask"].sum(1) == 1).all() and batch["target_mask"][:, -1].all()
    assert it.num_examples == len(expected)


def test_strided_windows_reject_a_bad_stride(ds):
  with pytest.raises(ValueError, match="stride 7 must be in"):
    StridedWindowBatches(ds, max_len=6, stride=7, global_batch_size=4, process_index=0,
                         process_count=1)


def test_two_tower_examples(ds):
  it = TwoTowerBatches(ds, max_len=5, global_batch_size=16, seed=0, process_index=0,
                       process_count=1)
  assert it.num_examples == int(np.maximum(ds.lengths("train") - 1, 0).sum())
  b = next(it)
  assert set(b) == {"history_ids", "history_mask", "positive_ids", "user_ids"}
  for r, u in enumerate(b["user_ids"]):
    seq = list(ds.sequence(u, "train"))
    hist = list(b["history_ids"][r][b["history_mask"][r]])
    # The positive follows the history in the user's sequence.
    k = next(k for k in range(1, len(seq)) if seq[k] == b["positive_ids"][r]
             and seq[max(0, k - 5):k] == hist)
    assert k >= 1


@pytest.mark.parametrize("split", ["valid", "test"])
def test_eval_batches(ds, split):
  ev = EvalBatches(ds, split=split, max_len=8, global_batch_size=32, process_index=0,
                   process_count=1)
  batches = list(ev)
  assert len(batches) == len(ev) == -(-ds.num_users // 32)
  users = np.concatenate([b["user_ids"][b["valid"]] for b in batches])
  np.testing.assert_array_equal(users, np.arange(1, ds.num_users + 1))
  last = batches[-1]
  assert not last["valid"].all() and not last["history_ids"][~last["valid"]].any()
  for b in batches:
    for r in np.flatnonzero(b["valid"]):
      u = b["user_ids"][r]
      hist = ds.sequence(u, "train" if split == "valid" else "train_valid")
      full = ds.sequence(u, "all")
      assert b["target_ids"][r] == full[len(hist)]
      np.testing.assert_array_equal(b["history_ids"][r][b["history_mask"][r]], hist[-8:])
      np.testing.assert_array_equal(b["seen_ids"][r][b["seen_ids"][r] > 0], hist)
  assert {b["seen_ids"].shape[1] for b in batches} == {ev.seen_width}


def test_eval_batches_per_process_and_all_targets(ds):
  whole = list(EvalBatches(ds, split="test", max_len=6, global_batch_size=16, process_index=0,
                           process_count=1))
  parts = [list(EvalBatches(ds, split="test", max_len=6, global_batch_size=16,
                            process_index=p, process_count=2)) for p in range(2)]
  for j, w in enumerate(whole):
    for k in w:
      np.testing.assert_array_equal(np.concatenate([parts[0][j][k], parts[1][j][k]]), w[k])
  tds = data.build_dataset({"name": "t", "source": {
      "format": "synthetic", "num_users": 50, "num_items": 40, "num_categories": 3,
      "num_tags": 4, "mean_length": 20}, "preprocess": {"split": "time", "test_frac": 0.3}})
  ev = EvalBatches(tds, split="test", targets="all", max_len=6, global_batch_size=64,
                   process_index=0, process_count=1)
  lo, hi = tds.lengths("train_valid"), tds.lengths("all")
  assert ev.num_examples == int(((hi - lo) * (lo >= 1)).sum())
