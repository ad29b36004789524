"""Synthetic data with planted structure: the project's default data (no files needed).

Prepare it (a few seconds on one CPU core; prints the statistics summary):

  python scripts/prepare_data.py --config=configs/data/synthetic.py

``arg`` picks a size: ``tiny`` (300 users, for smoke tests), ``small`` (1,000 users),
default (6,000 users, ~240k events), ``1m`` (25,000 users, ~1M events, ~12 s to prepare).
The generator and its knobs are described in common/data/synthetic.py and docs/data.md.
"""

import ml_collections
from ml_collections import config_dict

_SIZES = {
    "tiny": dict(num_users=300, num_items=200, num_categories=8, num_tags=16, mean_length=20),
    "small": dict(num_users=1000, num_items=600, num_categories=15, num_tags=30),
    "default": {},
    "1m": dict(num_users=25000),
}


def get_config(arg=None):
  """Returns the data config; ``arg`` is one of tiny, small, default, 1m."""
  size = arg or "default"
  if size not in _SIZES:
    raise ValueError(f"configs/data/synthetic.py: unknown size {size!r}; use one of "
                     f"{list(_SIZES)}.")
  config = ml_collections.ConfigDict()
  config.name = "synthetic" if size == "default" else f"synthetic_{size}"
  config.source = ml_collections.ConfigDict(dict(
      format="synthetic",
      num_users=6000,
      num_items=3000,
      num_categories=30,
      num_tags=60,
      max_tags_per_item=3,
      mean_length=40,
      min_length=5,
      max_length=200,
      dense_dim=16,
      num_price_levels=5,
      transition_concentration=0.1,
      popularity_exponent=1.0,
      tag_continuation=2.0,
      tag_affinity=1.0,
      price_affinity=1.0,
      with_text=True,
      seed=0,
  ))
  config.source.update(_SIZES[size])
  config.preprocess = ml_collections.ConfigDict(dict(
      rating_threshold=config_dict.placeholder(float),
      user_core=0, item_core=0, dedup=False, tie_break="file_order",
      split="leave_one_out"))
  config.item_features = ml_collections.ConfigDict({
      "category": {"kind": "categorical"},
      "tags": {"kind": "multi"},
      "price": {"kind": "numeric", "num_buckets": 10},
      "embedding": {"kind": "dense"},
      "title": {"kind": "text"},
  })
  config.user_features = ml_collections.ConfigDict({"segment": {"kind": "categorical"}})
  config.auto_features = True
  return config
