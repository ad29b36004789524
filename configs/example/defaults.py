"""Every key of the core's example task (``common/example_task.py``), with its default."""

import ml_collections

from configs import base


def get_default_config() -> ml_collections.ConfigDict:
  c = base.base_config()
  c.method = "example"
  c.data = ml_collections.ConfigDict(dict(dim=16, num_classes=4, label_noise=0.05,
                                          eval_examples=1024))
  c.model = ml_collections.ConfigDict(dict(hidden=(64, 64)))
  return c
