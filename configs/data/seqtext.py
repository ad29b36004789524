"""A one-line-per-user sequence file (``user item item ...``, oldest first): copy and edit for yours.

  python scripts/prepare_data.py --config=configs/data/seqtext.py \
      --config.source.path=PATH/TO/Beauty.txt

The format of the SASRec/BERT4Rec papers' data files (Amazon Beauty, Steam, ...; format
``sequence_text``, docs/data.md): no timestamps, so the order is the file's. Item features are
optional: an item table (``--config.source.item_path=...`` with its columns under
``item_features``) or an S3-Rec ``item2attributes`` JSON (``--config.source.attributes_path=...``,
read as the multi-valued field ``attributes``); not both. Protocol: 5-core users and items,
leave-one-out (last item test, second-to-last valid). Amazon Toys with its attributes has its own
config, configs/data/amazon_toys.py.
"""

import ml_collections
from ml_collections import config_dict


def get_config(arg=None):
  """Returns the data config; ``arg`` takes no values."""
  if arg:
    raise ValueError(f"configs/data/seqtext.py: unknown arg {arg!r}; use nothing.")
  config = ml_collections.ConfigDict()
  config.name = "seqtext"
  config.source = ml_collections.ConfigDict(dict(
      format="sequence_text",
      path="",  # required: the sequence file
      has_user_id=True,  # False: the line number is the user
      item_path="",  # optional item table (read as for configs/data/table.py)
      item_id_col="item_id",
      attributes_path="",  # optional item2attributes JSON
      encoding="auto",
  ))
  config.preprocess = ml_collections.ConfigDict(dict(
      rating_threshold=config_dict.placeholder(float),
      user_core=5, item_core=5, dedup=False, tie_break="file_order",
      split="leave_one_out"))
  # Warn when an item table or vector file matches fewer than this share of the items.
  config.min_feature_match = 0.9
  config.item_features = ml_collections.ConfigDict()
  config.user_features = ml_collections.ConfigDict()
  config.auto_features = True
  return config
