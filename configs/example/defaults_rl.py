"""Every key of the core's toy RL trainer (``common/example_rl.py``), with its default.

``train.num_steps``, ``log_every`` and ``checkpoint_every`` count chunks (the scan-chunk driver,
``common/chunk_loop.py``); one chunk is ``env.updates_per_chunk`` updates of
``env.rollout_len`` steps in each of ``env.num_envs`` envs, for each of ``env.num_seeds`` seeds.
"""

import ml_collections

from configs import base


def get_default_config() -> ml_collections.ConfigDict:
  c = base.base_config()
  c.method = "example_rl"
  c.env = ml_collections.ConfigDict(dict(
      length=6, num_envs=64, num_seeds=3, rollout_len=16, updates_per_chunk=10, gamma=0.9))
  c.model = ml_collections.ConfigDict(dict(hidden=16))
  c.train.num_steps = 30
  c.train.log_every = 5
  c.train.eval_every = 0
  c.train.checkpoint_every = 10
  c.optim.name = "adam"
  c.optim.learning_rate = 3e-2
  return c
