r"""CORD's MAPPO training throughput beside JaxMARL's own IPPO-FF and MAPPO-GRU baselines.

    python scripts/bench_cord.py --jaxmarl_repo=PATH                 # 64 and 1,024 envs
    python scripts/bench_cord.py --jaxmarl_repo=PATH --num_envs=64,1024 --updates=2,1 \
        --out=workdirs/bench_cord

PATH is a checkout of https://github.com/FLAIROx/JaxMARL: its baselines are scripts in the
repository, not in the pip package (``jaxmarl==0.2.0``, the ``bench`` extra, must be importable
too). Without ``--jaxmarl_repo`` the JaxMARL columns say why they are empty.

Three parts, every figure in env-steps per second (each env has 3 agents on every row):

1. Training, updates included, on JaxMARL's MPE ``simple_spread`` (``MPE_simple_spread_v3``, 3
   agents, 3 landmarks): CORD's ``mappo`` method (``cord_jax.train.make_train``, one seed) through
   ``cord_jax.envs.JaxMARLAdapter``, against JaxMARL's ``baselines/IPPO/ippo_ff_mpe.py`` (ours:
   feed-forward, 64 units) and ``baselines/MAPPO/mappo_rnn_mpe.py`` (ours: GRU, 128 units). Both
   sides get the same envs, rollout length (``--rollout_len``), epochs, minibatches and updates;
   JaxMARL's other hyper-parameters come from its own YAML config. Each side is one jitted
   program ``rng -> trained state`` (init, then every update: rollout, GAE, epochs of
   minibatches), compiled ahead of time (the compile time is reported apart) and then timed from
   the call to ``block_until_ready``: env-steps/s = updates x envs x rollout_len / seconds.
   JaxMARL's ``wandb``/``hydra``/``omegaconf`` imports are replaced by no-op stubs when they are
   not installed (they only log and parse the command line; the baselines' ``io_callback`` to
   ``wandb.log`` still runs once per update, as in JaxMARL). If ``distrax``'s TensorFlow
   Probability needs ``jax.interpreters.xla.pytype_aval_mappings`` (removed from newer jax), the
   name is pointed at ``jax._src.core.pytype_aval_mappings`` (the same table, moved). Both are
   listed under "notes" in the output. A baseline that still fails is reported with its error.
2. The same training figures on our own envs (resource_collection, foraging; the configs of
   ``configs/cord/``), and each training figure over the env's random-action throughput at the
   same number of envs (``scripts/bench_envs.py``'s ``measure``: the env alone, auto-reset
   included); MPE through the adapter too.
3. Seeds: ``env.num_seeds=--seeds`` trained at once under ``vmap`` (one ``make_train``) against
   the same number of sequential one-seed runs (one compile, then run after run): the ratio of
   sequential to vmapped wall time. On a CPU expect about 1x; the GPU target is >= 8x.

Writes ``<out>/bench.md`` and ``<out>/bench.json`` (atomically) with the date, machine, load
average before and after, and the exact command; prints the tables. A benchmark, not a test.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import os
import platform
import sys
import time
import types
from typing import Any, Callable, Dict, List, Optional, Tuple

from absl import app
from absl import flags
import jax
import numpy as np

from common import metric_writers
from common import parallel
from configs.cord import foraging as foraging_config
from configs.cord import resource_collection as rc_config
from cord_jax import config as cord_config
from cord_jax import train as cord_train

_JAXMARL_REPO = flags.DEFINE_string("jaxmarl_repo", None,
                                    "A JaxMARL checkout (its baselines/ directory is used).")
_NUM_ENVS = flags.DEFINE_list("num_envs", ["64", "1024"], "Env counts to time.")
_UPDATES = flags.DEFINE_list("updates", ["2", "1"],
                             "PPO updates per timed run: one value, or one per --num_envs entry.")
_ROLLOUT = flags.DEFINE_integer("rollout_len", 128, "Steps per env per update (JaxMARL: 128).")
_EPOCHS = flags.DEFINE_integer("epochs", 4, "PPO epochs per update (JaxMARL: 4).")
_MINIBATCHES = flags.DEFINE_integer("minibatches", 4, "Minibatches per epoch (JaxMARL: 4).")
_MODELS = flags.DEFINE_list("models", ["ff", "gru"],
                            "ff: ours FF 64 vs JaxMARL IPPO-FF; gru: ours GRU 128 vs MAPPO-GRU.")
_ENVS = flags.DEFINE_list("envs", ["jaxmarl_mpe", "resource_collection", "foraging"],
                          "Envs to train on (JaxMARL's baselines run on jaxmarl_mpe only).")
_REPEATS = flags.DEFINE_integer("repeats", 1, "Timed runs per point after compiling (best kept).")
_RANDOM_STEPS = flags.DEFINE_integer("random_steps", 20,
                                     "Steps per timed random-action run (bench_envs.measure).")
_SEEDS = flags.DEFINE_integer("seeds", 16, "Seeds for the vmap-vs-sequential part (0: skip).")
_SEEDS_ENV = flags.DEFINE_string("seeds_env", "resource_collection", "Env of the seeds part.")
_SEEDS_MODEL = flags.DEFINE_string("seeds_model", "ff", "Model (ff or gru) of the seeds part.")
_SEEDS_NUM_ENVS = flags.DEFINE_integer("seeds_num_envs", 64, "Envs per seed in the seeds part.")
_SEEDS_UPDATES = flags.DEFINE_integer("seeds_updates", 1, "Updates per run in the seeds part.")
_OUT = flags.DEFINE_string("out", "workdirs/bench_cord", "Where bench.md and bench.json go.")

MODELS = {  # ours (core, hidden), JaxMARL (baseline file, its config, label)
    "ff": (("mlp", 64), ("baselines/IPPO/ippo_ff_mpe.py", "baselines/IPPO/config/ippo_ff_mpe.yaml",
                         "JaxMARL IPPO-FF")),
    "gru": (("gru", 128), ("baselines/MAPPO/mappo_rnn_mpe.py",
                           "baselines/MAPPO/config/mappo_homogenous_rnn_mpe.yaml",
                           "JaxMARL MAPPO-GRU")),
}
MPE_ID = "MPE_simple_spread_v3"
NOTES: List[str] = []  # stubs, shims and failures, in the order they happened


# -- ours ------------------------------------------------------------------------------------------

def our_config(env: str, model: str, num_envs: int, updates: int, seeds: int = 1):
  """CORD's ``mappo`` method config on ``env`` with the benchmark's sizes."""
  if env == "foraging":
    c = foraging_config.get_config("mappo")
  else:
    c = rc_config.get_config("mappo")
    if env == "jaxmarl_mpe":
      c.env.name, c.env.kwargs, c.eval.partner = "jaxmarl_mpe", {}, "random"
    elif env != "resource_collection":
      raise ValueError(f"unknown env {env!r}: jaxmarl_mpe, resource_collection or foraging.")
  core, hidden = MODELS[model][0]
  c.model.core, c.model.hidden = core, hidden
  c.env.num_envs, c.env.num_seeds = num_envs, seeds
  c.ppo.rollout_len, c.ppo.updates_per_chunk = _ROLLOUT.value, updates
  c.ppo.num_epochs, c.ppo.num_minibatches = _EPOCHS.value, _MINIBATCHES.value
  c.train.num_steps = 1
  return c


def our_program(config) -> Tuple[Callable, Any, cord_train.Learner]:
  """``rng -> (runner, metrics)``: init and one chunk of every update, as one program.

  The per-device chunk runs under ``parallel.DataParallel`` (mesh mode, one device), as in
  training; its input is the replicated key.
  """
  learner = cord_train.Learner(config)
  init_state, chunk = cord_train.make_train(config, learner)
  dp = parallel.DataParallel("mesh", 1)
  fn = dp.wrap(lambda rng: chunk(init_state(rng)), (parallel.REPLICATED,),
               (cord_train.state_specs(), parallel.REPLICATED))
  return fn, dp.replicate(np.asarray(jax.random.PRNGKey(0))), learner


def time_program(fn: Callable, arg: Any, repeats: int,
                 args_for: Optional[Callable[[int], Any]] = None) -> Dict[str, float]:
  """Compiles ``fn`` for ``arg`` ahead of time, then the best of ``repeats`` timed runs."""
  t0 = time.perf_counter()
  compiled = jax.jit(fn).lower(arg).compile()
  compile_s = time.perf_counter() - t0
  best = float("inf")
  for r in range(repeats):
    a = args_for(r) if args_for else arg
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(a))
    best = min(best, time.perf_counter() - t0)
  return {"compile_s": compile_s, "run_s": best}


def time_ours(env: str, model: str, num_envs: int, updates: int) -> Dict[str, float]:
  fn, key, _ = our_program(our_config(env, model, num_envs, updates))
  r = time_program(fn, key, _REPEATS.value)
  r["steps_per_s"] = updates * num_envs * _ROLLOUT.value / r["run_s"]
  return r


# -- JaxMARL's baselines ---------------------------------------------------------------------------

class Unavailable(Exception):
  """A JaxMARL baseline that cannot run here; the message says why."""


def _stub_logging_modules() -> None:
  """No-op ``wandb``, ``hydra`` and ``omegaconf`` where not installed (logging and CLI only)."""
  stubs = {
      "wandb": dict(init=lambda *a, **k: None, log=lambda *a, **k: None,
                    finish=lambda *a, **k: None),
      "hydra": dict(main=lambda *a, **k: (lambda f: f)),
      "omegaconf": dict(OmegaConf=types.SimpleNamespace(to_container=lambda c, **k: c)),
  }
  for name, attrs in stubs.items():
    if name in sys.modules or importlib.util.find_spec(name) is not None:
      continue
    sys.modules[name] = types.ModuleType(name)
    for k, v in attrs.items():
      setattr(sys.modules[name], k, v)
    NOTES.append(f"`{name}` is not installed: replaced by a no-op stub (JaxMARL imports it for "
                 "logging / command-line parsing only).")


def _distrax_compat() -> None:
  """TFP 0.25 (distrax's backend) reads ``jax.interpreters.xla.pytype_aval_mappings``."""
  from jax.interpreters import xla  # pylint: disable=g-import-not-at-top
  if hasattr(xla, "pytype_aval_mappings"):
    return
  from jax._src import core  # pylint: disable=g-import-not-at-top
  xla.pytype_aval_mappings = core.pytype_aval_mappings
  NOTES.append(f"jax {jax.__version__} lacks `jax.interpreters.xla.pytype_aval_mappings`, which "
               "tensorflow_probability's jax substrate (under distrax) reads at import: pointed "
               "at `jax._src.core.pytype_aval_mappings` (the same table, moved).")


def _yaml_number(v: Any) -> Any:
  """``"2e-3"`` -> 0.002: hydra's loader (OmegaConf) reads such YAML scalars as floats, PyYAML
  as strings."""
  if isinstance(v, str):
    try:
      number = float(v)
    except ValueError:
      return v
    NOTES.append("JaxMARL's YAML values such as `2e-3` are read as floats, as hydra reads them "
                 "(PyYAML alone reads them as strings).")
    return number
  return v


def load_baseline(repo: Optional[str], model: str):
  """JaxMARL's baseline module and its YAML config, or ``Unavailable`` saying why."""
  path, config_path, _ = MODELS[model][1]
  if not repo:
    raise Unavailable("no --jaxmarl_repo given (a JaxMARL checkout; its baselines are not in "
                      "the pip package)")
  full = os.path.join(repo, path)
  if not os.path.exists(full):
    raise Unavailable(f"{path} is not in the --jaxmarl_repo checkout")
  try:
    import jaxmarl  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError as e:
    raise Unavailable(f"jaxmarl is not importable ({e}); pip install -e '.[bench]'") from e
  _stub_logging_modules()
  _distrax_compat()
  import yaml  # pylint: disable=g-import-not-at-top
  with open(os.path.join(repo, config_path)) as f:
    config = {k: _yaml_number(v) for k, v in yaml.safe_load(f).items()}
  name = "jaxmarl_baseline_" + os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(name, full)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except Exception as e:  # pylint: disable=broad-except
    raise Unavailable(f"importing {path} failed: {type(e).__name__}: {e}") from e
  return module, config


def time_jaxmarl(repo: Optional[str], model: str, num_envs: int,
                 updates: int) -> Dict[str, Any]:
  """JaxMARL's ``make_train`` with our sizes; ``{"error": why}`` if it cannot run."""
  try:
    module, config = load_baseline(repo, model)
    config.update(ENV_NAME=MPE_ID, ENV_KWARGS={}, NUM_ENVS=num_envs, NUM_STEPS=_ROLLOUT.value,
                  UPDATE_EPOCHS=_EPOCHS.value, NUM_MINIBATCHES=_MINIBATCHES.value,
                  TOTAL_TIMESTEPS=updates * num_envs * _ROLLOUT.value)
    if model == "ff":
      config["ACTIVATION"] = "tanh"
    train = module.make_train(config)
    assert config["NUM_UPDATES"] == updates, config["NUM_UPDATES"]
    r = time_program(train, jax.random.PRNGKey(0), _REPEATS.value)
  except Unavailable as e:
    return {"error": str(e)}
  except Exception as e:  # pylint: disable=broad-except
    return {"error": f"{MODELS[model][1][0]} failed: {type(e).__name__}: "
                     f"{str(e).strip().splitlines()[-1][:300] if str(e).strip() else ''}"}
  r["steps_per_s"] = updates * num_envs * _ROLLOUT.value / r["run_s"]
  return r


# -- random actions (scripts/bench_envs.py) --------------------------------------------------------

def _bench_envs():
  try:
    import bench_envs  # pylint: disable=g-import-not-at-top  (run as scripts/bench_cord.py)
    return bench_envs
  except ImportError:
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_envs.py")
    spec = importlib.util.spec_from_file_location("bench_envs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def random_action_steps_per_s(env: str, num_envs: int) -> float:
  """Env-steps/s of the env alone (uniform random actions, auto-reset) at ``num_envs``."""
  bench_envs = _bench_envs()
  learner_env = cord_config.build_env(our_config(env, "ff", num_envs, 1))
  run = bench_envs._ours(learner_env)  # pylint: disable=protected-access
  return bench_envs.measure(run, num_envs,
                            _RANDOM_STEPS.value, 2)["steps_per_s"]


# -- seeds -----------------------------------------------------------------------------------------

def chunk_program(config) -> Tuple[Callable, Callable]:
  """``(init, chunk)`` built as ``common/chunk_loop.py`` builds them for a training run.

  ``init(seed)`` runs ``init_state`` in its own jitted program, brings the state to the host
  and places it (``DataParallel.put``); ``chunk`` is the per-device chunk under
  ``DataParallel.wrap`` (mesh mode, one device). The first version of this part ran init and
  chunk as one wrapped program and hung (every thread waiting in ``block_until_ready``) for 16
  and 2 seeds on the loaded CPU, while training through ``chunk_loop`` never did.
  """
  init_state, chunk = cord_train.make_train(config, cord_train.Learner(config))
  dp = parallel.DataParallel("mesh", 1)
  specs = cord_train.state_specs()
  init_jit = jax.jit(init_state)

  def init(seed: int):
    state = jax.device_get(init_jit(jax.random.PRNGKey(seed)))
    return dp.put(state, specs)

  return init, dp.wrap(chunk, (specs,), (specs, parallel.REPLICATED))


def time_seeds(env: str, model: str, num_envs: int, updates: int, seeds: int) -> Dict[str, float]:
  """``seeds`` seeds under one vmapped program vs as many sequential one-seed runs.

  Each side: one untimed call compiles (its time is reported apart), then the timed calls: one
  chunk of ``updates`` updates for all seeds at once, against one chunk per seed in turn with
  the one-seed program (each from its own initial state, built before the clock starts).
  """
  init, chunk = chunk_program(our_config(env, model, num_envs, updates, seeds=seeds))
  state = init(0)
  t0 = time.perf_counter()
  jax.block_until_ready(chunk(state))
  vmap_compile = time.perf_counter() - t0
  t0 = time.perf_counter()
  jax.block_until_ready(chunk(state))
  vmap_s = time.perf_counter() - t0
  print(f"  seeds: {seeds} vmapped in one program: {vmap_s:.2f}s (first call, with compile: "
        f"{vmap_compile:.1f}s)", flush=True)
  init1, chunk1 = chunk_program(our_config(env, model, num_envs, updates, seeds=1))
  states = [init1(s) for s in range(seeds)]
  t0 = time.perf_counter()
  jax.block_until_ready(chunk1(states[0]))
  seq_compile = time.perf_counter() - t0
  t0 = time.perf_counter()
  for st in states:
    jax.block_until_ready(chunk1(st))
  seq = time.perf_counter() - t0
  steps = seeds * updates * num_envs * _ROLLOUT.value
  return {"seeds": seeds, "vmap_s": vmap_s, "vmap_compile_s": vmap_compile,
          "sequential_s": seq, "sequential_compile_s": seq_compile,
          "vmap_steps_per_s": steps / vmap_s, "sequential_steps_per_s": steps / seq,
          "ratio": seq / vmap_s}


# -- report ----------------------------------------------------------------------------------------

def _fmt(x: Optional[float]) -> str:
  if x is None:
    return "-"
  return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.1f}k" if x >= 1e3 else f"{x:.0f}"


def _table(header: List[str], rows: List[List[str]]) -> str:
  return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                   + ["| " + " | ".join(r) + " |" for r in rows])


def _updates_per(num_envs: List[int]) -> Dict[int, int]:
  ups = [int(u) for u in _UPDATES.value]
  if len(ups) == 1:
    ups = ups * len(num_envs)
  if len(ups) != len(num_envs):
    raise app.UsageError("--updates takes one value or one per --num_envs entry.")
  return dict(zip(num_envs, ups))


def main(argv):
  del argv
  load_before = os.getloadavg()
  started = datetime.datetime.now(datetime.timezone.utc)
  num_envs = [int(e) for e in _NUM_ENVS.value]
  updates = _updates_per(num_envs)
  for m in _MODELS.value:
    if m not in MODELS:
      raise app.UsageError(f"--models: {m!r} is not one of {sorted(MODELS)}")
  repo = os.path.abspath(os.path.expanduser(_JAXMARL_REPO.value)) if _JAXMARL_REPO.value else None

  train_rows, results = [], {"train": [], "random": {}, "seeds": None}
  env_names = list(_ENVS.value)
  if "jaxmarl_mpe" in env_names and importlib.util.find_spec("jaxmarl") is None:
    env_names.remove("jaxmarl_mpe")
    NOTES.append("jaxmarl is not installed (pip install -e '.[bench]'): the MPE rows and every "
                 "JaxMARL baseline were skipped.")
    print(NOTES[-1], flush=True)
  for env in env_names:
    for e in num_envs:
      rnd = random_action_steps_per_s(env, e)
      results["random"][f"{env}/{e}"] = rnd
      print(f"  random actions  {env:20s} envs={e:5d} {_fmt(rnd):>8s} env-steps/s", flush=True)
      for m in _MODELS.value:
        ours = time_ours(env, m, e, updates[e])
        row = {"env": env, "model": m, "num_envs": e, "updates": updates[e], "ours": ours,
               "random_steps_per_s": rnd, "ours_over_random": ours["steps_per_s"] / rnd}
        print(f"  ours {m:3s}        {env:20s} envs={e:5d} {_fmt(ours['steps_per_s']):>8s} "
              f"env-steps/s (compile {ours['compile_s']:.1f}s, run {ours['run_s']:.1f}s)",
              flush=True)
        if env == "jaxmarl_mpe":
          theirs = time_jaxmarl(repo, m, e, updates[e])
          row["jaxmarl"] = theirs
          if "error" in theirs:
            print(f"  {MODELS[m][1][2]:15s} not run: {theirs['error']}", flush=True)
          else:
            row["ratio"] = ours["steps_per_s"] / theirs["steps_per_s"]
            print(f"  {MODELS[m][1][2]:15s} {env:20s} envs={e:5d} "
                  f"{_fmt(theirs['steps_per_s']):>8s} env-steps/s (compile "
                  f"{theirs['compile_s']:.1f}s, run {theirs['run_s']:.1f}s): ours/theirs "
                  f"{row['ratio']:.2f}x", flush=True)
        results["train"].append(row)
        train_rows.append(row)

  if _SEEDS.value > 0:
    s = time_seeds(_SEEDS_ENV.value, _SEEDS_MODEL.value, _SEEDS_NUM_ENVS.value,
                   _SEEDS_UPDATES.value, _SEEDS.value)
    results["seeds"] = {"env": _SEEDS_ENV.value, "model": _SEEDS_MODEL.value,
                        "num_envs": _SEEDS_NUM_ENVS.value, "updates": _SEEDS_UPDATES.value, **s}
    print(f"  seeds: {s['seeds']} vmapped {s['vmap_s']:.1f}s vs sequential {s['sequential_s']:.1f}s"
          f": {s['ratio']:.2f}x", flush=True)

  load_after = os.getloadavg()
  command = "python scripts/bench_cord.py " + " ".join(sys.argv[1:])
  dev = jax.devices()[0]
  meta = {
      "date": started.strftime("%Y-%m-%d %H:%M UTC"), "command": command,
      "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}",
      "device": f"{jax.default_backend()} ({getattr(dev, 'device_kind', dev.platform)}), "
                f"{jax.device_count()} device(s)",
      "load_average_before": list(load_before), "load_average_after": list(load_after),
      "jax": jax.__version__, "rollout_len": _ROLLOUT.value, "epochs": _EPOCHS.value,
      "minibatches": _MINIBATCHES.value, "agents": 3, "repeats": _REPEATS.value,
      "jaxmarl_repo_given": repo is not None,
  }
  try:
    import jaxmarl  # pylint: disable=g-import-not-at-top
    meta["jaxmarl"] = getattr(jaxmarl, "__version__", "installed")
  except ImportError:
    meta["jaxmarl"] = None

  label = {"ff": "FF 64", "gru": "GRU 128"}
  vs_rows = []
  for r in train_rows:
    if r["env"] != "jaxmarl_mpe":
      continue
    j = r.get("jaxmarl", {})
    vs_rows.append([
        f"{label[r['model']]} vs {MODELS[r['model']][1][2]}", str(r["num_envs"]),
        str(r["updates"]), _fmt(r["ours"]["steps_per_s"]),
        _fmt(j.get("steps_per_s")) if "error" not in j else "not run",
        f"{r['ratio']:.2f}x" if "ratio" in r else "-",
        ("yes" if r["ratio"] >= 1.0 else "no") if "ratio" in r else "-",
        f"{r['ours']['compile_s']:.0f} / "
        + (f"{j['compile_s']:.0f}" if "compile_s" in j else "-")])
  own_rows = [[r["env"], label[r["model"]], str(r["num_envs"]), str(r["updates"]),
               _fmt(r["ours"]["steps_per_s"]), _fmt(r["random_steps_per_s"]),
               f"{r['ours_over_random']:.3f}", f"{r['ours']['compile_s']:.0f}"]
              for r in train_rows]
  parts = [
      f"# CORD training throughput ({meta['date']})\n",
      f"Machine: {meta['machine']}; {meta['device']}; load average "
      f"{load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f} before, "
      f"{load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f} after; "
      f"jax {jax.__version__}, jaxmarl {meta['jaxmarl']}.\n",
      f"    {command}\n",
      f"Env-steps/s (3 agents each), updates included: rollout {_ROLLOUT.value} steps, "
      f"{_EPOCHS.value} epochs x {_MINIBATCHES.value} minibatches per update, best of "
      f"{_REPEATS.value} run(s) after an ahead-of-time compile.\n",
  ]
  if vs_rows:
    parts += ["## Ours (CORD `mappo`) vs JaxMARL on MPE simple_spread (target >= 1.0x)\n",
              _table(["ours vs JaxMARL", "envs", "updates", "ours", "JaxMARL", "ours/JaxMARL",
                      ">= 1.0x", "compile s (ours / JaxMARL)"], vs_rows) + "\n"]
  if own_rows:  # none with --envs= (only the seeds part ran)
    parts += ["## Training vs the env's random-action throughput (same envs)\n",
              _table(["env", "model", "envs", "updates", "training", "random actions",
                      "training/random", "compile s"], own_rows) + "\n"]
  if results["seeds"]:
    s = results["seeds"]
    parts += [f"## {s['seeds']} seeds: vmap vs sequential ({s['env']}, {label[s['model']]}, "
              f"{s['num_envs']} envs, {s['updates']} update(s) per seed)\n",
              _table(["seeds", "vmapped s", "sequential s", "sequential/vmapped",
                      "compile s (vmapped / one seed)"],
                     [[str(s["seeds"]), f"{s['vmap_s']:.2f}", f"{s['sequential_s']:.2f}",
                       f"{s['ratio']:.2f}x",
                       f"{s['vmap_compile_s']:.0f} / {s['sequential_compile_s']:.0f}"]]) + "\n"]
  errors = sorted({f"{MODELS[r['model']][1][2]}: {r['jaxmarl']['error']}" for r in train_rows
                   if "error" in r.get("jaxmarl", {})})
  notes = list(dict.fromkeys(NOTES)) + [f"not run: {e}" for e in errors]
  if notes:
    parts += ["## Notes\n", "\n".join(f"- {n}" for n in notes) + "\n"]
  md = "\n".join(parts)
  print("\n" + md)

  os.makedirs(_OUT.value, exist_ok=True)
  metric_writers.atomic_write_text(os.path.join(_OUT.value, "bench.md"), md)
  metric_writers.atomic_write_text(os.path.join(_OUT.value, "bench.json"), json.dumps(
      {"meta": meta, "notes": notes, **results}, indent=2, default=float) + "\n")
  print(f"wrote {os.path.join(_OUT.value, 'bench.md')} and bench.json")


if __name__ == "__main__":
  app.run(main)
