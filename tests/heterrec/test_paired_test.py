"""scripts/paired_test.py: per-user paired comparison against numpy references; bad input."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from common import significance
from common.recsys import paired

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _save(path, ranks, users=None, targets=None, counts=None):
  n = len(ranks)
  os.makedirs(path, exist_ok=True)
  np.savez(os.path.join(path, "ranks_test.npz"), ranks=np.asarray(ranks, np.int32),
           users=np.arange(1, n + 1, dtype=np.int32) if users is None else users,
           targets=np.arange(10, 10 + n, dtype=np.int32) if targets is None else targets,
           target_train_count=np.arange(n, dtype=np.int32) if counts is None else counts)


def test_per_user_metric_matches_reference():
  ranks = np.array([0, 1, 4, 9, 10, 50])
  np.testing.assert_allclose(paired.per_user_metric(ranks, "ndcg@10"),
                             [1, 1 / np.log2(3), 1 / np.log2(6), 1 / np.log2(11), 0, 0])
  np.testing.assert_allclose(paired.per_user_metric(ranks, "hr@5"), [1, 1, 1, 0, 0, 0])
  np.testing.assert_allclose(paired.per_user_metric(ranks, "mrr@10"), [1, 0.5, 0.2, 0.1, 0, 0])
  np.testing.assert_allclose(paired.per_user_metric(ranks, "mrr@all"), 1 / (ranks + 1.0))
  np.testing.assert_allclose(paired.per_user_metric(ranks, "ndcg@all"), 1 / np.log2(ranks + 2.0))
  with pytest.raises(ValueError, match="--metric"):
    paired.per_user_metric(ranks, "hr@all")
  with pytest.raises(ValueError, match="--metric"):
    paired.per_user_metric(ranks, "auc@10")


def test_clear_difference_is_significant_and_null_is_not():
  rng = np.random.default_rng(0)
  a = rng.random(500)
  strong = significance.paired_stats(a + 0.1, a, resamples=2000, seed=0)
  assert strong["diff"] == pytest.approx(0.1) and strong["wins"] == 500
  assert strong["p_sign_flip"] < 0.01
  assert strong["ci95"][0] == pytest.approx(0.1) and strong["ci95"][1] == pytest.approx(0.1)
  noise = rng.normal(0, 0.2, 500)
  null = significance.paired_stats(a + noise - noise.mean(), a, resamples=2000, seed=0)
  assert null["p_sign_flip"] > 0.5 and null["ci95"][0] < 0 < null["ci95"][1]


def test_cli_averages_seeds_per_user_and_bands_by_popularity(tmp_path):
  n = 30
  # A ranks every rare target (low count) first; on popular targets both miss.
  counts = np.arange(n)
  a_ranks = np.where(counts < 10, 0, 100)
  b_ranks = np.full(n, 100)
  for seed in (0, 1):
    _save(str(tmp_path / f"a{seed}"), a_ranks, counts=counts)
    _save(str(tmp_path / f"b{seed}"), b_ranks, counts=counts)
  out = tmp_path / "paired.json"
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO, "scripts", "paired_test.py"),
       f"--a={tmp_path / 'a0'},{tmp_path / 'a1'}", f"--b={tmp_path / 'b0'},{tmp_path / 'b1'}",
       "--labels=HeterRec,SASRec", "--resamples=500", f"--out={out}"],
      capture_output=True, text=True, cwd=REPO, check=False)
  assert proc.returncode == 0, proc.stderr
  assert "HeterRec - SASRec" in proc.stdout
  res = json.loads(out.read_text())
  assert res["pooled"]["diff"] == pytest.approx(10 / 30)
  assert [b["diff"] for b in res["bands"]] == pytest.approx([1.0, 0.0, 0.0])
  assert res["bands"][0]["target_count_range"] == [0, 9]
  assert len(res["per_seed"]) == 2


def test_different_users_or_missing_file_is_a_clear_error(tmp_path):
  _save(str(tmp_path / "a"), [0, 1, 2])
  _save(str(tmp_path / "b"), [0, 1, 2], targets=np.array([10, 11, 99], np.int32))
  script = os.path.join(REPO, "scripts", "paired_test.py")
  proc = subprocess.run([sys.executable, script, f"--a={tmp_path / 'a'}",
                         f"--b={tmp_path / 'b'}"], capture_output=True, text=True, cwd=REPO,
                        check=False)
  assert proc.returncode != 0 and "different evaluated targets" in proc.stderr
  proc = subprocess.run([sys.executable, script, f"--a={tmp_path / 'a'}",
                         f"--b={tmp_path / 'nothing'}"], capture_output=True, text=True,
                        cwd=REPO, check=False)
  assert proc.returncode != 0 and "ranks_test.npz: no saved ranks" in proc.stderr
