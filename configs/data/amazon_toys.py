"""Amazon Toys and Games (5-core) with item attributes, as in S3-Rec and the papers that reuse it.

  python scripts/prepare_data.py --config=configs/data/amazon_toys.py

Two files, read as they circulate (nothing converted): ``Toys_and_Games.txt``, one user per line,
``user item item ...`` oldest first (format ``sequence_text``), and
``Toys_and_Games_item2attributes.json``, ``{"item_id": [attribute_id, ...]}``, whose lists become
the multi-valued item field ``attributes`` (brand and category path; 1,027 ids, 4.3 per item).
The default paths are ``../shared/data/amazon-toys/`` relative to the repository root; point
elsewhere with ``--config.source.path=...`` and ``--config.source.attributes_path=...``.

Protocol: every line is used as it is (the file is already 5-core, so no k-core filtering: 19,412
users, 11,924 items, 167,597 interactions), file order is the chronological order (there are no
timestamps), leave-one-out (last item test, second-to-last valid). Ids only, without the
attributes: ``--config.source.attributes_path= --config.item_features.attributes.kind=drop``.
"""

import ml_collections
from ml_collections import config_dict


def get_config(arg=None):
  """Returns the data config; ``arg`` takes no values."""
  if arg:
    raise ValueError(f"configs/data/amazon_toys.py: unknown arg {arg!r}; use nothing.")
  config = ml_collections.ConfigDict()
  config.name = "amazon_toys"
  config.source = ml_collections.ConfigDict(dict(
      format="sequence_text",
      path="../shared/data/amazon-toys/Toys_and_Games.txt",
      has_user_id=True,
      attributes_path="../shared/data/amazon-toys/Toys_and_Games_item2attributes.json",
      attributes_field="attributes",
      encoding="auto",
  ))
  config.preprocess = ml_collections.ConfigDict(dict(
      rating_threshold=config_dict.placeholder(float),
      user_core=0, item_core=0, dedup=False, tie_break="file_order",
      split="leave_one_out"))
  # Warn when an item table or vector file matches fewer than this share of the items (every
  # item must have attributes anyway: one missing from the JSON is an error).
  config.min_feature_match = 0.9
  config.item_features = ml_collections.ConfigDict({
      "attributes": {"kind": "multi"},
  })
  config.user_features = ml_collections.ConfigDict()
  config.auto_features = True
  return config
