"""Metrics out: TensorBoard event files and a JSON-lines log, written by process 0 only.

``metrics.jsonl`` holds one ``{"step": s, "split": ..., name: value}`` object per line; on resume,
lines beyond the restored step are dropped (rewritten atomically) so the log matches the state.
TensorBoard event files go to ``<workdir>/tensorboard`` (tensorboardX: no TensorFlow needed).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from typing import Mapping, Optional

import jax


def atomic_write_text(path: str, text: str) -> None:
  """Writes ``text`` to ``path`` via a temporary file and a rename: readers never see half a file."""
  atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: str, data: bytes) -> None:
  """Writes ``data`` to ``path`` via a temporary file and a rename (see ``atomic_write_text``)."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".")
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


class MetricWriter:
  """Writes scalars to ``<workdir>/metrics.jsonl`` and TensorBoard; silent on processes > 0."""

  def __init__(self, workdir: str, tensorboard: bool = True, enabled: Optional[bool] = None):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb = None
    if not self.enabled:
      return
    os.makedirs(workdir, exist_ok=True)
    if tensorboard:
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

  def truncate_after(self, step: int) -> None:
    """Drops logged lines with ``step > step`` (a resumed run re-logs them)."""
    if not self.enabled or not os.path.exists(self.path):
      return
    with open(self.path) as f:
      lines = [l for l in f if l.strip() and json.loads(l).get("step", 0) <= step]
    atomic_write_text(self.path, "".join(lines))

  def write(self, step: int, split: str, scalars: Mapping[str, float]) -> None:
    if not self.enabled:
      return
    row = {"step": int(step), "split": split}
    for k, v in scalars.items():
      v = float(v)
      row[k] = v if math.isfinite(v) else str(v)
      if self._tb is not None:
        self._tb.add_scalar(f"{split}/{k}", v, int(step))
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
      self._tb = None


def read_jsonl(path: str, split: Optional[str] = None) -> list[dict]:
  """The rows of a ``metrics.jsonl`` (optionally one split), for plots, reports and tests.

  Raises:
    ValueError: naming the file and line of a row that is not JSON.
  """
  rows = []
  with open(path) as f:
    for line_no, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        rows.append(json.loads(line))
      except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{line_no}: not JSON ({e}).") from e
  return [r for r in rows if split is None or r.get("split") == split]


def format_table(rows: list[dict], columns: Optional[list[str]] = None, floatfmt: str = ".4f") -> str:
  """A plain-text (markdown) results table."""
  if not rows:
    return "(no results)"
  columns = columns or list(rows[0])
  def fmt(v):
    return format(v, floatfmt) if isinstance(v, float) else str(v)
  cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
  widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
  line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"
  out = [line(columns), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
  out += [line(r) for r in cells]
  return "\n".join(out)
