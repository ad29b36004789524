r"""CORD results across seeds: tables with spreads and tests, and training curves with seeds shaded.

    python scripts/cord_report.py --workdirs=workdirs/cord_rc,workdirs/cord_lbf \
        --out=workdirs/cord_report [--baseline=mappo]

Each workdir is one ``scripts/cord_crossplay.py`` run: its ``crossplay.json`` (every method's
seed-by-seed cross-play matrix, returns with the scripted partner and on the unseen team) and
``<method>/metrics.jsonl`` (the training log, one ``return/seed_k`` per seed). For each workdir
this writes ``<out>/<name>_curves.png`` (mean training return per method, the band spanning the
seeds' min and max) and prints a markdown table with every quantity as mean ± std over seeds:

- self-play: seed s's own team (the matrix diagonal);
- cross-play: seed s's agents with every other seed's, in both seatings (row s and column s of the
  matrix, diagonal excluded);
- gap: self-play minus cross-play, seed by seed;
- with the scripted partner, and on the unseen team composition.

Then, for each method against ``--baseline``, the difference of the means of cross-play and of
the gap, with two tests over seeds: an exact paired sign-flip test (seed k of one method against
seed k of the other; they share the PRNG seed, hence their env draws) and an exact two-sample
permutation test (the seeds as independent runs). Both are exact: 2^S sign patterns and
C(2S, S) splits.
"""

import itertools
import json
import math
import os
import sys

from absl import app
from absl import flags
import numpy as np

from common import metric_writers

_WORKDIRS = flags.DEFINE_list("workdirs", None, "cord_crossplay.py workdirs, one per env.")
_OUT = flags.DEFINE_string("out", None, "Where the curves PNGs and report.md/json go.")
_BASELINE = flags.DEFINE_string("baseline", "mappo", "The method every other is tested against.")
flags.mark_flags_as_required(["workdirs", "out"])


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


def sign_flip_p(d: np.ndarray) -> float:
  """Exact two-sided p of a paired sign-flip test on the differences ``d``."""
  d = np.asarray(d, np.float64)
  signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
  stats = np.abs(signs @ d)
  return float(np.mean(stats >= abs(d.sum()) - 1e-12))


def permutation_p(a: np.ndarray, b: np.ndarray) -> float:
  """Exact two-sided p of a two-sample permutation test on the difference of means."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  pooled, n = np.concatenate([a, b]), len(a)
  if math.comb(len(pooled), n) > 200_000:
    raise ValueError(f"{len(pooled)} samples: too many splits for the exact test.")
  observed = abs(a.mean() - b.mean())
  total, count = pooled.sum(), 0
  splits = 0
  for idx in itertools.combinations(range(len(pooled)), n):
    sa = pooled[list(idx)].sum()
    diff = abs(sa / n - (total - sa) / (len(pooled) - n))
    count += diff >= observed - 1e-12
    splits += 1
  return count / splits


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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  os.makedirs(_OUT.value, exist_ok=True)
  out, md = {}, []
  try:
    for workdir in _WORKDIRS.value:
      name = os.path.basename(os.path.normpath(workdir))
      res = report(workdir, _BASELINE.value)
      png = os.path.join(_OUT.value, f"{name}_curves.png")
      plot_curves(workdir, res["methods"], png, name)
      out[name] = res
      md += [f"## {name}", "", metric_writers.format_table(res["rows"]), ""]
      if res["tests"]:
        md += [metric_writers.format_table(res["tests"]), ""]
      md += [f"Curves: {png}", ""]
  except (ValueError, KeyError) as e:
    sys.stderr.write(f"Error: {e}\n")
    sys.exit(2)
  text = "\n".join(md)
  metric_writers.atomic_write_text(os.path.join(_OUT.value, "report.md"), text)
  metric_writers.atomic_write_text(os.path.join(_OUT.value, "report.json"),
                                   json.dumps(out, indent=2))
  print(text)


if __name__ == "__main__":
  app.run(main)
