"""The batch-driven training loop: steps over a data iterator, evaluation, early stopping.

A method hands the loop a ``Task``: a state initialiser, a pure per-device train step, a data
iterator with a saveable position, and an evaluation function. The loop drives the step; the run
services (``common.run_services``: resume, periodic and SIGTERM saves, the NaN guard, metrics,
the progress bar, ``results.json``) do the rest, as they do for the scan-chunk driver
(``common.chunk_loop``):

- data parallelism (``config.parallel.mode``: pmap or mesh), batch-size checks;
- the initial state built once, from shapes: ``jax.eval_shape(task.init_state)`` is the template a
  checkpoint restores into, and ``task.init_state`` runs (jitted) only when there is none;
- auto-resume from ``<workdir>/checkpoints`` (the whole state, the data position, the best
  validation score), a copy of the best state in ``best/``;
- refreshable step constants: ``task.refresh(state, consts) -> state`` recomputes fields of the
  state from its parameters (e.g. k-means centroids of the item embeddings) before steps
  ``1, N + 1, 2N + 1, ...`` (``N = task.refresh_every``); being state, they are checkpointed, so a
  resumed run is bit-identical across a refresh;
- periodic evaluation, early stopping on ``task.best_metric``;
- at the end a results table, printed and written atomically to ``<workdir>/results.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from typing import Any, Callable, Optional

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from common import config_checks
from common import distributed
from common import metric_writers
from common import parallel
from common import run_services
from common import train_state as ts
from common.checkpoints import Checkpointer
from configs import base as base_configs

EvalFn = Callable[[Any, parallel.DataParallel, str], dict]


@dataclasses.dataclass
class Task:
  """What a method gives the training loop.

  Attributes:
    init_state: pure, jittable ``rng -> state`` (a ``TrainState`` or a subclass with extra
      fields). The loop traces it with ``jax.eval_shape`` for the checkpoint template and runs it,
      jitted, once, only when the workdir holds no checkpoint.
    train_step: pure per-device ``(state, batch, rng[, consts]) -> (state, metrics)``; averages its
      gradients with ``parallel.pmean``; ``metrics['loss']`` must exist.
    train_iter: yields this process's slice of each global batch (a dict of numpy arrays) and has
      ``get_state() -> dict`` / ``set_state(dict)`` so a resumed run sees the same next batch.
    evaluate: optional ``(state, dp, split) -> {metric: float}``; ``state`` is in ``dp``'s device
      layout, ``split`` is ``"valid"`` during training and ``"test"`` at the end.
    best_metric: the validation metric that selects the best state and drives early stopping
      (higher is better).
    consts: an optional pytree the step reads but never changes (e.g. item features); placed on
      the devices once and passed as ``train_step(state, batch, rng, consts)``; never saved.
    refresh: optional per-device ``(state, consts) -> state`` that recomputes the state's
      refreshable constants from its parameters (collectives over ``parallel.DATA_AXIS`` allowed;
      the result must be the same on every device). ``consts`` is None when the task has none.
    refresh_every: run ``refresh`` before steps ``1, N + 1, 2N + 1, ...`` (0: never).
  """
  init_state: Callable[[jax.Array], Any]
  train_step: parallel.StepFn
  train_iter: Any
  evaluate: Optional[EvalFn] = None
  best_metric: Optional[str] = None
  consts: Any = None
  refresh: Optional[Callable[[Any, Any], Any]] = None
  refresh_every: int = 0


def base_config() -> ml_collections.ConfigDict:
  """The keys the loop reads (``configs/base.py``); every method's config starts from this."""
  return base_configs.base_config()


LOOP_SECTIONS = ("seed", "parallel", "train", "optim", "debug")


def check_config(config: ml_collections.ConfigDict) -> None:
  """Validates the loop's part of a config; a ConfigError names the key and the fix."""
  config_checks.check_against(config, base_config(), sections=LOOP_SECTIONS)
  config_checks.require_choice(config, "parallel.mode", parallel.MODES)
  t = config.train
  config_checks.require(t.num_steps > 0, "train.num_steps", f"must be > 0, got {t.num_steps}",
                        "set --config.train.num_steps to a positive int")
  for key in ("log_every", "eval_every", "checkpoint_every"):
    config_checks.require(t[key] >= 0, f"train.{key}", f"must be >= 0, got {t[key]}",
                          f"set --config.train.{key}=0 to disable, or a positive int")
  config_checks.require(t.keep_checkpoints >= 1, "train.keep_checkpoints",
                        f"must be >= 1, got {t.keep_checkpoints}", "keep at least one")
  o = config.optim
  config_checks.require(math.isfinite(o.learning_rate) and o.learning_rate > 0,
                        "optim.learning_rate", f"must be a finite number > 0, got "
                        f"{o.learning_rate}", "set --config.optim.learning_rate=1e-3 (for example)")
  for key in ("weight_decay", "grad_clip_norm", "warmup_steps"):
    config_checks.require(math.isfinite(o[key]) and o[key] >= 0, f"optim.{key}",
                          f"must be a finite number >= 0, got {o[key]}",
                          f"set --config.optim.{key}=0 to disable it")


def _poison_at(step_fn: parallel.StepFn, nan_step: int) -> parallel.StepFn:
  """Makes the update that produces step ``nan_step`` diverge (NaN loss and params): a test hook."""
  def poisoned(state, batch, rng, *consts):
    new_state, metrics = step_fn(state, batch, rng, *consts)
    bad = new_state.step == nan_step
    metrics = dict(metrics, loss=jnp.where(bad, jnp.nan, metrics["loss"]))
    params = jax.tree.map(lambda p: jnp.where(bad, jnp.nan, p), new_state.params)
    return new_state.replace(params=params), metrics
  return poisoned


def initial_state(init_fn: Callable[[jax.Array], Any], rng: jax.Array,
                  services: run_services.RunServices) -> tuple[Any, Optional[dict]]:
  """The run's starting state, built once: restored into ``eval_shape``'s template, else initialised.

  Returns:
    ``(host state, record)``; ``record`` is None for a fresh run.
  """
  template = jax.eval_shape(init_fn, rng)
  restored = services.restore(template)
  if restored is not None:
    return restored
  return jax.device_get(jax.jit(init_fn)(rng)), None


def stopped_message(workdir: str, step: int, stop_reason: str) -> str:
  """What a run that stopped before its final evaluation prints: how to get its results."""
  return (f"The run stopped at step {step} ({stop_reason}) before its test evaluation; its "
          f"checkpoints are in {workdir}. Rerun the same command to resume it, or evaluate its "
          f"best state now: python scripts/evaluate.py --workdir={workdir}")


def _mean_metrics(dp: parallel.DataParallel, history: list) -> dict:
  rows = [dp.to_host(m) for m in history]
  return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def run(config: ml_collections.ConfigDict, workdir: str, task: Task) -> dict:
  """Trains ``task`` as ``config`` says, resuming from ``workdir`` if it holds checkpoints.

  Returns:
    ``{"step": last step, "valid": best validation metrics, "test": test metrics, ...}``, also
    written to ``<workdir>/results.json``.
  """
  check_config(config)
  dp = parallel.DataParallel(config.parallel.mode, config.parallel.num_devices)
  distributed.local_batch_size(config.train.batch_size, dp.num_devices)
  return run_with_services(config, workdir, lambda services: _run(config, task, dp, services))


def run_with_services(config: ml_collections.ConfigDict, workdir: str,
                      body: Callable[[run_services.RunServices], dict]) -> dict:
  """``body(services)`` with the run services of ``config.train`` / ``config.debug``, always
  closed afterwards (the workdir's lock is released even when the body raises)."""
  t = config.train
  services = run_services.RunServices(
      workdir, checkpoint_every=t.checkpoint_every, keep_checkpoints=t.keep_checkpoints,
      progress_bar=t.progress_bar, sigkill_at_step=config.debug.sigkill_at_step)
  try:
    return body(services)
  finally:
    services.close()


def _run(config, task: Task, dp: parallel.DataParallel,
         services: run_services.RunServices) -> dict:
  t = config.train
  best_ckpt = Checkpointer(os.path.join(services.workdir, "best"), every=0, keep=1,
                           async_save=False)

  state, record = initial_state(task.init_state, jax.random.PRNGKey(config.seed), services)
  start, best, best_step, bad_evals = 0, -math.inf, None, 0
  if record is not None:
    task.train_iter.set_state(record["data"])
    start = int(record["step"])
    best, best_step = record.get("best", -math.inf), record.get("best_step")
    bad_evals = record.get("bad_evals", 0)
    logging.info("Resumed from step %d (%s).", start, services.checkpointer.directory)

  step_fn = task.train_step
  if config.debug.nan_at_step > 0:
    step_fn = _poison_at(step_fn, config.debug.nan_at_step)
  with_consts = task.consts is not None
  train_step = dp.wrap_step(step_fn, with_consts=with_consts)
  consts = (dp.replicate(task.consts),) if with_consts else ()
  refresh = None
  if task.refresh is not None and task.refresh_every:
    refresh = dp.wrap(lambda s, *c: task.refresh(s, *(c or (None,))),
                      (parallel.REPLICATED,) * (1 + len(consts)), parallel.REPLICATED,
                      donate_argnums=(0,))
  dstate = dp.replicate(state)
  del state

  def record_now(stop_reason=None):
    record = {"data": task.train_iter.get_state(), "best": best, "best_step": best_step,
              "bad_evals": bad_evals}
    if stop_reason is not None:
      record["stop_reason"] = stop_reason
    return record

  history, step, stop_reason = [], start, "num_steps"
  services.start_progress(t.num_steps, initial=start)
  t0 = time.time()
  try:
    for step in range(start + 1, t.num_steps + 1):
      if refresh is not None and (step - 1) % task.refresh_every == 0:
        dstate = refresh(dstate, *consts)
      local_batch = next(task.train_iter)
      dstate, metrics = train_step(dstate, dp.shard_batch(local_batch), *consts)
      services.check_finite(step, metrics["loss"], inputs=local_batch)
      history.append(metrics)
      services.progress(1)
      last = step == t.num_steps

      if (t.log_every and step % t.log_every == 0) or last:
        services.flush_checks()
        scalars = _mean_metrics(dp, history)
        scalars["steps_per_sec"] = len(history) / max(time.time() - t0, 1e-9)
        services.log(step, "train", scalars)
        services.progress(0, loss=f"{scalars['loss']:.4f}")
        history, t0 = [], time.time()

      if task.evaluate is not None and ((t.eval_every and step % t.eval_every == 0) or last):
        services.flush_checks()
        valid = task.evaluate(dstate, dp, "valid")
        services.log(step, "valid", valid)
        if task.best_metric is not None:
          score = valid[task.best_metric]
          if score > best:
            best, best_step, bad_evals = score, step, 0
            best_ckpt.save(step, ts.state_dict(dp.to_host(dstate)), {"step": step,
                                                                     "valid": valid})
          else:
            bad_evals += 1
          if t.early_stop_patience and bad_evals >= t.early_stop_patience:
            stop_reason = f"early stop: no {task.best_metric} gain in {bad_evals} evaluations"
            last = True

      preempted = services.preempted(step)
      if preempted:
        stop_reason = "preempted (SIGTERM)"
      if services.should_save(step) or last or preempted:
        services.save(step, dp.to_host(dstate),
                      record_now(stop_reason if last or preempted else None),
                      force=last or preempted)
      if preempted:
        break
      services.maybe_kill(step)
      if last:
        break
    services.flush_checks()
  finally:
    services.end_training()

  results = {"step": step, "stop_reason": stop_reason, "best_step": best_step}
  if task.evaluate is not None and stop_reason != "preempted (SIGTERM)":
    final_state = dstate
    if best_step is not None and best_ckpt.latest_step() is not None:
      template = dp.to_host(dstate)
      saved, _ = best_ckpt.restore(ts.state_dict(template))
      final_state = dp.replicate(ts.restore_from_dict(template, saved))
    results["valid"] = task.evaluate(final_state, dp, "valid")
    results["test"] = task.evaluate(final_state, dp, "test")
    services.writer.write(step, "test", results["test"])
  best_ckpt.close()
  rows = [dict(split=s, **results[s]) for s in ("valid", "test") if s in results]
  if "test" in results:
    services.write_results(results, rows)
  elif services.main:
    print(stopped_message(services.workdir, step, stop_reason), flush=True)
  services.close()
  results["state"] = dp.to_host(dstate)
  return results


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str, task: Task) -> dict:
  """Tests the best state of a run in ``workdir``, finished or not (``scripts/evaluate.py``).

  The state is ``<workdir>/best`` (the best validation score so far), else the newest checkpoint.
  ``results.json`` is written as at the end of a run, marked with the step the run had reached,
  the reason it ended (from its last checkpoint; ``stopped before its end`` if it has none, e.g.
  a kill) and the step of the evaluated state.

  Raises:
    FileNotFoundError: ``workdir`` holds no checkpoint.
  """
  if task.evaluate is None:
    raise ValueError("This task has no evaluation.")
  dp = parallel.DataParallel(config.parallel.mode, config.parallel.num_devices)
  lock = run_services.WorkdirLock(workdir) if jax.process_index() == 0 else None
  if lock is not None:
    lock.acquire()
  try:
    template = jax.eval_shape(task.init_state, jax.random.PRNGKey(config.seed))
    last = Checkpointer(workdir, every=0, async_save=False)
    best = Checkpointer(os.path.join(workdir, "best"), every=0, keep=1, async_save=False)
    try:
      last_step = last.latest_step()
      if last_step is None:
        raise FileNotFoundError(f"{workdir} holds no checkpoint: nothing to evaluate (train first:"
                                " python scripts/train.py --config=... --workdir=...).")
      _, record = last.restore(ts.state_dict(template), last_step)
      source = best if best.latest_step() is not None else last
      saved, _ = source.restore(ts.state_dict(template))
      evaluated_step = source.latest_step()
    finally:
      last.close()
      best.close()
    dstate = dp.replicate(ts.restore_from_dict(template, saved))
    results = {"step": last_step,
               "stop_reason": record.get("stop_reason", "stopped before its end"),
               "best_step": record.get("best_step"), "evaluated_step": evaluated_step,
               "evaluated_by": "scripts/evaluate.py",
               "valid": task.evaluate(dstate, dp, "valid"),
               "test": task.evaluate(dstate, dp, "test")}
    if jax.process_index() == 0:
      metric_writers.atomic_write_text(
          os.path.join(workdir, "results.json"),
          json.dumps(run_services.jsonable(results), indent=2, sort_keys=True))
    return results
  finally:
    if lock is not None:
      lock.release()

