r"""ESANS and the samplers it is compared with on Amazon Toys and Games with item attributes.

    python scripts/train.py --config=configs/esans/amazon_toys.py --workdir=workdirs/esans_toys
    python scripts/train.py --config=configs/esans/amazon_toys.py:mixed --config.seed=1 --workdir=...

Data: ``configs/data/amazon_toys.py`` (``../shared/data/amazon-toys``: the sequence file and its
``item2attributes`` JSON; point elsewhere with ``--config.data.source.path=...`` and
``--config.data.source.attributes_path=...``): leave-one-out in file order. The attribute list
(brand and category ids) is an item feature. Multimodal item vectors: "text" is TF-IDF + SVD over
the attribute ids (the file has no titles or descriptions), and behaviour (PPMI + SVD of
co-occurrence in the training sequences); no images. ``arg``: comma-separated
options (configs/esans/options.py: a sampler, ablations); ``runlocal`` for a smoke run.
"""

import ml_collections

from configs.data import amazon_toys as toys_data
from configs.esans import defaults
from configs.esans import options


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  opts = options.parse(arg)
  c = defaults.get_default_config()
  c.data = toys_data.get_config()
  c.mm.modalities = ("text", "behaviour")
  c.mm.text_fields = ("attributes",)
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
