r"""Side-by-side table: our models (a run_suite.py folder) against RecBole's SASRec (its JSONs).

    python scripts/compare_recbole.py --suite=workdirs/suite_ml100k \
        --models=sasrec,fusion_sasrec,heterrec \
        --recbole=workdirs/bench/recbole_seed0.json,workdirs/bench/recbole_seed1.json,...

Reads ``<suite>/<model>_seed<s>/results.json`` for every seed found (``--seeds`` to pick) and the
complete JSONs of ``benchmarks/recbole_sasrec.py``. Prints and writes (``--out``, atomically) a
Markdown table of test metrics at each run's best validation NDCG@10: mean ± std over seeds (std
with ``ddof=0``, as ``run_suite.py``), the best validation NDCG@10, and the step or epoch of the
best. RecBole runs get one row per model (``system``: SASRec, SASRecF), and a note with their
history masking and split fingerprint; a JSON whose split did not match the expected one is
refused. Also says whether our SASRec's mean test NDCG@10 is at least RecBole SASRec's. Nothing is
trained.
"""

import datetime
import glob
import json
import os
import re
import sys

from absl import app
from absl import flags
import numpy as np

from common import metric_writers

_SUITE = flags.DEFINE_string("suite", None, "A run_suite.py workdir.")
_MODELS = flags.DEFINE_list("models", ["sasrec", "fusion_sasrec", "heterrec"], "Our variants.")
_SEEDS = flags.DEFINE_list("seeds", [], "Seeds to read (default: every seed found).")
_RECBOLE = flags.DEFINE_list("recbole", [], "Complete JSONs of benchmarks/recbole_sasrec.py.")
_METRICS = flags.DEFINE_list("metrics", ["ndcg@10", "hr@10", "mrr@10", "ndcg@20"], "Columns.")
_OUT = flags.DEFINE_string("out", "", "Markdown file to write (default <suite>/vs_recbole.md).")
flags.mark_flags_as_required(["suite"])


def _mean_std(values):
  return f"{np.mean(values):.4f} ± {np.std(values):.4f}"


def ours(suite: str, model: str, seeds) -> list[dict]:
  runs = []
  for path in sorted(glob.glob(os.path.join(suite, f"{model}_seed*", "results.json"))):
    seed = int(re.search(r"_seed(\d+)", path).group(1))
    if seeds and str(seed) not in seeds:
      continue
    with open(path) as f:
      res = json.load(f)
    runs.append({"seed": seed, "test": res["test"], "valid_ndcg@10": res["valid"]["ndcg@10"],
                 "best": f"step {res.get('best_step', '?')}"})
  return runs


def recbole(paths) -> list[dict]:
  runs = []
  for path in paths:
    with open(path) as f:
      rb = json.load(f)
    if not rb.get("complete"):
      raise ValueError(f"{path}: RecBole run not complete (still running or failed).")
    data = rb.get("data", {})
    if data.get("split_fingerprint_match") is False:
      raise ValueError(f"{path}: RecBole's split is not the expected one (split_fingerprint "
                       f"{data.get('split_fingerprint')}, expected "
                       f"{data.get('expected_split_fingerprint')}).")
    runs.append({"seed": rb.get("config", {}).get("seed", rb.get("seed", "?")),
                 "test": rb["test"], "valid_ndcg@10": rb["best"]["valid_ndcg@10"],
                 "best": f"epoch {rb['best']['epoch']}",
                 "system": rb.get("system", "RecBole SASRec (CE)"),
                 "history_masking": bool(rb.get("config", {}).get("history_masking", False)),
                 "fingerprint": data.get("split_fingerprint")})
  return runs


def row(name: str, runs: list[dict]) -> dict:
  out = {"model": name, "seeds": len(runs)}
  for m in _METRICS.value:
    out[f"test {m}"] = _mean_std([r["test"][m] for r in runs])
  out["best valid ndcg@10"] = _mean_std([r["valid_ndcg@10"] for r in runs])
  out["best at"] = ", ".join(r["best"] for r in runs)
  return out


def main(argv):
  del argv
  rows, by_name = [], {}
  for model in _MODELS.value:
    runs = ours(_SUITE.value, model, _SEEDS.value)
    if runs:
      rows.append(row(f"ours: {model}", runs))
      by_name[model] = runs
    else:
      print(f"(no finished runs of {model} under {_SUITE.value})")
  notes = []
  if _RECBOLE.value:
    # One row per RecBole model (SASRec, SASRecF), in the order first given.
    rb_all = recbole(_RECBOLE.value)
    for system in dict.fromkeys(r["system"] for r in rb_all):
      runs = [r for r in rb_all if r["system"] == system]
      rows.append(row(system, runs))
      masked = {r["history_masking"] for r in runs}
      masking = ("MIXED (some runs masked, some not)" if len(masked) > 1
                 else "masked" if masked == {True} else "not masked")
      prints = ", ".join(sorted({str(r["fingerprint"])[:16] for r in runs}))
      notes.append(f"{system}: history {masking}; split fingerprint {prints}")
    by_name["recbole"] = [r for r in rb_all if r["system"] == "RecBole SASRec (CE)"]
    if len({r["fingerprint"] for r in rb_all}) > 1:
      notes.append("WARNING: the RecBole runs are on different splits (fingerprints differ).")
  cols = ["model", "seeds"] + [f"test {m}" for m in _METRICS.value] + ["best valid ndcg@10",
                                                                         "best at"]
  text = (f"{datetime.date.today()}, command:\n    python scripts/compare_recbole.py "
          + " ".join(sys.argv[1:]) + "\n\n" + metric_writers.format_table(rows, cols) + "\n")
  if notes:
    text += "\n" + "\n".join(notes) + "\n"
  if "sasrec" in by_name and by_name.get("recbole"):
    a = np.mean([r["test"]["ndcg@10"] for r in by_name["sasrec"]])
    b = np.mean([r["test"]["ndcg@10"] for r in by_name["recbole"]])
    text += (f"\nour SASRec-CE mean test NDCG@10 {a:.4f} vs RecBole's {b:.4f}: "
             f"{'at least' if a >= b else 'BELOW'} RecBole's ({a / b:.3f}x)\n")
  print(text)
  metric_writers.atomic_write_text(_OUT.value or os.path.join(_SUITE.value, "vs_recbole.md"),
                                   text)


if __name__ == "__main__":
  app.run(main)
