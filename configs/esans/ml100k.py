r"""ESANS and the samplers it is compared with on MovieLens-100K (RecBole atomic files).

    python scripts/train.py --config=configs/esans/ml100k.py --workdir=workdirs/esans_ml100k
    python scripts/train.py --config=configs/esans/ml100k.py:mixed --config.seed=1 --workdir=...

Data: ``configs/data/ml100k.py`` (``../shared/data/ml-100k`` by default; point elsewhere with
``--config.data.source.path=...``): every rating an interaction, 5-core, leave-one-out by time.
Multimodal item vectors: text (TF-IDF + SVD over the title and the genres) and behaviour (PPMI +
SVD of co-occurrence in the training sequences); ML-100K has no images. ``arg``: comma-separated
options (configs/esans/options.py: a sampler, ablations); ``runlocal`` for a smoke run.
"""

import ml_collections

from configs.data import ml100k as ml100k_data
from configs.esans import defaults
from configs.esans import options


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  opts = options.parse(arg)
  c = defaults.get_default_config()
  c.data = ml100k_data.get_config()
  c.mm.modalities = ("text", "behaviour")
  c.mm.text_fields = ("movie_title", "class")
  c.mm.min_df = 2
  # The last 20 items: 6x less user-tower compute than 50 on a CPU (0.13 s against 0.78 s a step),
  # so that 3 seeds of every sampler and ablation fit a CPU session.
  c.model.max_len = 20
  c.train.num_steps = 1000
  c.train.batch_size = 256
  c.train.log_every = 100
  c.train.eval_every = 250
  c.train.checkpoint_every = 250
  c.train.early_stop_patience = 3
  c.optim.learning_rate = 1e-3
  c.sampler.k1 = 32
  c.sampler.k2 = 8
  c.sampler.refresh_every = 500
  if "runlocal" in opts:
    c.train.num_steps = 20
    c.train.eval_every = 10
    c.train.checkpoint_every = 10
    c.eval.max_batches = 1
    c.sampler.refresh_every = 10
  options.apply(c, opts)
  return c
