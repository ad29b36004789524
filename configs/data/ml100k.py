"""MovieLens-100K in RecBole atomic format (``ml-100k.inter``, ``.item``, ``.user``).

  python scripts/prepare_data.py --config=configs/data/ml100k.py

The default path is ``../shared/data/ml-100k`` relative to the repository root; point elsewhere
with ``--config.source.path=/path/to/ml-100k``. Protocol: every rating is an interaction
(implicit feedback), 5-core filtering of users and items, leave-one-out by timestamp with ties
broken by file order. ``arg="implicit4"`` keeps ratings >= 4 only.
"""

import ml_collections
from ml_collections import config_dict


def get_config(arg=None):
  """Returns the data config; ``arg`` may be ``implicit4`` (ratings >= 4 only)."""
  config = ml_collections.ConfigDict()
  config.name = "ml100k"
  config.source = ml_collections.ConfigDict(dict(
      format="recbole_atomic",
      path="../shared/data/ml-100k",
      dataset="ml-100k",
      user_field="user_id",
      item_field="item_id",
      rating_field="rating",
      time_field="timestamp",
      seq_separator=" ",
      encoding="auto",
  ))
  config.preprocess = ml_collections.ConfigDict(dict(
      rating_threshold=config_dict.placeholder(float),
      user_core=5, item_core=5, dedup=False, tie_break="file_order",
      split="leave_one_out"))
  if arg == "implicit4":
    config.name = "ml100k_implicit4"
    config.preprocess.rating_threshold = 4.0
  elif arg:
    raise ValueError(f"configs/data/ml100k.py: unknown arg {arg!r}; use implicit4 or nothing.")
  # Warn when an item table or vector file matches fewer than this share of the items.
  config.min_feature_match = 0.9
  config.item_features = ml_collections.ConfigDict({
      "movie_title": {"kind": "text"},
      "release_year": {"kind": "categorical"},
      "class": {"kind": "multi"},
  })
  config.user_features = ml_collections.ConfigDict({
      "age": {"kind": "numeric", "num_buckets": 8},
      "gender": {"kind": "categorical"},
      "occupation": {"kind": "categorical"},
      "zip_code": {"kind": "drop"},
  })
  config.auto_features = True
  return config
