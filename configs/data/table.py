"""A generic CSV/TSV/JSON-lines data set mapped by column names: copy and edit for your data.

  python scripts/prepare_data.py --config=configs/data/table.py \
      --config.source.path=/path/events.csv --config.source.item_path=/path/items.csv

The events file needs a header with (at least) a user and an item column; a time column may hold
numbers or ISO-8601 dates. Item feature columns are listed under ``item_features`` with their
kind; a multi-valued column is split on ``sep``. Dense vectors come from a ``.npy``/``.npz``
(``path``; see docs/data.md). ``arg="time"`` uses a global time split instead of leave-one-out.
"""

import ml_collections
from ml_collections import config_dict


def get_config(arg=None):
  """Returns the data config; ``arg`` may be ``time`` for a global time split."""
  if arg not in (None, "", "time"):
    raise ValueError(f"configs/data/table.py: unknown arg {arg!r}; use time or nothing.")
  config = ml_collections.ConfigDict()
  config.name = "my_table_data"
  config.source = ml_collections.ConfigDict(dict(
      format="table",
      path="",  # required: the events file
      user_col="user_id",
      item_col="item_id",
      rating_col="",
      time_col="timestamp",
      item_path="",  # optional item feature file
      item_id_col="item_id",
      user_path="",
      user_id_col="user_id",
      file_format="",  # csv | tsv | jsonl; empty: from the extension
      delimiter="",
      encoding="auto",
  ))
  config.preprocess = ml_collections.ConfigDict(dict(
      rating_threshold=config_dict.placeholder(float),
      user_core=5, item_core=5, dedup=True, tie_break="file_order",
      split="time" if arg == "time" else "leave_one_out", valid_frac=0.1, test_frac=0.1))
  # Warn when an item table or vector file matches fewer than this share of the items.
  config.min_feature_match = 0.9
  config.item_features = ml_collections.ConfigDict({
      # "category": {"kind": "categorical"},
      # "genres": {"kind": "multi", "sep": "|"},
      # "price": {"kind": "numeric", "num_buckets": 10},
      # "title": {"kind": "text"},
      # "image": {"kind": "dense", "path": "/path/image_vectors.npz"},
  })
  config.user_features = ml_collections.ConfigDict()
  config.auto_features = False
  return config
