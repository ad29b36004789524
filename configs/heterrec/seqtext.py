r"""HeterRec and baselines on a one-line-per-user sequence file (``user item item ...``).

    python scripts/train.py --config=configs/heterrec/seqtext.py:sasrec --workdir=workdirs/beauty \
        --config.data.source.path=PATH/TO/Beauty.txt

Data: ``configs/data/seqtext.py``, the format of the SASRec/BERT4Rec papers' data files (Amazon
Beauty, Steam, ...): items oldest first, no timestamps, so the order is the file's; 5-core,
leave-one-out. Without item features only the id is available, and HeterRec is then an id-only
transformer (one token per item; the trainer says so at start). Add fields with an item table
(``--config.data.source.item_path=...`` and its columns under ``data.item_features``) or an
S3-Rec item2attributes JSON (``--config.data.source.attributes_path=...``); docs/data.md.

Evaluation ranks the whole catalogue with the user's history masked (``eval.mask_history``), the
protocol of every sequence-file config (configs/heterrec/amazon_toys.py too). This config used to
leave the history unmasked: a number from a run of it before 2026-12-03 was measured without
masking and is not comparable with one measured now (``--config.eval.mask_history=False``
reproduces the old protocol).

``arg``: configs/heterrec/options.py, plus ``runlocal``.
"""

import ml_collections

from configs.data import seqtext as seqtext_data
from configs.heterrec import defaults
from configs.heterrec import options


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  opts = options.parse(arg)
  c = defaults.get_default_config()
  c.data = seqtext_data.get_config()
  c.model.max_len = 50
  c.model.dropout = 0.5
  c.model.attention_dropout = 0.5
  c.input.random_window = True
  c.eval.mask_history = True
  c.train.batch_size = 256
  c.train.num_steps = 20000
  c.train.eval_every = 500
  c.train.early_stop_patience = 10
  c.optim.name = "adam"
  options.apply(c, opts)
  return c
