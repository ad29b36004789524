"""scripts/compare_recbole.py: mean ± std over seeds, and the verdict against RecBole."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _write(path, obj):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    json.dump(obj, f)


def _run(*args):
  return subprocess.run([sys.executable, os.path.join(REPO, "scripts", "compare_recbole.py"),
                         *args], capture_output=True, text=True, cwd=REPO, check=False)


def test_table_and_verdict(tmp_path):
  suite = tmp_path / "suite"
  for seed, ndcg in ((0, 0.05), (1, 0.07)):
    _write(str(suite / f"sasrec_seed{seed}" / "results.json"),
           {"best_step": 100 * (seed + 1), "valid": {"ndcg@10": 0.08},
            "test": {"ndcg@10": ndcg, "hr@10": 0.1, "mrr@10": 0.03, "ndcg@20": 0.09}})
  rb = str(tmp_path / "rb0.json")
  _write(rb, {"complete": True, "config": {"seed": 0}, "best": {"epoch": 9, "valid_ndcg@10": 0.07},
              "test": {"ndcg@10": 0.0625, "hr@10": 0.1, "mrr@10": 0.03, "ndcg@20": 0.09}})
  out = _run(f"--suite={suite}", "--models=sasrec,heterrec", f"--recbole={rb}")
  assert out.returncode == 0, out.stderr
  assert "0.0600 ± 0.0100" in out.stdout  # mean and population std of 0.05 and 0.07
  assert "step 100, step 200" in out.stdout and "epoch 9" in out.stdout
  assert "BELOW RecBole's (0.960x)" in out.stdout
  assert "no finished runs of heterrec" in out.stdout
  with open(suite / "vs_recbole.md") as f:
    assert "0.0600 ± 0.0100" in f.read()


def test_incomplete_recbole_run_is_named(tmp_path):
  rb = str(tmp_path / "running.json")
  _write(rb, {"complete": False, "epochs": []})
  out = _run(f"--suite={tmp_path}", f"--recbole={rb}")
  assert out.returncode != 0
  assert "running.json: RecBole run not complete" in out.stderr
  assert not os.path.exists(tmp_path / "vs_recbole.md")


def test_recbole_models_get_rows_and_a_split_mismatch_is_refused(tmp_path):
  suite = tmp_path / "suite"
  _write(str(suite / "sasrec_seed0" / "results.json"),
         {"best_step": 100, "valid": {"ndcg@10": 0.08},
          "test": {"ndcg@10": 0.05, "hr@10": 0.1, "mrr@10": 0.03, "ndcg@20": 0.09}})
  test = {"ndcg@10": 0.04, "hr@10": 0.1, "mrr@10": 0.03, "ndcg@20": 0.09}
  paths = []
  for name, system, ndcg in (("sasrec", "RecBole SASRec (CE)", 0.04),
                             ("sasrecf", "RecBole SASRecF (CE)", 0.06)):
    paths.append(str(tmp_path / f"{name}.json"))
    _write(paths[-1], {"complete": True, "system": system,
                       "config": {"seed": 0, "history_masking": True},
                       "data": {"split_fingerprint": "ab" * 32, "split_fingerprint_match": True},
                       "best": {"epoch": 3, "valid_ndcg@10": 0.07},
                       "test": dict(test, **{"ndcg@10": ndcg})})
  out = _run(f"--suite={suite}", "--models=sasrec", f"--recbole={','.join(paths)}")
  assert out.returncode == 0, out.stderr
  assert "RecBole SASRecF (CE)" in out.stdout and "0.0600 ± 0.0000" in out.stdout
  assert "RecBole SASRecF (CE): history masked; split fingerprint abababababababab" in out.stdout
  # The verdict compares with RecBole's SASRec, not SASRecF.
  assert "vs RecBole's 0.0400: at least RecBole's (1.250x)" in out.stdout
  bad = str(tmp_path / "bad.json")
  _write(bad, {"complete": True, "config": {"seed": 0}, "best": {"epoch": 1, "valid_ndcg@10": 0},
               "data": {"split_fingerprint": "a", "expected_split_fingerprint": "b",
                        "split_fingerprint_match": False}, "test": test})
  out = _run(f"--suite={suite}", f"--recbole={bad}")
  assert out.returncode != 0 and "bad.json: RecBole's split is not the expected one" in out.stderr
