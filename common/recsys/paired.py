"""Paired per-user comparison of two models' saved full-ranking results.

Each run's ``ranks_<split>.npz`` (written by ``heterrec_jax.train`` at the end of a run, with
``eval.save_ranks``) holds every evaluated user's id, held-out item, 0-based rank and the item's
training count. ``compare`` averages each model's per-user metric over its runs (seeds) and tests
the difference with ``common.significance.paired_stats``, pooled, per popularity band of the
target, and run by run. The CLI is ``scripts/paired_test.py``.
"""

import os

import numpy as np

from common.significance import paired_stats


def load_ranks(path: str, split: str) -> dict:
  """One run's saved ranks; ``path`` is a run workdir or the npz itself."""
  file = path if path.endswith(".npz") else os.path.join(path, f"ranks_{split}.npz")
  if not os.path.exists(file):
    raise FileNotFoundError(f"{file}: no saved ranks. Runs write ranks_<split>.npz at the end "
                            "with eval.save_ranks=True (heterrec_jax.train); is the run finished?")
  with np.load(file) as z:
    missing = {"users", "targets", "ranks", "target_train_count"} - set(z.files)
    if missing:
      raise ValueError(f"{file}: missing arrays {sorted(missing)}; not a ranks file.")
    return {k: z[k] for k in z.files} | {"file": file}


def per_user_metric(ranks: np.ndarray, metric: str) -> np.ndarray:
  """Per-user metric from 0-based ranks, as ``common.recsys.metrics.metrics_from_ranks``."""
  name, _, k = metric.partition("@")
  if (name not in ("ndcg", "hr", "mrr") or not (k.isdigit() and int(k) >= 1 or k == "all")
      or metric == "hr@all"):
    raise ValueError(f"--metric={metric!r}: expected ndcg@K, hr@K or mrr@K (K >= 1), "
                     "ndcg@all or mrr@all.")
  r = ranks.astype(np.float64)
  hit = np.ones(r.shape, bool) if k == "all" else r < int(k)
  if name == "hr":
    return hit.astype(np.float64)
  if name == "ndcg":
    return np.where(hit, 1.0 / np.log2(r + 2.0), 0.0)
  return np.where(hit, 1.0 / (r + 1.0), 0.0)


def check_same_users(runs: list[dict]) -> None:
  ref = runs[0]
  for run in runs[1:]:
    for key in ("users", "targets"):
      if run[key].shape != ref[key].shape or not np.array_equal(run[key], ref[key]):
        raise ValueError(f"{run['file']} and {ref['file']}: different evaluated {key}; a paired "
                         "test needs the same data, split and evaluation users.")


def popularity_bands(counts: np.ndarray, bands: int) -> list[np.ndarray]:
  """Equal-sized bands of users by their target's training count, rarest first."""
  order = np.argsort(counts, kind="stable")
  return [np.sort(idx) for idx in np.array_split(order, bands)]


def compare(a_runs: list[dict], b_runs: list[dict], metric: str, bands: int, resamples: int,
            seed: int) -> dict:
  check_same_users(a_runs + b_runs)
  a = np.mean([per_user_metric(r["ranks"], metric) for r in a_runs], axis=0)
  b = np.mean([per_user_metric(r["ranks"], metric) for r in b_runs], axis=0)
  counts = a_runs[0]["target_train_count"]
  out = {"metric": metric, "runs_a": [r["file"] for r in a_runs],
         "runs_b": [r["file"] for r in b_runs],
         "pooled": paired_stats(a, b, resamples, seed), "bands": [], "per_seed": []}
  for idx in popularity_bands(counts, bands):
    stats = paired_stats(a[idx], b[idx], resamples, seed)
    stats["target_count_range"] = (int(counts[idx].min()), int(counts[idx].max()))
    out["bands"].append(stats)
  for ra, rb in zip(a_runs, b_runs):
    out["per_seed"].append(paired_stats(per_user_metric(ra["ranks"], metric),
                                        per_user_metric(rb["ranks"], metric), resamples, seed))
  return out


def format_markdown(res: dict, labels: tuple[str, str]) -> str:
  la, lb = labels
  m = res["metric"]
  head = (f"| users | {la} {m} | {lb} {m} | {la} - {lb} (± s.e.) | 95% CI (bootstrap) | p (sign flip) "
          f"| wins / ties / losses |\n|---|---|---|---|---|---|---|\n")

  def row(name, s):
    return (f"| {name} | {s['n']} | {s['mean_a']:.4f} | {s['mean_b']:.4f} | "
            f"{s['diff']:+.4f} ± {s['se']:.4f} | "
            f"[{s['ci95'][0]:+.4f}, {s['ci95'][1]:+.4f}] | {s['p_sign_flip']:.3f} | "
            f"{s['wins']} / {s['ties']} / {s['losses']} |\n")

  text = "| comparison " + head.replace("|---|", "|---|---|", 1)
  text += row(f"all, per-user mean over {len(res['runs_a'])} + {len(res['runs_b'])} runs",
              res["pooled"])
  for i, s in enumerate(res["bands"]):
    lo, hi = s["target_count_range"]
    text += row(f"target popularity band {i + 1} (train count {lo}-{hi})", s)
  for i, s in enumerate(res["per_seed"]):
    text += row(f"run {i} against run {i}", s)
  return text
