r"""ESANS's training step beside in-batch sampling's: the cost of the samplers, one script.

    python scripts/bench_esans_step.py --config=configs/esans/ml100k.py
    python scripts/bench_esans_step.py --config=configs/esans/amazon_toys.py \
        --samplers=in_batch,mixed,esans --steps=30 --out=workdirs/bench_esans_step.json

The data are built once (``--config``'s ``data``); then, for each preset of ``--samplers``, the
task of ``esans_jax.train.make_task`` with the config loaded as ``<config>:<sampler>`` (the same
model, data and batch; only the negatives differ). Each step is the trainer's own: the per-device
step wrapped by ``parallel.DataParallel`` (mesh mode, one device), the step constants replicated
once, compiled ahead of time (its compile time and XLA's FLOP count are reported), and MSAC's
tables refreshed once before the first step, as the training loop does.

Timing: ``--warmup`` untimed steps per sampler, then ``--steps`` timed steps each, interleaved in
rounds of ``--round_steps`` (1: A B C A B C ...), so that the load of a shared machine falls on
every sampler alike. Each step is timed alone, from the call to ``block_until_ready``, with its
batch already on the device (the input pipeline is the same for every sampler: its time is
reported apart, in the ``input ms`` column). Reported per sampler: the median wall ms per step
(and the interquartile range), the median process CPU ms per step (steadier than wall time on a
shared CPU), the ratio to ``in_batch``; for samplers with MSAC, the refresh (re-embedding every
item and two-level k-means: ms per refresh, the median of ``--refresh_repeats``, one per round)
and that amortised over the config's ``sampler.refresh_every`` steps, and the step plus the
amortised refresh against ``in_batch``. ``item rows`` is the rows the item tower embeds per step
(positives, shared negatives and MSAC's ``m_c + m_o`` per row): the main cost MSAC adds.

ESANS's target: a step (refresh included) at most ``--target`` (1.15) times in-batch sampling's.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
import time

from absl import app
from absl import flags
from absl import logging
import jax
import numpy as np

from common import config_checks
from common import data as data_lib
from common import metric_writers
from common import parallel
from esans_jax import train

_CONFIG = flags.DEFINE_string("config", "configs/esans/ml100k.py",
                              "ESANS config file, configs/esans/<exp>.py[:arg]; each sampler is "
                              "added to its argument.")
_SAMPLERS = flags.DEFINE_list("samplers", ["in_batch", "mixed", "esans", "msac", "edis"],
                              "Sampler presets to time (configs/esans/options.py).")
_STEPS = flags.DEFINE_integer("steps", 30, "Timed steps per sampler.")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps per sampler after compiling.")
_ROUND_STEPS = flags.DEFINE_integer("round_steps", 1, "Consecutive steps of one sampler per round.")
_REFRESH_REPEATS = flags.DEFINE_integer("refresh_repeats", 3,
                                        "Timed MSAC refreshes (one per round, the first rounds).")
_TARGET = flags.DEFINE_float("target", 1.15, "ESANS's step-time target, a multiple of in_batch.")
_OUT = flags.DEFINE_string("out", "", "Also write the results to this JSON file.")


def load_config(sampler: str):
  path, _, arg = _CONFIG.value.partition(":")
  return config_checks.load_config_file(f"{path}:{','.join(a for a in (arg, sampler) if a)}")


def item_rows(config, sampler) -> int:
  """Rows the item tower embeds in one step of a ``config.train.batch_size`` batch."""
  b = config.train.batch_size
  per_row = sampler.m_c + sampler.m_o if sampler.msac else 0
  pool = sampler.hard_pool if sampler.hard_k else 0
  return b + sampler.num_uniform + sampler.num_popularity + pool + b * per_row


class Runner:
  """One sampler's compiled step and refresh, its device state, and what was timed."""

  def __init__(self, name: str, ds, dp: parallel.DataParallel):
    config = load_config(name)
    self.name, self.config, self.dp = name, config, dp
    task, extras = train.make_task(config, ds)
    self.task, self.sampler = task, extras["sampler"]
    self.iter = task.train_iter
    state = dp.replicate(jax.jit(task.init_state)(jax.random.PRNGKey(config.seed)))
    self.consts = dp.replicate(task.consts)
    first = dp.shard_batch(next(self.iter))
    self.refresh, self.refresh_every = None, 0
    self.refresh_compile_s = float("nan")
    if task.refresh is not None:
      wrapped = dp.wrap(task.refresh, (parallel.REPLICATED,) * 2, parallel.REPLICATED)
      t = time.perf_counter()
      self.refresh = wrapped.lower(state, self.consts).compile()
      state = jax.block_until_ready(self.refresh(state, self.consts))
      self.refresh_compile_s = time.perf_counter() - t
      self.refresh_every = task.refresh_every
    t = time.perf_counter()
    self.step = dp.wrap_step(task.train_step, with_consts=True).lower(
        state, first, self.consts).compile()
    self.compile_s = time.perf_counter() - t
    cost = self.step.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    self.flops = float((cost or {}).get("flops", float("nan")))
    self.state, metrics = self.step(state, first, self.consts)
    for _ in range(_WARMUP.value):
      self.state, metrics = self.step(self.state, dp.shard_batch(next(self.iter)), self.consts)
    jax.block_until_ready((self.state, metrics))
    self.metrics = metrics
    self.wall, self.cpu, self.input, self.refresh_ms = [], [], [], []

  def run(self, steps: int) -> None:
    for _ in range(steps):
      t = time.perf_counter()
      batch = jax.block_until_ready(self.dp.shard_batch(next(self.iter)))
      self.input.append(time.perf_counter() - t)
      t, c = time.perf_counter(), time.process_time()
      self.state, self.metrics = self.step(self.state, batch, self.consts)
      jax.block_until_ready((self.state, self.metrics))
      self.wall.append(time.perf_counter() - t)
      self.cpu.append(time.process_time() - c)

  def time_refresh(self) -> None:
    t = time.perf_counter()
    self.state = jax.block_until_ready(self.refresh(self.state, self.consts))
    self.refresh_ms.append(1e3 * (time.perf_counter() - t))

  def row(self) -> dict:
    wall = 1e3 * np.asarray(self.wall)
    metrics = self.dp.to_host(self.metrics)
    out = {"sampler": self.name, "step ms": float(np.median(wall)),
           "iqr ms": float(np.percentile(wall, 75) - np.percentile(wall, 25)),
           "cpu ms": float(np.median(1e3 * np.asarray(self.cpu))),
           "input ms": float(np.median(1e3 * np.asarray(self.input))),
           "item rows": item_rows(self.config, self.sampler),
           "negatives/row": float(metrics.get("negatives_per_row", float("nan"))),
           "gflop": self.flops / 1e9, "compile s": self.compile_s, "steps": len(self.wall)}
    if self.refresh is not None:
      refresh = float(np.median(self.refresh_ms)) if self.refresh_ms else float("nan")
      out.update({"refresh ms": refresh, "refresh_every": self.refresh_every,
                  "refresh ms/step": refresh / self.refresh_every,
                  "refresh compile s": self.refresh_compile_s})
    out["step+refresh ms"] = out["step ms"] + out.get("refresh ms/step", 0.0)
    return out


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)
  names = list(dict.fromkeys(_SAMPLERS.value))
  if not names:
    raise app.UsageError("--samplers: name at least one sampler")
  try:
    configs = {n: load_config(n) for n in names}  # every config error before any data is read
  except config_checks.ConfigError as e:
    sys.stderr.write(f"Error: {e}\n")
    sys.exit(2)
  t = time.perf_counter()
  ds = data_lib.build_dataset(configs[names[0]].data)
  data_s = time.perf_counter() - t
  load_start = os.getloadavg()[0]
  print(f"ESANS step bench: {_CONFIG.value}, {configs[names[0]].data.name}: {ds.num_items} items, "
        f"{ds.num_users} users (data built in {data_s:.1f} s) | jax {jax.__version__} on "
        f"{jax.devices()[0].device_kind} ({jax.default_backend()}), "
        f"{len(os.sched_getaffinity(0))} CPU(s) usable, load average {load_start:.1f}", flush=True)

  dp = parallel.DataParallel("mesh", 1)
  runners = {}
  for name in names:
    t = time.perf_counter()
    runners[name] = Runner(name, ds, dp)
    r = runners[name]
    print(f"  {name}: task built and compiled in {time.perf_counter() - t:.1f} s (step compile "
          f"{r.compile_s:.1f} s)", flush=True)

  rounds = -(-_STEPS.value // _ROUND_STEPS.value)
  for i in range(rounds):
    steps = min(_ROUND_STEPS.value, _STEPS.value - i * _ROUND_STEPS.value)
    for r in runners.values():
      r.run(steps)
      if r.refresh is not None and i < _REFRESH_REPEATS.value:
        r.time_refresh()
  load_end = os.getloadavg()[0]

  rows = [r.row() for r in runners.values()]
  base = next((r for r in rows if r["sampler"] == "in_batch"), None)
  for r in rows:
    if base is not None:
      r["vs in_batch"] = r["step ms"] / base["step ms"]
      r["cpu vs in_batch"] = r["cpu ms"] / base["cpu ms"]
      r["step+refresh vs in_batch"] = r["step+refresh ms"] / base["step ms"]
  cols = ["sampler", "step ms", "iqr ms", "cpu ms", "vs in_batch", "cpu vs in_batch",
          "refresh ms", "refresh_every", "refresh ms/step", "step+refresh ms",
          "step+refresh vs in_batch", "input ms", "item rows", "negatives/row", "gflop",
          "compile s"]
  cols = [c for c in cols if any(c in r for r in rows)]
  table = metric_writers.format_table(rows, cols, floatfmt=".3g")
  config = configs[names[0]]
  print(f"\nbatch {config.train.batch_size}, max_len {config.model.max_len}, dim "
        f"{config.model.dim}; {_STEPS.value} timed steps per sampler after {_WARMUP.value}, in "
        f"rounds of {_ROUND_STEPS.value}; load average {load_start:.1f} -> {load_end:.1f}\n")
  print(table)
  verdicts = []
  if base is not None:
    for r in rows:
      if r["sampler"].startswith("esans"):
        ratio = r["step+refresh vs in_batch"]
        verdicts.append(f"{r['sampler']}: {ratio:.2f}x in_batch's step, refresh included "
                        f"(step alone {r['vs in_batch']:.2f}x, CPU time "
                        f"{r['cpu vs in_batch']:.2f}x): target <= {_TARGET.value:.2f}x "
                        f"{'met' if ratio <= _TARGET.value else 'MISSED'}")
  for v in verdicts:
    print(v)
  if _OUT.value:
    result = {"rows": rows, "config": _CONFIG.value, "data": config.data.name,
              "num_items": int(ds.num_items), "num_users": int(ds.num_users),
              "batch_size": config.train.batch_size, "max_len": config.model.max_len,
              "steps": _STEPS.value, "warmup": _WARMUP.value, "round_steps": _ROUND_STEPS.value,
              "target": _TARGET.value, "verdicts": verdicts,
              "load_average": [load_start, load_end], "date": datetime.date.today().isoformat(),
              "jax": jax.__version__, "backend": jax.default_backend(),
              "machine": platform.machine(), "cpu_count": os.cpu_count()}
    metric_writers.atomic_write_text(_OUT.value, json.dumps(result, indent=2))
    print(f"wrote {_OUT.value}")


if __name__ == "__main__":
  app.run(main)
