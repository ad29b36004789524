r"""ESANS and the samplers it is compared with, on the embedded synthetic data (no files needed).

    python scripts/train.py --config=configs/esans/synthetic.py --workdir=workdirs/esans_syn
    python scripts/train.py --config=configs/esans/synthetic.py:mixed --workdir=...

``arg``: comma-separated options (configs/esans/options.py: a sampler, ablations), ``quick`` (the
README's main job: a small data set and model, about a minute on a CPU) or ``runlocal`` (a
seconds-long smoke run on the tiny data set).
"""

import ml_collections

from configs.data import synthetic as synthetic_data
from configs.esans import defaults
from configs.esans import options


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  opts = options.parse(arg)
  size = "tiny" if "runlocal" in opts else ("small" if "quick" in opts else None)
  c = defaults.get_default_config()
  c.data = synthetic_data.get_config(size)
  c.mm.modalities = ("text", "behaviour", "image")
  c.mm.text_fields = ("title",)
  c.mm.image_field = "embedding"  # the generator's content vector stands in for an image
  c.model.max_len = 30
  c.train.num_steps = 2000
  c.train.batch_size = 256
  c.train.log_every = 100
  c.train.eval_every = 500
  c.train.checkpoint_every = 500
  c.optim.learning_rate = 1e-3
  c.sampler.k1 = 32
  c.sampler.k2 = 8
  c.sampler.refresh_every = 500
  if "quick" in opts:
    c.model.dim = c.model.token_dim = 32
    c.model.hidden = 64
    c.model.max_len = 20
    c.train.num_steps = 600
    c.train.batch_size = 128
    c.train.log_every = 50
    c.train.eval_every = 200
    c.train.checkpoint_every = 200
    c.sampler.num_uniform = 64
    c.sampler.k1 = 16
    c.sampler.k2 = 4
    c.sampler.refresh_every = 200
    c.mm.text_dim = c.mm.behaviour_dim = 16
  if "runlocal" in opts:
    c.model.dim = c.model.token_dim = 16
    c.model.hidden = 0
    c.model.max_len = 10
    c.train.num_steps = 40
    c.train.batch_size = 32
    c.train.log_every = 10
    c.train.eval_every = 20
    c.train.checkpoint_every = 20
    c.eval.batch_size = 64
    c.sampler.num_uniform = 16
    c.sampler.num_popularity = 16
    c.sampler.hard_pool = 32
    c.sampler.k1 = 4
    c.sampler.k2 = 2
    c.sampler.refresh_every = 20
    c.sampler.kmeans_iters = 5
    c.mm.text_dim = c.mm.behaviour_dim = 8
    c.mm.min_df = 1
  options.apply(c, opts)
  return c
