"""CORD results across seeds: per-seed cross-play, tests against a baseline, training curves.

Reads what ``scripts/cord_crossplay.py`` writes (``crossplay.json`` and each method's
``metrics.jsonl``); the CLI is ``scripts/cord_report.py``.
"""

import json
import os

import numpy as np

from common import metric_writers
from common.significance import permutation_p
from common.significance import sign_flip_p


def per_seed(matrix: np.ndarray) -> dict:
  """Per-seed self-play, cross-play (row and column, off the diagonal) and gap, ``[S]`` each."""
  m = np.asarray(matrix, np.float64)
  s = m.shape[0]
  if m.shape != (s, s) or s < 2:
    raise ValueError(f"a cross-play matrix must be square with at least 2 seeds; got {m.shape}.")
  off = ~np.eye(s, dtype=bool)
  cross = np.array([(m[i][off[i]].sum() + m[:, i][off[:, i]].sum()) / (2 * (s - 1))
                    for i in range(s)])
  self_play = np.diag(m).copy()
  return {"self_play": self_play, "cross_play": cross, "gap": self_play - cross}


def curves(metrics_path: str) -> tuple[np.ndarray, np.ndarray]:
  """(env steps ``[T]``, returns ``[T, S]``) from a run's metrics.jsonl (train rows)."""
  steps, rows = [], []
  for rec in metric_writers.read_jsonl(metrics_path, "train"):
    seeds = sorted((k for k in rec if k.startswith("return/seed_")),
                   key=lambda k: int(k.rsplit("_", 1)[1]))
    if seeds:
      steps.append(rec["step"])
      rows.append([rec[k] for k in seeds])
  if not rows:
    raise ValueError(f"{metrics_path}: no training rows with per-seed returns.")
  return np.asarray(steps), np.asarray(rows, np.float64)


def env_steps_per_chunk(config_path: str) -> int:
  """Env steps per seed in one logged chunk, from the run's config.json."""
  with open(config_path) as f:
    c = json.load(f)
  return c["env"]["num_envs"] * c["ppo"]["rollout_len"] * c["ppo"]["updates_per_chunk"]


def plot_curves(workdir: str, methods: list[str], path: str, title: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(7, 4.2))
  for method in methods:
    run = os.path.join(workdir, method)
    steps, ret = curves(os.path.join(run, "metrics.jsonl"))
    x = steps * env_steps_per_chunk(os.path.join(run, "config.json"))
    line, = ax.plot(x, ret.mean(1), label=f"{method} ({ret.shape[1]} seeds)")
    ax.fill_between(x, ret.min(1), ret.max(1), color=line.get_color(), alpha=0.15)
  ax.set_xlabel("env steps per seed")
  ax.set_ylabel("training return (mean; band: min-max over seeds)")
  ax.set_title(title)
  ax.legend(fontsize=8)
  fig.tight_layout()
  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=110)
  plt.close(fig)
  os.replace(tmp, path)


def _ms(x) -> str:
  x = np.asarray(x, np.float64)
  return f"{x.mean():.3f} ± {x.std(ddof=1):.3f}"


def report(workdir: str, baseline: str) -> dict:
  path = os.path.join(workdir, "crossplay.json")
  try:
    with open(path) as f:
      data = json.load(f)
  except (OSError, json.JSONDecodeError) as e:
    raise ValueError(f"{path}: cannot read the cross-play results ({e}); run "
                     "scripts/cord_crossplay.py with this --workdir first.") from e
  methods, rows, tests = list(data), [], []
  partner_key = next((k for k in data[methods[0]] if k.startswith("with_")), None)
  seeds = {}
  for method in methods:
    d = data[method]
    ps = per_seed(d["matrix"])
    seeds[method] = ps
    row = {"method": method, "seeds": len(ps["self_play"]),
           "self-play": _ms(ps["self_play"]), "cross-play": _ms(ps["cross_play"]),
           "gap": _ms(ps["gap"])}
    if "partner_per_seed" in d:
      row[partner_key.replace("_", " ")] = _ms(d["partner_per_seed"])
    if "unseen_per_seed" in d:
      row["unseen team"] = _ms(d["unseen_per_seed"])
    row["random policy"] = f"{d['random_policy']:.3f}"
    rows.append(row)
  if baseline in seeds:
    b = seeds[baseline]
    for method in methods:
      if method == baseline:
        continue
      a = seeds[method]
      if len(a["cross_play"]) != len(b["cross_play"]):
        raise ValueError(f"{path}: {method} and {baseline} have different seed counts.")
      for q in ("cross_play", "gap"):
        tests.append({"comparison": f"{method} - {baseline}", "quantity": q.replace("_", "-"),
                      "difference": f"{a[q].mean() - b[q].mean():+.3f}",
                      "seed spread (std, larger)": f"{max(a[q].std(ddof=1), b[q].std(ddof=1)):.3f}",
                      "p paired (sign flip)": f"{sign_flip_p(a[q] - b[q]):.2g}",
                      "p unpaired (permutation)": f"{permutation_p(a[q], b[q]):.2g}"})
  return {"methods": methods, "rows": rows, "tests": tests,
          "per_seed": {m: {k: v.tolist() for k, v in ps.items()} for m, ps in seeds.items()}}
