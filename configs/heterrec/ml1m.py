r"""HeterRec and baselines on MovieLens-1M (raw ``ratings.dat``/``movies.dat``/``users.dat``).

    python scripts/train.py --config=configs/heterrec/ml1m.py:sasrec --workdir=workdirs/ml1m_sasrec \
        --config.data.source.path=PATH/TO/ml-1m

Protocol as in the SASRec/HSTU literature: all ratings as interactions, 5-core, leave-one-out,
full ranking, history length 200. ``arg``: configs/heterrec/options.py, plus ``runlocal``.
Public reference points (PAPERS.md): SASRec with full cross-entropy HR@10 0.3152; HSTU NDCG@10
0.1720.
"""

import ml_collections

from configs.data import movielens
from configs.heterrec import defaults
from configs.heterrec import options


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  opts = options.parse(arg)
  c = defaults.get_default_config()
  c.data = movielens.get_config("ml-1m")
  c.model.max_len = 200
  c.model.d_model = 64
  c.model.heads = 2
  c.model.token_layers = 1
  c.model.item_layers = 2
  c.model.dropout = 0.2
  c.model.attention_dropout = 0.2
  c.input.random_window = True
  c.eval.mask_history = False
  c.eval.batch_size = 512
  c.train.batch_size = 128
  c.train.num_steps = 20000
  c.train.log_every = 100
  c.train.eval_every = 1000
  c.train.checkpoint_every = 1000
  c.train.early_stop_patience = 5
  c.optim.name = "adam"
  c.optim.learning_rate = 1e-3
  options.apply(c, opts)
  return c
