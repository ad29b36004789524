"""CORD's vectorised multi-agent environments, all behind one Jumanji-style interface.

  from cord_jax import envs
  env = envs.AutoResetWrapper(envs.make("resource_collection", num_agents=4))
  state, timestep = jax.vmap(env.reset)(jax.random.split(key, 1024))
  state, timestep = jax.vmap(env.step)(state, actions)  # actions: int32 (1024, 4)

Registered names for `make`:
  resource_collection  our heterogeneous-team resource collection (MPE-style, continuous)
  foraging             our cooperative level-based foraging (configurable team composition)
  jumanji_lbf          Jumanji's LevelBasedForaging, adapted
  jumanji_rware        Jumanji's RobotWarehouse, adapted
  jaxmarl_mpe          JaxMARL MPE_simple_spread_v3, adapted (needs the `bench` extra)
  jaxmarl_smax         JaxMARL HeuristicEnemySMAX, adapted (needs the `bench` extra)
See docs/cord_envs.md for the observation, state, action and reward definitions.
"""

from typing import Any, Callable, Dict

from cord_jax.envs.core import MultiAgentEnv
from cord_jax.envs.core import Observation
from cord_jax.envs.core import validate_batched_timestep
from cord_jax.envs.core import validate_timestep
from cord_jax.envs.foraging import CooperativeForaging
from cord_jax.envs.foraging import ForagingState
from cord_jax.envs.jumanji_adapters import JumanjiLBFAdapter
from cord_jax.envs.jumanji_adapters import JumanjiWarehouseAdapter
from cord_jax.envs.rendering import render_rgb
from cord_jax.envs.rendering import save_gif
from cord_jax.envs.rendering import save_png
from cord_jax.envs.resource_collection import AgentType
from cord_jax.envs.resource_collection import DEFAULT_AGENT_TYPES
from cord_jax.envs.resource_collection import ResourceCollection
from cord_jax.envs.resource_collection import ResourceCollectionState
from cord_jax.envs.scripted import make_scripted_policy
from cord_jax.envs.scripted import mix_policies
from cord_jax.envs.scripted import random_policy
from cord_jax.envs.scripted import scripted_policy_names
from cord_jax.envs.validation import checkify_step
from cord_jax.envs.wrappers import AutoResetState
from cord_jax.envs.wrappers import AutoResetWrapper
from cord_jax.envs.wrappers import Policy
from cord_jax.envs.wrappers import rollout
from cord_jax.envs.wrappers import unwrap_env
from cord_jax.envs.wrappers import unwrap_state


def _jaxmarl(env_id: str, **defaults: Any) -> Callable[..., MultiAgentEnv]:
  def build(**kwargs: Any) -> MultiAgentEnv:
    # Imported here so that `import cord_jax.envs` never needs JaxMARL.
    from cord_jax.envs.jaxmarl_adapter import JaxMARLAdapter  # pylint: disable=g-import-not-at-top
    return JaxMARLAdapter(env_id, **{**defaults, **kwargs})
  return build


REGISTRY: Dict[str, Callable[..., MultiAgentEnv]] = {
    "resource_collection": ResourceCollection,
    "foraging": CooperativeForaging,
    "jumanji_lbf": JumanjiLBFAdapter,
    "jumanji_rware": JumanjiWarehouseAdapter,
    "jaxmarl_mpe": _jaxmarl("MPE_simple_spread_v3"),
    "jaxmarl_smax": _jaxmarl("HeuristicEnemySMAX", scenario="3m"),
}


def make(name: str, **kwargs: Any) -> MultiAgentEnv:
  """Builds a registered env by name; keyword arguments go to its constructor."""
  if name not in REGISTRY:
    raise ValueError(f"unknown env {name!r}; registered: {sorted(REGISTRY)}.")
  return REGISTRY[name](**kwargs)


__all__ = [
    "AgentType", "AutoResetState", "AutoResetWrapper", "CooperativeForaging",
    "DEFAULT_AGENT_TYPES", "ForagingState", "JumanjiLBFAdapter", "JumanjiWarehouseAdapter",
    "MultiAgentEnv", "Observation", "Policy", "REGISTRY", "ResourceCollection",
    "ResourceCollectionState", "checkify_step", "make", "make_scripted_policy", "mix_policies",
    "random_policy", "render_rgb", "rollout", "save_gif", "save_png", "scripted_policy_names",
    "unwrap_env", "unwrap_state", "validate_batched_timestep", "validate_timestep",
]
