"""Run services: what every trainer needs around its step, apart from the loop that drives it.

``RunServices(workdir, ...)`` gives a trainer, whatever its step is (one data-parallel SGD step
over a batch, or a jitted ``lax.scan`` chunk of many environment steps and PPO updates vmapped over
seeds), the same services:

- **resume**: ``restore(template)`` returns the newest complete checkpoint in the template's
  structure (the whole state: every field of a ``TrainState`` subclass, seed axes included) and
  its JSON record, and drops metric lines logged after it;
- **saves**: ``should_save`` (every ``checkpoint_every``), ``save`` (atomic: orbax writes to a
  temporary directory and renames), and SIGTERM (``preempted``), on every host at the same step;
- **the NaN guard**: ``check_finite(step, loss)`` checks each value one call late, so the host
  never stalls the device; a non-finite value stops the run with ``FloatingPointError`` before
  the bad state can be checkpointed;
- **metrics**: ``log(step, split, metrics)`` to TensorBoard and ``metrics.jsonl`` (process 0);
  a metric with a seed axis is logged per seed (``name/seed_k``) and as the mean (``name``);
- **progress**: a tqdm bar with rate and ETA in the trainer's own unit (steps, env steps);
- **results**: ``write_results`` writes ``results.json`` atomically and prints a table.

``common.train_loop`` (batch-driven training) and ``common.chunk_loop`` (scan-chunk training) are
two drivers built on it.
"""

from __future__ import annotations

import json
import math
import os
import signal
from typing import Any, Mapping, Optional

import jax
import numpy as np
import tqdm

from common import metric_writers
from common import train_state as ts
from common.checkpoints import Checkpointer


class RunServices:
  """Checkpoints, resume, preemption, NaN guard, metrics, progress and results for one run.

  Args:
    workdir: the run's directory (created if missing).
    checkpoint_every: periodic save interval in the trainer's steps (0: only final/SIGTERM saves).
    keep_checkpoints: how many checkpoints to keep.
    progress_bar: show a progress bar (process 0 only).
    sigkill_at_step: fault injection for tests: ``maybe_kill`` SIGKILLs the process at this step.
  """

  def __init__(self, workdir: str, *, checkpoint_every: int, keep_checkpoints: int = 3,
               progress_bar: bool = True, sigkill_at_step: int = -1):
    self.workdir = workdir
    self.main = jax.process_index() == 0
    os.makedirs(workdir, exist_ok=True)
    self.checkpointer = Checkpointer(workdir, every=checkpoint_every, keep=keep_checkpoints)
    self.writer = metric_writers.MetricWriter(workdir)
    self.checkpointer.install_preemption_handler()
    self._progress_bar = progress_bar
    self._sigkill_at = sigkill_at_step
    self._pending = None
    self._bar = None

  # -- resume --------------------------------------------------------------------------------------

  def restore(self, template: Any) -> Optional[tuple[Any, dict]]:
    """The newest checkpoint as ``(state, record)``, or None in a fresh workdir.

    Args:
      template: the state's structure: a state, or ``jax.eval_shape`` of its initialiser (no
        values are computed). Its static fields (``apply_fn``, ``tx``) are kept.

    Returns:
      ``state`` with host (numpy) arrays in the template's structure, and the JSON record saved
      with it. Metric lines logged after the checkpoint's step are dropped: the resumed run logs
      them again.
    """
    restored = self.checkpointer.restore(ts.state_dict(template))
    if restored is None:
      return None
    saved, record = restored
    state = ts.restore_from_dict(template, saved)
    step = int(record["step"])
    self.writer.truncate_after(step)
    if self.main:
      print(f"Resumed from checkpoint step {step}.", flush=True)
    return state, record

  # -- saves and preemption ------------------------------------------------------------------------

  def should_save(self, step: int) -> bool:
    return self.checkpointer.should_save(step)

  def preempted(self, step: int) -> bool:
    """True once SIGTERM (or, multi-host, JAX's preemption notice) asks the run to save and stop."""
    return self.checkpointer.preempted(step)

  def save(self, step: int, host_state: Any, record: Mapping[str, Any], force: bool = False) -> None:
    """Saves the whole ``host_state`` and the JSON ``record`` (``step`` is added to it).

    Pending finiteness checks run first, so a diverged state is never written.
    """
    self.flush_checks()
    self.checkpointer.save(step, ts.state_dict(host_state), dict(record, step=int(step)),
                           force=force)

  def maybe_kill(self, step: int) -> None:
    """Fault injection (``debug.sigkill_at_step``): dies like a killed job, mid-run.

    In-flight saves finish first, so a test knows which checkpoint the rerun must resume from (a
    kill during a save leaves orbax's temporary directory, which the next start removes).
    """
    if step == self._sigkill_at:
      self.checkpointer.wait()
      os.kill(os.getpid(), signal.SIGKILL)

  # -- the NaN guard -------------------------------------------------------------------------------

  def check_finite(self, step: int, value: Any, hint: str = "") -> None:
    """Queues ``value`` (a device scalar, or an array over seeds) and checks the previous one."""
    self.flush_checks()
    self._pending = (step, value, hint)

  def flush_checks(self) -> None:
    """Checks the queued value now; raises ``FloatingPointError`` if any entry is not finite."""
    if self._pending is None:
      return
    step, value, hint = self._pending
    self._pending = None
    values = np.asarray(jax.device_get(value), np.float64).reshape(-1)
    bad = ~np.isfinite(values)
    if bad.any():
      self.checkpointer.wait()
      last = self.checkpointer.latest_step()
      which = f" (seed(s) {np.flatnonzero(bad).tolist()})" if values.size > 1 else ""
      raise FloatingPointError(
          f"Non-finite loss ({values[bad][0]}) at step {step}{which}. Stopped; the last good "
          f"checkpoint (step {last}) is intact in {self.checkpointer.directory}. "
          f"{hint or 'Lower optim.learning_rate or set optim.grad_clip_norm'}, then rerun with "
          f"the same --workdir to resume from it.")

  # -- metrics and progress ------------------------------------------------------------------------

  def log(self, step: int, split: str, metrics: Mapping[str, Any]) -> dict[str, float]:
    """Writes host scalars; an array metric (a seed axis) is written per seed and as its mean.

    Returns:
      The flat ``{name: float}`` row that was written.
    """
    row = flatten_seed_axis(metrics)
    self.writer.write(step, split, row)
    return row

  def start_progress(self, total: int, initial: int = 0, unit: str = "step",
                     desc: str = "train") -> None:
    self._bar = tqdm.tqdm(total=total, initial=initial, unit=unit, unit_scale=unit != "step",
                          dynamic_ncols=True, mininterval=1.0, desc=desc,
                          disable=not (self.main and self._progress_bar))

  def progress(self, n: int = 1, **postfix: Any) -> None:
    if self._bar is None:
      return
    self._bar.update(n)
    if postfix:
      self._bar.set_postfix(**postfix)

  # -- results -------------------------------------------------------------------------------------

  def write_results(self, results: Mapping[str, Any], rows: Optional[list] = None,
                    columns: Optional[list] = None) -> None:
    """``<workdir>/results.json`` (atomic, process 0) and, if given, a printed table of ``rows``."""
    if not self.main:
      return
    metric_writers.atomic_write_text(os.path.join(self.workdir, "results.json"),
                                     json.dumps(_jsonable(results), indent=2, sort_keys=True))
    if rows:
      print(metric_writers.format_table(rows, columns), flush=True)

  def end_training(self) -> None:
    """Closes the bar, flushes metrics and waits until the last checkpoint is complete."""
    if self._bar is not None:
      self._bar.close()
      self._bar = None
    self.writer.flush()
    self.checkpointer.close()

  def close(self) -> None:
    """``end_training`` (if not done yet) and closes the metric writer."""
    self.end_training()
    self.writer.close()

def flatten_seed_axis(metrics: Mapping[str, Any]) -> dict[str, float]:
  """``{name: scalar or [S] array}`` -> ``{name: mean, name/seed_k: value_k}`` as floats."""
  row: dict[str, float] = {}
  for name, value in metrics.items():
    value = np.asarray(jax.device_get(value), np.float64)
    if value.ndim == 0:
      row[name] = float(value)
      continue
    per_seed = value.reshape(value.shape[0], -1).mean(axis=1)
    row[name] = float(per_seed.mean())
    for k, v in enumerate(per_seed):
      row[f"{name}/seed_{k}"] = float(v)
  return row


def _jsonable(x: Any) -> Any:
  if isinstance(x, Mapping):
    return {str(k): _jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [_jsonable(v) for v in x]
  if isinstance(x, (np.ndarray, jax.Array)):
    return _jsonable(np.asarray(x).tolist())
  if isinstance(x, (np.floating, float)):
    return float(x) if math.isfinite(float(x)) else str(float(x))
  if isinstance(x, np.integer):
    return int(x)
  return x
