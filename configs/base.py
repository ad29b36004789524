"""The keys every method's config starts from: what the run services and the loops read.

A plain config module (ml_collections only, no JAX, no trainer code), as big_vision's configs are:
each method's defaults (``configs/<method>/defaults.py``) extend ``base_config()``.
"""

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  """The keys the training loop reads, with their defaults."""
  c = ml_collections.ConfigDict()
  c.method = ""
  c.seed = 0
  c.parallel = ml_collections.ConfigDict(dict(mode="mesh", num_devices=-1))
  c.train = ml_collections.ConfigDict(dict(
      num_steps=1000, batch_size=256, log_every=50, eval_every=500, checkpoint_every=500,
      keep_checkpoints=3, early_stop_patience=0, progress_bar=True))
  c.optim = ml_collections.ConfigDict(dict(
      name="adamw", learning_rate=1e-3, weight_decay=0.0, warmup_steps=0, schedule="constant",
      grad_clip_norm=0.0, b1=0.9, b2=0.999))
  # Fault injection, used by the tests of resume and divergence handling (-1: off).
  c.debug = ml_collections.ConfigDict(dict(nan_at_step=-1, sigkill_at_step=-1))
  return c
