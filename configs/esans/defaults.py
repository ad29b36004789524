"""Every key the ESANS trainer reads, with its default: what configs/esans/*.py start from.

A plain config module (ml_collections only; importing it loads no JAX and no trainer code).
``esans_jax/config.py`` checks a config against these keys once and builds the frozen objects the
towers and samplers take; the meaning of each key is in esans_jax/README.md.
"""

import ml_collections

from configs import base


def model_config() -> ml_collections.ConfigDict:
  """The two towers (``config.model``)."""
  c = ml_collections.ConfigDict()
  c.dim = 64  # output width of both towers (unit vectors)
  c.token_dim = 64  # width of the item field tokens
  c.hidden = 128  # the towers' MLP hidden width (0: a linear head)
  c.max_len = 50  # history items the user tower reads
  c.user_encoder = "transformer"  # transformer | mean
  c.layers = 1  # user-tower transformer blocks
  c.heads = 2
  c.dropout = 0.1
  c.fields = ()  # item feature fields; empty = every usable field
  c.user_fields = ()  # user feature fields; empty = every usable one
  c.use_user_features = True
  c.use_id = True  # the item id is a token
  c.use_mm = True  # the item tower reads the projected multimodal vector
  c.temperature = 0.07  # scores are cosine / temperature
  c.learn_temperature = False
  return c


def mm_config() -> ml_collections.ConfigDict:
  """The multimodal item vectors MSAC clusters and the item tower reads (``config.mm``)."""
  c = ml_collections.ConfigDict()
  c.modalities = ("text", "behaviour")  # any of text, behaviour, image
  c.text_fields = ()  # item fields whose text (or tokens) make the text; () = every text field
  c.text_dim = 64
  c.behaviour_dim = 64
  c.image_field = "image"  # the dense item field holding image vectors (a user-given .npy)
  c.weights = ml_collections.ConfigDict(dict(text=1.0, behaviour=1.0, image=1.0))
  c.min_df = 2
  c.max_features = 20000
  c.behaviour_window = 0  # co-occurrence window; 0 = a user's whole training sequence
  return c


def sampler_config() -> ml_collections.ConfigDict:
  """The negative samplers (``config.sampler``); see esans_jax/samplers.py."""
  c = ml_collections.ConfigDict()
  # A preset sets the switches below: uniform | popularity | in_batch | mixed | hard | msac |
  # edis_simple | edis_hard | edis | esans | esans_simple | esans_hard | custom (keep them as set).
  c.name = "esans"
  c.in_batch = True
  c.num_uniform = 128  # a preset's -1 means this value
  c.num_popularity = 128
  c.hard_k = 8
  c.hard_pool = 256
  c.msac = True
  c.edis = "both"  # none | simple | hard | both
  c.logq = True
  c.m_c = 2
  c.m_o = 5
  c.k1 = 32  # primary clusters
  c.k2 = 8  # residual codes
  c.cluster_temperature = 1.0
  c.refresh_every = 500  # re-cluster every N steps (0: once, before step 1)
  c.representation = "both"  # multimodal | tower | both: what MSAC clusters
  c.tower_weight = 1.0  # the tower part's weight in "both"
  c.kmeans_iters = 20
  c.beta_min = 0.1  # EDIS hard interpolation weight on the positive, uniform in [min, max]
  c.beta_max = 0.3
  c.renormalize = True
  return c


def get_default_config() -> ml_collections.ConfigDict:
  """The whole ESANS trainer config: the loop's keys and ESANS's sections."""
  c = base.base_config()
  c.method = "esans"
  c.data = ml_collections.ConfigDict()  # a data config (configs/data/*.py)
  c.data_dir = ""  # if set, prepare the data set once under it and read it back
  c.model = model_config()
  c.mm = mm_config()
  c.sampler = sampler_config()
  c.input = ml_collections.ConfigDict(dict(min_history=1))
  c.eval = ml_collections.ConfigDict(dict(
      batch_size=256, mask_history=True, max_batches=0, chunk_size=0, popularity_baseline=True,
      ks=(10, 50, 200), save_ranks=True))
  c.export = ml_collections.ConfigDict(dict(enabled=True))  # embeddings to <workdir>/export
  c.optim.name = "adam"
  c.train.batch_size = 512
  c.train.eval_every = 500
  c.train.early_stop_patience = 0
  return c
