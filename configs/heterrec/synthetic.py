r"""HeterRec and its baselines on the embedded synthetic data (no files needed).

    python scripts/train.py --config=configs/heterrec/synthetic.py --workdir=workdirs/hr_syn
    python scripts/train.py --config=configs/heterrec/synthetic.py:sasrec --workdir=...

``arg``: comma-separated options (configs/heterrec/options.py: model, ablations, size ladder),
``runlocal`` (a seconds-long smoke run on the tiny data set), ``small`` (the small data set),
``quick`` (the README's main job: the default data, a small model, a few minutes on a CPU).
"""

import ml_collections

from configs.data import synthetic as synthetic_data
from configs.heterrec import defaults
from configs.heterrec import options


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  opts = options.parse(arg)
  size = "tiny" if "runlocal" in opts else ("small" if "small" in opts else None)
  c = defaults.get_default_config()
  c.data = synthetic_data.get_config(size)
  c.model.max_len = 50
  c.model.d_model = 64
  c.model.heads = 2
  c.model.dropout = 0.2
  c.model.attention_dropout = 0.2
  c.train.num_steps = 3000
  c.train.batch_size = 128
  c.train.log_every = 100
  c.train.eval_every = 500
  c.train.checkpoint_every = 500
  c.input.random_window = True  # fresh windows of long histories each epoch: less memorising
  c.optim.name = "adam"
  c.optim.learning_rate = 1e-3
  if "quick" in opts:
    c.model.max_len = 20
    c.model.d_model = 32
    c.model.token_layers = 1
    c.model.item_layers = 1
    c.train.num_steps = 400
    c.train.batch_size = 64
    c.train.log_every = 50
    c.train.eval_every = 100
    c.train.checkpoint_every = 100
    c.optim.learning_rate = 2e-3
  if "runlocal" in opts:
    c.model.max_len = 20
    c.model.d_model = 32
    c.model.token_layers = 1
    c.model.item_layers = 1
    c.train.num_steps = 60
    c.train.batch_size = 32
    c.train.log_every = 20
    c.train.eval_every = 30
    c.train.checkpoint_every = 30
    c.eval.batch_size = 64
  # Last, so that a size of the ladder (xs, s, m, l) overrides quick's and runlocal's width.
  options.apply(c, opts, extra={"runlocal", "small", "quick"})
  return c
