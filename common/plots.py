"""Learning-curve plots from a run's ``metrics.jsonl`` (PNG, matplotlib, no display needed)."""

from __future__ import annotations

import os
from typing import Sequence

from common import metric_writers


def learning_curves(workdir: str, train_keys: Sequence[str] = ("loss",),
                    valid_keys: Sequence[str] = (), filename: str = "learning_curves.png") -> str:
  """Plots train and validation metrics against the step; returns the PNG's path (or '')."""
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return ""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  groups = [("train", k) for k in train_keys] + [("valid", k) for k in valid_keys]
  groups = [(s, k) for s, k in groups
            if any(k in r for r in metric_writers.read_jsonl(path, s))]
  if not groups:
    return ""
  fig, axes = plt.subplots(1, len(groups), figsize=(4 * len(groups), 3), squeeze=False)
  for ax, (split, key) in zip(axes[0], groups):
    rows = [r for r in metric_writers.read_jsonl(path, split) if key in r]
    ax.plot([r["step"] for r in rows], [float(r[key]) for r in rows], marker="." if
            split == "valid" else None)
    ax.set_title(f"{split} {key}")
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
  fig.tight_layout()
  out = os.path.join(workdir, filename)
  tmp = out + ".tmp.png"
  fig.savefig(tmp, dpi=100)
  plt.close(fig)
  os.replace(tmp, out)
  return out
