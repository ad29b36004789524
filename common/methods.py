"""Which module trains which ``config.method``."""

from __future__ import annotations

import importlib

from common import config_checks

# method name -> module with ``train_and_evaluate(config, workdir)``.
REGISTRY = {
    "example": "common.example_task",
    "example_rl": "common.example_rl",
    "heterrec": "heterrec_jax.train",
    "esans": "esans_jax.train",
    "cord": "cord_jax.train",
}


def get_trainer(method: str):
  """The ``train_and_evaluate`` function of ``method``; a ConfigError if there is none."""
  return _module(method).train_and_evaluate


def get_evaluator(method: str):
  """``evaluate_workdir(config, workdir)`` of ``method`` (tests a run's best checkpoint)."""
  module = _module(method)
  if not hasattr(module, "evaluate_workdir"):
    raise config_checks.ConfigError(
        "method", f"{method!r} has no checkpoint evaluation ({REGISTRY[method]}."
        "evaluate_workdir)", "its train.py prints its final results itself")
  return module.evaluate_workdir


def _module(method: str):
  if method not in REGISTRY:
    raise config_checks.ConfigError("method", f"{method!r} is not a known method",
                                    "use one of " + ", ".join(sorted(REGISTRY)))
  try:
    module = importlib.import_module(REGISTRY[method])
  except ModuleNotFoundError as e:
    if e.name and REGISTRY[method].startswith(e.name):
      raise config_checks.ConfigError(
          "method", f"{method!r} has no trainer yet ({REGISTRY[method]} is not implemented)",
          "use one of the implemented methods, e.g. example") from e
    raise
  return module
