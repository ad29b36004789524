"""Renders an episode of a CORD env played by a scripted team to a GIF (and its first frame to PNG).

  python scripts/render_env.py --env resource_collection --policy efficient --steps 60 \
      --out workdirs/renders/rc.gif
  python scripts/render_env.py --env foraging --policy team --kwargs '{"num_agents": 4}'

`--env` is a name registered in `cord_jax.envs.REGISTRY`; `--policy` one of
`scripted_policy_names(env)`; `--kwargs` a JSON dict for the env constructor. Episodes chain
through `AutoResetWrapper`, so a long run shows several episodes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional

import jax
import numpy as np

from cord_jax import envs


def main(argv: Optional[List[str]] = None) -> str:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--env", default="resource_collection", choices=sorted(envs.REGISTRY))
  parser.add_argument("--policy", default="greedy", help="scripted policy name")
  parser.add_argument("--kwargs", default="{}", help="JSON dict of env constructor arguments")
  parser.add_argument("--steps", type=int, default=60)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--fps", type=int, default=8)
  parser.add_argument("--out", default=os.path.join("workdirs", "renders", "episode.gif"))
  args = parser.parse_args(argv)

  env = envs.AutoResetWrapper(envs.make(args.env, **json.loads(args.kwargs)))
  policy = envs.make_scripted_policy(env, args.policy)
  _, timesteps, states = jax.jit(
      lambda k: envs.rollout(env, policy, k, args.steps, keep_states=True))(
          jax.random.key(args.seed))
  gif = envs.save_gif(env, states, args.out, fps=args.fps)
  png = envs.save_png(env, jax.tree_util.tree_map(lambda x: x[0], states),
                      os.path.splitext(args.out)[0] + ".png")
  team_return = float(np.asarray(timesteps.reward)[:, 0].sum())
  episodes = int(np.sum(np.asarray(timesteps.last())))
  print(f"{args.env} / {args.policy}: {args.steps} steps, {episodes} episode end(s), "
        f"team reward {team_return:.2f}\nwrote {gif} and {png}")
  return gif


if __name__ == "__main__":
  main()
