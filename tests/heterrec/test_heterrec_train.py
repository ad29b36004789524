"""The HeterRec trainer end to end: learns, resumes, and rejects bad input clearly."""

import os

import jax
import numpy as np
import pytest

from common import config_checks
from configs.heterrec import synthetic
from heterrec_jax import train


def _tiny(name="heterrec", steps=150):
  c = synthetic.get_config(f"runlocal,{name}")
  c.train.num_steps = steps
  c.train.eval_every = 0
  c.train.checkpoint_every = 0
  c.train.log_every = 50
  c.train.progress_bar = False
  c.model.dropout = 0.0
  c.model.attention_dropout = 0.0
  c.optim.learning_rate = 3e-3
  return c


@pytest.fixture(scope="module")
def tiny_data():
  return train.load_data(_tiny())


def test_short_run_lifts_ndcg_far_above_popularity(tmp_path):
  config = _tiny("sasrec", steps=150)
  config.train.eval_every = 50  # test metrics come from the best validation checkpoint
  out = train.train_and_evaluate(config, str(tmp_path))
  pop, test = out["popularity_test"]["ndcg@10"], out["test"]["ndcg@10"]
  # The synthetic data's next item follows its predecessor's category; popularity cannot see it.
  # (Measured: 0.26 against 0.17 on this 200-item catalogue, where popularity is strong.)
  assert test > 1.2 * pop, (test, pop)
  assert os.path.exists(tmp_path / "learning_curves.png")
  assert os.path.exists(tmp_path / "results.json")
  # The per-user ranks saved for paired tests reproduce the reported test metrics.
  saved = np.load(tmp_path / "ranks_test.npz")
  assert len(saved["ranks"]) == out["test"]["num_users"]
  ranks = saved["ranks"].astype(np.float64)
  ndcg = np.where(ranks < 10, 1.0 / np.log2(ranks + 2.0), 0.0)
  np.testing.assert_allclose(ndcg.mean(), test, rtol=1e-5)
  assert (saved["targets"] > 0).all() and (saved["target_train_count"] >= 0).all()
  # scripts/evaluate.py's path: the best checkpoint re-tested gives the same test metrics.
  again = train.evaluate_workdir(config, str(tmp_path))
  assert again["test"]["ndcg@10"] == pytest.approx(test, rel=1e-6)
  assert again["evaluated_step"] == out["best_step"] and again["stop_reason"] == "num_steps"


def test_strided_windows_mark_their_counted_targets(tiny_data):
  config = _tiny("sasrec")
  config.input.stride = 4
  config.input.pack = False  # the window layout itself (packing: tests/heterrec/test_packing.py)
  batch = next(train.Windows(tiny_data, config))
  ids, counted = batch["item_ids"], batch["target_mask"]
  assert ids.shape == counted.shape == (config.train.batch_size, config.model.max_len + 1)
  # A counted target is a real item with a real item before it, and at most `stride` per window
  # except in a user's earliest window.
  assert not counted[:, 0].any() and (ids[counted] > 0).all()
  assert (ids[:, :-1][counted[:, 1:]] > 0).all()
  assert counted.any() and counted.sum() < (ids[:, 1:] > 0).sum()
  plain_config = _tiny("sasrec")
  plain_config.input.pack = False
  plain = next(train.Windows(tiny_data, plain_config))
  np.testing.assert_array_equal(plain["target_mask"][:, 1:],
                                (plain["item_ids"][:, :-1] > 0) & (plain["item_ids"][:, 1:] > 0))


def test_config_field_missing_from_dataset(tmp_path, tiny_data):
  config = _tiny()
  config.model.fields = ("category", "brand")
  with pytest.raises(ValueError, match=r"\['brand'\].*does not have"):
    train.make_task(config, tiny_data)


def test_id_only_heterrec_says_so_once(capsys, tiny_data):
  # A data set whose item fields are all dropped: HeterRec has only the id token to work with.
  config = _tiny()
  for name in config.data.item_features:
    config.data.item_features[name].kind = "drop"
  bare = train.load_data(config)
  assert not [s for s in bare.field_specs if s.kind in ("categorical", "multi", "numeric",
                                                          "dense") and s.name != "item_id"]
  capsys.readouterr()
  task, extras = train.make_task(config, bare)
  out = capsys.readouterr().out
  assert extras["model"].fields == () and out.count("id-only transformer") == 1, out
  # Naming only the id in model.fields is the same situation, on data that has features.
  named = _tiny()
  named.model.fields = ("item_id",)
  train.make_task(named, tiny_data)
  assert capsys.readouterr().out.count("id-only transformer") == 1
  # With features, or for a baseline (ids only by design), nothing is said.
  train.make_task(_tiny(), tiny_data)
  train.make_task(_tiny("sasrec"), tiny_data)
  assert "id-only" not in capsys.readouterr().out
  assert task.consts["features"] == {}


def test_sequence_length_zero_is_rejected(tmp_path):
  config = _tiny()
  config.model.max_len = 0
  with pytest.raises(config_checks.ConfigError, match="model.max_len"):
    train.train_and_evaluate(config, str(tmp_path))


def test_catalogue_mismatch_on_restore(tmp_path):
  config = _tiny(steps=2)
  config.train.checkpoint_every = 1
  train.train_and_evaluate(config, str(tmp_path))
  bigger = _tiny(steps=4)
  bigger.data.source.num_items = 250  # a different catalogue, same workdir
  with pytest.raises(ValueError, match=r"does not fit this model.*catalogue"):
    train.train_and_evaluate(bigger, str(tmp_path))


def test_ml100k_config_runs_on_the_real_data(tmp_path):
  from configs.heterrec import ml100k  # pylint: disable=g-import-not-at-top
  config = ml100k.get_config("runlocal,sasrec")
  path = config.data.source.path
  if not os.path.isabs(path):
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), path)
  if not os.path.exists(os.path.join(path, "ml-100k.inter")):
    pytest.skip(f"ML-100K (RecBole atomic) not found at {os.path.normpath(path)}; the shared "
                "data folder is absent on this machine.")
  config.data.source.path = path
  config.train.progress_bar = False
  # The file config's own recipe (post-LN, strided windows), shrunk to a smoke run.
  assert config.model.norm == "post" and 1 <= config.input.stride <= config.model.max_len
  out = train.train_and_evaluate(config, str(tmp_path))
  assert out["test"]["num_users"] > 0 and np.isfinite(out["test"]["ndcg@10"])
