r"""Exact full-catalogue top-K on CPU: our evaluation path beside a plain jit and faiss.

    python scripts/bench_retrieval.py                       # 1M items, d=64, K=50 and 200
    python scripts/bench_retrieval.py --items=100000 --users=512 --ks=10 --modes=mesh

A random catalogue of ``--items`` unit-norm rows (d = ``--dim``) and ``--users`` random user
vectors; every user's exact top K items by inner product, three ways, side by side:

- ``make_topk_fn``: ``common.recsys.evaluation.make_topk_fn`` (what evaluation and serving use),
  under ``common.parallel.DataParallel(mode, num_devices=1)`` for each ``--modes`` entry; the
  towers are a lookup (``user_fn`` returns the batch's vectors, ``item_fn`` gathers catalogue
  rows), no history excluded;
- ``jit top_k``: ``jax.jit(lambda u, items: lax.top_k(u @ items.T, k))``, the plain baseline;
- ``faiss``: ``faiss.IndexFlatIP.search`` over all users at once (OpenMP, one thread per usable
  CPU by default), the peer.

Ours go through the users ``--batch`` at a time, so that the ``[batch, items]`` scores stay well
under 4 GiB (256 x 1M float32 is 1 GiB; the process's peak resident memory is printed). Reported per
method and K: the seconds and users per second (best of ``--repeats`` runs over all users, after an
untimed compiling run), the cores it kept busy (CPU / wall) and the cores other processes kept busy
meanwhile (/proc/stat: the machine may be shared), the share of the machine's float32 matmul peak
that ``2 U N d`` flops in that time are (the peak measured here first, as in ``bench_kmeans.py``:
the best of a large ``jnp.dot`` and ``np.dot``), the ratio of users/s to faiss's, and how many of
faiss's ids each method returns (float32 sums in another order may swap near-ties at the K-th
place).

faiss is the ``faiss-cpu`` package of the project's ``bench`` extra (``pip install faiss-cpu``);
without it the faiss rows are left out.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import time

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

# scripts/ is on sys.path when this runs as a script: the helpers are bench_kmeans.py's.
from bench_kmeans import busy_cpu_seconds, cpu_model, matmul_peak, print_table, usable_cpus
from common import parallel
from common.recsys import evaluation


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--items", type=int, default=1_000_000, help="catalogue size N")
  p.add_argument("--dim", type=int, default=64, help="embedding dimension d")
  p.add_argument("--users", type=int, default=2048, help="users U scored per run")
  p.add_argument("--batch", type=int, default=256, help="ours: users per call")
  p.add_argument("--ks", default="50,200", help="comma-separated K")
  p.add_argument("--modes", default="pmap,mesh", help="DataParallel modes for make_topk_fn")
  p.add_argument("--repeats", type=int, default=1, help="timed runs (the best is kept)")
  p.add_argument("--threads", type=int, default=0, help="faiss threads (0: every usable CPU)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--json", default="", help="also write the results to this file")
  return p.parse_args(argv)


def make_data(n: int, d: int, u: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  rng = np.random.default_rng(seed)
  items = rng.standard_normal((n, d), np.float32)
  items /= np.linalg.norm(items, axis=1, keepdims=True)
  return items, rng.standard_normal((u, d), np.float32)


def best_time(run, repeats: int) -> tuple[float, np.ndarray, float, float]:
  """Best of ``repeats`` calls of ``run`` (after one untimed call): wall seconds, the ids, this
  process's CPU seconds and the cores other processes kept busy meanwhile."""
  ids = run()
  best = (float("inf"), None, float("nan"), float("nan"))
  for _ in range(repeats):
    t, c, busy = time.perf_counter(), time.process_time(), busy_cpu_seconds()
    ids = run()
    wall, own = time.perf_counter() - t, time.process_time() - c
    if wall < best[0]:
      best = (wall, ids, own, max(0.0, (busy_cpu_seconds() - busy - own) / wall))
  return best


def topk_fn_runner(mode: str, items: np.ndarray, users: np.ndarray, k: int, batch: int):
  """All users' top ``k`` through ``make_topk_fn`` on one device; 0-based item rows."""
  dp = parallel.DataParallel(mode, num_devices=1)
  n, d = items.shape
  catalogue = np.concatenate([np.zeros((1, d), np.float32), items])  # row = item id; 0 = padding
  topk = evaluation.make_topk_fn(lambda params, consts, b: b["users"],
                                 lambda params, consts, ids: consts[ids], n, dp, k,
                                 exclude_history=False)
  params, consts = dp.replicate((np.zeros((), np.float32), catalogue))
  batches = [dp.shard_batch({"users": users[i:i + batch]}, key="bench.batch")
             for i in range(0, len(users), batch)]

  def run():
    out = [topk(params, consts, b)[0] for b in batches]
    return np.concatenate([dp.to_host(ids) for ids in jax.block_until_ready(out)]) - 1
  return run


def jit_runner(items: np.ndarray, users: np.ndarray, k: int, batch: int):
  """The plain baseline: ``lax.top_k(users @ items.T, k)``, ``batch`` users per call."""
  fn = jax.jit(lambda u, it: lax.top_k(jnp.dot(u, it.T, precision=lax.Precision.HIGHEST), k)[1])
  items_d = jax.device_put(items)
  batches = [jax.device_put(users[i:i + batch]) for i in range(0, len(users), batch)]

  def run():
    out = jax.block_until_ready([fn(u, items_d) for u in batches])
    return np.concatenate([np.asarray(ids) for ids in out])
  return run


def faiss_runner(faiss, items: np.ndarray, users: np.ndarray, k: int):
  index = faiss.IndexFlatIP(items.shape[1])
  index.add(items)
  return lambda: index.search(users, k)[1]


def main(argv=None) -> dict:
  args = parse_args(argv)
  ks = [int(k) for k in args.ks.split(",")]
  modes = [m for m in args.modes.split(",") if m]
  try:
    import faiss  # pylint: disable=g-import-not-at-top
  except ImportError:
    faiss = None
    print("faiss is NOT installed: its rows are left out. `pip install faiss-cpu` (the "
          "project's `bench` extra) to compare.")
  threads = args.threads or usable_cpus()
  if faiss is not None:
    faiss.omp_set_num_threads(threads)
  n, d, u = args.items, args.dim, args.users
  print(f"retrieval bench {datetime.date.today().isoformat()}: N={n} items, d={d}, U={u} users, "
        f"K={ks}, batch {args.batch} | {cpu_model()}, {usable_cpus()} usable CPU(s) | jax "
        f"{jax.__version__} ({jax.default_backend()}), faiss "
        f"{getattr(faiss, '__version__', 'absent')} ({threads} threads)", flush=True)
  peak = matmul_peak()
  print(f"float32 matmul peak ({peak['n']}^3, best of 3): jnp.dot {peak['jax_flops'] / 1e9:.0f} "
        f"GFLOP/s, np.dot {peak['numpy_flops'] / 1e9:.0f} GFLOP/s", flush=True)
  items, users = make_data(n, d, u, args.seed)
  flops = 2.0 * u * n * d

  results = []
  for k in ks:
    runners = {f"make_topk_fn ({m})": topk_fn_runner(m, items, users, k, args.batch)
               for m in modes}
    runners["jit top_k"] = jit_runner(items, users, k, args.batch)
    if faiss is not None:
      runners["faiss IndexFlatIP"] = faiss_runner(faiss, items, users, k)
    timings = {}
    for name, run in runners.items():
      timings[name] = best_time(run, args.repeats)
      print(f"  K={k} {name}: {timings[name][0]:.2f} s", flush=True)
    ref = timings.get("faiss IndexFlatIP", timings["jit top_k"])[1]
    ref_s = timings["faiss IndexFlatIP"][0] if faiss is not None else float("nan")
    for name, (seconds, ids, cpu, others) in timings.items():
      same = np.mean([len(np.intersect1d(a, b)) / k for a, b in zip(ids, ref)])
      results.append({"k": k, "method": name, "seconds": seconds, "users_per_s": u / seconds,
                      "cpu_s": cpu, "others_cores": others,
                      "peak_fraction": flops / seconds / peak["peak_flops"],
                      "vs_faiss": ref_s / seconds, "same_ids": float(same)})

  rows = [("K", "method", "s", "users/s", "CPU/wall", "others' cores", "of peak",
           "users/s vs faiss", "faiss's ids")]
  for r in results:
    rows.append((str(r["k"]), r["method"], f"{r['seconds']:.2f}", f"{r['users_per_s']:.0f}",
                 f"{r['cpu_s'] / r['seconds']:.2f}", f"{r['others_cores']:.2f}",
                 f"{100 * r['peak_fraction']:.0f}%", f"{r['vs_faiss']:.2f}",
                 f"{100 * r['same_ids']:.2f}%"))
  print_table(rows)
  max_rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
  print(f"Peak {peak['peak_flops'] / 1e9:.0f} GFLOP/s; {flops / 1e9:.0f} GFLOP per run over "
        f"all users (2 U N d). Peak resident memory of this process: {max_rss_gib:.2f} GiB.")
  out = {"results": results, "items": n, "dim": d, "users": u, "batch": args.batch, "ks": ks,
         "matmul": peak, "max_rss_gib": max_rss_gib, "faiss_threads": threads,
         "date": datetime.date.today().isoformat(), "jax": jax.__version__,
         "faiss": getattr(faiss, "__version__", None), "cpu": cpu_model(),
         "usable_cpus": usable_cpus()}
  if args.json:
    with open(args.json + ".tmp", "w") as f:
      json.dump(out, f, indent=1)
    os.replace(args.json + ".tmp", args.json)
  return out


if __name__ == "__main__":
  main()
