r"""CORD on cooperative level-based foraging: 3 agents on an 8x8 grid, 4 food items, half co-op.

    python scripts/train.py --config=configs/cord/foraging.py:quick --workdir=workdirs/cord_lbf

The argument is comma-separated: a method (cord, mappo, random_roles, no_rc, no_rd, fixed_roles;
default cord) and a size (quick, runlocal; see configs/cord/defaults.py). A perfect episode
returns 1 per agent.
"""

import ml_collections

from configs.cord import defaults

TRAIN_LEVELS = (1, 2, 2)


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = defaults.get_default_config()
  c.env.name = "foraging"
  c.env.num_agents = 3
  # One fixed team of levels 1, 2, 2 (level 3 is never trained on); cord_crossplay.py's --unseen
  # evaluates another mix, e.g. agent_levels=(1,1,3).
  c.env.kwargs = ml_collections.ConfigDict(dict(grid_size=8, num_food=4, time_limit=50,
                                                agent_levels=TRAIN_LEVELS))
  c.eval.partner = "greedy"
  return defaults.parse_arg(c, arg)
