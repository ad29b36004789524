"""HeterRec's towers through the shared sharded evaluation equal the dense one-device reference."""

import numpy as np
import pytest

from common import parallel
from common.recsys import embedders
from common.recsys import evaluation
from common.recsys import metrics
from heterrec_jax import models
from tests.heterrec import heterrec_testlib as lib


def _setup(name):
  specs = lib.make_specs()
  model = models.get_model(lib.model_config(name=name), num_items=lib.NUM_ITEMS,
                           field_specs=specs)
  features = embedders.select_features(model.fields, lib.make_features(), lib.NUM_ITEMS)
  rng = np.random.default_rng(0)
  batch = 16
  history = rng.integers(1, lib.NUM_ITEMS + 1, (batch, lib.MAX_LEN)).astype(np.int32)
  lengths = rng.integers(1, lib.MAX_LEN + 1, batch)
  history[np.arange(lib.MAX_LEN)[None, :] < (lib.MAX_LEN - lengths)[:, None]] = 0  # left pad
  targets = rng.integers(1, lib.NUM_ITEMS + 1, batch).astype(np.int32)
  params = lib.random_params(model, history, features)["params"]
  return model, features, params, {"history_ids": history, "target_ids": targets,
                                   "seen_ids": history}


def _dense_ranks(model, features, params, batch, mask_history):
  variables = {"params": params}
  user = models.user_embeddings(model, variables, {"item_ids": batch["history_ids"]}, features)
  items = models.catalogue_embeddings(model, variables, features)
  scores = evaluation.score_catalogue(user, items)
  return np.asarray(metrics.target_ranks(
      scores, batch["target_ids"], batch["seen_ids"] if mask_history else None))


@pytest.mark.parametrize("name,mode,mask_history", [
    ("heterrec", "mesh", True), ("heterrec", "pmap", False), ("sasrec", "mesh", False),
    ("sasrec", "pmap", True)])
def test_sharded_ranks_equal_dense_reference(name, mode, mask_history):
  model, features, params, batch = _setup(name)
  expected = _dense_ranks(model, features, params, batch, mask_history)
  dp = parallel.DataParallel(mode, 8)  # 31 catalogue rows over 8 devices: uneven, padded shards
  user_fn, item_fn = models.towers(model)
  rank_fn = evaluation.make_rank_fn(user_fn, item_fn, model.num_items, dp,
                                    mask_history=mask_history,
                                    chunk_size=3 if mode == "mesh" else 0)
  ranks = dp.to_host(rank_fn(dp.replicate(params), dp.replicate(features),
                             dp.shard_batch(batch)))
  np.testing.assert_array_equal(ranks, expected)
  assert ranks.min() >= 0 and ranks.max() < lib.NUM_ITEMS
  assert len(set(ranks.tolist())) > 3  # a real spread of ranks, not a constant


def test_evaluate_averages_valid_rows_only():
  model, features, params, batch = _setup("sasrec")
  dp = parallel.DataParallel("mesh", 8)
  rank_fn = evaluation.make_rank_fn(*models.towers(model), model.num_items, dp)
  valid = np.arange(16) < 11
  out = evaluation.evaluate(rank_fn, dp, dp.replicate(params), dp.replicate(features),
                            [dict(batch, valid=valid)], ks=(5, 10))
  ranks = _dense_ranks(model, features, params, batch, True)[valid]
  assert out["num_users"] == 11
  np.testing.assert_allclose(out["hr@10"], np.mean(ranks < 10), rtol=1e-6)
  np.testing.assert_allclose(out["ndcg@5"], np.mean(np.where(ranks < 5, 1 / np.log2(ranks + 2),
                                                             0)), rtol=1e-6)
