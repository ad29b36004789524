"""Packed training rows: the layout is right, and the loss is the unpacked batch's loss.

Several users' short windows share one row (``common.recsys.packing``), kept apart by segment ids
in both attention levels and in the LMP targets, with each window's own positions. So for any
parameters, without dropout, a packed batch must give the loss of the same windows unpacked.
"""

import numpy as np
import pytest

from common.data.schema import FieldSpec
from heterrec_jax import config as config_lib
from heterrec_jax import models
from heterrec_jax import objectives
from common.recsys import packing
from tests.heterrec import heterrec_testlib as lib

W = lib.MAX_LEN + 1  # a training window: L inputs + the next item
N = lib.NUM_ITEMS


def _windows(seed=0, num=12):
  """Left-padded windows of random lengths 0..W (mostly short), and a strided target mask."""
  rng = np.random.default_rng(seed)
  ids = np.zeros((num, W), np.int32)
  counted = np.zeros((num, W), bool)
  for row, n in enumerate(rng.choice([0, 1, 2, 3, 4, W], size=num, p=[.05, .1, .3, .3, .15, .1])):
    ids[row, W - n:] = rng.integers(1, N + 1, size=n)
    counted[row, max(W - n, 1):] = rng.random(n - (1 if n == W else 0)) < 0.8
  ids[0, :] = rng.integers(1, N + 1, size=W)  # one full window
  counted[0, 1:] = True
  return ids, counted


def test_pack_windows_layout():
  ids, counted = _windows()
  packed = packing.pack_windows(ids, counted, row_multiple=2)
  rows = len(packed["item_ids"])
  assert rows % 2 == 0 and rows < len(ids)
  assert packing.padding_fraction(packed["item_ids"]) < packing.padding_fraction(ids)
  # Every non-empty window is one contiguous segment holding its items, targets and positions.
  found = []
  for r in range(rows):
    seg = packed["segment_ids"][r]
    assert np.all((seg == 0) == (packed["item_ids"][r] == 0))
    for s in np.unique(seg[seg > 0]):
      cols = np.flatnonzero(seg == s)
      assert np.all(np.diff(cols) == 1)
      n = len(cols)
      np.testing.assert_array_equal(packed["positions"][r, cols], np.arange(W - n, W))
      found.append((tuple(packed["item_ids"][r, cols]), tuple(packed["target_mask"][r, cols])))
  want = [(tuple(i[i > 0]), tuple(c[i > 0])) for i, c in zip(ids, counted) if np.any(i)]
  assert sorted(found) == sorted(want)


def test_pack_windows_rejects_right_padding():
  ids = np.array([[3, 4, 0]], np.int32)
  with pytest.raises(ValueError, match="left-padded"):
    packing.pack_windows(ids, ids > 0)


def _specs():
  return (FieldSpec("brand", "categorical", vocab_size=5),
          FieldSpec("attrs", "multi", vocab_size=7, max_len=3))


def _features(seed=0):
  rng = np.random.default_rng(seed)
  brand = rng.integers(1, 5, N + 1).astype(np.int32)
  attrs = rng.integers(0, 7, (N + 1, 3)).astype(np.int32)
  brand[0], attrs[0] = 0, 0
  return {"brand": brand, "attrs": attrs}


@pytest.mark.parametrize("name,overrides,k", [
    ("heterrec", {}, 1),
    ("heterrec", dict(multi_tokens="per_value", mask="causal", pooling="mean"), 2),
    ("sasrec", {}, 2),
    ("fusion_sasrec", {}, 1),
])
def test_packed_loss_equals_unpacked(name, overrides, k):
  ids, counted = _windows(1)
  packed = packing.pack_windows(ids, counted, row_multiple=1)
  assert len(packed["item_ids"]) < len(ids)
  specs, features = _specs(), _features()
  mc = config_lib.model_config(lib.tiny_model_config(name=name, max_len=W, **overrides))
  model = models.get_model(mc, num_items=N, field_specs=specs)
  params = lib.random_params(model, ids, features)["params"]
  loss_fn = objectives.make_loss_fn(model, config_lib.loss_config(dict(k=k, gamma=0.5),
                                                                  model=name))
  run = lib.jit(lambda p, b: loss_fn(p, b, features, lib.fast_key(0), train=False))
  loss, aux = run(params, {"item_ids": ids, "target_mask": counted})
  loss_p, aux_p = run(params, packed)
  assert int(aux_p["num_targets"]) == int(aux["num_targets"]) > 10
  np.testing.assert_allclose(float(loss_p), float(loss), rtol=2e-5)
  # Without segment ids the packed rows would let windows see each other: a different loss.
  leaky = {k: v for k, v in packed.items() if k not in ("segment_ids",)}
  loss_leaky, _ = run(params, leaky)
  assert abs(float(loss_leaky) - float(loss)) > 1e-3


def _histories(seed=0, num=16, width=lib.MAX_LEN, full=0.1):
  rng = np.random.default_rng(seed)
  hist = np.zeros((num, width), np.int32)
  short = (1 - full) / 3
  for row, n in enumerate(rng.choice([1, 2, 3, width], size=num, p=[short] * 3 + [full])):
    hist[row, width - n:] = rng.integers(1, N + 1, size=n)
  return hist


def test_pack_histories_block_layout():
  hist = _histories()
  packed = packing.pack_histories(hist, num_devices=4, row_multiple=1)
  rows = len(packed["history_ids"]) // 4
  assert len(packed["history_ids"]) % 4 == 0 and rows < 4
  for user, (h, r, c) in enumerate(zip(hist, packed["user_row"], packed["user_col"])):
    block = user // 4  # the user's device block; its row index is local to the block
    row = packed["history_ids"][block * rows + r]
    seg = packed["segment_ids"][block * rows + r]
    np.testing.assert_array_equal(row[seg == seg[c]], h[h > 0])
    assert row[c] == h[-1] and packed["positions"][block * rows + r, c] == lib.MAX_LEN - 1
  hist[3] = 0  # an empty history: not packed
  assert packing.pack_histories(hist, num_devices=4) is None


@pytest.mark.parametrize("name,mode", [("heterrec", "mesh"), ("sasrec", "pmap")])
def test_packed_evaluation_gives_the_same_ranks(name, mode):
  from common import parallel
  from common.recsys import evaluation
  hist = _histories(1, num=32, full=0.0)  # 4 short histories per device: 2 rows or fewer
  rng = np.random.default_rng(2)
  batch = {"history_ids": hist, "target_ids": rng.integers(1, N + 1, len(hist)).astype(np.int32),
           "seen_ids": hist}
  specs, features = _specs(), _features()
  mc = config_lib.model_config(lib.tiny_model_config(name=name, max_len=W))
  model = models.get_model(mc, num_items=N, field_specs=specs)
  params = lib.random_params(model, np.zeros((1, W), np.int32), features)["params"]
  user_fn, item_fn = models.towers(model)
  plain = np.asarray(lib.jit(user_fn)(params, features, batch))
  dp = parallel.DataParallel(mode, 8)
  packed = dict(batch, **packing.pack_histories(hist, dp.num_devices, row_multiple=1))
  assert len(packed["history_ids"]) < len(hist)
  # Unsharded, the block-local rows are global rows for one device.
  one = dict(batch, **packing.pack_histories(hist, 1, row_multiple=1))
  np.testing.assert_allclose(np.asarray(lib.jit(user_fn)(params, features, one)), plain,
                             rtol=1e-5, atol=1e-6)
  rank_fn = evaluation.make_rank_fn(user_fn, item_fn, N, dp)
  args = (dp.replicate(params), dp.replicate(features))
  want = dp.to_host(rank_fn(*args, dp.shard_batch(batch)))
  got = dp.to_host(rank_fn(*args, dp.shard_batch(packed)))
  np.testing.assert_array_equal(got, want)
  assert len(set(want.tolist())) > 3
