r"""Collects what ``scripts/device_check.sh`` left in its output folder into one report.

    python scripts/device_report.py collect OUT_DIR [--started EPOCH] [--command CMD]
    python scripts/device_report.py backend OUT_DIR     # prints the probe's backend (or nothing)

Reads, all optional (a stage that failed leaves its part out, and the report says why):

- ``stages.tsv``: one line per stage written by the shell script (name, kind, status, exit
  code, start and end times, time limit, artifact, config, command or reason);
- ``probe.json`` (``scripts/device_probe.py``): host, devices, versions, matmul TFLOP/s;
- ``runs/<method>_<mode>/results.json`` and ``metrics.jsonl`` (``scripts/train.py``): test
  metrics and the last ``train`` row's ``steps_per_sec``;
- ``bench_heterrec/bench.json`` (``scripts/bench_heterrec.py``) and ``bench_envs.json``
  (``scripts/bench_envs.py``);
- ``logs/<stage>.log``: the tail of every failed stage's log goes into the report.

Writes ``OUT_DIR/device_check.json`` (everything, structured) and ``OUT_DIR/device_check.md``
(the same as tables), atomically. Imports no JAX, so it works when JAX itself is broken.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import socket
import sys
import time
from typing import Any, Optional

STAGE_FIELDS = ("name", "kind", "status", "rc", "start", "end", "limit_s", "artifact", "config",
                "command")
LOG_TAIL_LINES = 40


def _load_json(path: str) -> Optional[Any]:
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def _float(x: str) -> Optional[float]:
  try:
    return float(x)
  except (TypeError, ValueError):
    return None


def read_stages(out_dir: str) -> list[dict]:
  """The rows of ``stages.tsv`` as dicts, with ``seconds`` where the stage ran."""
  stages = []
  path = os.path.join(out_dir, "stages.tsv")
  if not os.path.exists(path):
    return stages
  with open(path) as f:
    for line in f:
      parts = line.rstrip("\n").split("\t")
      if len(parts) < len(STAGE_FIELDS):
        continue
      row = dict(zip(STAGE_FIELDS, parts[:len(STAGE_FIELDS) - 1]))
      row["command"] = "\t".join(parts[len(STAGE_FIELDS) - 1:])
      start, end = _float(row["start"]), _float(row["end"])
      row["seconds"] = end - start if start is not None and end is not None else None
      row["rc"] = int(row["rc"]) if row["rc"].lstrip("-").isdigit() else None
      row["limit_s"] = _float(row["limit_s"])
      stages.append(row)
  return stages


def log_tail(out_dir: str, name: str, lines: int = LOG_TAIL_LINES) -> str:
  """The last ``lines`` lines of a stage's log; progress-bar redraws (``\\r``) collapsed."""
  path = os.path.join(out_dir, "logs", name.replace("/", "_") + ".log")
  try:
    with open(path, errors="replace") as f:
      text = f.read()
  except OSError:
    return f"(no log at {path})"
  rows = [r.split("\r")[-1] for r in text.splitlines()]
  return "\n".join(rows[-lines:])


def train_result(out_dir: str, stage: dict) -> dict:
  """Test metrics, steps/s and the stop reason of one training run's workdir."""
  method, _, mode = stage["name"].partition("/")
  row = {"method": method, "mode": mode, "config": stage["config"], "status": stage["status"],
         "wall_s": stage["seconds"]}
  if stage["status"] == "skipped":
    row["reason"] = stage["command"]
    return row
  workdir = os.path.join(out_dir, stage["artifact"])
  results = _load_json(os.path.join(workdir, "results.json")) or {}
  # A scan-chunk trainer (common/chunk_loop.py) reports "final" (per seed and mean): the means.
  final = results.get("test") or results.get("final") or {}
  row["test"] = {k: v for k, v in final.items()
                 if isinstance(v, (int, float)) and "/seed_" not in k}
  row["steps"] = results.get("step")
  row["stop_reason"] = results.get("stop_reason")
  train_rows = []
  try:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      for line in f:
        if line.strip():
          r = json.loads(line)
          if r.get("split") == "train":
            train_rows.append(r)
  except (OSError, ValueError):
    pass
  row["steps_per_sec"] = train_rows[-1].get("steps_per_sec") if train_rows else None
  return row


def _stage_span(stages: list[dict]) -> Optional[float]:
  """First stage start to last stage end: the total when the check's start was not given."""
  starts = [_float(s["start"]) for s in stages if _float(s["start"]) is not None]
  ends = [_float(s["end"]) for s in stages if _float(s["end"]) is not None]
  return max(ends) - min(starts) if starts and ends else None


def spec_peak_for_fp32_default(probe: Optional[dict]) -> Optional[float]:
  """TFLOP/s that a default-precision float32 matmul is compared with (TF32 where there is one)."""
  peak = (probe or {}).get("peak") or {}
  return peak.get("tf32") or peak.get("float32")


def collect(out_dir: str, started: Optional[float] = None, command: Optional[str] = None,
            budget_s: Optional[float] = None) -> dict:
  """Everything the check left in ``out_dir``, as one JSON-able dict."""
  stages = read_stages(out_dir)
  probe = _load_json(os.path.join(out_dir, "probe.json"))
  now = time.time()
  report = {
      "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
      "host": (probe or {}).get("host") or socket.gethostname(),
      "machine": platform.machine(), "cpu_count": os.cpu_count(),
      "command": command, "budget_s": budget_s,
      "total_seconds": now - started if started else _stage_span(stages),
      "probe": probe,
      "stages": stages,
      "train": [train_result(out_dir, s) for s in stages if s["kind"] == "train"],
      "bench_heterrec": _load_json(os.path.join(out_dir, "bench_heterrec", "bench.json")),
      "bench_envs": _load_json(os.path.join(out_dir, "bench_envs.json")),
  }
  report["failed"] = [s["name"] for s in stages if s["status"] not in ("ok", "skipped")]
  report["skipped"] = [s["name"] for s in stages if s["status"] == "skipped"]
  report["log_tails"] = {name: log_tail(out_dir, name) for name in report["failed"]
                         if next(s for s in stages if s["name"] == name)["status"] != "budget"}
  peak = spec_peak_for_fp32_default(probe)
  for r in (report["bench_heterrec"] or {}).get("rows", []):
    if peak and r.get("achieved_flops_per_second") is not None:
      r["fraction_of_spec_peak"] = r["achieved_flops_per_second"] / (peak * 1e12)
  return report


def _fmt(x: Any, digits: int = 4) -> str:
  """A number for a table: 4 significant digits, k/M/G for large rates; '-' for missing."""
  if x is None or (isinstance(x, float) and math.isnan(x)):
    return "-"
  if isinstance(x, bool) or not isinstance(x, (int, float)):
    return str(x)
  for scale, suffix, above in ((1e9, "G", 1e9), (1e6, "M", 1e6), (1e3, "k", 1e4)):
    if abs(x) >= above:
      return f"{x / scale:.{digits}g}{suffix}"
  return f"{x:.{digits}g}"


def _pct(x: Optional[float]) -> str:
  return "-" if x is None else f"{100 * x:.1f}%"


def _table(header: list[str], rows: list[list[str]]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(r) + " |" for r in rows]
  return "\n".join(lines)


def _metrics_text(metrics: dict) -> str:
  """The test metrics for a table cell: only the @10 ones where there are cut-offs (the JSON
  has all)."""
  keys = [k for k in metrics if k not in ("num_users", "num_examples")] or list(metrics)
  keys = [k for k in keys if k.endswith("@10")] or keys
  return ", ".join(f"{k} {metrics[k]:.4f}" for k in keys) if metrics else "-"


def render_markdown(report: dict) -> str:
  """The report as markdown: header, devices, matmul, training, benchmarks, stages, failures."""
  probe = report.get("probe") or {}
  out = [f"# Device check, {report['date']}", ""]
  total = report.get("total_seconds")
  status = ("all stages passed" if not report["failed"]
            else f"FAILED: {', '.join(report['failed'])}")
  out += [f"- host: `{report['host']}` ({report['machine']}, {report['cpu_count']} CPUs)",
          f"- command: `{report.get('command') or 'bash scripts/device_check.sh'}`",
          f"- total wall time: {_fmt(total)} s" + (f" (budget {report['budget_s']:g} s)"
                                                     if report.get("budget_s") else ""),
          f"- result: {status}"]
  if report["skipped"]:
    out.append(f"- skipped: {', '.join(report['skipped'])} (config not built yet)")
  out.append("")

  out += ["## Devices", ""]
  if probe:
    out += [f"- {probe['device_count']} x `{probe['device_kind']}` (platform {probe['platform']},"
            f" {probe['process_count']} process(es))"
            + (f", {probe['memory_gib']:.1f} GiB usable" if probe.get("memory_gib") else ""),
            f"- jax {probe['jax']}, jaxlib {probe['jaxlib']}, Python {probe['python']}", ""]
    peak = probe.get("peak")
    out += ["### Matmul probe (jitted `a @ b`, best of "
            f"{probe['matmul'][0]['reps'] if probe.get('matmul') else '?'} after warm-up)", ""]
    rows = [[r["dtype"], str(r["n"]), _fmt(r["tflops"]),
             f"{r['peak_tflops']:g} ({r['peak_kind']})" if "peak_tflops" in r else "unknown",
             _pct(r.get("fraction_of_peak"))] for r in probe.get("matmul", [])]
    out += [_table(["dtype", "n", "TFLOP/s", "spec peak TFLOP/s", "of peak"], rows), ""]
    out.append(f"Peaks: {peak['source']} (dense figures)." if peak else
               "Peak unknown for this device kind: measured figures only.")
    out.append("")
  else:
    out += ["The probe did not run or failed; see below.", ""]

  out += ["## Training: quick configs, both parallel modes", ""]
  rows = []
  for r in report["train"]:
    if r["status"] == "skipped":
      rows.append([r["method"], r["mode"], f"`{r['config']}`", "skipped", "-", "-", r["reason"]])
    else:
      rows.append([r["method"], r["mode"], f"`{r['config']}`", r["status"], _fmt(r["wall_s"]),
                   _fmt(r.get("steps_per_sec")), _metrics_text(r.get("test") or {})])
  out += [_table(["method", "mode", "config", "status", "wall s", "steps/s (last log)",
                  "test metrics"], rows) if rows else "No training stage ran.", ""]

  bench = report.get("bench_heterrec")
  out += ["## HeterRec speed (`scripts/bench_heterrec.py --skip_recbole`)", ""]
  if bench:
    peak_fp32 = spec_peak_for_fp32_default(probe)
    out.append(f"float32 matmul peak measured by the benchmark: "
               f"{_fmt(bench['matmul_peak_flops_per_second'] / 1e12)} TFLOP/s"
               + (f"; spec peak for default-precision float32: {peak_fp32:g} TFLOP/s"
                  if peak_fp32 else ""))
    out.append("")
    rows = [[r["model"], _fmt(r.get("parameters")), str(r.get("batch_size", "-")),
             _fmt(r.get("steps_per_second")), _fmt(r.get("targets_per_second")),
             _fmt(r.get("eval_users_per_second")), _fmt(r.get("flops_per_step") / 1e9
                                                        if r.get("flops_per_step") else None),
             _fmt(r.get("achieved_flops_per_second") / 1e12
                  if r.get("achieved_flops_per_second") else None),
             _pct(r.get("fraction_of_matmul_peak")), _pct(r.get("fraction_of_spec_peak"))]
            for r in bench.get("rows", [])]
    out += [_table(["model", "params", "batch", "steps/s", "targets/s", "eval users/s",
                    "GFLOP/step", "TFLOP/s", "of measured peak", "of spec peak"], rows), ""]
  else:
    out += ["No results (stage failed or did not run).", ""]

  envs = report.get("bench_envs")
  out += ["## Environment throughput (`scripts/bench_envs.py`), agent-steps/s", ""]
  if envs:
    meta, results = envs.get("meta", {}), envs.get("results", {})
    agents = meta.get("agents", 1)
    batches = sorted({int(b) for r in results.values() for b in r})
    rows = [[str(b)] + [_fmt(results[k][str(b)]["steps_per_s"] * agents)
                        if str(b) in results[k] else "-" for k in results] for b in batches]
    out += [f"{agents} agents per env, {meta.get('steps_per_run')} steps per run, best of "
            f"{meta.get('repeats')}, random actions with auto-reset.", "",
            _table(["envs"] + list(results), rows), ""]
  else:
    out += ["No results (stage failed or did not run).", ""]

  out += ["## Stages", ""]
  rows = [[s["name"], s["status"], _fmt(s["seconds"]), _fmt(s["limit_s"]),
           "-" if s["rc"] is None else str(s["rc"]),
           f"`{s['command']}`" if s["status"] not in ("skipped", "budget") else s["command"]]
          for s in report["stages"]]
  out += [_table(["stage", "status", "seconds", "limit s", "exit", "command"], rows), ""]
  for name, tail in report["log_tails"].items():
    out += [f"### Failed: {name} (last {LOG_TAIL_LINES} lines of its log)", "", "```", tail,
            "```", ""]
  return "\n".join(out)


def _atomic_write(path: str, text: str) -> None:
  with open(path + ".tmp", "w") as f:
    f.write(text)
  os.replace(path + ".tmp", path)


def write_report(out_dir: str, report: dict) -> tuple[str, str]:
  """Writes ``device_check.json`` and ``device_check.md``; returns their paths."""
  md_path = os.path.join(out_dir, "device_check.md")
  json_path = os.path.join(out_dir, "device_check.json")
  _atomic_write(json_path, json.dumps(report, indent=2, default=str) + "\n")
  _atomic_write(md_path, render_markdown(report) + "\n")
  return md_path, json_path


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
  sub = parser.add_subparsers(dest="cmd", required=True)
  p = sub.add_parser("collect", help="write device_check.md and device_check.json")
  p.add_argument("out_dir")
  p.add_argument("--started", type=float, default=None, help="epoch seconds the check began")
  p.add_argument("--command", default=None, help="the command line, for the report")
  p.add_argument("--budget_s", type=float, default=None, help="the overall time budget")
  p = sub.add_parser("backend", help="print the probe's JAX backend")
  p.add_argument("out_dir")
  args = parser.parse_args(argv)
  if args.cmd == "backend":
    probe = _load_json(os.path.join(args.out_dir, "probe.json")) or {}
    print(probe.get("backend", ""))
    return 0
  report = collect(args.out_dir, args.started, args.command, args.budget_s)
  md_path, json_path = write_report(args.out_dir, report)
  print(render_markdown(report))
  print(f"\nReport: {md_path} and {json_path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
