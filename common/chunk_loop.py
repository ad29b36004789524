"""The scan-chunk training driver: a trainer whose step is one jitted chunk of many steps.

RL trainers in the PureJaxRL style are one pure program: ``lax.scan`` over rollouts and updates,
``vmap`` over seeds. Checkpoints and logs wrap chunks of that program from outside, without
breaking it up: the driver here calls a per-device ``chunk(state) -> (state, metrics)`` over and
over, and between chunks uses the same run services as the batch loop (``common.run_services``):
resume (bit-identical after kill -9), periodic and SIGTERM saves, the NaN guard, per-seed and mean
metrics, a progress bar in env steps, ``results.json``. It needs no batch iterator: the state
carries everything (env states, RNG, hidden states).

Data parallelism is the same ``DataParallel`` as everywhere: ``task.state_specs`` says which
parts of the state are replicated (parameters) and which are split over devices (e.g. env states
``[seeds, envs, ...]`` with ``P(None, 'data')``: each device steps its own envs); the chunk
averages its gradients with ``parallel.pmean``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Optional

import jax
import ml_collections

from common import parallel
from common import run_services
from common import train_loop

ChunkFn = Callable[[Any], tuple[Any, dict]]


@dataclasses.dataclass
class ChunkTask:
  """What a scan-chunk trainer gives the driver.

  Attributes:
    init_state: pure, jittable ``rng -> state`` (any pytree; arrays may carry a leading seed axis).
      Traced with ``jax.eval_shape`` for the checkpoint template; run only without a checkpoint.
    chunk: per-device ``state -> (state, metrics)``: many steps in one ``lax.scan``. Metrics are
      scalars or ``[num_seeds]`` arrays, already averaged over devices (``parallel.pmean``);
      ``metrics['loss']`` is checked for finiteness if present.
    state_specs: a PartitionSpec, or a pytree prefix of them, for the state (default: replicated).
    steps_per_chunk: environment steps (all envs, all seeds) one chunk performs: the progress
      bar's and the log's unit.
    evaluate: optional ``(state, dp) -> {name: scalar or [num_seeds]}``, run after the last chunk.
    baselines: optional ``{row name: {metric: value}}`` printed under the results (e.g. a random
      policy).
  """
  init_state: Callable[[jax.Array], Any]
  chunk: ChunkFn
  state_specs: Any = parallel.REPLICATED
  steps_per_chunk: int = 1
  evaluate: Optional[Callable[[Any, parallel.DataParallel], dict]] = None
  baselines: Optional[dict] = None


def run(config: ml_collections.ConfigDict, workdir: str, task: ChunkTask) -> dict:
  """Runs ``config.train.num_steps`` chunks of ``task``, resuming from ``workdir``.

  Config keys read: ``seed``, ``parallel.*``, ``train.num_steps`` (chunks), ``train.log_every``
  and ``train.checkpoint_every`` (in chunks), ``train.keep_checkpoints``, ``train.progress_bar``,
  ``debug.sigkill_at_step`` (a chunk).

  Returns:
    ``{"step", "stop_reason", "train": last logged row, "final": evaluate's row (per seed and
    mean), "state": host state}``; all but the state is also in ``<workdir>/results.json``.
  """
  train_loop.check_config(config)
  dp = parallel.DataParallel(config.parallel.mode, config.parallel.num_devices)
  return train_loop.run_with_services(config, workdir,
                                      lambda services: _run(config, task, dp, services))


def _run(config, task: ChunkTask, dp: parallel.DataParallel,
         services: run_services.RunServices) -> dict:
  t = config.train
  state, record = train_loop.initial_state(task.init_state, jax.random.PRNGKey(config.seed),
                                           services)
  start = int(record["step"]) if record is not None else 0
  chunk = dp.wrap(task.chunk, (task.state_specs,), (task.state_specs, parallel.REPLICATED),
                  donate_argnums=(0,))
  dstate = dp.put(state, task.state_specs)
  del state

  services.start_progress(t.num_steps * task.steps_per_chunk, initial=start * task.steps_per_chunk,
                          unit="env-step")
  step, stop_reason, row, pending, t0 = start, "num_steps", {}, 0, time.time()
  try:
    for step in range(start + 1, t.num_steps + 1):
      dstate, metrics = chunk(dstate)
      if "loss" in metrics:
        services.check_finite(step, metrics["loss"])
      services.progress(task.steps_per_chunk)
      pending += 1
      last = step == t.num_steps
      if (t.log_every and step % t.log_every == 0) or last:
        services.flush_checks()
        host = dp.to_host(metrics)
        host["env_steps_per_sec"] = pending * task.steps_per_chunk / max(time.time() - t0, 1e-9)
        row = services.log(step, "train", host)
        services.progress(0, **{k: f"{row[k]:.4g}" for k in list(metrics)[:2]})
        pending, t0 = 0, time.time()
      preempted = services.preempted(step)
      if preempted:
        stop_reason = "preempted (SIGTERM)"
      if services.should_save(step) or last or preempted:
        services.save(step, dp.to_host(dstate, task.state_specs),
                      {"stop_reason": stop_reason} if last or preempted else {},
                      force=last or preempted)
      if preempted:
        break
      services.maybe_kill(step)
    services.flush_checks()
  finally:
    services.end_training()

  results = {"step": step, "stop_reason": stop_reason, "train": row}
  rows = []
  if task.evaluate is not None and stop_reason == "num_steps":
    final = run_services.flatten_seed_axis(task.evaluate(dstate, dp))
    results["final"] = final
    services.writer.write(step, "final", final)
    rows = _seed_rows(final)
  for name, values in (task.baselines or {}).items():
    rows.append({"run": name, **{k: float(v) for k, v in values.items()}})
  services.write_results(results, rows)
  services.close()
  results["state"] = dp.to_host(dstate, task.state_specs)
  return results


def _seed_rows(flat: dict) -> list[dict]:
  """``{name, name/seed_k}`` -> one table row per seed and a mean row."""
  names = [k for k in flat if "/seed_" not in k]
  seeds = sorted({int(k.rsplit("_", 1)[1]) for k in flat if "/seed_" in k})
  rows = [{"run": f"seed {s}", **{n: flat[f"{n}/seed_{s}"] for n in names
                                 if f"{n}/seed_{s}" in flat}} for s in seeds]
  rows.append({"run": "mean" if seeds else "run", **{n: flat[n] for n in names}})
  return rows
