"""The recommendation data layer shared by HeterRec and ESANS.

Typical use::

  from common import data
  path, ds, stats = data.prepare(config, data_dir)     # once (scripts/prepare_data.py)
  ds = data.load(config.name, data_dir)                  # in the trainer
  train = data.SequenceBatches(ds, max_len=50, global_batch_size=256, seed=0)
  batch = next(train)                                    # this process's rows
  state = train.get_state()                              # save with the checkpoint
  for batch in data.EvalBatches(ds, split="valid", max_len=50, global_batch_size=512): ...

See docs/data.md for formats, config keys and the rules (tie-break, split, padding).
"""

from common.data.batching import (EvalBatches, SequenceBatches, StridedWindowBatches,
                                  TwoTowerBatches)
from common.data.dataset import RecDataset, build_dataset, read_source
from common.data.errors import DataError, DataWarning
from common.data.schema import KINDS, FieldSpec
from common.data.stats import format_summary, summarize

# The tfds side imports tensorflow_datasets (a second or so), so it loads on first use.
_LAZY = {"prepare", "write_prepared", "load", "load_prepared", "dataset_dir", "RecData"}


def __getattr__(name):
  if name in _LAZY:
    from common.data import tfds_builder  # pylint: disable=g-import-not-at-top
    return getattr(tfds_builder, name)
  raise AttributeError(f"module 'common.data' has no attribute {name!r}")


__all__ = [
    "DataError", "DataWarning", "EvalBatches", "FieldSpec", "KINDS", "RecData", "RecDataset",
    "SequenceBatches", "StridedWindowBatches",
    "TwoTowerBatches", "build_dataset", "dataset_dir", "format_summary", "load", "load_prepared",
    "prepare", "read_source", "summarize", "write_prepared",
]
