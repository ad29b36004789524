"""Deterministic, resumable, per-process batch iterators over a RecDataset.

Padding: every sequence is LEFT-padded (right-aligned): the most recent item is in the last
column and id 0 fills the front. A causal model then reads position L-1 as "now" whatever the
history length, and batches need no per-row lengths.

Order: training examples form an endless stream; epoch e is a permutation of all examples drawn
from ``(seed, e)``, and global batch k holds stream positions ``[k*B, (k+1)*B)`` (a batch may span
two epochs, so no example is dropped or repeated within an epoch). Process p of P receives rows
``[p*B/P, (p+1)*B/P)`` of every global batch: disjoint slices that together are the global batch,
computed by each process on its own with no communication.

State: ``get_state()`` is the global stream position (the same on every process) plus what it
depends on; after ``set_state(s)`` the iterator yields exactly what it yielded after the
``get_state()`` that returned ``s``, so a restored checkpoint sees the same next batch.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from common import distributed
from common.data.dataset import RecDataset

_STATE_VERSION = 1


def _process(process_index: Optional[int], process_count: Optional[int]) -> tuple[int, int]:
  if process_index is None or process_count is None:
    import jax  # pylint: disable=g-import-not-at-top  # only needed for the defaults
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index {process_index} is not in [0, {process_count}).")
  return int(process_index), int(process_count)


def left_padded(items: np.ndarray, starts: np.ndarray, ends: np.ndarray, width: int) -> np.ndarray:
  """Rows ``items[starts[r]:ends[r]]``, keeping the last ``width``, left-padded with 0.

  Args:
    items: the flat item array.
    starts: int64 ``[b]``, the first usable position of each row.
    ends: int64 ``[b]``, one past the last position of each row.
    width: the output width.

  Returns:
    int32 ``[b, width]``.
  """
  idx = ends[:, None] - width + np.arange(width)[None, :]
  ok = idx >= starts[:, None]
  return np.where(ok, items[np.clip(idx, 0, max(len(items) - 1, 0))], 0).astype(np.int32)


def _window_batch(dataset: RecDataset, users: np.ndarray, end: np.ndarray,
                  max_len: int) -> dict:
  """The window of ``max_len + 1`` items ending (exclusive) at ``end`` of each user's sequence,
  as left-padded inputs and shifted targets (the sequential iterators' batch layout)."""
  start = dataset.offsets[users]
  window = left_padded(dataset.items, start, start + end, max_len + 1)
  inputs = window[:, :-1]
  mask = inputs > 0
  return {"input_ids": inputs, "target_ids": np.where(mask, window[:, 1:], 0).astype(np.int32),
          "mask": mask, "user_ids": users.astype(np.int32)}


class _Stream:
  """The shuffled example stream shared by the training iterators."""

  kind = "base"

  def __init__(self, num_examples: int, global_batch_size: int, seed: int,
               process_index: Optional[int], process_count: Optional[int], batch_size_key: str):
    if num_examples < 1:
      raise ValueError("there are no training examples (are all sequences too short?).")
    self.process_index, self.process_count = _process(process_index, process_count)
    self.local_batch_size = distributed.local_batch_size(
        global_batch_size, 1, batch_size_key, self.process_count)
    self.global_batch_size = int(global_batch_size)
    self.num_examples = int(num_examples)
    self.seed = int(seed)
    self._position = 0
    self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

  def _epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """(permutation of the examples, one uniform per example) for an epoch, from (seed, epoch)."""
    if epoch not in self._cache:
      rng = np.random.default_rng([self.seed, epoch])
      perm = rng.permutation(self.num_examples)
      self._cache[epoch] = (perm, rng.random(self.num_examples))
      for old in [e for e in self._cache if e < epoch - 1]:
        del self._cache[old]
    return self._cache[epoch]

  def _next_rows(self) -> tuple[np.ndarray, np.ndarray]:
    """Example ids and their per-epoch uniforms for this process's rows of the next batch."""
    first = self._position + self.process_index * self.local_batch_size
    pos = first + np.arange(self.local_batch_size, dtype=np.int64)
    epochs, offsets = np.divmod(pos, self.num_examples)
    ex = np.empty(len(pos), dtype=np.int64)
    u = np.empty(len(pos))
    for e in np.unique(epochs):
      perm, uniforms = self._epoch(int(e))
      sel = epochs == e
      ex[sel] = perm[offsets[sel]]
      u[sel] = uniforms[ex[sel]]
    self._position += self.global_batch_size
    return ex, u

  @property
  def epoch(self) -> int:
    """The epoch the next batch starts in."""
    return self._position // self.num_examples

  def __iter__(self):
    return self

  def get_state(self) -> dict:
    """The position in the stream, as JSON-friendly ints and strings (same on every process)."""
    return {"version": _STATE_VERSION, "kind": self.kind, "position": int(self._position),
            "seed": self.seed, "num_examples": self.num_examples,
            "global_batch_size": self.global_batch_size}

  def set_state(self, state: dict) -> None:
    """Moves to a position saved by ``get_state``.

    Raises:
      ValueError: the state is from a different kind of iterator, seed or data set, where the same
        position would not mean the same batch.
    """
    for key in ("kind", "seed", "num_examples"):
      mine = self.get_state()[key]
      if state.get(key) != mine:
        raise ValueError(f"iterator state has {key}={state.get(key)!r} but this iterator has "
                         f"{mine!r}; the checkpoint was written for other data or settings.")
    self._position = int(state["position"])


class SequenceBatches(_Stream):
  """Batches for sequential (next-item) models: one example per user.

  Each example is a window of the user's sequence in ``part``: by default its last ``max_len + 1``
  items; with ``random_window`` a window of that length ending at a position drawn uniformly from
  the ones that keep it full (different every epoch). Inputs are the window's first ``max_len``
  items and targets the next item at each position, both left-padded.

  Each batch is a dict of numpy arrays with this process's ``global_batch_size //
  process_count`` rows: ``input_ids`` int32 ``[b, L]``, ``target_ids`` int32 ``[b, L]`` (0 where
  there is no input), ``mask`` bool ``[b, L]`` (input and target present), ``user_ids`` int32
  ``[b]``.
  """

  kind = "sequence"

  def __init__(self, dataset: RecDataset, *, max_len: int, global_batch_size: int, seed: int = 0,
               part: str = "train", random_window: bool = False,
               process_index: Optional[int] = None, process_count: Optional[int] = None,
               batch_size_key: str = "train.batch_size"):
    """Creates the iterator.

    Args:
      dataset: the data set.
      max_len: L, the sequence length of a batch.
      global_batch_size: rows per step over all processes.
      seed: the shuffling seed.
      part: which events to train on: ``train`` (for validation runs) or ``train_valid``.
      random_window: draw a random full window from long histories instead of the last one.
      process_index: this process (default ``jax.process_index()``).
      process_count: the number of processes (default ``jax.process_count()``).
      batch_size_key: the config key of ``global_batch_size``, for error messages.
    """
    lengths = dataset.lengths(part)
    self.users = np.flatnonzero(lengths >= 2)  # one target needs two items
    self.max_len = int(max_len)
    self.random_window = bool(random_window)
    self.part = part
    self._lengths = lengths
    self._dataset = dataset
    super().__init__(len(self.users), global_batch_size, seed, process_index, process_count,
                     batch_size_key)

  def get_state(self) -> dict:
    return dict(super().get_state(), part=self.part, max_len=self.max_len,
                random_window=int(self.random_window))

  def __next__(self) -> dict:
    ex, u = self._next_rows()
    users = self.users[ex]
    n = self._lengths[users]
    full = self.max_len + 1
    end = n
    if self.random_window:
      lo = np.minimum(n, full)
      end = lo + np.floor(u * (n - lo + 1)).astype(np.int64)
    return _window_batch(self._dataset, users, end, self.max_len)


class StridedWindowBatches(_Stream):
  """Sequential batches in which every training target is counted once per epoch, with context.

  Examples are (user, window end) pairs: a user with ``n`` items in ``part`` has windows of
  ``max_len + 1`` items ending (exclusive) at ``n, n - stride, n - 2 * stride, ...`` while the end
  is at least 2. Window ``e`` *counts* the targets at positions ``[e - stride, e)`` of the
  sequence, the user's earliest window every target it holds (item 0 of a sequence is never a
  target). So each target item is counted in exactly one window per epoch, there with at least
  ``max_len + 1 - stride`` items of context (or all that exist), and users weigh in by their
  number of targets, as in RecBole's prefix training. ``stride = 1`` is RecBole's scheme exactly:
  one target per example, with its full history of up to ``max_len`` items; ``stride = max_len``
  tiles each sequence with windows that overlap by one item (cheapest, least context per target).

  Each batch has SequenceBatches' keys plus ``target_mask`` bool ``[b, L]``: True where
  ``target_ids`` is a counted target (a subset of ``mask``).
  """

  kind = "strided"

  def __init__(self, dataset: RecDataset, *, max_len: int, stride: int, global_batch_size: int,
               seed: int = 0, part: str = "train", process_index: Optional[int] = None,
               process_count: Optional[int] = None, batch_size_key: str = "train.batch_size"):
    """Creates the iterator (arguments as for SequenceBatches, plus ``stride``, 1..max_len)."""
    if not 1 <= stride <= max_len:
      raise ValueError(f"stride {stride} must be in [1, max_len = {max_len}].")
    lengths = dataset.lengths(part)
    # Windows per user: ends n, n - s, ... >= 2, i.e. 1 + (n - 2) // s of them (0 if n < 2).
    per_user = np.where(lengths >= 2, 1 + (np.maximum(lengths, 2) - 2) // stride, 0)
    self.example_users = np.repeat(np.arange(len(lengths)), per_user)
    first = np.cumsum(per_user) - per_user
    k = np.arange(int(per_user.sum())) - np.repeat(first, per_user)
    self.example_ends = lengths[self.example_users] - k * stride
    self.example_earliest = k == per_user[self.example_users] - 1
    self.max_len, self.stride, self.part = int(max_len), int(stride), part
    self._dataset = dataset
    super().__init__(len(self.example_users), global_batch_size, seed, process_index,
                     process_count, batch_size_key)

  def get_state(self) -> dict:
    return dict(super().get_state(), part=self.part, max_len=self.max_len, stride=self.stride)

  def __next__(self) -> dict:
    ex, _ = self._next_rows()
    users = self.example_users[ex]
    end = self.example_ends[ex]
    batch = _window_batch(self._dataset, users, end, self.max_len)
    # Column c of target_ids holds sequence position end - L + c.
    target_pos = end[:, None] - self.max_len + np.arange(self.max_len)[None, :]
    counted = self.example_earliest[ex][:, None] | (target_pos >= (end - self.stride)[:, None])
    batch["target_mask"] = batch["mask"] & counted
    return batch


class TwoTowerBatches(_Stream):
  """Batches for two-tower retrieval: one example per (user, train event with history).

  The example for event t of a user (t >= ``min_history``) is the user's previous events as the
  history and event t as the positive. Each batch is a dict with this process's rows:
  ``history_ids`` int32 ``[b, L]`` (the last L items before the positive, left-padded),
  ``history_mask`` bool ``[b, L]``, ``positive_ids`` int32 ``[b]``, ``user_ids`` int32 ``[b]``.
  """

  kind = "two_tower"

  def __init__(self, dataset: RecDataset, *, max_len: int, global_batch_size: int, seed: int = 0,
               part: str = "train", min_history: int = 1, process_index: Optional[int] = None,
               process_count: Optional[int] = None, batch_size_key: str = "train.batch_size"):
    """Creates the iterator (arguments as for SequenceBatches, plus ``min_history``: the fewest
    history items an example may have; 0 also trains on each user's first event)."""
    lengths = dataset.lengths(part)
    per_user = np.maximum(lengths - min_history, 0)
    self.example_users = np.repeat(np.arange(len(lengths)), per_user)
    first = np.cumsum(per_user) - per_user
    self.example_positions = (np.arange(int(per_user.sum())) - np.repeat(first, per_user)
                              + min_history)
    self.max_len = int(max_len)
    self.part = part
    self.min_history = int(min_history)
    self._dataset = dataset
    super().__init__(len(self.example_users), global_batch_size, seed, process_index,
                     process_count, batch_size_key)

  def get_state(self) -> dict:
    return dict(super().get_state(), part=self.part, max_len=self.max_len,
                min_history=self.min_history)

  def __next__(self) -> dict:
    ex, _ = self._next_rows()
    users = self.example_users[ex]
    t = self.example_positions[ex]
    start = self._dataset.offsets[users]
    history = left_padded(self._dataset.items, start, start + t, self.max_len)
    return {"history_ids": history, "history_mask": history > 0,
            "positive_ids": self._dataset.items[start + t].astype(np.int32),
            "user_ids": users.astype(np.int32)}


class EvalBatches:
  """Full-ranking evaluation batches: per user, the history and the held-out item.

  For ``split="valid"`` the history is the train segment and the target the first valid event;
  for ``split="test"``, train+valid and the first test event. With ``targets="all"`` every event
  of the split is a target, its history being everything before it (successive evaluation, for
  time splits with several held-out events). Examples with an empty history are skipped. Order is
  by user id then position: deterministic, no shuffling.

  Iterating yields a dict per global batch, this process's rows only: ``history_ids`` int32
  ``[b, L]`` and ``history_mask`` bool (left-padded, as in training), ``target_ids`` int32
  ``[b]``, ``user_ids`` int32 ``[b]``, ``valid`` bool ``[b]`` (False on the padding rows that fill
  the last batch) and, with ``with_seen``, ``seen_ids`` int32 ``[b, S]``: the user's whole history
  (the most recent ``max_seen`` items if set), to exclude already-seen items from the ranking.
  S is the same for every batch. Note that ``seen_ids`` may hold the target when a user returns to
  an item.
  """

  def __init__(self, dataset: RecDataset, *, split: str = "valid", max_len: int,
               global_batch_size: int, targets: str = "first", with_seen: bool = True,
               max_seen: Optional[int] = None, process_index: Optional[int] = None,
               process_count: Optional[int] = None, batch_size_key: str = "eval.batch_size"):
    if split not in ("valid", "test"):
      raise ValueError(f"split {split!r} is not 'valid' or 'test'.")
    if targets not in ("first", "all"):
      raise ValueError(f"targets {targets!r} is not 'first' or 'all'.")
    self.process_index, self.process_count = _process(process_index, process_count)
    self.local_batch_size = distributed.local_batch_size(
        global_batch_size, 1, batch_size_key, self.process_count)
    self.global_batch_size = int(global_batch_size)
    lo = dataset.lengths("train" if split == "valid" else "train_valid")
    hi = dataset.lengths("train_valid" if split == "valid" else "all")
    count = np.where(lo >= 1, hi - lo, 0) if targets == "all" else ((lo >= 1) & (hi > lo))
    count = count.astype(np.int64)
    self.users = np.repeat(np.arange(len(lo)), count)
    first = np.cumsum(count) - count
    self.positions = lo[self.users] + np.arange(int(count.sum())) - np.repeat(first, count)
    self.max_len = int(max_len)
    self.with_seen = with_seen
    width = int(self.positions.max()) if len(self.positions) else 1
    self.seen_width = max(1, min(width, max_seen) if max_seen else width)
    self._dataset = dataset

  @property
  def num_examples(self) -> int:
    return len(self.users)

  def __len__(self) -> int:
    """The number of (global) batches."""
    return -(-self.num_examples // self.global_batch_size)

  def __iter__(self):
    ds = self._dataset
    for b in range(len(self)):
      rows = (b * self.global_batch_size + self.process_index * self.local_batch_size
              + np.arange(self.local_batch_size))
      valid = rows < self.num_examples
      rows = np.where(valid, rows, 0)
      users = np.where(valid, self.users[rows], 0) if self.num_examples else rows * 0
      t = np.where(valid, self.positions[rows], 0) if self.num_examples else rows * 0
      start = ds.offsets[users]
      end = np.where(valid, start + t, start)
      history = left_padded(ds.items, start, end, self.max_len)
      batch = {"history_ids": history, "history_mask": history > 0,
               "target_ids": np.where(valid, ds.items[np.minimum(end, len(ds.items) - 1)],
                                      0).astype(np.int32),
               "user_ids": users.astype(np.int32), "valid": valid}
      if self.with_seen:
        batch["seen_ids"] = left_padded(ds.items, start, end, self.seen_width)
      yield batch
