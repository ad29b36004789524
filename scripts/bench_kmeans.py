r"""Our JAX k-means (esans_jax/kmeans.py) beside ``faiss.Kmeans``: same data, K, iterations.

    taskset -c 0 python scripts/bench_kmeans.py   # 100k x 64 into 256, 10 iterations
    python scripts/bench_kmeans.py --size=gpu     # 1M x 64 into 4096 (ESANS's target)
    python scripts/bench_kmeans.py --n=50000 --k=128 --niter=20 --json=bench_kmeans.json

Both sides start from the same K random points of the data (no k-means++, which faiss lacks) and
run exactly ``--niter`` iterations (ours with ``tol=None``; faiss never stops early). Reported per
side: wall time, in total and per iteration, and this process's CPU time (steadier on a shared
CPU); ours after one untimed compiling run (reported apart), with the data already on the device.
Then the final inertia of the returned centroids, measured the same way for both (our ``assign``
at HIGHEST precision), and the ratios ours / faiss. One "iteration" of ours is an update then an
assignment pass, after an initial pass: ours makes ``niter + 1`` passes to faiss's ``niter``
(faiss does not score its final centroids), which counts against us. The two runs follow the
same path until a cluster empties: faiss then splits a large cluster, we re-seed at the farthest
point, so the final inertias can differ a little either way.

faiss is the ``faiss-cpu`` package of the project's ``bench`` extra (``pip install faiss-cpu``);
without it the script says so and times our side alone. ``--threads`` sets faiss's OpenMP threads
(default 1: compare with JAX pinned to one core by ``taskset``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time

import jax
from jax import lax
import numpy as np

from esans_jax import kmeans as km

SIZES = {  # n, d, k, niter
    "cpu": (100_000, 64, 256, 10),
    "gpu": (1_000_000, 64, 4096, 10),
}


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--size", choices=sorted(SIZES), default="cpu",
                 help="preset: cpu = 100k x 64 into 256, gpu = 1M x 64 into 4096; 10 iterations")
  p.add_argument("--n", type=int, help="points (overrides the preset)")
  p.add_argument("--d", type=int, help="dimensions (overrides the preset)")
  p.add_argument("--k", type=int, help="clusters (overrides the preset)")
  p.add_argument("--niter", type=int, help="Lloyd iterations (overrides the preset)")
  p.add_argument("--chunk_size", type=int, default=km.DEFAULT_CHUNK, help="ours: points per block")
  p.add_argument("--precision", choices=["highest", "default"], default="highest",
                 help="ours: matmul precision (default = bf16/TF32 passes on TPU/GPU)")
  p.add_argument("--repeats", type=int, default=1, help="timed runs per side (the best is kept)")
  p.add_argument("--threads", type=int, default=1, help="faiss OpenMP threads")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--skip_faiss", action="store_true", help="time our side only")
  p.add_argument("--json", default="", help="also write the results to this file")
  return p.parse_args(argv)


def make_data(n: int, d: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """A mixture of ``k`` Gaussians (so the clustering has structure) and ``k`` random points."""
  rng = np.random.default_rng(seed)
  means = rng.normal(size=(k, d)).astype(np.float32) * 2.0
  x = means[rng.integers(0, k, n)] + rng.normal(size=(n, d)).astype(np.float32)
  init = x[rng.choice(n, k, replace=False)].copy()
  return np.ascontiguousarray(x, np.float32), init


def inertia_of(x, centroids, chunk_size: int) -> float:
  _, sq = km.assign(x, jax.numpy.asarray(centroids), chunk_size=chunk_size)
  return float(np.asarray(sq, np.float64).sum())


def run_ours(x, init, niter: int, chunk_size: int, precision, repeats: int) -> dict:
  xd, initd = jax.device_put(x), jax.device_put(init)
  run = lambda: km.lloyd(xd, initd, max_iter=niter, tol=None, chunk_size=chunk_size,
                         precision=precision)
  t = time.perf_counter()
  jax.block_until_ready(run())
  first = time.perf_counter() - t
  best, cpu, result = float("inf"), float("inf"), None
  for _ in range(repeats):
    t, c = time.perf_counter(), time.process_time()
    result = jax.block_until_ready(run())
    best, cpu = min(best, time.perf_counter() - t), min(cpu, time.process_time() - c)
  assert int(result.iterations) == niter
  return {"total_s": best, "per_iter_s": best / niter, "cpu_s": cpu,
          "compile_and_first_run_s": first, "centroids": np.asarray(result.centroids),
          "reported_inertia": float(result.inertia)}


def run_faiss(faiss, x, init, niter: int, threads: int, seed: int, repeats: int) -> dict:
  faiss.omp_set_num_threads(threads)
  n, d = x.shape
  k = init.shape[0]
  best, cpu, model = float("inf"), float("inf"), None
  for _ in range(repeats):
    # No subsampling (faiss keeps at most 256 points per centroid by default), no warnings.
    model = faiss.Kmeans(d, k, niter=niter, seed=seed, verbose=False, min_points_per_centroid=1,
                         max_points_per_centroid=-(-n // k) + 1)
    t, c = time.perf_counter(), time.process_time()
    model.train(x, init_centroids=init)
    best, cpu = min(best, time.perf_counter() - t), min(cpu, time.process_time() - c)
  return {"total_s": best, "per_iter_s": best / niter, "cpu_s": cpu,
          "centroids": np.asarray(model.centroids),
          "reported_inertia": float(model.obj[-1]) if len(model.obj) else float("nan")}


def main(argv=None) -> dict:
  args = parse_args(argv)
  n, d, k, niter = SIZES[args.size]
  n, d, k, niter = args.n or n, args.d or d, args.k or k, args.niter or niter
  precision = lax.Precision.HIGHEST if args.precision == "highest" else lax.Precision.DEFAULT
  x, init = make_data(n, d, k, args.seed)
  print(f"k-means bench: N={n} d={d} K={k} niter={niter} | jax {jax.__version__} on "
        f"{jax.devices()[0].device_kind} ({jax.default_backend()}), "
        f"{len(os.sched_getaffinity(0))} CPU(s) usable, "
        f"{platform.processor() or platform.machine()}")

  try:
    import faiss  # pylint: disable=g-import-not-at-top
  except ImportError:
    faiss = None
    if not args.skip_faiss:
      print("faiss is NOT installed: timing ours alone. `pip install faiss-cpu` (the project's "
            "`bench` extra) to compare.")

  results = {"ours": run_ours(x, init, niter, args.chunk_size, precision, args.repeats)}
  if faiss is not None and not args.skip_faiss:
    results["faiss"] = run_faiss(faiss, x, init, niter, args.threads, args.seed, args.repeats)
  for r in results.values():
    r["final_inertia"] = inertia_of(x, r.pop("centroids"), args.chunk_size)

  rows = [("", "total s", "per iter s", "CPU s", "final inertia", "reported inertia")]
  for name, r in results.items():
    label = {"ours": "ours (jax)",
             "faiss": f"faiss {getattr(faiss, '__version__', '')} ({args.threads} thr)"}[name]
    rows.append((label, f"{r['total_s']:.3f}", f"{r['per_iter_s']:.4f}", f"{r['cpu_s']:.3f}",
                 f"{r['final_inertia']:.6g}", f"{r['reported_inertia']:.6g}"))
  if "faiss" in results:
    o, f = results["ours"], results["faiss"]
    results["ratio_time_ours_over_faiss"] = o["total_s"] / f["total_s"]
    results["ratio_cpu_ours_over_faiss"] = o["cpu_s"] / f["cpu_s"]
    results["ratio_inertia_ours_over_faiss"] = o["final_inertia"] / f["final_inertia"]
    rows.append(("ratio ours/faiss", f"{results['ratio_time_ours_over_faiss']:.2f}",
                 f"{results['ratio_time_ours_over_faiss']:.2f}",
                 f"{results['ratio_cpu_ours_over_faiss']:.2f}",
                 f"{results['ratio_inertia_ours_over_faiss']:.4f}", ""))
  widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
  for row in rows:
    print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                    for i, (c, w) in enumerate(zip(row, widths))))
  print(f"ours: compile + first run {results['ours']['compile_and_first_run_s']:.2f} s (untimed). "
        "CPU s: this process's CPU time (meaningless for ours on an accelerator). Reported "
        "inertia: each side's own; faiss's is of its last assignment pass, before the last "
        "update.")

  results.update(n=n, d=d, k=k, niter=niter, chunk_size=args.chunk_size,
                 precision=args.precision, faiss_threads=args.threads,
                 date=datetime.date.today().isoformat(), jax=jax.__version__,
                 backend=jax.default_backend())
  if args.json:
    with open(args.json + ".tmp", "w") as f:
      json.dump(results, f, indent=1)
    os.replace(args.json + ".tmp", args.json)
  return results


if __name__ == "__main__":
  main()
