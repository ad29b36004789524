"""What every recommendation trainer does around its loop: load the run's data, save per-user ranks.

- ``load_data(config)``: the data set of ``config.data``, prepared under ``config.data_dir`` once
  (process 0 prepares, every process waits, then reads it back), else built in memory;
- ``save_ranks(workdir, last_ranks)``: each split's per-user ranks to ``ranks_<split>.npz``, the
  input of the paired per-user test (``scripts/paired_test.py``).
"""

from __future__ import annotations

import io
import os

import jax
import ml_collections
import numpy as np

from common import data as data_lib
from common import metric_writers


def load_data(config: ml_collections.ConfigDict) -> data_lib.RecDataset:
  """The data set of ``config.data``: prepared under ``config.data_dir`` once, else in memory."""
  if not config.data_dir:
    return data_lib.build_dataset(config.data)
  name = config.data.name
  if os.path.exists(data_lib.dataset_dir(config.data_dir, name)):
    return data_lib.load(name, config.data_dir)
  if jax.process_index() == 0:
    data_lib.prepare(config.data, config.data_dir)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(f"{config.method or 'recsys'} data prepared")
  return data_lib.load(name, config.data_dir)


def save_ranks(workdir: str, last_ranks: dict) -> None:
  """Writes each split's per-user ranks to ``<workdir>/ranks_<split>.npz``, atomically."""
  for split, arrays in last_ranks.items():
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    metric_writers.atomic_write_bytes(os.path.join(workdir, f"ranks_{split}.npz"),
                                      buffer.getvalue())
