r"""Speed of our SASRec-CE and HeterRec beside RecBole's SASRec, same data, same machine, one script.

    python scripts/bench_heterrec.py --out=workdirs/bench_heterrec             # throughput, FLOPs
    python scripts/bench_heterrec.py --time_to_quality --out=workdirs/bench_ttq  # + time to quality

What it measures, for each model of ``--models`` at the size of ``--config`` (ML-100K by
default, the protocol of ``configs/heterrec/ml100k.py``), or at each size of ``--sizes`` (the
ladder ``xs,s,m,l`` of ``configs/heterrec/options.py``; time to quality only at the config's own
size):

- training throughput in *targets* per second (a target is one predicted next item: RecBole
  trains every prefix with one target, our models every position of a window), timed over
  ``--steps`` steps after ``--warmup`` compiled ones, input pipeline included;
- full-ranking evaluation throughput in users per second (the validation split, after one
  warm-up pass);
- FLOPs per training step from XLA's cost analysis of the compiled step, the achieved FLOP/s,
  and that as a fraction of this machine's measured float32 matmul peak (``--peak_n``) (XLA
  counts a loop body once, so for the ``gather`` and ``packed`` layouts, whose softmax is a loop
  of chunks, the count is a lower bound);
- with ``--layouts``, each model in several batch layouts side by side (``dense``: every window
  its own row, the softmax at every position; ``gather``: the softmax only at the positions with
  a target, ``loss.softmax_chunk``; ``packed``: that plus packed rows, ``input.pack``), with the
  share of the computed logit rows and of the computed attention scores (query-key pairs within
  one window, causal) that belong to real targets and items;
- RecBole's numbers, by running ``benchmarks/recbole_sasrec.py`` in RecBole's own environment
  (``--recbole_python``; ``--recbole_epochs`` epochs) or reading a JSON it wrote earlier
  (``--recbole_json``); ratios ours / RecBole;
- with ``--time_to_quality``: the training seconds our SASRec-CE needs to reach RecBole's best
  validation NDCG@10 (from a converged RecBole JSON), against RecBole's own time to its best.

Results go to ``<out>/bench.json`` and ``<out>/bench.md`` (written atomically) and are printed.
"""

import json
import os
import platform
import subprocess
import sys
import time

from absl import app
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from common import config_checks
from common import metric_writers
from common import parallel
from heterrec_jax import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CONFIG = flags.DEFINE_string("config", "configs/heterrec/ml100k.py", "Experiment config.")
_MODELS = flags.DEFINE_list("models", ["sasrec", "heterrec"], "Models to time.")
_SIZES = flags.DEFINE_list("sizes", [], "Model sizes of configs/heterrec/options.py (xs,s,m,l) "
                           "to time each model at; empty: the config's own size.")
_STEPS = flags.DEFINE_integer("steps", 30, "Timed training steps per model.")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps first (compilation).")
_PEAK_N = flags.DEFINE_integer("peak_n", 2048, "Matrix size for the matmul-peak measurement.")
_OUT = flags.DEFINE_string("out", "workdirs/bench_heterrec", "Output folder.")
_RB_JSON = flags.DEFINE_string("recbole_json", "", "A JSON from benchmarks/recbole_sasrec.py.")
_RB_PY = flags.DEFINE_string("recbole_python", ".venv-recbole/bin/python", "RecBole's Python.")
_RB_EPOCHS = flags.DEFINE_integer("recbole_epochs", 1, "Epochs when running RecBole here.")
_RB_THREADS = flags.DEFINE_integer("recbole_threads", 1, "torch threads for RecBole.")
_SKIP_RB = flags.DEFINE_bool("skip_recbole", False, "Time only our models.")
_LAYOUTS = flags.DEFINE_list("layouts", [], "Batch layouts to time each model in: dense, gather, "
                             "packed (empty: the config's own).")
LAYOUTS = {"dense": dict(pack=False, softmax_chunk=0), "gather": dict(pack=False),
           "packed": dict(pack=True)}
_TTQ = flags.DEFINE_bool("time_to_quality", False, "Also measure time to RecBole's best NDCG@10.")
_TTQ_STEPS = flags.DEFINE_integer("ttq_max_steps", 4000, "Give up after this many steps.")
_TTQ_EVAL = flags.DEFINE_integer("ttq_eval_every", 50, "Validation interval for time-to-quality.")
_TTQ_FRACTIONS = flags.DEFINE_list("ttq_fractions", ["0.95", "0.99", "1.0"],
                                   "Also report the time to these fractions of RecBole's best.")


def matmul_peak(n: int, reps: int = 5) -> float:
  """Measured float32 matmul FLOP/s of the default device (best of ``reps``)."""
  a = jnp.ones((n, n), jnp.float32)
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  best = float("inf")
  for _ in range(reps):
    t = time.perf_counter()
    f(a).block_until_ready()
    best = min(best, time.perf_counter() - t)
  return 2 * n**3 / best


def _targets(batch: dict) -> int:
  """Counted next-item targets in a window batch (``train.Windows``' ``target_mask``)."""
  return int(np.sum(batch["target_mask"]))


def _config_for(model: str, size: str = "", layout: str = ""):
  path, _, arg = _CONFIG.value.partition(":")
  config = config_checks.load_config_file(
      os.path.join(REPO, path) + ":" + ",".join(a for a in (arg, size, model) if a))
  config.train.progress_bar = False
  if layout:
    if layout not in LAYOUTS:
      raise ValueError(f"Unknown layout {layout!r}; use one of {sorted(LAYOUTS)}.")
    settings = LAYOUTS[layout]
    config.input.pack = settings["pack"]
    config.loss.softmax_chunk = settings.get("softmax_chunk", config.loss.softmax_chunk or 256)
  return config


def padding_shares(batches, softmax_chunk: int) -> dict:
  """Shares of the computed logit rows and attention scores that belong to real targets/items.

  A logit row is one position's softmax over the catalogue: ``rows x width`` of them in the dense
  layout, ``ceil(targets / chunk) * chunk`` with the chunked softmax. An attention score is a
  query-key pair: ``rows x width**2`` are computed per layer and head (the token level multiplies
  both sides by ``K**2``), of which a window of ``n`` real items needs the ``n (n + 1) / 2``
  causal pairs among them.
  """
  targets = computed_rows = real_pairs = computed_pairs = 0
  for b in batches:
    ids = np.asarray(b["item_ids"])
    rows, width = ids.shape
    n_targets = int(np.sum(b["target_mask"]))
    targets += n_targets
    computed_rows += (-(-n_targets // softmax_chunk) * softmax_chunk if softmax_chunk
                      else rows * width)
    segments = b.get("segment_ids", np.where(ids != 0, 1, 0))
    for row in segments:
      n = np.bincount(row[row > 0])
      real_pairs += int(np.sum(n * (n + 1) // 2))
    computed_pairs += rows * width * width
  return {"logit_rows_on_targets": targets / max(computed_rows, 1),
          "attention_on_real_pairs": real_pairs / max(computed_pairs, 1),
          "rows_per_batch": float(np.mean([len(b["item_ids"]) for b in batches]))}


def measure_ours(model: str, ds, target_ndcg=None, size: str = "", layout: str = "") -> dict:
  """Throughput, FLOPs and (optionally) time to ``target_ndcg`` of one of our models."""
  config = _config_for(model, size, layout)
  task, _ = train.make_task(config, ds)
  dp = parallel.DataParallel(config.parallel.mode, config.parallel.num_devices)
  state = jax.jit(task.init_state)(jax.random.PRNGKey(config.seed))
  params_count = int(sum(np.size(x) for x in jax.tree.leaves(state.params)))
  state = dp.replicate(state)
  consts = dp.replicate(task.consts)
  step = dp.wrap_step(task.train_step, with_consts=True)
  first = dp.shard_batch(next(task.train_iter))
  compiled = step.lower(state, first, consts).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  flops = float(cost.get("flops", float("nan"))) * (dp.num_devices if dp.mode == "mesh" else 1)
  state, _ = step(state, first, consts)
  for _ in range(_WARMUP.value):
    state, m = step(state, dp.shard_batch(next(task.train_iter)), consts)
  jax.block_until_ready(m)
  # Every batch is drawn first (timed: the input pipeline, packing included, counts), so that
  # each row count's program can be compiled untimed before the steps are timed.
  t0 = time.perf_counter()
  timed = [next(task.train_iter) for _ in range(_STEPS.value)]
  input_seconds = time.perf_counter() - t0
  for shape in sorted({len(b["item_ids"]) for b in timed}):
    batch = next(b for b in timed if len(b["item_ids"]) == shape)
    state, m = step(state, dp.shard_batch(batch), consts)  # the step donates its state
    jax.block_until_ready(m)
  targets, t0 = 0, time.perf_counter()
  for local in timed:
    targets += _targets(local)
    state, m = step(state, dp.shard_batch(local), consts)
  jax.block_until_ready(m)
  seconds = time.perf_counter() - t0 + input_seconds
  task.evaluate(state, dp, "valid")  # compile
  t0 = time.perf_counter()
  valid = task.evaluate(state, dp, "valid")
  eval_seconds = time.perf_counter() - t0
  out = {"model": model + (f" ({size})" if size else "") + (f" [{layout}]" if layout else ""),
         "parameters": params_count,
         "batch_size": config.train.batch_size,
         "max_len": config.model.max_len, "d_model": config.model.d_model,
         "steps_per_second": _STEPS.value / seconds, "targets_per_second": targets / seconds,
         "eval_users_per_second": valid["num_users"] / eval_seconds,
         "flops_per_step": flops, "achieved_flops_per_second": flops * _STEPS.value / seconds,
         **padding_shares(timed, config.loss.softmax_chunk if config.loss.objective == "lmp"
                          else 0)}
  if target_ndcg is not None:
    out.update(_time_to_quality(config, ds, target_ndcg))
  return out


def _time_to_quality(config, ds, target: float) -> dict:
  """Training seconds (evaluation excluded) until validation NDCG@10 >= ``target``.

  Validates every ``--ttq_eval_every`` steps and keeps the trajectory ``[steps, train seconds,
  valid NDCG@10]``, so the time to each fraction of ``--ttq_fractions`` of the target can be read
  off afterwards (validation NDCG@10 on 943 users is noisy: a run can peak a hair below a target
  that another run's luckiest evaluation set).
  """
  task, _ = train.make_task(config, ds)
  dp = parallel.DataParallel(config.parallel.mode, config.parallel.num_devices)
  state = dp.replicate(jax.jit(task.init_state)(jax.random.PRNGKey(config.seed)))
  consts = dp.replicate(task.consts)
  step = dp.wrap_step(task.train_step, with_consts=True)
  state, m = step(state, dp.shard_batch(next(task.train_iter)), consts)  # compile, untimed
  jax.block_until_ready(m)
  train_seconds, best, done, trajectory = 0.0, 0.0, 1, []
  while done < _TTQ_STEPS.value and best < target:
    t0 = time.perf_counter()
    for _ in range(_TTQ_EVAL.value):
      state, m = step(state, dp.shard_batch(next(task.train_iter)), consts)
    jax.block_until_ready(m)
    train_seconds += time.perf_counter() - t0
    done += _TTQ_EVAL.value
    ndcg = float(task.evaluate(state, dp, "valid")["ndcg@10"])
    best = max(best, ndcg)
    trajectory.append([done, train_seconds, ndcg])
  return {"ttq_reached": best >= target, "ttq_train_seconds": train_seconds, "ttq_steps": done,
          "ttq_valid_ndcg@10": best, "ttq_trajectory": trajectory}


def first_time_at(points, threshold: float) -> float:
  """The first time of ``(seconds, value)`` points with ``value >= threshold``; NaN if none."""
  return next((t for t, v in points if v >= threshold), float("nan"))


def recbole_results(out_dir: str) -> dict:
  if _RB_JSON.value:
    with open(_RB_JSON.value) as f:
      return json.load(f)
  path = os.path.join(out_dir, "recbole_sasrec.json")
  cmd = [os.path.join(REPO, _RB_PY.value), os.path.join(REPO, "benchmarks/recbole_sasrec.py"),
         "--out", path, "--epochs", str(_RB_EPOCHS.value), "--threads", str(_RB_THREADS.value)]
  if not os.path.exists(cmd[0]):
    raise FileNotFoundError(f"{cmd[0]} not found: set up RecBole's environment "
                            "(benchmarks/README.md), or pass --recbole_json or --skip_recbole.")
  subprocess.run(cmd, check=True)
  with open(path) as f:
    return json.load(f)


def recbole_throughput(rb: dict) -> dict:
  """RecBole's training targets/s and eval users/s (medians over epochs; works mid-run too)."""
  epochs = rb.get("epochs") or []
  if not epochs:
    raise ValueError("The RecBole JSON has no finished epoch yet.")
  return {"targets_per_second": float(np.median([e["train_targets_per_second"] for e in epochs])),
          "eval_users_per_second": float(np.median([e["eval_users_per_second"] for e in epochs])),
          "epochs": len(epochs)}


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  os.makedirs(_OUT.value, exist_ok=True)
  rb = None if _SKIP_RB.value else recbole_results(_OUT.value)
  target = None
  if _TTQ.value:
    if rb is None or not rb.get("complete"):
      raise ValueError("--time_to_quality needs a complete (converged) RecBole run: pass "
                       "--recbole_json of a run with early stopping, or --recbole_epochs=200.")
    target = rb["best"]["valid_ndcg@10"]
  peak = matmul_peak(_PEAK_N.value)
  ds = train.load_data(_config_for(_MODELS.value[0]))
  rows = []
  rb_speed = recbole_throughput(rb) if rb is not None else None
  runs = [(m, s, lay) for s in (_SIZES.value or [""]) for m in _MODELS.value
          for lay in (_LAYOUTS.value or [""])]
  for model, size, layout in runs:
    ttq = target if model == "sasrec" and not size and layout in ("", "packed") else None
    r = measure_ours(model, ds, ttq, size, layout)
    r["fraction_of_matmul_peak"] = r["achieved_flops_per_second"] / peak
    if rb is not None:
      r["targets_per_second_vs_recbole"] = (r["targets_per_second"]
                                            / rb_speed["targets_per_second"])
      r["eval_users_per_second_vs_recbole"] = (r["eval_users_per_second"]
                                               / rb_speed["eval_users_per_second"])
      if "ttq_train_seconds" in r and r["ttq_reached"]:
        r["time_to_quality_speedup_vs_recbole"] = (rb["best"]["time_to_best_train_seconds"]
                                                   / r["ttq_train_seconds"])
      if "ttq_trajectory" in r:
        rb_points = [(e["cum_train_seconds"], e["valid_ndcg@10"]) for e in rb["epochs"]]
        ours_points = [(t, v) for _, t, v in r["ttq_trajectory"]]
        for f in map(float, _TTQ_FRACTIONS.value):
          ours_t, rb_t = (first_time_at(p, f * target) for p in (ours_points, rb_points))
          r[f"seconds_to_{f:g}x_target"] = ours_t
          r[f"recbole_seconds_to_{f:g}x_target"] = rb_t
          r[f"speedup_to_{f:g}x_target"] = rb_t / ours_t  # NaN where ours never got there
    rows.append(r)
  if rb is not None:
    rows.append({"model": "recbole_sasrec", "parameters": rb["model"]["parameters"],
                 "targets_per_second": rb_speed["targets_per_second"],
                 "eval_users_per_second": rb_speed["eval_users_per_second"],
                 "ttq_train_seconds": rb["best"]["time_to_best_train_seconds"] if
                 rb.get("complete") else float("nan")})
  header = (f"{time.strftime('%Y-%m-%d')}, {platform.machine()} {os.cpu_count()} cores, "
            f"load average {os.getloadavg()[0]:.1f}, jax {jax.__version__} "
            f"{jax.devices()[0].platform}, float32 matmul peak {peak / 1e9:.1f} GFLOP/s\n"
            f"    python scripts/bench_heterrec.py " + " ".join(sys.argv[1:]) + "\n\n")
  cols = ["model", "parameters", "targets_per_second", "eval_users_per_second",
          "logit_rows_on_targets", "attention_on_real_pairs", "rows_per_batch", "flops_per_step",
          "achieved_flops_per_second", "fraction_of_matmul_peak",
          "targets_per_second_vs_recbole", "eval_users_per_second_vs_recbole"]
  if _TTQ.value:
    cols += ["ttq_train_seconds", "time_to_quality_speedup_vs_recbole"]
  table = metric_writers.format_table(rows, cols, floatfmt=".4g")
  if _TTQ.value:
    ttq_rows = [{"fraction of RecBole's best valid NDCG@10": f"{f} ({float(f) * target:.5f})",
                 "ours (s)": r[f"seconds_to_{float(f):g}x_target"],
                 "RecBole (s)": r[f"recbole_seconds_to_{float(f):g}x_target"],
                 "speedup": r[f"speedup_to_{float(f):g}x_target"]}
                for r in rows if "ttq_trajectory" in r for f in _TTQ_FRACTIONS.value]
    table += ("\n\nTime to quality, our SASRec-CE against RecBole's (training seconds, "
              "evaluation excluded; NaN: not reached in --ttq_max_steps):\n\n"
              + metric_writers.format_table(ttq_rows, floatfmt=".4g"))
  print(header + table)
  metric_writers.atomic_write_text(os.path.join(_OUT.value, "bench.md"), header + table + "\n")
  metric_writers.atomic_write_text(os.path.join(_OUT.value, "bench.json"), json.dumps(
      {"matmul_peak_flops_per_second": peak, "rows": rows, "recbole": rb}, indent=2, default=str))


if __name__ == "__main__":
  app.run(main)
