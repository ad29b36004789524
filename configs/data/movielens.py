"""Raw MovieLens releases as GroupLens ships them (ML-100K ``u.data``, ML-1M/ML-10M ``*.dat``).

  python scripts/prepare_data.py --config=configs/data/movielens.py:ml-1m \
      --config.source.path=/path/to/ml-1m

``arg`` is the release: ``ml-100k``, ``ml-1m`` (default) or ``ml-10m``; the default path is
``../shared/data/<release>`` relative to the repository root. Protocol as for SASRec-style work:
all ratings are interactions, 5-core, leave-one-out by timestamp (ties: file order).
"""

import ml_collections
from ml_collections import config_dict

_FOLDERS = {"ml-100k": "ml-100k", "ml-1m": "ml-1m", "ml-10m": "ml-10M100K"}


def get_config(arg=None):
  """Returns the data config for release ``arg``."""
  release = arg or "ml-1m"
  if release not in _FOLDERS:
    raise ValueError(f"configs/data/movielens.py: unknown release {release!r}; use one of "
                     f"{list(_FOLDERS)}.")
  config = ml_collections.ConfigDict()
  config.name = release.replace("-", "_") + "_raw"
  config.source = ml_collections.ConfigDict(dict(
      format="movielens", path=f"../shared/data/{_FOLDERS[release]}", variant=release,
      encoding="auto"))
  config.preprocess = ml_collections.ConfigDict(dict(
      rating_threshold=config_dict.placeholder(float),
      user_core=5, item_core=5, dedup=False, tie_break="file_order",
      split="leave_one_out"))
  # Warn when an item table or vector file matches fewer than this share of the items.
  config.min_feature_match = 0.9
  config.item_features = ml_collections.ConfigDict({
      "title": {"kind": "text"},
      "year": {"kind": "categorical"},
      "genres": {"kind": "multi"},
  })
  config.user_features = ml_collections.ConfigDict()
  config.auto_features = True
  return config
