"""The train state every method uses, and the optimizer built from ``config.optim``."""

from __future__ import annotations

from typing import Any

from flax.training import train_state
import jax
import ml_collections
import optax

from common import config_checks


class TrainState(train_state.TrainState):
  """Flax's TrainState (step, params, opt_state, apply_fn, tx) plus the run's base PRNG key.

  Per-step keys are ``fold_in(rng, step)``, so saving ``rng`` with the rest makes a resumed run
  draw exactly the numbers an uninterrupted one would.
  """
  rng: jax.Array = None


def create(apply_fn, params: Any, tx: optax.GradientTransformation, rng: jax.Array) -> TrainState:
  return TrainState.create(apply_fn=apply_fn, params=params, tx=tx, rng=rng)


def make_optimizer(optim: ml_collections.ConfigDict, num_steps: int) -> optax.GradientTransformation:
  """Adam/AdamW/SGD with linear warm-up, cosine or constant decay and optional clipping.

  Config keys (under ``optim``): ``name`` (adam|adamw|sgd), ``learning_rate``, ``weight_decay``,
  ``warmup_steps``, ``schedule`` (constant|cosine), ``grad_clip_norm`` (0 = off), ``b1``, ``b2``.
  """
  lr = optim.learning_rate
  if optim.schedule == "cosine":
    sched = optax.warmup_cosine_decay_schedule(0.0, lr, max(optim.warmup_steps, 1),
                                               max(num_steps, optim.warmup_steps + 1))
  elif optim.schedule == "constant":
    sched = (optax.linear_schedule(0.0, lr, optim.warmup_steps) if optim.warmup_steps
             else optax.constant_schedule(lr))
    if optim.warmup_steps:
      sched = optax.join_schedules([sched, optax.constant_schedule(lr)], [optim.warmup_steps])
  else:
    raise config_checks.ConfigError("optim.schedule", f"{optim.schedule!r} is unknown",
                                    "set --config.optim.schedule=constant or =cosine")
  if optim.name == "adam":
    tx = optax.adam(sched, b1=optim.b1, b2=optim.b2)
  elif optim.name == "adamw":
    tx = optax.adamw(sched, b1=optim.b1, b2=optim.b2, weight_decay=optim.weight_decay)
  elif optim.name == "sgd":
    tx = optax.sgd(sched, momentum=optim.b1 or None)
  else:
    raise config_checks.ConfigError("optim.name", f"{optim.name!r} is unknown",
                                    "set --config.optim.name=adam, adamw or sgd")
  if optim.grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(optim.grad_clip_norm), tx)
  return tx


def state_dict(state: Any) -> dict:
  """Every array of ``state`` as a nested dict keyed by field names, for orbax.

  The whole state is saved: every field of a ``TrainState`` subclass (cluster centroids, an RL
  runner's env and hidden states), optimizer state, RNG and step, and any other pytree (dicts,
  NamedTuples, flax or chex dataclasses), with leading seed or device axes as they are. A field
  list written by hand would silently drop a field a subclass adds; this cannot.
  """
  out: dict = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
    node = out
    keys = [_key_name(k) for k in path] or ["value"]
    for k in keys[:-1]:
      node = node.setdefault(k, {})
    node[keys[-1]] = leaf
  return out


def restore_from_dict(template: Any, saved: dict) -> Any:
  """``template`` (a state, or its ``jax.eval_shape``) with every array taken from ``saved``."""
  leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
  values = []
  for path, _ in leaves:
    node = saved
    for k in [_key_name(k) for k in path] or ["value"]:
      node = node[k]
    values.append(node)
  return jax.tree_util.tree_unflatten(treedef, values)


def _key_name(key) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)
