r"""HeterRec and baselines on a one-line-per-user sequence file (``user item item ...``).

    python scripts/train.py --config=configs/heterrec/seqtext.py:sasrec --workdir=workdirs/beauty \
        --config.data.source.path=PATH/TO/Beauty.txt

The format of the SASRec/BERT4Rec papers' data files (Amazon Beauty, Steam, ...): items oldest
first, no timestamps, so the order is the file's. Without item features only the id is available
(HeterRec then has one token per item); give an item table with
``--config.data.source.item_path`` and ``--config.data.item_features`` to add fields (docs/data.md).
``arg``: configs/heterrec/options.py, plus ``runlocal``.
"""

import ml_collections

from configs.heterrec import defaults
from configs.heterrec import options


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  opts = options.parse(arg)
  c = defaults.get_default_config()
  c.data = ml_collections.ConfigDict()
  c.data.name = "seqtext"
  c.data.source = ml_collections.ConfigDict(dict(
      format="sequence_text", path="", has_user_id=True))
  c.data.preprocess = ml_collections.ConfigDict(dict(
      rating_threshold=None, user_core=5, item_core=5, dedup=False, tie_break="file_order",
      split="leave_one_out"))
  c.data.item_features = ml_collections.ConfigDict()
  c.model.max_len = 50
  c.model.dropout = 0.5
  c.model.attention_dropout = 0.5
  c.input.random_window = True
  c.eval.mask_history = False
  c.train.batch_size = 256
  c.train.num_steps = 20000
  c.train.eval_every = 500
  c.train.early_stop_patience = 10
  c.optim.name = "adam"
  options.apply(c, opts)
  return c
