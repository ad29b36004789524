"""Checkpoints: one small wrapper over orbax's ``CheckpointManager``.

What it adds to orbax: a fixed layout under ``<workdir>/checkpoints``, the state plus a JSON record
of what else a resumed run needs (data-iterator position, step, config hash), auto-resume from the
newest complete checkpoint, and a SIGTERM handler so a preempted run saves before it exits.

Orbax writes each checkpoint into a temporary directory and renames it when complete, so a run
killed mid-save (even with SIGKILL) leaves the previous checkpoint intact and the next start
resumes from it.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any, Optional

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp


class Checkpointer:
  """Periodic, resumable, preemption-safe checkpoints of a pytree plus a JSON record.

  Args:
    workdir: the run's directory; checkpoints go to ``<workdir>/checkpoints/<step>``.
    every: save when ``step % every == 0`` (0 disables periodic saves; the final save still runs).
    keep: how many checkpoints to keep.
    async_save: write in a background thread while training continues.
  """

  def __init__(self, workdir: str, every: int, keep: int = 3, async_save: bool = True):
    self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    self.every = every
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=True, enable_async_checkpointing=async_save)
    # Naming the handlers lets a fresh process read a checkpoint's metadata before restoring it.
    self._mgr = ocp.CheckpointManager(
        self.directory, options=options,
        item_handlers={"state": ocp.StandardCheckpointHandler(),
                       "record": ocp.JsonCheckpointHandler()})
    self._sigterm = threading.Event()
    self._old_handler = None
    self._closed = False

  # -- preemption ----------------------------------------------------------------------------------

  def install_preemption_handler(self) -> None:
    """On SIGTERM, ask the loop to save and stop at the next step (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
      return
    def handler(signum, frame):  # pylint: disable=unused-argument
      logging.warning("SIGTERM received: saving a checkpoint and stopping.")
      self._sigterm.set()
    self._old_handler = signal.signal(signal.SIGTERM, handler)

  def preempted(self, step: int) -> bool:
    """True when the run must save and exit now (all processes agree on multi-host runs)."""
    if jax.process_count() > 1:
      # JAX's preemption sync point makes every host stop at the same step.
      return self._mgr.reached_preemption(step)
    return self._sigterm.is_set()

  # -- save / restore ------------------------------------------------------------------------------

  def latest_step(self) -> Optional[int]:
    return self._mgr.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._mgr.all_steps())

  def should_save(self, step: int) -> bool:
    return bool(self.every) and step % self.every == 0

  def save(self, step: int, state: Any, record: dict, force: bool = False) -> bool:
    """Saves ``state`` (a pytree of host or global arrays) and the JSON-serialisable ``record``."""
    saved = self._mgr.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), record=ocp.args.JsonSave(record)), force=force)
    if saved:
      logging.info("Checkpoint %d -> %s", step, self.directory)
    return saved

  def restore(self, template: Any, step: Optional[int] = None) -> Optional[tuple[Any, dict]]:
    """Restores the newest (or the given) checkpoint into the structure of ``template``.

    Args:
      template: a pytree with the saved structure; leaves give shape and dtype (values unused).
      step: which checkpoint; default the newest.

    Returns:
      ``(state, record)``, or None when the directory holds no checkpoint.

    Raises:
      ValueError: when the checkpoint does not fit the template (a different model or catalogue),
        naming the mismatching entries.
    """
    step = self.latest_step() if step is None else step
    if step is None:
      return None
    target = jax.tree.map(lambda x: np.zeros(np.shape(x), getattr(x, "dtype", np.float32)),
                          template)
    _check_fits(self.saved_structure(step), target, self.directory, step)
    restored = self._mgr.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target), record=ocp.args.JsonRestore()))
    return restored["state"], dict(restored["record"])

  def quarantine(self, step: int) -> str:
    """Moves step ``step`` out of the way, kept for inspection; returns its new path.

    It goes to ``<workdir>/corrupt_checkpoints/<step>[.<n>]``, beside (not inside) the checkpoint
    directory, so orbax never lists it again.
    """
    src = os.path.join(self.directory, str(step))
    dest_dir = os.path.join(os.path.dirname(self.directory), "corrupt_checkpoints")
    os.makedirs(dest_dir, exist_ok=True)
    dest, n = os.path.join(dest_dir, str(step)), 1
    while os.path.exists(dest):
      dest, n = os.path.join(dest_dir, f"{step}.{n}"), n + 1
    os.rename(src, dest)
    self._mgr.reload()
    return dest

  def saved_structure(self, step: int) -> Any:
    """The saved state's tree of array metadata (``.shape``, ``.dtype``) at ``step``."""
    meta = self._mgr.item_metadata(step)["state"]
    return getattr(meta, "tree", meta)

  def wait(self) -> None:
    self._mgr.wait_until_finished()

  def close(self) -> None:
    """Waits for pending saves and releases the manager (safe to call twice)."""
    if self._closed:
      return
    self._closed = True
    self._mgr.wait_until_finished()
    self._mgr.close()
    if self._old_handler is not None:
      signal.signal(signal.SIGTERM, self._old_handler)
      self._old_handler = None


class CheckpointMismatchError(ValueError):
  """A complete checkpoint that belongs to another model or data set (not a damaged one)."""


def _check_fits(saved: Any, target: Any, directory: str, step: int) -> None:
  """A readable error when a checkpoint's arrays differ in shape from what the model expects."""
  if saved is None:
    return
  try:
    saved_flat = dict(jax.tree_util.tree_flatten_with_path(saved)[0])
  except Exception:  # pylint: disable=broad-except
    return
  problems = []
  for path, leaf in jax.tree_util.tree_flatten_with_path(target)[0]:
    meta = saved_flat.get(path)
    if meta is None:
      problems.append(f"{jax.tree_util.keystr(path)}: not in the checkpoint")
      continue
    shape = tuple(getattr(meta, "shape", ()) or ())
    if shape != tuple(np.shape(leaf)):
      problems.append(f"{jax.tree_util.keystr(path)}: checkpoint {shape} vs model "
                      f"{tuple(np.shape(leaf))}")
  if problems:
    raise CheckpointMismatchError(
        f"Checkpoint {directory}/{step} does not fit this model ({len(problems)} mismatches, e.g. "
        + "; ".join(problems[:3]) + "). The config (model size, catalogue, fields) differs from "
        "the run that wrote it: use a fresh --workdir or the original config.")
