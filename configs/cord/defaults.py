"""Every key of the CORD learner (``cord_jax/train.py``), with its default, and the method switch.

``train.num_steps``, ``log_every`` and ``checkpoint_every`` count chunks (``common/chunk_loop.py``);
one chunk is ``ppo.updates_per_chunk`` PPO updates, each a rollout of ``ppo.rollout_len`` steps in
each of ``env.num_envs`` envs, for each of ``env.num_seeds`` seeds trained at once (``vmap``).

Methods (``apply_method``), all from the same code:
  cord          learned role controller, r_c and r_d (alpha, beta > 0)
  mappo         no roles (one constant role): plain MAPPO
  random_roles  roles drawn uniformly at the controller's times; r_c and r_d kept
  no_rc         CORD with alpha = 0
  no_rd         CORD with beta = 0
  fixed_roles   agent i holds role i mod R for ever; r_c and r_d kept
"""

import ml_collections

from configs import base

METHODS = ("cord", "mappo", "random_roles", "no_rc", "no_rd", "fixed_roles")


def get_default_config() -> ml_collections.ConfigDict:
  c = base.base_config()
  c.method = "cord"
  c.env = ml_collections.ConfigDict(dict(
      name="resource_collection", num_agents=3, num_envs=64, num_seeds=8,
      kwargs=ml_collections.ConfigDict(dict(time_limit=50))))
  c.roles = ml_collections.ConfigDict(dict(
      assign="learned", num_roles=3, T_role=10, alpha=0.005, beta=0.005))
  c.ppo = ml_collections.ConfigDict(dict(
      rollout_len=32, updates_per_chunk=10, gamma=0.99, gae_lambda=0.95, clip_eps=0.2,
      vf_coef=0.5, ent_coef=0.01, num_epochs=4, num_minibatches=4, norm_adv=True,
      clip_value=True, ctrl_coef=1.0, ctrl_ent_coef=0.01, ctrl_gae_lambda=0.95, disc_coef=1.0))
  c.model = ml_collections.ConfigDict(dict(core="mlp", hidden=64))
  c.eval = ml_collections.ConfigDict(dict(num_envs=32, partner="greedy"))
  c.train.num_steps = 30
  c.train.log_every = 2
  c.train.eval_every = 0
  c.train.checkpoint_every = 5
  c.optim.name = "adam"
  c.optim.learning_rate = 2.5e-3
  c.optim.schedule = "linear"  # anneal to 0 over the run
  c.optim.grad_clip_norm = 0.5
  return c


def apply_method(c: ml_collections.ConfigDict, method: str) -> ml_collections.ConfigDict:
  """Switches ``c`` to one of ``METHODS`` (see the module docstring)."""
  if method == "mappo":
    c.roles.assign, c.roles.num_roles, c.roles.alpha, c.roles.beta = "none", 1, 0.0, 0.0
  elif method == "random_roles":
    c.roles.assign = "random"
  elif method == "fixed_roles":
    c.roles.assign = "fixed"
  elif method == "no_rc":
    c.roles.alpha = 0.0
  elif method == "no_rd":
    c.roles.beta = 0.0
  elif method != "cord":
    raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}.")
  return c


def apply_size(c: ml_collections.ConfigDict, size: str) -> ml_collections.ConfigDict:
  """``quick``: 2 seeds, a CPU run of about a minute; ``runlocal``: a smoke run of seconds.

  No size: the full run, 8 seeds x 30 chunks x 10 updates x 64 envs x 32 steps (614k env steps per
  seed), the one behind docs/cord_results.md.
  """
  if size == "quick":
    c.env.num_envs, c.env.num_seeds = 16, 2
    c.ppo.rollout_len, c.ppo.updates_per_chunk = 32, 10
    c.model.hidden = 32
    c.train.num_steps, c.train.log_every, c.train.checkpoint_every = 6, 2, 3
    c.eval.num_envs = 64  # 16 left the random baseline's mean uncertain by about 0.3
  elif size == "runlocal":
    c.env.num_envs, c.env.num_seeds = 4, 2
    c.ppo.rollout_len, c.ppo.updates_per_chunk, c.ppo.num_epochs = 8, 2, 1
    c.ppo.num_minibatches = 2
    c.model.hidden = 16
    c.train.num_steps, c.train.log_every, c.train.checkpoint_every = 2, 1, 1
    c.eval.num_envs = 4
  else:
    raise ValueError(f"unknown size {size!r}; known: quick, runlocal.")
  return c


def parse_arg(c: ml_collections.ConfigDict, arg: str) -> ml_collections.ConfigDict:
  """``arg`` = comma-separated words: at most one method of ``METHODS`` and one size."""
  for word in filter(None, (arg or "").split(",")):
    if word in METHODS:
      apply_method(c, word)
    elif word in ("quick", "runlocal"):
      apply_size(c, word)
    else:
      raise ValueError(f"unknown config argument {word!r}; known: {', '.join(METHODS)}, quick, "
                       "runlocal (comma-separated, e.g. 'mappo,quick').")
  return c
