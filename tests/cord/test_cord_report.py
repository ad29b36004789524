"""cord_jax.report (scripts/cord_report.py) and common.significance: per-seed cross-play, the
exact tests over seeds, curves and errors."""

import json
import math
import os

import numpy as np
import pytest

from common import significance
from cord_jax import report as cord_report


def test_per_seed_rows_and_columns():
  m = np.array([[4.0, 1.0, 2.0],
                [3.0, 5.0, 0.0],
                [1.0, 2.0, 6.0]])
  ps = cord_report.per_seed(m)
  np.testing.assert_allclose(ps["self_play"], [4.0, 5.0, 6.0])
  # seed 0: row (1, 2) and column (3, 1) -> 7 / 4.
  np.testing.assert_allclose(ps["cross_play"], [7 / 4, (3 + 0 + 1 + 2) / 4, (1 + 2 + 2 + 0) / 4])
  np.testing.assert_allclose(ps["gap"], ps["self_play"] - ps["cross_play"])
  with pytest.raises(ValueError, match="at least 2 seeds"):
    cord_report.per_seed(np.ones((1, 1)))


def test_sign_flip_exact():
  # All 4 differences positive: only the all-plus and all-minus patterns reach |sum|.
  assert significance.sign_flip_p(np.array([1.0, 2.0, 3.0, 4.0])) == pytest.approx(2 / 16)
  assert significance.sign_flip_p(np.array([1.0, -1.0, 1.0, -1.0])) == pytest.approx(1.0)


def test_permutation_exact():
  a, b = np.arange(4.0) + 10, np.arange(4.0)
  # Fully separated samples: only the observed split and its mirror are as extreme.
  assert significance.permutation_p(a, b) == pytest.approx(2 / math.comb(8, 4))
  assert significance.permutation_p(a, a.copy()) == pytest.approx(1.0)


def _fake_run(root, method, matrix, returns):
  run = os.path.join(root, method)
  os.makedirs(run)
  with open(os.path.join(run, "config.json"), "w") as f:
    json.dump({"env": {"num_envs": 4}, "ppo": {"rollout_len": 8, "updates_per_chunk": 2}}, f)
  with open(os.path.join(run, "metrics.jsonl"), "w") as f:
    for step, r in enumerate(returns, 1):
      rec = {"step": step, "split": "train", "return": float(np.mean(r))}
      rec.update({f"return/seed_{k}": float(v) for k, v in enumerate(r)})
      f.write(json.dumps(rec) + "\n")
  return {"matrix": matrix, "with_greedy_partner": 1.0, "partner_per_seed": [1.0] * len(matrix),
          "random_policy": 0.1}


def test_report_and_curves(tmp_path):
  root = str(tmp_path / "env")
  os.makedirs(root)
  data = {"cord": _fake_run(root, "cord", [[3, 2], [2, 3]], [[0.1, 0.2], [0.5, 0.7]]),
          "mappo": _fake_run(root, "mappo", [[3, 1], [1, 3]], [[0.1, 0.1], [0.4, 0.6]])}
  with open(os.path.join(root, "crossplay.json"), "w") as f:
    json.dump(data, f)
  res = cord_report.report(root, "mappo")
  assert [r["method"] for r in res["rows"]] == ["cord", "mappo"]
  assert res["rows"][0]["cross-play"].startswith("2.000")
  cross = [t for t in res["tests"] if t["quantity"] == "cross-play"][0]
  assert cross["difference"] == "+1.000"
  steps, ret = cord_report.curves(os.path.join(root, "cord", "metrics.jsonl"))
  np.testing.assert_array_equal(steps, [1, 2])
  np.testing.assert_allclose(ret, [[0.1, 0.2], [0.5, 0.7]])
  png = str(tmp_path / "curves.png")
  cord_report.plot_curves(root, ["cord", "mappo"], png, "fake")
  assert os.path.getsize(png) > 1000


def test_bad_metrics_line_names_file_and_line(tmp_path):
  path = tmp_path / "metrics.jsonl"
  path.write_text('{"step": 1, "return/seed_0": 1.0}\n{not json\n')
  with pytest.raises(ValueError, match=r"metrics.jsonl:2"):
    cord_report.curves(str(path))


def test_missing_crossplay_says_what_to_run(tmp_path):
  with pytest.raises(ValueError, match="cord_crossplay.py"):
    cord_report.report(str(tmp_path), "mappo")
