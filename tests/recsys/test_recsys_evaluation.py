"""Sharded full ranking and top-K retrieval equal their dense references, for any two towers.

The towers here are a toy: an MLP user tower over the mean embedding of the history ids, and an
embedding-table item tower. 38 catalogue rows over 8 fake devices: uneven, padded shards.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common import parallel
from common.recsys import evaluation
from common.recsys import metrics

N, D, B, H = 37, 8, 16, 6


def _params(seed=0):
  rng = np.random.default_rng(seed)
  f = lambda *shape: rng.normal(size=shape).astype(np.float32)
  return {"bag": f(N + 1, D), "w1": f(D, 16) * 0.5, "b1": f(16), "w2": f(16, D) * 0.5,
          "items": f(N + 1, D)}


def user_fn(params, consts, batch):
  hist = batch["history_ids"]
  present = (hist != 0)[..., None].astype(jnp.float32)
  bag = jnp.sum(params["bag"][hist] * present, axis=1) / jnp.maximum(jnp.sum(present, 1), 1.0)
  return (jnp.tanh(bag @ params["w1"] + params["b1"]) @ params["w2"]) * consts["scale"]


def item_fn(params, consts, ids):
  del consts
  return params["items"][ids]


def _batch(seed=0):
  rng = np.random.default_rng(seed)
  history = rng.integers(1, N + 1, (B, H)).astype(np.int32)
  lengths = rng.integers(1, H + 1, B)
  history[np.arange(H)[None, :] < (H - lengths)[:, None]] = 0  # left padding
  targets = rng.integers(1, N + 1, B).astype(np.int32)
  history[0, -1] = targets[0]  # a target also in the history stays rankable
  return {"history_ids": history, "target_ids": targets, "seen_ids": history}


CONSTS = {"scale": np.float32(1.5)}


def _dense_scores(params, batch):
  user = jax.jit(user_fn)(params, CONSTS, batch)
  items = item_fn(params, CONSTS, jnp.arange(N + 1))
  return np.asarray(evaluation.score_catalogue(user, items))


@pytest.mark.parametrize("mode,mask_history,chunk_size", [
    ("mesh", True, 0), ("mesh", False, 3), ("pmap", True, 2), ("pmap", False, 0)])
def test_sharded_ranks_equal_dense_reference(mode, mask_history, chunk_size):
  params, batch = _params(), _batch()
  scores = _dense_scores(params, batch)
  expected = np.asarray(metrics.target_ranks(
      scores, batch["target_ids"], batch["seen_ids"] if mask_history else None))
  dp = parallel.DataParallel(mode, 8)
  rank_fn = evaluation.make_rank_fn(user_fn, item_fn, N, dp, mask_history=mask_history,
                                    chunk_size=chunk_size)
  ranks = dp.to_host(rank_fn(dp.replicate(params), dp.replicate(CONSTS), dp.shard_batch(batch)))
  np.testing.assert_array_equal(ranks, expected)
  assert ranks.min() >= 0 and ranks.max() < N
  assert len(set(ranks.tolist())) > 3  # a real spread of ranks, not a constant


def _dense_topk(scores, seen, k):
  masked = scores.astype(np.float64).copy()
  masked[:, 0] = -np.inf
  if seen is not None:
    for row, items in enumerate(seen):
      masked[row, items[items > 0]] = -np.inf
  order = np.argsort(-masked, axis=1, kind="stable")[:, :k]
  top = np.take_along_axis(masked, order, axis=1)
  return np.where(np.isneginf(top), 0, order), top


@pytest.mark.parametrize("mode,exclude_history,k", [
    ("mesh", True, 5), ("pmap", True, 1), ("mesh", False, 12), ("pmap", False, 5),
    ("mesh", True, N)])
def test_topk_equals_dense_argsort(mode, exclude_history, k):
  params, batch = _params(1), _batch(1)
  scores = _dense_scores(params, batch)
  want_ids, want_scores = _dense_topk(scores, batch["seen_ids"] if exclude_history else None, k)
  dp = parallel.DataParallel(mode, 8)
  topk_fn = evaluation.make_topk_fn(user_fn, item_fn, N, dp, k, exclude_history=exclude_history)
  ids, got = dp.to_host(topk_fn(dp.replicate(params), dp.replicate(CONSTS),
                                dp.shard_batch(batch)))
  assert ids.shape == got.shape == (B, k) and ids.dtype == np.int32
  np.testing.assert_array_equal(ids, want_ids)
  np.testing.assert_allclose(got, want_scores, rtol=1e-6)
  real = ids > 0
  assert not np.any(ids[~real] != 0) and np.all(np.isneginf(got[~real]))
  for row in range(B):  # the padding item and, if excluded, seen items are never returned
    returned = set(ids[row][real[row]].tolist())
    assert 0 not in returned and len(returned) == real[row].sum()
    if exclude_history:
      assert not returned & set(batch["seen_ids"][row].tolist())
  if k == N:  # more slots than eligible items: the rest are id 0, score -inf
    assert (~real).any(axis=1).all()


def test_topk_rejects_bad_k():
  dp = parallel.DataParallel("mesh", 8)
  with pytest.raises(ValueError, match="k <= num_items"):
    evaluation.make_topk_fn(user_fn, item_fn, N, dp, N + 1)


def test_evaluate_averages_valid_rows_only():
  params, batch = _params(), _batch()
  dp = parallel.DataParallel("mesh", 8)
  rank_fn = evaluation.make_rank_fn(user_fn, item_fn, N, dp)
  valid = np.arange(B) < 11
  ranks_out = []
  out = evaluation.evaluate(rank_fn, dp, dp.replicate(params), dp.replicate(CONSTS),
                            [dict(batch, valid=valid)], ks=(5, 10), ranks_out=ranks_out)
  ranks = np.asarray(metrics.target_ranks(_dense_scores(params, batch), batch["target_ids"],
                                          batch["seen_ids"]))[valid]
  assert out["num_users"] == 11
  np.testing.assert_array_equal(np.concatenate(ranks_out), ranks)
  np.testing.assert_allclose(out["hr@10"], np.mean(ranks < 10), rtol=1e-6)
  np.testing.assert_allclose(out["ndcg@5"], np.mean(np.where(ranks < 5, 1 / np.log2(ranks + 2),
                                                             0)), rtol=1e-6)


@pytest.mark.parametrize("mode", ["mesh", "pmap"])
def test_evaluate_embeds_the_catalogue_once(mode):
  """One evaluation embeds the catalogue once, not once per batch, and ranks the same."""
  params = _params(2)
  batches = [dict(_batch(s), valid=np.ones(B, bool)) for s in (2, 3, 4)]
  dp = parallel.DataParallel(mode, 8)
  rank_fn = evaluation.make_rank_fn(user_fn, item_fn, N, dp)
  dparams, dconsts = dp.replicate(params), dp.replicate(CONSTS)
  catalogue = rank_fn.embed_catalogue(dparams, dconsts)
  for b in batches:  # given the catalogue, the ranks equal the dense reference
    local = {k: v for k, v in b.items() if k != "valid"}
    ranks = dp.to_host(rank_fn(dparams, dconsts, dp.shard_batch(local), catalogue))
    want = metrics.target_ranks(_dense_scores(params, b), b["target_ids"], b["seen_ids"])
    np.testing.assert_array_equal(ranks, np.asarray(want))
  embedded = []
  original = rank_fn.embed_catalogue

  def counting_embed(*args):
    embedded.append(1)
    return original(*args)

  rank_fn.embed_catalogue = counting_embed
  evaluation.evaluate(rank_fn, dp, dparams, dconsts, batches, ks=(5,))
  assert len(embedded) == 1
