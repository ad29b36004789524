r"""What JAX sees on this machine, and how fast it multiplies matrices against the device's peak.

    python scripts/device_probe.py                      # print devices and the matmul table
    python scripts/device_probe.py --out probe.json     # also write them as JSON
    python scripts/device_probe.py --n 4096 --reps 20   # another size / more timed runs

For float32 (at JAX's default precision and at ``HIGHEST``) and bfloat16 it times a jitted
``a @ b`` of two ``n x n`` matrices, best of ``--reps`` runs after one warm-up, each run ending in
``block_until_ready``; ``n`` defaults to 8192 on GPU and TPU and 2048 on CPU. Where the device kind
is in ``PEAKS`` (vendor spec sheets, dense figures: the sheets' sparsity figures halved) it also
gives the fraction of peak. On NVIDIA GPUs since Ampere XLA may run float32 matmuls at default
precision in TF32, so the default-precision row is compared with the TF32 peak and the HIGHEST
row with the plain float32 one. On CPU the peak is unknown: measured figures only.

``scripts/device_check.sh`` runs this first; ``scripts/device_report.py`` puts its JSON in the
report.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import socket
import sys
import time
from typing import Optional

import jax
import jax.numpy as jnp

# Peak dense TFLOP/s per JAX device, from the vendors' spec sheets (None: no such unit or no
# figure we are sure of). Keys are regular expressions matched against ``device.device_kind``
# in order; variants with other peaks (H100/H200 PCIe and NVL, TPU v4 lite) are deliberately
# absent and report "peak unknown".
PEAKS = (
    # NVIDIA H200 datasheet (SXM): BF16 1,979 / TF32 989 with sparsity; FP32 67.
    (r"^NVIDIA H200$", {"name": "H200 SXM", "bfloat16": 989.0, "tf32": 494.0, "float32": 67.0,
                        "source": "NVIDIA H200 Tensor Core GPU datasheet (SXM)"}),
    # NVIDIA H100 datasheet (SXM5, JAX reports "NVIDIA H100 80GB HBM3"): same SXM figures.
    (r"^NVIDIA H100 80GB HBM3$", {"name": "H100 SXM", "bfloat16": 989.0, "tf32": 494.0,
                                   "float32": 67.0,
                                   "source": "NVIDIA H100 Tensor Core GPU datasheet (SXM)"}),
    # NVIDIA A100 datasheet: BF16 312, TF32 156, FP32 19.5 (SXM4 and PCIe alike).
    (r"^NVIDIA A100", {"name": "A100", "bfloat16": 312.0, "tf32": 156.0, "float32": 19.5,
                       "source": "NVIDIA A100 Tensor Core GPU datasheet"}),
    # NVIDIA V100 datasheet: FP32 15.7 (SXM2), 14 (PCIe); no bfloat16 or TF32 units.
    (r"^Tesla V100-SXM2", {"name": "V100 SXM2", "bfloat16": None, "tf32": None, "float32": 15.7,
                           "source": "NVIDIA V100 Tensor Core GPU datasheet (SXM2)"}),
    (r"^Tesla V100-PCIE", {"name": "V100 PCIe", "bfloat16": None, "tf32": None, "float32": 14.0,
                           "source": "NVIDIA V100 Tensor Core GPU datasheet (PCIe)"}),
    # NVIDIA L4 datasheet: BF16 242 / TF32 120 with sparsity; FP32 30.3.
    (r"^NVIDIA L4$", {"name": "L4", "bfloat16": 121.0, "tf32": 60.0, "float32": 30.3,
                      "source": "NVIDIA L4 Tensor Core GPU datasheet"}),
    # Google Cloud TPU system architecture pages: bf16 peak per chip (one JAX device per chip).
    (r"^TPU v4$", {"name": "TPU v4", "bfloat16": 275.0, "tf32": None, "float32": None,
                   "source": "Google Cloud TPU docs, TPU v4 (per chip)"}),
    (r"^TPU v5( lite|e)$", {"name": "TPU v5e", "bfloat16": 197.0, "tf32": None, "float32": None,
                            "source": "Google Cloud TPU docs, TPU v5e (per chip)"}),
    (r"^TPU v5p?$", {"name": "TPU v5p", "bfloat16": 459.0, "tf32": None, "float32": None,
                     "source": "Google Cloud TPU docs, TPU v5p (per chip)"}),
    (r"^TPU v6( lite|e)$", {"name": "TPU v6e", "bfloat16": 918.0, "tf32": None, "float32": None,
                            "source": "Google Cloud TPU docs, TPU v6e (per chip)"}),
)

# (label, dtype, precision, which peak it is compared with).
CASES = (
    ("float32", jnp.float32, None, "tf32"),
    ("float32 (HIGHEST)", jnp.float32, jax.lax.Precision.HIGHEST, "float32"),
    ("bfloat16", jnp.bfloat16, None, "bfloat16"),
)


def known_peak(device_kind: str) -> Optional[dict]:
  """The spec-sheet peaks (TFLOP/s) of a JAX ``device_kind``, or None if not in ``PEAKS``."""
  for pattern, peak in PEAKS:
    if re.search(pattern, device_kind.strip()):
      return dict(peak)
  return None


def matmul_flops(n: int, dtype=jnp.float32, reps: int = 5, precision=None,
                 device: Optional[jax.Device] = None) -> float:
  """Measured FLOP/s (``2 n^3`` per product) of a jitted ``n x n`` matmul, best of ``reps``.

  Args:
    n: matrix size.
    dtype: element type of both operands and the result.
    reps: timed runs after one untimed (compiling) run; the fastest is kept.
    precision: ``jax.lax.Precision`` for the dot (None: JAX's default).
    device: where to run (default: the first device).

  Returns:
    FLOP/s of the fastest run.
  """
  device = device or jax.devices()[0]
  ka, kb = jax.random.split(jax.random.key(0))
  a = jax.device_put(jax.random.normal(ka, (n, n), dtype), device)
  b = jax.device_put(jax.random.normal(kb, (n, n), dtype), device)
  f = jax.jit(lambda x, y: jnp.matmul(x, y, precision=precision))
  f(a, b).block_until_ready()
  best = math.inf
  for _ in range(max(1, reps)):
    t0 = time.perf_counter()
    f(a, b).block_until_ready()
    best = min(best, time.perf_counter() - t0)
  return 2.0 * n**3 / best


def device_info() -> dict:
  """Host, JAX versions and devices: what ``jax.devices()`` reports."""
  import jaxlib  # pylint: disable=g-import-not-at-top
  devices = jax.devices()
  d0 = devices[0]
  info = {
      "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
      "host": socket.gethostname(), "machine": platform.machine(),
      "python": platform.python_version(), "cpu_count": os.cpu_count(),
      "jax": jax.__version__, "jaxlib": jaxlib.__version__,
      "backend": jax.default_backend(), "platform": d0.platform,
      "device_kind": d0.device_kind, "device_count": jax.device_count(),
      "local_device_count": jax.local_device_count(), "process_count": jax.process_count(),
      "devices": [str(d) for d in devices],
  }
  try:  # GPU/TPU only; CPU devices have no memory stats.
    stats = d0.memory_stats() or {}
    if "bytes_limit" in stats:
      info["memory_gib"] = stats["bytes_limit"] / 2**30
  except Exception:  # pylint: disable=broad-except
    pass
  return info


def probe(n: Optional[int] = None, reps: Optional[int] = None) -> dict:
  """Device info plus the matmul table: one row per ``CASES`` entry."""
  info = device_info()
  accel = info["backend"] != "cpu"
  n = n or (8192 if accel else 2048)
  reps = reps or (10 if accel else 3)
  peak = known_peak(info["device_kind"]) if accel else None
  rows = []
  for label, dtype, precision, peak_key in CASES:
    flops = matmul_flops(n, dtype, reps, precision)
    row = {"dtype": label, "n": n, "reps": reps, "tflops": flops / 1e12}
    ref = peak.get(peak_key) if peak else None
    if peak_key == "tf32" and peak and ref is None:  # no TF32 units: plain float32 applies
      peak_key, ref = "float32", peak.get("float32")
    if ref:
      row.update(peak_tflops=ref, peak_kind=peak_key, fraction_of_peak=flops / 1e12 / ref)
    rows.append(row)
  return {**info, "peak": peak, "matmul": rows}


def format_table(result: dict) -> str:
  lines = [f"{result['device_count']} x {result['device_kind']} ({result['platform']}), "
           f"jax {result['jax']}, jaxlib {result['jaxlib']}, host {result['host']}"]
  for r in result["matmul"]:
    frac = (f"{r['fraction_of_peak']:.1%} of {r['peak_tflops']:g} ({r['peak_kind']} spec)"
            if "fraction_of_peak" in r else "peak unknown")
    lines.append(f"  {r['dtype']:18s} n={r['n']:5d}  {r['tflops']:9.4g} TFLOP/s  {frac}")
  return "\n".join(lines)


def main(argv=None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
  parser.add_argument("--n", type=int, default=None, help="matrix size (GPU/TPU 8192, CPU 2048)")
  parser.add_argument("--reps", type=int, default=None, help="timed runs, best kept")
  parser.add_argument("--out", default=None, help="write the result to this JSON file")
  args = parser.parse_args(argv)
  result = probe(args.n, args.reps)
  print(format_table(result), flush=True)
  if args.out:
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".tmp", "w") as f:
      json.dump(result, f, indent=2)
    os.replace(args.out + ".tmp", args.out)
  return result


if __name__ == "__main__":
  main(sys.argv[1:])
