"""Full-ranking metrics against a plain float64 numpy reference."""

import math

import numpy as np
import pytest

from common.recsys import metrics
from tests.recsys import recsys_testlib as lib

B, N = 6, 40


def ref_rank(scores, target, history, ties):
  """Rank of ``target`` written out: count eligible items scoring strictly (or, tied) higher."""
  s = scores.astype(np.float64)
  excluded = {0}
  if history is not None:
    excluded |= {int(i) for i in history if i != 0 and i != target}
  eligible = [i for i in range(len(s)) if i not in excluded]
  if math.isnan(s[target]):
    return len(eligible) - 1
  rank = sum(1 for i in eligible if s[i] > s[target])
  if ties == "pessimistic":
    rank += sum(1 for i in eligible if i != target and s[i] == s[target])
  return rank


def ref_metrics(scores, targets, history, ties, ks=(5, 10, 20)):
  out = {f"{m}@{k}": [] for k in ks for m in ("hr", "ndcg", "mrr")}
  for b in range(len(targets)):
    rank = ref_rank(scores[b], int(targets[b]), None if history is None else history[b], ties)
    for k in ks:
      hit = targets[b] != 0 and rank < k
      out[f"hr@{k}"].append(1.0 if hit else 0.0)
      out[f"ndcg@{k}"].append(1.0 / math.log2(rank + 2) if hit else 0.0)
      out[f"mrr@{k}"].append(1.0 / (rank + 1) if hit else 0.0)
  valid = [t != 0 for t in targets]
  means = {name: sum(v for v, ok in zip(vals, valid) if ok) / sum(valid)
           for name, vals in out.items()}
  return out, means


def _inputs(seed):
  rng = np.random.default_rng(seed)
  # Coarse scores, so ties with the target happen and tie handling is exercised.
  scores = np.round(rng.normal(size=(B, N + 1)), 1).astype(np.float32)
  targets = rng.integers(1, N + 1, B).astype(np.int32)
  targets[-1] = 0  # a padding row: invalid, excluded from the means
  scores[0, 0] = 100.0  # the padding item would be top if it were ranked
  history = rng.integers(0, N + 1, (B, 8)).astype(np.int32)
  history[1, 3] = targets[1]  # a target that also occurs in the history stays rankable
  scores[1, targets[1]] = 0.05
  scores[2, targets[2]] = np.nan  # a NaN target gets the worst rank
  scores[3, 5] = np.nan  # a NaN non-target item counts as lower
  return scores, targets, history


rank_metrics = lib.jit(metrics.ranking_metrics, static_argnames=("ks", "ties"))


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("ties", ["optimistic", "pessimistic"])
def test_metrics_match_numpy(masked, ties):
  for seed in range(3):
    scores, targets, history = _inputs(seed)
    history = history if masked else None
    per_user = rank_metrics(scores, targets, history, ties=ties)
    ref_users, ref_means = ref_metrics(scores, targets, history, ties)
    ranks = [ref_rank(scores[b], int(targets[b]), None if history is None else history[b], ties)
             for b in range(B - 1)]
    np.testing.assert_array_equal(np.asarray(per_user["rank"])[:-1], ranks)
    for name, values in ref_users.items():
      np.testing.assert_allclose(np.asarray(per_user[name]), values, rtol=1e-6, err_msg=name)
    means = metrics.mean_metrics(per_user)
    assert set(means) == set(ref_means)
    for name, value in ref_means.items():
      np.testing.assert_allclose(float(means[name]), value, rtol=1e-6, err_msg=name)


def test_ties_and_padding_rules():
  scores = np.zeros((2, 6), np.float32)
  scores[:, 0] = 9.0  # padding item: never ranked
  scores[1, 4] = 1.0
  targets = np.array([2, 2], np.int32)
  optimistic = rank_metrics(scores, targets, None, ties="optimistic")
  pessimistic = rank_metrics(scores, targets, None, ties="pessimistic")
  # Row 0 is constant over real items: optimistic says top, pessimistic says bottom (rank 4).
  np.testing.assert_array_equal(np.asarray(optimistic["rank"]), [0, 1])
  np.testing.assert_array_equal(np.asarray(pessimistic["rank"]), [4, 4])
  history = np.array([[3, 4, 0], [4, 2, 0]], np.int32)
  masked = rank_metrics(scores, targets, history, ties="pessimistic")
  np.testing.assert_array_equal(np.asarray(masked["rank"]), [2, 3])
