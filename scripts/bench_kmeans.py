r"""Our JAX k-means (esans_jax/kmeans.py) beside ``faiss.Kmeans``: same data, K, start, iterations.

    python scripts/bench_kmeans.py                 # 100k x 64 into 256, 10 iterations
    python scripts/bench_kmeans.py --size=1m       # 1M x 64 into 4096, 20 iterations (ESANS's)
    taskset -c 0 python scripts/bench_kmeans.py --threads=1   # one core each
    python scripts/bench_kmeans.py --n=50000 --k=128 --niter=20 --json=bench_kmeans.json

Both sides start from the same K random points of the data (no k-means++, which faiss lacks) and run
exactly ``--niter`` iterations (ours with ``tol=None``; faiss never stops early), on every core this
process may use by default: JAX through XLA:CPU's own thread pool (one thread per usable CPU), faiss
through OpenMP (``--threads``, default the same count). Reported per side: wall time, in total and
per iteration; this process's CPU time and CPU / wall (how many cores it kept busy); the cores other
processes kept busy meanwhile (from /proc/stat: on a shared machine a side's time depends on them);
the final inertia of the returned centroids, measured the same way for both (our ``assign`` at
HIGHEST precision); and the share of the machine's float32 matmul peak each reached, with
``2 N K d + (N + K) d`` flops per iteration (the distances' matmul, then the update). The peak is measured
here first: the best of a large ``jnp.dot`` (XLA:CPU) and a large ``np.dot`` (numpy's BLAS),
float32. Then the ratios ours / faiss.

Ours is timed after an untimed compile (a ``max_iter=0`` call: ``max_iter`` is traced, so the
timed run reuses the program), with the data already on the device. One "iteration" of ours is an
update then an assignment pass, after an initial pass: ours makes ``niter + 1`` passes to faiss's
``niter`` (faiss does not score its final centroids), which counts against us, and the flop count
above does not credit it. The two runs follow the same path until a cluster empties: faiss then
splits a large cluster, we re-seed at the farthest point, so the final inertias can differ a
little either way.

faiss is the ``faiss-cpu`` package of the project's ``bench`` extra (``pip install faiss-cpu``);
without it the script says so and times our side alone.
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
import jax.numpy as jnp
import numpy as np

from esans_jax import kmeans as km

SIZES = {  # n, d, k, niter
    "cpu": (100_000, 64, 256, 10),
    "1m": (1_000_000, 64, 4096, 20),
}


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--size", choices=sorted(SIZES), default="cpu",
                 help="preset: cpu = 100k x 64 into 256, 10 iterations; "
                      "1m = 1M x 64 into 4096, 20 iterations")
  p.add_argument("--n", type=int, help="points (overrides the preset)")
  p.add_argument("--d", type=int, help="dimensions (overrides the preset)")
  p.add_argument("--k", type=int, help="clusters (overrides the preset)")
  p.add_argument("--niter", type=int, help="Lloyd iterations (overrides the preset)")
  p.add_argument("--chunk_size", type=int, default=None,
                 help="ours: points per block (default: kmeans.default_chunk_size())")
  p.add_argument("--precision", choices=["highest", "default"], default="highest",
                 help="ours: matmul precision (default = bf16/TF32 passes on TPU/GPU)")
  p.add_argument("--repeats", type=int, default=1, help="timed runs per side (the best is kept)")
  p.add_argument("--threads", type=int, default=0,
                 help="faiss OpenMP threads (0: one per usable CPU, as XLA uses)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--skip_faiss", action="store_true", help="time our side only")
  p.add_argument("--json", default="", help="also write the results to this file")
  return p.parse_args(argv)


def usable_cpus() -> int:
  return len(os.sched_getaffinity(0))


def cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


def matmul_peak(n: int = 4096, repeats: int = 3) -> dict:
  """The machine's float32 matmul rate (flop/s): the best of ``repeats`` ``[n, n] x [n, n]``.

  Timed through XLA:CPU (``jnp.dot`` at HIGHEST, which on CPU is plain float32) and through
  numpy's BLAS; ``peak`` is the larger.
  """
  rng = np.random.default_rng(0)
  a, b = (rng.standard_normal((n, n), np.float32) for _ in range(2))
  flops = 2.0 * n ** 3
  dot = jax.jit(lambda a, b: jnp.dot(a, b, precision=lax.Precision.HIGHEST))
  ad, bd = jax.device_put(a), jax.device_put(b)
  jax.block_until_ready(dot(ad, bd))
  best = {"jax": float("inf"), "numpy": float("inf")}
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(dot(ad, bd))
    best["jax"] = min(best["jax"], time.perf_counter() - t)
    t = time.perf_counter()
    np.dot(a, b)
    best["numpy"] = min(best["numpy"], time.perf_counter() - t)
  rates = {f"{name}_flops": flops / s for name, s in best.items()}
  return {**rates, "peak_flops": max(rates.values()), "n": n}


def make_data(n: int, d: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """A mixture of ``k`` Gaussians (so the clustering has structure) and ``k`` random points."""
  rng = np.random.default_rng(seed)
  means = rng.normal(size=(k, d)).astype(np.float32) * 2.0
  x = means[rng.integers(0, k, n)] + rng.normal(size=(n, d)).astype(np.float32)
  init = x[rng.choice(n, k, replace=False)].copy()
  return np.ascontiguousarray(x, np.float32), init


def inertia_of(x, centroids) -> float:
  _, sq = km.assign(x, jnp.asarray(centroids))
  return float(np.asarray(sq, np.float64).sum())


def busy_cpu_seconds() -> float:
  """CPU seconds the whole machine has spent busy (all processes; /proc/stat), or nan."""
  try:
    with open("/proc/stat") as f:
      ticks = [int(v) for v in f.readline().split()[1:]]
  except (OSError, ValueError):
    return float("nan")
  idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
  return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def timed(fn, repeats: int) -> tuple[float, float, object, float]:
  """Best wall and CPU seconds of ``repeats`` calls of ``fn``, its last result, and the cores
  other processes kept busy meanwhile (the machine's busy CPU time less ours, over the wall)."""
  wall, cpu, out, others = float("inf"), float("inf"), None, float("nan")
  for _ in range(repeats):
    t, c, busy = time.perf_counter(), time.process_time(), busy_cpu_seconds()
    out = fn()
    w, own = time.perf_counter() - t, time.process_time() - c
    if w < wall:
      others = max(0.0, (busy_cpu_seconds() - busy - own) / w)
    wall, cpu = min(wall, w), min(cpu, own)
  return wall, cpu, out, others


def run_ours(x, init, niter: int, chunk_size, precision, repeats: int) -> dict:
  xd, initd = jax.device_put(x), jax.device_put(init)
  run = lambda max_iter: jax.block_until_ready(
      km.lloyd(xd, initd, max_iter=max_iter, tol=None, chunk_size=chunk_size,
               precision=precision))
  t = time.perf_counter()
  run(0)  # compiles (max_iter is traced) and makes one assignment pass
  first = time.perf_counter() - t
  wall, cpu, result, others = timed(lambda: run(niter), repeats)
  assert int(result.iterations) == niter
  return {"total_s": wall, "per_iter_s": wall / niter, "cpu_s": cpu, "passes": niter + 1,
          "others_cores": others,
          "threads": usable_cpus(), "compile_and_one_pass_s": first,
          "centroids": np.asarray(result.centroids), "reported_inertia": float(result.inertia)}


def run_faiss(faiss, x, init, niter: int, threads: int, seed: int, repeats: int) -> dict:
  faiss.omp_set_num_threads(threads)
  n, d = x.shape
  k = init.shape[0]

  def train():
    # No subsampling (faiss keeps at most 256 points per centroid by default), no warnings.
    model = faiss.Kmeans(d, k, niter=niter, seed=seed, verbose=False, min_points_per_centroid=1,
                         max_points_per_centroid=-(-n // k) + 1)
    model.train(x, init_centroids=init)
    return model

  wall, cpu, model, others = timed(train, repeats)
  return {"total_s": wall, "per_iter_s": wall / niter, "cpu_s": cpu, "passes": niter,
          "others_cores": others,
          "threads": faiss.omp_get_max_threads(), "centroids": np.asarray(model.centroids),
          "reported_inertia": float(model.obj[-1]) if len(model.obj) else float("nan")}


def print_table(rows) -> None:
  widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
  for row in rows:
    print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                    for i, (c, w) in enumerate(zip(row, widths))))


def main(argv=None) -> dict:
  args = parse_args(argv)
  n, d, k, niter = SIZES[args.size]
  n, d, k, niter = args.n or n, args.d or d, args.k or k, args.niter or niter
  threads = args.threads or usable_cpus()
  precision = lax.Precision.HIGHEST if args.precision == "highest" else lax.Precision.DEFAULT
  try:
    import faiss  # pylint: disable=g-import-not-at-top
  except ImportError:
    faiss = None
    if not args.skip_faiss:
      print("faiss is NOT installed: timing ours alone. `pip install faiss-cpu` (the project's "
            "`bench` extra) to compare.")
  print(f"k-means bench {datetime.date.today().isoformat()}: N={n} d={d} K={k} niter={niter} | "
        f"{cpu_model()}, {os.cpu_count()} CPU(s), {usable_cpus()} usable | jax "
        f"{jax.__version__} ({jax.default_backend()}), faiss "
        f"{getattr(faiss, '__version__', 'absent')}", flush=True)
  peak = matmul_peak()
  print(f"float32 matmul peak ({peak['n']}^3, best of 3): jnp.dot {peak['jax_flops'] / 1e9:.0f} "
        f"GFLOP/s, np.dot {peak['numpy_flops'] / 1e9:.0f} GFLOP/s", flush=True)

  x, init = make_data(n, d, k, args.seed)
  results = {"ours": run_ours(x, init, niter, args.chunk_size, precision, args.repeats)}
  if faiss is not None and not args.skip_faiss:
    results["faiss"] = run_faiss(faiss, x, init, niter, threads, args.seed, args.repeats)
  flops_per_iter = 2.0 * n * k * d + (n + k) * d
  for r in results.values():
    r["final_inertia"] = inertia_of(x, r.pop("centroids"))
    r["peak_fraction"] = flops_per_iter / r["per_iter_s"] / peak["peak_flops"]

  rows = [("", "threads", "passes", "total s", "per iter s", "CPU s", "CPU/wall", "others' cores",
           "final inertia", "of peak")]
  for name, r in results.items():
    label = {"ours": "ours (jax)", "faiss": f"faiss.Kmeans {getattr(faiss, '__version__', '')}"}
    rows.append((label[name], str(r["threads"]), str(r["passes"]), f"{r['total_s']:.2f}",
                 f"{r['per_iter_s']:.3f}", f"{r['cpu_s']:.2f}",
                 f"{r['cpu_s'] / r['total_s']:.2f}", f"{r['others_cores']:.2f}",
                 f"{r['final_inertia']:.6g}",
                 f"{100 * r['peak_fraction']:.0f}%"))
  if "faiss" in results:
    o, f = results["ours"], results["faiss"]
    results["ratio_time_ours_over_faiss"] = o["total_s"] / f["total_s"]
    results["ratio_cpu_ours_over_faiss"] = o["cpu_s"] / f["cpu_s"]
    results["ratio_inertia_ours_over_faiss"] = o["final_inertia"] / f["final_inertia"]
    rows.append(("ours / faiss", "", "", f"{results['ratio_time_ours_over_faiss']:.2f}",
                 f"{results['ratio_time_ours_over_faiss']:.2f}",
                 f"{results['ratio_cpu_ours_over_faiss']:.2f}", "", "",
                 f"{results['ratio_inertia_ours_over_faiss']:.4f}",
                 f"{o['peak_fraction'] / f['peak_fraction']:.2f}"))
  print_table(rows)
  print(f"Peak: {peak['peak_flops'] / 1e9:.0f} GFLOP/s; {flops_per_iter / 1e9:.1f} GFLOP per "
        f"iteration. ours: compile + one pass {results['ours']['compile_and_one_pass_s']:.1f} s "
        "(untimed), chunk_size "
        f"{args.chunk_size or km.default_chunk_size()}. CPU s: this process's CPU time (CPU/wall: "
        "the cores it kept busy); others' cores: the cores other processes kept busy meanwhile "
        "(/proc/stat). Final inertia: of the returned centroids, by our assign.")
  if "faiss" in results:
    within = abs(results["ratio_inertia_ours_over_faiss"] - 1) <= 0.01
    print(f"Time ours / faiss {results['ratio_time_ours_over_faiss']:.2f} (target <= 0.5: "
          f"{'met' if results['ratio_time_ours_over_faiss'] <= 0.5 else 'MISSED'}); inertia "
          f"within 1% of faiss's: {'yes' if within else 'NO'}.")

  results.update(n=n, d=d, k=k, niter=niter, chunk_size=args.chunk_size or km.default_chunk_size(),
                 precision=args.precision, faiss_threads=threads, matmul=peak,
                 flops_per_iter=flops_per_iter, date=datetime.date.today().isoformat(),
                 jax=jax.__version__, faiss=getattr(faiss, "__version__", None),
                 backend=jax.default_backend(), cpu=cpu_model(), usable_cpus=usable_cpus())
  if args.json:
    with open(args.json + ".tmp", "w") as f:
      json.dump(results, f, indent=1)
    os.replace(args.json + ".tmp", args.json)
  return results


if __name__ == "__main__":
  main()
