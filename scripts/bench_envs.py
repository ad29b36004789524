"""Environment throughput: CORD's envs beside JaxMARL MPE and Jumanji LBF, 1 to 16,384 envs.

Each env runs `--steps` steps of uniformly random actions under `jit(vmap(lax.scan(step)))`, with
auto-reset (ours: `AutoResetWrapper`; Jumanji: its own `AutoResetWrapper`; JaxMARL: the reset built
into `MultiAgentEnv.step`), so every number includes the cost of resetting finished episodes.
All envs have the same number of agents, so the ratios per agent-step equal the ratios per env-step.

  python scripts/bench_envs.py                 # full sweep, 1 .. 16384 envs
  python scripts/bench_envs.py --quick         # a short run (a few batch sizes, fewer steps)
  python scripts/bench_envs.py --json out.json --markdown out.md

Rows: resource_collection (ours, N agents, N piles), foraging (ours, N agents, N food),
jaxmarl_mpe (MPE_simple_spread_v3, N agents, N landmarks; skipped without the `bench` extra),
jumanji_lbf (Jumanji LevelBasedForaging, N agents, N food). Ratio columns compare ours with each
peer at the same batch size (> 1 means ours is faster).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from typing import Callable, Dict, List, Optional

import jax
from jumanji import environments as jumanji_envs
from jumanji import wrappers as jumanji_wrappers
from jumanji.environments.routing.lbf import generator as lbf_generator

from cord_jax import envs

FULL_BATCHES = (1, 4, 16, 64, 256, 1024, 4096, 16384)
QUICK_BATCHES = (1, 64, 1024, 16384)


def _ours(env) -> Callable[[jax.Array, int], jax.Array]:
  """scan of AutoResetWrapper(env) steps with random actions; returns the summed reward."""
  env = envs.AutoResetWrapper(env)
  n, a = env.num_agents, env.num_actions

  def run(key, steps):
    state, _ = env.reset(key)

    def body(carry, k):
      state, total = carry
      state, ts = env.step(state, jax.random.randint(k, (n,), 0, a))
      return (state, total + ts.reward[0]), None

    (_, total), _ = jax.lax.scan(body, (state, 0.0), jax.random.split(key, steps))
    return total
  return run


def _jumanji_lbf(num_agents: int) -> Callable[[jax.Array, int], jax.Array]:
  env = jumanji_wrappers.AutoResetWrapper(jumanji_envs.LevelBasedForaging(
      generator=lbf_generator.RandomGenerator(grid_size=8, fov=8, num_agents=num_agents,
                                              num_food=num_agents, force_coop=True)))

  def run(key, steps):
    state, _ = env.reset(key)

    def body(carry, k):
      state, total = carry
      state, ts = env.step(state, jax.random.randint(k, (num_agents,), 0, 6))
      return (state, total + ts.reward[0]), None

    (_, total), _ = jax.lax.scan(body, (state, 0.0), jax.random.split(key, steps))
    return total
  return run


def _jaxmarl_mpe(num_agents: int) -> Optional[Callable[[jax.Array, int], jax.Array]]:
  try:
    import jaxmarl
  except ImportError:
    return None
  env = jaxmarl.make("MPE_simple_spread_v3", num_agents=num_agents, num_landmarks=num_agents)
  names = env.agents

  def run(key, steps):
    _, state = env.reset(key)

    def body(carry, k):
      state, total = carry
      k_act, k_step = jax.random.split(k)
      act = jax.random.randint(k_act, (num_agents,), 0, 5)
      _, state, rew, _, _ = env.step(k_step, state, {a: act[i] for i, a in enumerate(names)})
      return (state, total + rew[names[0]]), None

    (_, total), _ = jax.lax.scan(body, (state, 0.0), jax.random.split(key, steps))
    return total
  return run


def measure(run: Callable, batch: int, steps: int, repeats: int) -> Dict[str, float]:
  """Compiles jit(vmap(run)) for `batch` envs and returns the best env-steps/s of `repeats`."""
  fn = jax.jit(jax.vmap(lambda k: run(k, steps)))
  keys = jax.random.split(jax.random.key(0), batch)
  t0 = time.perf_counter()
  fn(keys).block_until_ready()
  compile_s = time.perf_counter() - t0
  best = float("inf")
  for r in range(repeats):
    keys = jax.random.split(jax.random.key(r + 1), batch)
    t0 = time.perf_counter()
    fn(keys).block_until_ready()
    best = min(best, time.perf_counter() - t0)
  return {"steps_per_s": batch * steps / best, "seconds": best, "compile_s": compile_s}


def _fmt(x: float) -> str:
  return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.1f}k"


def main(argv: Optional[List[str]] = None) -> Dict:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--agents", type=int, default=3, help="agents per env (all rows)")
  parser.add_argument("--batches", type=str, default=None,
                      help="comma-separated env counts (default 1,4,...,16384)")
  parser.add_argument("--steps", type=int, default=None, help="steps per timed run")
  parser.add_argument("--repeats", type=int, default=None, help="timed runs per point (best kept)")
  parser.add_argument("--quick", action="store_true", help="short run: 4 batch sizes, 20 steps")
  parser.add_argument("--json", type=str, default=None, help="write results to this JSON file")
  parser.add_argument("--markdown", type=str, default=None, help="write the table as markdown")
  args = parser.parse_args(argv)

  batches = (tuple(int(b) for b in args.batches.split(",")) if args.batches
             else QUICK_BATCHES if args.quick else FULL_BATCHES)
  steps = args.steps or (20 if args.quick else 100)
  repeats = args.repeats or (2 if args.quick else 3)
  n = args.agents

  rows = {
      "resource_collection": _ours(envs.ResourceCollection(num_agents=n, num_resources=n)),
      "foraging": _ours(envs.CooperativeForaging(num_agents=n, num_food=n)),
      "jaxmarl_mpe": _jaxmarl_mpe(n),
      "jumanji_lbf": _jumanji_lbf(n),
  }
  rows = {k: v for k, v in rows.items() if v is not None}
  if "jaxmarl_mpe" not in rows:
    print("jaxmarl not installed (pip install -e '.[bench]'): skipping the MPE row.")

  results: Dict[str, Dict[int, Dict[str, float]]] = {name: {} for name in rows}
  for batch in batches:
    for name, run in rows.items():
      results[name][batch] = measure(run, batch, steps, repeats)
      r = results[name][batch]
      print(f"  {name:20s} envs={batch:6d} {_fmt(r['steps_per_s']):>8s} env-steps/s "
            f"(compile {r['compile_s']:.1f}s)", flush=True)

  peers = [p for p in ("jaxmarl_mpe", "jumanji_lbf") if p in rows]
  header = (["envs"] + [f"{k} (agent-steps/s)" for k in rows]
            + [f"RC/{p}" for p in peers] + [f"LBF-ours/{p}" for p in peers if p == "jumanji_lbf"])
  table = []
  for batch in batches:
    sps = {k: results[k][batch]["steps_per_s"] * n for k in rows}
    line = [str(batch)] + [_fmt(sps[k]) for k in rows]
    line += [f"{sps['resource_collection'] / sps[p]:.2f}x" for p in peers]
    if "jumanji_lbf" in peers:
      line.append(f"{sps['foraging'] / sps['jumanji_lbf']:.2f}x")
    table.append(line)

  widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(header)]
  print("\n" + "  ".join(h.rjust(w) for h, w in zip(header, widths)))
  for line in table:
    print("  ".join(c.rjust(w) for c, w in zip(line, widths)))

  meta = {
      "date": datetime.date.today().isoformat(), "agents": n, "steps_per_run": steps,
      "repeats": repeats, "jax": jax.__version__, "backend": jax.default_backend(),
      "cpu_count": os.cpu_count(), "machine": platform.machine(),
  }
  print(f"\n{meta}")
  out = {"meta": meta, "results": {k: {str(b): v for b, v in r.items()}
                                   for k, r in results.items()}}
  if args.json:
    with open(args.json, "w") as f:
      json.dump(out, f, indent=2)
  if args.markdown:
    with open(args.markdown, "w") as f:
      f.write("| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n")
      for line in table:
        f.write("| " + " | ".join(line) + " |\n")
  return out


if __name__ == "__main__":
  main()
