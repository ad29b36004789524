r"""The core's toy RL job on the scan-chunk driver: 3 seeds of REINFORCE on a chain walk at once.

    python scripts/train.py --config=configs/example/chain.py --workdir=workdirs/example_rl

Each chunk is one jitted ``lax.scan`` of 10 updates (16 steps x 64 envs each), vmapped over the
seeds, with the envs split over the devices. The results table gives each seed's greedy reward
per step beside the random policy's and the best one's (0.2). ``:runlocal``: a smoke run.
"""

import ml_collections

from configs.example import defaults_rl


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = defaults_rl.get_default_config()
  if arg == "runlocal":
    c.train.num_steps = 4
    c.train.log_every = 2
    c.train.checkpoint_every = 2
    c.env.num_envs = 16
  elif arg:
    raise ValueError(f"Unknown config argument {arg!r}; known: 'runlocal'.")
  return c
