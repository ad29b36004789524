r"""CORD on resource collection: 3 agents of mixed types (scout, worker, hauler), 6 piles.

    python scripts/train.py --config=configs/cord/resource_collection.py:quick --workdir=workdirs/cord_rc

The argument is comma-separated: a method (cord, mappo, random_roles, no_rc, no_rd, fixed_roles;
default cord) and a size (quick: 2 seeds, about a minute on a CPU; runlocal: a smoke run of
seconds; none: the full 8-seed run). The results table gives each seed's team return (first
episode of ``eval.num_envs`` fresh envs) beside the random policy's and the scripted greedy
team's.
"""

import ml_collections

from configs.cord import defaults

TRAIN_TEAM = ("scout", "worker", "hauler")


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = defaults.get_default_config()
  c.env.name = "resource_collection"
  c.env.num_agents = 3
  # One fixed team, one agent of each type in seats 0, 1, 2; cord_crossplay.py's --unseen
  # evaluates another mix of types (e.g. team=('hauler','hauler','scout')) never trained on.
  c.env.kwargs = ml_collections.ConfigDict(dict(num_resources=6, time_limit=50,
                                                team=TRAIN_TEAM))
  c.eval.partner = "greedy"
  return defaults.parse_arg(c, arg)
