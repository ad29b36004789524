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

import datetime
import fcntl
import json
import math
import os
import signal
import socket
import sys
from typing import Any, Mapping, Optional

from absl import logging
import jax
import numpy as np
import tqdm

from common import metric_writers
from common import train_state as ts
from common import checkpoints
from common.checkpoints import Checkpointer


class WorkdirInUseError(RuntimeError):
  """Another live run holds the workdir."""


class WorkdirError(OSError):
  """The workdir cannot be created or written."""


def prepare_workdir(workdir: str) -> None:
  """Creates ``workdir`` and checks that files can be written in it, before any work is done.

  Raises:
    WorkdirError: one line naming the directory, the reason and the fix.
  """
  if "://" in workdir:
    return
  probe = os.path.join(workdir, f".write_test.{os.getpid()}")
  try:
    os.makedirs(workdir, exist_ok=True)
    with open(probe, "w") as f:
      f.write("ok")
    os.unlink(probe)
  except OSError as e:
    raise WorkdirError(
        f"The workdir {workdir} cannot be written ({e.strerror or e}). Fix: give --workdir a "
        "directory you can write to (or fix its permissions); nothing was run.") from None


class WorkdirLock:
  """An exclusive hold on a workdir by one run (process 0 of it), released when the run ends.

  ``<workdir>/run.lock`` holds the owner's pid, host, start time and command, and an advisory
  ``flock`` on it. The kernel drops the flock when its process dies, however it dies, so a lock
  left by a killed run is found stale (its file is there, its flock is not) and taken over; a
  live run's lock stops the second run at once, naming the first.
  """

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, "run.lock")
    self._file = None

  def acquire(self) -> Optional[dict]:
    """Takes the lock; returns the stale owner's record if it took one over, else None."""
    f = open(self.path, "a+")
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
      f.seek(0)
      owner = _read_owner(f.read())
      f.close()
      raise WorkdirInUseError(
          f"{os.path.dirname(self.path)} is in use by another run (pid {owner.get('pid', '?')} "
          f"on {owner.get('host', '?')}, started {owner.get('started', '?')}: "
          f"{owner.get('command', '?')}). Two runs in one workdir would mix their checkpoints "
          "and metrics: wait for it to finish, stop it, or give this run another --workdir.")
    f.seek(0)
    stale = _read_owner(f.read()) or None
    f.seek(0)
    f.truncate()
    f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                        "started": datetime.datetime.now().isoformat(timespec="seconds"),
                        "command": " ".join(sys.argv)}))
    f.flush()
    self._file = f
    return stale

  def release(self) -> None:
    if self._file is None:
      return
    try:
      os.unlink(self.path)
    except OSError:
      pass
    fcntl.flock(self._file, fcntl.LOCK_UN)
    self._file.close()
    self._file = None


def _read_owner(text: str) -> dict:
  try:
    owner = json.loads(text) if text.strip() else {}
  except json.JSONDecodeError:
    owner = {}
  return owner if isinstance(owner, dict) else {}


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
    prepare_workdir(workdir)
    self._lock = None
    if self.main and "://" not in workdir:  # object stores (gs://) have no file locks
      self._lock = WorkdirLock(workdir)
      stale = self._lock.acquire()
      if stale:
        print(f"Took over the lock of an earlier run that is gone (pid {stale.get('pid')} on "
              f"{stale.get('host')}, started {stale.get('started')}).", flush=True)
    self.checkpointer = Checkpointer(workdir, every=checkpoint_every, keep=keep_checkpoints)
    self.writer = metric_writers.MetricWriter(workdir)
    self.checkpointer.install_preemption_handler()
    self._progress_bar = progress_bar
    self._sigkill_at = sigkill_at_step
    self._pending = None
    self._bar = None

  # -- resume --------------------------------------------------------------------------------------

  def restore(self, template: Any) -> Optional[tuple[Any, dict]]:
    """The newest checkpoint that restores, as ``(state, record)``; None in a fresh workdir.

    Args:
      template: the state's structure: a state, or ``jax.eval_shape`` of its initialiser (no
        values are computed). Its static fields (``apply_fn``, ``tx``) are kept.

    Returns:
      ``state`` with host (numpy) arrays in the template's structure, and the JSON record saved
      with it. A damaged checkpoint (a truncated file, a broken record) is skipped with a
      warning that names its step and the error, and moved to ``<workdir>/corrupt_checkpoints``
      for inspection; the next newest one is tried. Metric lines logged after the restored step
      are dropped: the resumed run logs them again.

    Raises:
      checkpoints.CheckpointMismatchError: the checkpoint is whole but belongs to another config.
    """
    for step in sorted(self.checkpointer.all_steps(), reverse=True):
      try:
        restored = self.checkpointer.restore(ts.state_dict(template), step)
      except checkpoints.CheckpointMismatchError:
        raise
      except Exception as e:  # pylint: disable=broad-except  (any damage: orbax, tensorstore, json)
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        moved = self.checkpointer.quarantine(step) if self.main else "(left in place)"
        message = (f"Checkpoint step {step} could not be restored ({type(e).__name__}: {reason}); "
                   f"skipped it and moved it to {moved} for inspection.")
        logging.warning("%s", message)
        if self.main:
          print(message, flush=True)
        continue
      saved, record = restored
      state = ts.restore_from_dict(template, saved)
      step = int(record["step"])
      self.writer.truncate_after(step)
      if self.main:
        print(f"Resumed from checkpoint step {step}.", flush=True)
      return state, record
    return None

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

  def check_finite(self, step: int, value: Any, inputs: Any = None, hint: str = "") -> None:
    """Queues ``value`` (a device scalar, or an array over seeds) and checks the previous one.

    ``inputs`` (e.g. the host batch of that step) is looked at only if the value is not finite,
    so that the error can say whether the data held non-finite numbers.
    """
    self.flush_checks()
    self._pending = (step, value, inputs, hint)

  def flush_checks(self) -> None:
    """Checks the queued value now; raises ``FloatingPointError`` if any entry is not finite."""
    if self._pending is None:
      return
    step, value, inputs, hint = self._pending
    self._pending = None
    values = np.asarray(jax.device_get(value), np.float64).reshape(-1)
    bad = ~np.isfinite(values)
    if not bad.any():
      return
    self.checkpointer.wait()
    last = self.checkpointer.latest_step()
    which = f" (seed(s) {np.flatnonzero(bad).tolist()})" if values.size > 1 else ""
    if last is None:
      kept = ("No checkpoint had been written yet, so a rerun starts from the beginning")
    else:
      kept = (f"The last good checkpoint (step {last}) is intact in "
              f"{self.checkpointer.directory}; a rerun with the same --workdir resumes from it")
    bad_inputs = _non_finite_inputs(inputs)
    if bad_inputs:
      cause = (f"The inputs of that step hold non-finite values ({bad_inputs}): fix the data "
               "(e.g. NaN or inf features or labels) rather than the learning rate")
    else:
      cause = hint or ("The inputs were finite: lower optim.learning_rate or set "
                       "optim.grad_clip_norm")
    raise FloatingPointError(
        f"Non-finite loss ({values[bad][0]}) at step {step}{which}. Stopped. {kept}. {cause}.")

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
                                     json.dumps(jsonable(results), indent=2, sort_keys=True))
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
    """``end_training`` (if not done yet), closes the metric writer and releases the workdir."""
    self.end_training()
    self.writer.close()
    if self._lock is not None:
      self._lock.release()

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


def _non_finite_inputs(inputs: Any) -> str:
  """``"x: 3 of 512"``-style description of the non-finite floats in ``inputs`` ('' if none)."""
  if inputs is None:
    return ""
  found = []
  for path, leaf in jax.tree_util.tree_flatten_with_path(inputs)[0]:
    arr = np.asarray(leaf)
    if np.issubdtype(arr.dtype, np.floating):
      n = int(np.size(arr) - np.isfinite(arr).sum())
      if n:
        found.append(f"{jax.tree_util.keystr(path)}: {n} of {arr.size}")
  return ", ".join(found)


def jsonable(x: Any) -> Any:
  """``x`` with arrays as lists and non-finite floats as strings, for ``json.dumps``."""
  if isinstance(x, Mapping):
    return {str(k): jsonable(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [jsonable(v) for v in x]
  if isinstance(x, (np.ndarray, jax.Array)):
    return jsonable(np.asarray(x).tolist())
  if isinstance(x, (np.floating, float)):
    return float(x) if math.isfinite(float(x)) else str(float(x))
  if isinstance(x, np.integer):
    return int(x)
  return x
