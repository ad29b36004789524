"""The training loop every method runs: steps, evaluation, checkpoints, logging, progress.

A method hands the loop a ``Task``: a state initialiser, a pure per-device train step, a data
iterator with a saveable position, and an evaluation function. The loop owns everything else:

- data parallelism (``config.parallel.mode``: pmap or mesh), batch-size checks;
- auto-resume from ``<workdir>/checkpoints`` (state, optimizer, step, RNG, data position, best
  validation score), periodic saves, SIGTERM saves, a copy of the best state in ``best/``;
- periodic evaluation, early stopping on ``task.best_metric``;
- metrics to TensorBoard and ``metrics.jsonl`` (process 0), a progress bar with rate and ETA;
- a non-finite loss stops the run with ``FloatingPointError`` naming the step; it is caught before
  any checkpoint of the bad state is written, so the last checkpoint stays good;
- at the end a results table, printed and written atomically to ``<workdir>/results.json``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import time
from typing import Any, Callable, Optional

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm

from common import config_checks
from common import metric_writers
from common import parallel
from common import train_state as ts
from common.checkpoints import Checkpointer

EvalFn = Callable[[Any, parallel.DataParallel, str], dict]


@dataclasses.dataclass
class Task:
  """What a method gives the training loop.

  Attributes:
    init_state: ``rng -> TrainState`` on the host (called once; shapes must not depend on data).
    train_step: pure per-device ``(state, batch, rng) -> (state, metrics)``; averages its gradients
      with ``parallel.pmean``; ``metrics['loss']`` must exist.
    train_iter: yields this process's slice of each global batch (a dict of numpy arrays) and has
      ``get_state() -> dict`` / ``set_state(dict)`` so a resumed run sees the same next batch.
    evaluate: optional ``(state, dp, split) -> {metric: float}``; ``state`` is in ``dp``'s device
      layout, ``split`` is ``"valid"`` during training and ``"test"`` at the end.
    best_metric: the validation metric that selects the best state and drives early stopping
      (higher is better).
    consts: an optional pytree the step reads but never changes (e.g. item features); placed on
      the devices once and passed as ``train_step(state, batch, rng, consts)``.
  """
  init_state: Callable[[jax.Array], ts.TrainState]
  train_step: parallel.StepFn
  train_iter: Any
  evaluate: Optional[EvalFn] = None
  best_metric: Optional[str] = None
  consts: Any = None


def base_config() -> ml_collections.ConfigDict:
  """The keys the loop reads; every method's config starts from this."""
  c = ml_collections.ConfigDict()
  c.method = ""
  c.seed = 0
  c.parallel = ml_collections.ConfigDict(dict(mode="mesh", num_devices=-1))
  c.train = ml_collections.ConfigDict(dict(
      num_steps=1000, batch_size=256, log_every=50, eval_every=500, checkpoint_every=500,
      keep_checkpoints=3, early_stop_patience=0, progress_bar=True))
  c.optim = ml_collections.ConfigDict(dict(
      name="adamw", learning_rate=1e-3, weight_decay=0.0, warmup_steps=0, schedule="constant",
      grad_clip_norm=0.0, b1=0.9, b2=0.999))
  # Fault injection, used by the tests of resume and divergence handling (-1: off).
  c.debug = ml_collections.ConfigDict(dict(nan_at_step=-1, sigkill_at_step=-1))
  return c


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


def _poison_at(step_fn: parallel.StepFn, nan_step: int) -> parallel.StepFn:
  """Makes the update that produces step ``nan_step`` diverge (NaN loss and params): a test hook."""
  def poisoned(state, batch, rng, *consts):
    new_state, metrics = step_fn(state, batch, rng, *consts)
    bad = new_state.step == nan_step
    metrics = dict(metrics, loss=jnp.where(bad, jnp.nan, metrics["loss"]))
    params = jax.tree.map(lambda p: jnp.where(bad, jnp.nan, p), new_state.params)
    return new_state.replace(params=params), metrics
  return poisoned


class _FiniteGuard:
  """Checks each step's loss one step late, so the host never stalls the device pipeline."""

  def __init__(self, ckpt: Checkpointer):
    self._pending = None
    self._ckpt = ckpt

  def push(self, step: int, loss) -> None:
    self.flush()
    self._pending = (step, loss)

  def flush(self) -> None:
    if self._pending is None:
      return
    step, loss = self._pending
    self._pending = None
    value = float(np.asarray(jax.device_get(loss)).reshape(-1)[0])
    if not math.isfinite(value):
      self._ckpt.wait()
      last = self._ckpt.latest_step()
      raise FloatingPointError(
          f"Non-finite loss ({value}) at step {step}. Stopped; the last good checkpoint "
          f"(step {last}) is intact in {self._ckpt.directory}. Lower optim.learning_rate or set "
          f"optim.grad_clip_norm, then rerun with the same --workdir to resume from it.")


def _mean_metrics(dp: parallel.DataParallel, history: list) -> dict:
  rows = [dp.metrics_to_host(m) for m in history]
  return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def run(config: ml_collections.ConfigDict, workdir: str, task: Task) -> dict:
  """Trains ``task`` as ``config`` says, resuming from ``workdir`` if it holds checkpoints.

  Returns:
    ``{"step": last step, "valid": best validation metrics, "test": test metrics, ...}``, also
    written to ``<workdir>/results.json``.
  """
  check_config(config)
  t = config.train
  dp = parallel.DataParallel(config.parallel.mode, config.parallel.num_devices)
  dp.local_batch_size(t.batch_size)
  main = jax.process_index() == 0
  os.makedirs(workdir, exist_ok=True)

  state = task.init_state(jax.random.PRNGKey(config.seed))
  ckpt = Checkpointer(workdir, every=t.checkpoint_every, keep=t.keep_checkpoints)
  best_ckpt = Checkpointer(os.path.join(workdir, "best"), every=0, keep=1, async_save=False)
  writer = metric_writers.MetricWriter(workdir)
  ckpt.install_preemption_handler()

  start, best, best_step, bad_evals = 0, -math.inf, None, 0
  restored = ckpt.restore(ts.state_dict(state))
  if restored is not None:
    saved, record = restored
    state = ts.restore_from_dict(state, saved)
    task.train_iter.set_state(record["data"])
    start = int(record["step"])
    best, best_step = record.get("best", -math.inf), record.get("best_step")
    bad_evals = record.get("bad_evals", 0)
    writer.truncate_after(start)
    logging.info("Resumed from step %d (%s).", start, ckpt.directory)
    if main:
      print(f"Resumed from checkpoint step {start}.", flush=True)

  step_fn = task.train_step
  if config.debug.nan_at_step > 0:
    step_fn = _poison_at(step_fn, config.debug.nan_at_step)
  with_consts = task.consts is not None
  train_step = dp.wrap_step(step_fn, with_consts=with_consts)
  consts = (dp.replicate(task.consts),) if with_consts else ()
  dstate = dp.replicate(state)
  del state

  def record_now(step):
    return {"step": step, "data": task.train_iter.get_state(), "best": best,
            "best_step": best_step, "bad_evals": bad_evals}

  guard = _FiniteGuard(ckpt)
  history, step, stop_reason = [], start, "num_steps"
  bar = tqdm.tqdm(total=t.num_steps, initial=start, unit="step", dynamic_ncols=True,
                  disable=not (main and t.progress_bar), mininterval=1.0, desc="train")
  t0 = time.time()
  try:
    for step in range(start + 1, t.num_steps + 1):
      batch = dp.shard_batch(next(task.train_iter))
      dstate, metrics = train_step(dstate, batch, *consts)
      guard.push(step, metrics["loss"])
      history.append(metrics)
      bar.update(1)
      last = step == t.num_steps

      if (t.log_every and step % t.log_every == 0) or last:
        guard.flush()
        scalars = _mean_metrics(dp, history)
        scalars["steps_per_sec"] = len(history) / max(time.time() - t0, 1e-9)
        writer.write(step, "train", scalars)
        bar.set_postfix(loss=f"{scalars['loss']:.4f}")
        history, t0 = [], time.time()

      if task.evaluate is not None and ((t.eval_every and step % t.eval_every == 0) or last):
        guard.flush()
        valid = task.evaluate(dstate, dp, "valid")
        writer.write(step, "valid", valid)
        if task.best_metric is not None:
          score = valid[task.best_metric]
          if score > best:
            best, best_step, bad_evals = score, step, 0
            best_ckpt.save(step, ts.state_dict(dp.unreplicate(dstate)), {"step": step,
                                                                         "valid": valid})
          else:
            bad_evals += 1
          if t.early_stop_patience and bad_evals >= t.early_stop_patience:
            stop_reason = f"early stop: no {task.best_metric} gain in {bad_evals} evaluations"
            last = True

      preempted = ckpt.preempted(step)
      if ckpt.should_save(step) or last or preempted:
        guard.flush()
        ckpt.save(step, ts.state_dict(dp.unreplicate(dstate)), record_now(step),
                  force=last or preempted)
      if preempted:
        stop_reason = "preempted (SIGTERM)"
        break
      if step == config.debug.sigkill_at_step:
        os.kill(os.getpid(), signal.SIGKILL)
      if last:
        break
    guard.flush()
  finally:
    bar.close()
    writer.flush()
    ckpt.close()

  results = {"step": step, "stop_reason": stop_reason, "best_step": best_step}
  if task.evaluate is not None and stop_reason != "preempted (SIGTERM)":
    final_state = dstate
    if best_step is not None and best_ckpt.latest_step() is not None:
      saved, _ = best_ckpt.restore(ts.state_dict(dp.unreplicate(dstate)))
      final_state = dp.replicate(ts.restore_from_dict(dp.unreplicate(dstate), saved))
      results["valid"] = task.evaluate(final_state, dp, "valid")
    else:
      results["valid"] = task.evaluate(final_state, dp, "valid")
    results["test"] = task.evaluate(final_state, dp, "test")
    writer.write(step, "test", results["test"])
  best_ckpt.close()
  writer.close()
  if main:
    metric_writers.atomic_write_text(os.path.join(workdir, "results.json"),
                                     json.dumps(results, indent=2, sort_keys=True))
    rows = [dict(split=s, **results[s]) for s in ("valid", "test") if s in results]
    if rows:
      print(metric_writers.format_table(rows), flush=True)
  results["state"] = dp.unreplicate(dstate)
  return results
