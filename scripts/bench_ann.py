r"""Serving an ESANS export with FAISS: approximate top-K beside exact top-K, history excluded.

    python scripts/bench_ann.py --export_dir=workdirs/esans_syn/export
    python scripts/bench_ann.py --export_dir=DIR --index=ivf_flat --nlist=256 --nprobe=1,8,32
    python scripts/bench_ann.py --export_dir=DIR --index=hnsw --ef_search=16,64,256

Reads what ``esans_jax.train.export_embeddings`` writes to ``<workdir>/export`` (unit item rows,
row r = item id r + 1; one query vector per user from its train+valid history; each user's
held-out test row; each user's history rows) and checks it first: a missing file, a shape that
disagrees between files, an id out of range or a non-finite value stops with the file named.

Then, for each user, the top ``--k`` items by inner product with the user's history excluded,
found by searching ``K + h`` and dropping the seen rows, ``h`` the history length rounded up to a
power of two (users are searched in one batch per such bucket, so a long history does not make
every user's search deeper):

- exactly, with ``faiss.IndexFlatIP`` (the ground truth; checked against plain numpy on up to
  ``--check_users`` users);
- with ``--index``: ``ivf_flat`` (inner-product IVF-Flat, ``--nlist`` lists, default
  ``4 sqrt(N)``, swept over ``--nprobe``), ``hnsw`` (HNSW, ``--hnsw_m`` links, swept over
  ``--ef_search``) and ``flat`` (the exact index alone). Both approximate indexes are asked for
  ``K + h`` results, so their recall also falls as histories grow: an ``nprobe`` whose lists hold
  fewer than ``K + h`` items, or an ``efSearch`` well below ``K + h``, returns fewer good
  candidates.

Reported per setting: Recall@K, the overlap of the approximate top-K with the exact top-K over K
(averaged over users); the test item's HR@K (the share of users whose held-out item is in their
top-K, exact beside approximate); queries per second, all users in one batch (FAISS's default
OpenMP threads or ``--threads``, then 1 thread; the FAISS search calls alone, best of
``--repeats``, the history filter excluded); and the index's build time (training plus adding
the items). The exact HR@K is the run's test ``hr@K`` (``<workdir>/results.json``, printed
beside it when there) less the users whose test item is already in their history: the run's
evaluation ranks such a repeat, a server that excludes the history cannot return it.

The table is printed as markdown and written with the settings to ``<export_dir>/ann.json``
(atomically). FAISS is the ``faiss-cpu`` of the project's ``bench`` extra
(``pip install -e .[bench]``).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import platform
import sys
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np

from common import metric_writers

_EXPORT_DIR = flags.DEFINE_string("export_dir", None, "An export folder (<workdir>/export).")
_K = flags.DEFINE_integer("k", 50, "Items returned per user (Recall@K, HR@K).")
_INDEX = flags.DEFINE_list("index", ["ivf_flat", "hnsw"],
                           "Approximate indexes to time: ivf_flat, hnsw, flat (exact only).")
_NLIST = flags.DEFINE_integer("nlist", 0, "IVF lists; 0: round(4 sqrt(N)), at most N.")
_NPROBE = flags.DEFINE_list("nprobe", ["1", "4", "16"], "IVF lists searched (a sweep).")
_HNSW_M = flags.DEFINE_integer("hnsw_m", 32, "HNSW links per node.")
_EF_CONSTRUCTION = flags.DEFINE_integer("ef_construction", 40, "HNSW build-time depth.")
_EF_SEARCH = flags.DEFINE_list("ef_search", ["16", "64", "256"], "HNSW efSearch (a sweep).")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed searches per setting (the best is kept).")
_CHECK_USERS = flags.DEFINE_integer("check_users", 512,
                                    "Users whose exact top-K is re-done in numpy (0: none).")
_THREADS = flags.DEFINE_integer("threads", 0, "FAISS threads of the batch timing; 0: FAISS's "
                                "default (OMP_NUM_THREADS, else the cores).")
_SEED = flags.DEFINE_integer("seed", 0, "IVF k-means seed.")

FILES = ("item_embeddings.npy", "user_embeddings.npy", "test_targets.npy", "seen.npz",
         "item_ids.json", "user_ids.json", "meta.json")
INDEXES = ("ivf_flat", "hnsw", "flat")
FAISS_MISSING = ("faiss is not installed: `pip install -e .[bench]` (the faiss-cpu package of the "
                 "project's bench extra)")


class ExportError(ValueError):
  """An export folder that cannot be served as it is; the message names the file."""


# -- reading and checking the export --------------------------------------------------------------

def _load_json(path: str):
  try:
    with open(path) as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise ExportError(f"{path}: not valid JSON ({e})") from e


def _load_npy(path: str, ndim: int) -> np.ndarray:
  try:
    x = np.load(path, allow_pickle=False)
  except (ValueError, OSError) as e:
    raise ExportError(f"{path}: not a readable .npy array ({e})") from e
  if x.ndim != ndim:
    raise ExportError(f"{path}: expected a {ndim}-D array, found shape {x.shape}")
  return x


def _check_finite(path: str, x: np.ndarray) -> None:
  bad = ~np.isfinite(x)
  if bad.any():
    rows = np.flatnonzero(bad.reshape(len(x), -1).any(axis=1))
    raise ExportError(f"{path}: {len(rows)} row(s) hold NaN or inf (first: row {rows[0]}); "
                      "the run that wrote it diverged or was cut off: re-export a finite state")


def load_export(export_dir: str) -> dict:
  """The export's arrays, checked against each other.

  Returns:
    ``items [N, d]`` and ``users [U, d]`` float32 (C-contiguous), ``targets [U]`` int64 (-1: no
    test item), ``seen_rows`` / ``seen_offsets`` (user u's history rows are
    ``seen_rows[seen_offsets[u]:seen_offsets[u + 1]]``), ``item_ids``, ``user_ids``, ``meta``.

  Raises:
    ExportError: a missing or unreadable file, or files that disagree; the message names it.
  """
  if not os.path.isdir(export_dir):
    raise ExportError(f"{export_dir}: no such folder (pass --export_dir=<workdir>/export, written "
                      "by a finished run with export.enabled)")
  path = lambda name: os.path.join(export_dir, name)
  missing = [name for name in FILES if not os.path.exists(path(name))]
  if missing:
    raise ExportError(f"{export_dir}: missing {', '.join(missing)} (an export from an older "
                      "version, or one being written: rerun the export)")
  items = _load_npy(path("item_embeddings.npy"), 2)
  users = _load_npy(path("user_embeddings.npy"), 2)
  targets = _load_npy(path("test_targets.npy"), 1)
  try:
    with np.load(path("seen.npz"), allow_pickle=False) as z:
      if not {"rows", "offsets"} <= set(z.files):
        raise ExportError(f"{path('seen.npz')}: expected arrays 'rows' and 'offsets', found "
                          f"{sorted(z.files)}")
      seen_rows, seen_offsets = np.asarray(z["rows"]), np.asarray(z["offsets"])
  except (ValueError, OSError) as e:
    raise ExportError(f"{path('seen.npz')}: not a readable .npz ({e})") from e
  item_ids, user_ids, meta = (_load_json(path(n)) for n in
                              ("item_ids.json", "user_ids.json", "meta.json"))

  n, d = items.shape
  u = users.shape[0]
  if n == 0 or u == 0:
    raise ExportError(f"{export_dir}: {n} items and {u} users: nothing to search")
  if users.shape[1] != d:
    raise ExportError(f"{path('user_embeddings.npy')}: width {users.shape[1]}, but "
                      f"item_embeddings.npy is {d} wide")
  for name, value, want in (("item_ids.json", len(item_ids), n),
                            ("user_ids.json", len(user_ids), u),
                            ("test_targets.npy", len(targets), u)):
    if value != want:
      what = "item_embeddings.npy rows" if name == "item_ids.json" else "user_embeddings.npy rows"
      raise ExportError(f"{path(name)}: {value} entries, but {what}: {want}")
  for key, want, against in (("num_items", n, "item_embeddings.npy rows"),
                             ("num_users", u, "user_embeddings.npy rows"),
                             ("dim", d, "the embedding width")):
    if key in meta and int(meta[key]) != want:
      raise ExportError(f"{path('meta.json')}: {key} = {meta[key]}, but {against}: {want}")
  if seen_offsets.ndim != 1 or len(seen_offsets) != u + 1:
    raise ExportError(f"{path('seen.npz')}: offsets has shape {seen_offsets.shape}, expected "
                      f"({u + 1},) (one more than user_embeddings.npy's {u} rows)")
  if (seen_offsets[0] != 0 or seen_offsets[-1] != len(seen_rows)
      or np.any(np.diff(seen_offsets) < 0)):
    raise ExportError(f"{path('seen.npz')}: offsets must rise from 0 to len(rows) = "
                      f"{len(seen_rows)}")
  if len(seen_rows) and (seen_rows.min() < 0 or seen_rows.max() >= n):
    raise ExportError(f"{path('seen.npz')}: rows must lie in [0, {n}) (item_embeddings.npy "
                      f"rows), found [{seen_rows.min()}, {seen_rows.max()}]")
  if len(targets) and (targets.min() < -1 or targets.max() >= n):
    raise ExportError(f"{path('test_targets.npy')}: rows must lie in [-1, {n}), found "
                      f"[{targets.min()}, {targets.max()}]")
  _check_finite(path("item_embeddings.npy"), items)
  _check_finite(path("user_embeddings.npy"), users)
  norms = np.linalg.norm(items.astype(np.float64), axis=1)
  if np.max(np.abs(norms - 1.0)) > 1e-3:
    print(f"warning: {path('item_embeddings.npy')}: rows are not unit vectors (norms "
          f"{norms.min():.4g}..{norms.max():.4g}); scores are raw inner products")
  return dict(items=np.ascontiguousarray(items, np.float32),
              users=np.ascontiguousarray(users, np.float32),
              targets=targets.astype(np.int64), seen_rows=seen_rows.astype(np.int64),
              seen_offsets=seen_offsets.astype(np.int64), item_ids=item_ids, user_ids=user_ids,
              meta=meta)


# -- top-K with the history excluded --------------------------------------------------------------

def depth_buckets(seen_offsets: np.ndarray, k: int, num_items: int) -> dict[int, np.ndarray]:
  """``{search depth: users}``: ``K + h``, ``h`` the history length rounded up to a power of 2."""
  hist = np.diff(seen_offsets)
  pow2 = np.where(hist > 0, 2 ** np.ceil(np.log2(np.maximum(hist, 1))), 0).astype(np.int64)
  depth = np.minimum(k + pow2, num_items)
  return {int(dep): np.flatnonzero(depth == dep) for dep in np.unique(depth)}


def drop_seen(labels: np.ndarray, users: np.ndarray, seen_rows: np.ndarray,
              seen_offsets: np.ndarray, k: int, num_items: int) -> np.ndarray:
  """``[b, k]``: each row's first ``k`` labels that are neither -1 nor in its user's history."""
  b = len(users)
  starts, ends = seen_offsets[users], seen_offsets[users + 1]
  local = np.repeat(np.arange(b), ends - starts)
  rows = seen_rows[np.concatenate([np.arange(s, e) for s, e in zip(starts, ends)])
                   if b else np.zeros((0,), np.int64)]
  seen_keys = local * num_items + rows
  keys = np.arange(b)[:, None] * num_items + labels
  keep = (labels >= 0) & ~np.isin(keys, seen_keys)
  order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
  out = np.take_along_axis(labels, order, axis=1)
  return np.where(np.take_along_axis(keep, order, axis=1), out, -1)


def search_excluding(index, queries: np.ndarray, buckets: dict, export: dict, k: int
                     ) -> tuple[np.ndarray, float]:
  """``(top [U, k] rows (-1: fewer found), seconds in FAISS's search calls)``."""
  n = export["items"].shape[0]
  top = np.full((len(queries), k), -1, np.int64)
  seconds = 0.0
  for depth, users in buckets.items():
    q = np.ascontiguousarray(queries[users])
    t = time.perf_counter()
    _, labels = index.search(q, depth)
    seconds += time.perf_counter() - t
    top[users] = drop_seen(labels, users, export["seen_rows"], export["seen_offsets"], k, n)
  return top, seconds


def numpy_topk(export: dict, users: np.ndarray, k: int) -> np.ndarray:
  """``[len(users), k]`` exact top-K scores with the history excluded, in float64 (the check)."""
  scores = export["users"][users].astype(np.float64) @ export["items"].astype(np.float64).T
  for i, u in enumerate(users):
    scores[i, export["seen_rows"][export["seen_offsets"][u]:export["seen_offsets"][u + 1]]] = (
        -np.inf)
  return -np.sort(-scores, axis=1)[:, :k]


def recall_against(top: np.ndarray, exact: np.ndarray) -> float:
  """Mean over users of ``|top ∩ exact| / |exact|`` (the -1 padding never counts)."""
  hits = [len(np.intersect1d(a[a >= 0], e[e >= 0])) / max(int(np.sum(e >= 0)), 1)
          for a, e in zip(top, exact)]
  return float(np.mean(hits))


def targets_seen(export: dict) -> int:
  """Users whose test item is in their own history (a repeat: excluded, so never a hit)."""
  rows, offsets, targets = export["seen_rows"], export["seen_offsets"], export["targets"]
  owner = np.repeat(np.arange(len(targets)), np.diff(offsets))
  return int(len(np.unique(owner[(rows == targets[owner]) & (targets[owner] >= 0)])))


def hit_rate(top: np.ndarray, targets: np.ndarray) -> float:
  has = targets >= 0
  return float(np.mean(np.any(top[has] == targets[has, None], axis=1))) if has.any() else math.nan


# -- the indexes ----------------------------------------------------------------------------------

def build_index(faiss, kind: str, items: np.ndarray, nlist: int):
  """``(index, seconds to train and add)``."""
  d = items.shape[1]
  t = time.perf_counter()
  if kind == "flat":
    index = faiss.IndexFlatIP(d)
  elif kind == "ivf_flat":
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = _SEED.value
    # Trained on every item, not a sample of a larger set: few points per list is fine (and
    # FAISS's warning about it is noise).
    index.cp.min_points_per_centroid = 1
    index.train(items)  # (faiss's Python wrapper keeps the quantizer alive with the index)
  elif kind == "hnsw":
    index = faiss.IndexHNSWFlat(d, _HNSW_M.value, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = _EF_CONSTRUCTION.value
  else:
    raise ValueError(f"--index: unknown {kind!r}; use some of {INDEXES}")
  index.add(items)
  return index, time.perf_counter() - t


def settings(kind: str, nlist: int) -> list[tuple[str, int]]:
  """``(setting label, value)`` of the sweep of ``kind``."""
  if kind == "ivf_flat":
    probes = sorted({min(int(p), nlist) for p in _NPROBE.value})
    return [(f"nprobe={p}", p) for p in probes]
  if kind == "hnsw":
    return [(f"efSearch={e}", int(e)) for e in _EF_SEARCH.value]
  return [("", 0)]


def apply_setting(index, kind: str, value: int) -> None:
  if kind == "ivf_flat":
    index.nprobe = value
  elif kind == "hnsw":
    index.hnsw.efSearch = value


def timed_search(faiss, index, export: dict, buckets: dict, k: int, threads: int
                 ) -> tuple[np.ndarray, float, float]:
  """``(top-K, best seconds with FAISS's threads, best seconds with 1 thread)``."""
  best = {threads: math.inf, 1: math.inf}
  top = None
  for nthreads in sorted({threads, 1}, reverse=True):
    faiss.omp_set_num_threads(nthreads)
    for _ in range(_REPEATS.value):
      top, seconds = search_excluding(index, export["users"], buckets, export, k)
      best[nthreads] = min(best[nthreads], seconds)
  faiss.omp_set_num_threads(threads)
  return top, best[threads], best[1]


def run_results(export_dir: str) -> dict | None:
  """The run's ``results.json`` beside the export (its test metrics), if there is one."""
  path = os.path.join(os.path.dirname(os.path.abspath(export_dir)), "results.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  unknown = [i for i in _INDEX.value if i not in INDEXES]
  if unknown:
    raise app.UsageError(f"--index: unknown {unknown}; use some of {INDEXES}")
  logging.set_verbosity(logging.WARNING)  # faiss's loader logs each library it tries at INFO
  try:
    import faiss  # pylint: disable=g-import-not-at-top
  except ImportError:
    sys.stderr.write(f"Error: {FAISS_MISSING}\n")
    sys.exit(2)
  try:
    export = load_export(_EXPORT_DIR.value)
  except ExportError as e:
    sys.stderr.write(f"Error: {e}\n")
    sys.exit(2)

  k = _K.value
  items, users, targets = export["items"], export["users"], export["targets"]
  n, d = items.shape
  num_users = len(users)
  if k > n:
    raise app.UsageError(f"--k={k} is more than the {n} items")
  nlist = min(_NLIST.value or max(1, round(4 * math.sqrt(n))), n)
  threads = _THREADS.value or faiss.omp_get_max_threads()
  buckets = depth_buckets(export["seen_offsets"], k, n)
  hist = np.diff(export["seen_offsets"])
  print(f"ANN bench: {n} items x {d}, {num_users} users (history: mean {hist.mean():.1f}, max "
        f"{hist.max()}; searched {min(buckets)}..{max(buckets)} deep in {len(buckets)} batches), "
        f"K={k} | faiss {faiss.__version__}, {threads} OpenMP thread(s), "
        f"{platform.processor() or platform.machine()}, load average {os.getloadavg()[0]:.1f}",
        flush=True)

  flat, flat_build = build_index(faiss, "flat", items, nlist)
  exact, exact_s, exact_s1 = timed_search(faiss, flat, export, buckets, k, threads)
  if _CHECK_USERS.value:
    check = np.arange(min(_CHECK_USERS.value, num_users))
    want = numpy_topk(export, check, k)
    got = np.take_along_axis(export["users"][check].astype(np.float64)
                             @ items.astype(np.float64).T, np.maximum(exact[check], 0), axis=1)
    got = np.where(exact[check] >= 0, got, -np.inf)
    if not np.allclose(np.sort(got, axis=1), np.sort(want, axis=1), atol=1e-4):
      raise AssertionError("faiss IndexFlatIP's top-K (history excluded) differs from numpy's: "
                           "a bug in the exclusion")
  exact_hr = hit_rate(exact, targets)
  repeat_users = targets_seen(export)
  rows = [dict(index="flat (exact)", setting="", **{
      f"recall@{k}": 1.0, f"hr@{k} exact": exact_hr, f"hr@{k} ann": exact_hr,
      "qps batch": num_users / exact_s, "qps 1-thread": num_users / exact_s1,
      "build s": flat_build})]
  for kind in [i for i in _INDEX.value if i != "flat"]:
    index, build_s = build_index(faiss, kind, items, nlist)
    for label, value in settings(kind, nlist):
      apply_setting(index, kind, value)
      top, s, s1 = timed_search(faiss, index, export, buckets, k, threads)
      name = f"ivf_flat (nlist={nlist})" if kind == "ivf_flat" else f"hnsw{_HNSW_M.value}"
      rows.append(dict(index=name, setting=label, **{
          f"recall@{k}": recall_against(top, exact), f"hr@{k} exact": exact_hr,
          f"hr@{k} ann": hit_rate(top, targets), "qps batch": num_users / s,
          "qps 1-thread": num_users / s1, "build s": build_s}))
      print(f"  {name} {label}: recall@{k} {rows[-1][f'recall@{k}']:.4f}", flush=True)

  shown = [dict(r, **{"qps batch": round(r["qps batch"]), "qps 1-thread": round(r["qps 1-thread"]),
                      "build s": f"{r['build s']:.3g}"}) for r in rows]
  table = metric_writers.format_table(shown, floatfmt=".4f")
  print(table)
  print(f"qps: users per second of FAISS search calls, all users at once (best of "
        f"{_REPEATS.value}; batch = {threads} thread(s)), the history filter excluded. build: "
        "training and adding the items.")
  result = {"rows": rows, "k": k, "num_items": n, "num_users": num_users, "dim": d,
            "nlist": nlist, "hnsw_m": _HNSW_M.value, "ef_construction": _EF_CONSTRUCTION.value,
            "search_depths": {str(dep): len(u) for dep, u in buckets.items()},
            "users_with_test_item_in_history": repeat_users,
            "faiss": faiss.__version__, "faiss_threads": threads, "repeats": _REPEATS.value,
            "date": datetime.date.today().isoformat(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "load_average": os.getloadavg()[0],
            "meta": export["meta"]}
  run = run_results(_EXPORT_DIR.value)
  if run is not None and f"hr@{k}" in run.get("test", {}):
    result[f"run_test_hr@{k}"] = run["test"][f"hr@{k}"]
    print(f"the run's test hr@{k} (results.json): {run['test'][f'hr@{k}']:.4f}; exact here: "
          f"{exact_hr:.4f} ({repeat_users} user(s) whose test item is in their history can be hit "
          "there, not here)")
  metric_writers.atomic_write_text(os.path.join(_EXPORT_DIR.value, "ann.json"),
                                   json.dumps(result, indent=2))
  print(f"wrote {os.path.join(_EXPORT_DIR.value, 'ann.json')}")


if __name__ == "__main__":
  flags.mark_flag_as_required("export_dir")
  app.run(main)
