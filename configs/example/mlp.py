r"""The training core's own end-to-end job: an MLP learns a planted linear teacher.

    python scripts/train.py --config=configs/example/mlp.py --workdir=workdirs/example

Measured (2-core CPU, 2026-11-28): test accuracy 0.923, valid 0.941 (the label-noise ceiling is
0.9625) after 600 steps, in about 6 s. ``:runlocal`` shrinks it to a seconds-long smoke run.
"""

import ml_collections

from configs.example import defaults


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = defaults.get_default_config()
  c.train.num_steps = 600
  c.train.batch_size = 128
  c.train.log_every = 50
  c.train.eval_every = 200
  c.train.checkpoint_every = 200
  c.optim.learning_rate = 3e-3
  if arg == "runlocal":
    c.train.num_steps = 40
    c.train.log_every = 10
    c.train.eval_every = 20
    c.train.checkpoint_every = 20
    c.model.hidden = (32,)
    c.data.eval_examples = 256
  elif arg:
    raise ValueError(f"configs/example/mlp.py: unknown arg {arg!r}; use runlocal or nothing.")
  return c
