"""Checks of a CORD config and the env it names, with errors that name the key and the fix.

The config files (``configs/cord/*.py``) are plain data; this module is where their values meet
the code: ``check_config`` validates them and ``build_env`` turns ``config.env`` into an env.
"""

from __future__ import annotations

import ml_collections

from common import config_checks
from cord_jax import envs
from cord_jax import roles as roles_lib

ConfigError = config_checks.ConfigError
require = config_checks.require


def env_kwargs(config: ml_collections.ConfigDict) -> dict:
  """The env constructor's keyword arguments: ``env.kwargs`` plus ``num_agents``."""
  kwargs = dict(config.env.kwargs.to_dict()) if config.env.kwargs else {}
  for k, v in kwargs.items():  # JSON round trips (config.json) turn tuples into lists.
    if isinstance(v, list):
      kwargs[k] = tuple(v)
  return {**kwargs, "num_agents": config.env.num_agents}


def build_env(config: ml_collections.ConfigDict) -> envs.MultiAgentEnv:
  """The env ``config.env`` describes (not wrapped); a ConfigError if it cannot be built."""
  e = config.env
  require(e.name in envs.REGISTRY, "env.name", f"{e.name!r} is not a registered env",
          "set --config.env.name to one of " + ", ".join(sorted(envs.REGISTRY)))
  require(e.num_agents >= 1, "env.num_agents", f"a team needs at least one agent, got "
          f"{e.num_agents}", "set --config.env.num_agents to 1 or more")
  try:
    return envs.make(e.name, **env_kwargs(config))
  except TypeError as err:  # a keyword the env's constructor does not take
    raise ConfigError("env.kwargs", f"{e.name} rejects {sorted(e.kwargs.to_dict())}: {err}",
                      "pass only arguments its constructor takes") from err
  except ValueError as err:
    raise ConfigError("env.num_agents", f"{e.name} cannot hold a team of {e.num_agents} with "
                      f"env.kwargs {e.kwargs.to_dict()}: {str(err).rstrip('.')}",
                      "choose a team size (or env.kwargs) the env supports") from err


def check_config(config: ml_collections.ConfigDict) -> envs.MultiAgentEnv:
  """Validates the CORD sections of ``config``; returns the env it describes.

  Raises:
    ConfigError: naming the first bad key (``roles.T_role`` 0, ``roles.num_roles`` < 1, an unknown
      ``env.name``, a team the env cannot hold, an unknown ``eval.partner`` policy, ...).
  """
  r, p, m = config.roles, config.ppo, config.model
  config_checks.require_choice(config, "roles.assign", roles_lib.ASSIGN_MODES)
  require(r.T_role >= 1, "roles.T_role", f"the controller must decide at least every step; got "
          f"{r.T_role}", "set --config.roles.T_role to a positive int (e.g. 8)")
  require(r.num_roles >= 1, "roles.num_roles", f"needs at least one role, got {r.num_roles}",
          "set --config.roles.num_roles to 1 or more (1 = no roles)")
  for key in ("alpha", "beta"):
    require(r[key] >= 0, f"roles.{key}", f"must be >= 0, got {r[key]}",
            f"set --config.roles.{key}=0 to switch it off")
  config_checks.require_choice(config, "model.core", ("mlp", "gru"))
  require(config.optim.schedule in ("linear", "constant"), "optim.schedule",
          f"{config.optim.schedule!r} is not one of ('linear', 'constant')",
          "set --config.optim.schedule=linear (anneal to 0) or =constant")
  for key in ("rollout_len", "updates_per_chunk", "num_epochs", "num_minibatches"):
    require(p[key] >= 1, f"ppo.{key}", f"must be >= 1, got {p[key]}",
            f"set --config.ppo.{key} to a positive int")
  for key in ("num_envs", "num_seeds"):
    require(config.env[key] >= 1, f"env.{key}", f"must be >= 1, got {config.env[key]}",
            f"set --config.env.{key} to a positive int")
  require(m.hidden >= 1, "model.hidden", f"must be >= 1, got {m.hidden}", "use e.g. 64")
  env = build_env(config)
  names = envs.scripted_policy_names(env)
  require(config.eval.partner in names, "eval.partner",
          f"{config.eval.partner!r} is not a scripted policy of {config.env.name}",
          "set --config.eval.partner to one of " + ", ".join(names))
  return env


def check_devices(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """The envs must split evenly over devices, and each device's share over minibatches."""
  e, p = config.env, config.ppo
  require(e.num_envs % num_devices == 0, "env.num_envs",
          f"{e.num_envs} envs do not split over {num_devices} devices",
          f"use a multiple of {num_devices}, or set --config.parallel.num_devices")
  local = e.num_envs // num_devices
  # A recurrent actor is trained on whole env sequences, a feed-forward one on single steps.
  units = local if config.model.core == "gru" else local * p.rollout_len
  require(units % p.num_minibatches == 0, "ppo.num_minibatches",
          f"{units} {'envs' if config.model.core == 'gru' else 'samples'} per device do not "
          f"split into {p.num_minibatches} minibatches",
          "choose a divisor of the per-device envs (GRU) or envs x rollout_len (MLP)")

