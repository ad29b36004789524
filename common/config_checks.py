"""Config validation with messages that name the key and the fix.

ml_collections already refuses unknown keys on a locked config, but its messages are bare
(``AttributeError: "'lr'"``). Everything here turns such mistakes into a ``ConfigError`` that says
which key, what is wrong, and what to type instead.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
from typing import Any, Iterable, Optional

import ml_collections


class ConfigError(ValueError):
  """A config mistake: ``key`` is the dotted key, ``fix`` what to do about it."""

  def __init__(self, key: str, problem: str, fix: str):
    self.key, self.problem, self.fix = key, problem, fix
    super().__init__(f"config key '{key}': {problem}. Fix: {fix}.")


def flatten(config: ml_collections.ConfigDict, prefix: str = "") -> dict[str, Any]:
  """``{'a.b': value}`` for every leaf of a (nested) ConfigDict."""
  out = {}
  for k, v in config.items():
    path = f"{prefix}{k}"
    if isinstance(v, (ml_collections.ConfigDict, dict)) and v:
      out.update(flatten(ml_collections.ConfigDict(v) if isinstance(v, dict) else v, path + "."))
    else:
      out[path] = v
  return out


# Keys a resumed run may change (a name ending in "." covers a section): the budget, how often it
# logs and checkpoints, the progress bar and the fault-injection switches do not make it another
# experiment (the validation interval does: early stopping counts evaluations).
RESUMABLE_KEYS = ("train.num_steps", "train.checkpoint_every", "train.log_every",
                  "train.progress_bar", "debug.")


def _json_leaves(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """``flatten`` after a JSON round trip, so a config compares equal to its saved ``config.json``."""
  return flatten(ml_collections.ConfigDict(json.loads(
      json.dumps(config.to_dict(), sort_keys=True, default=str))))


def save_run_config(config: ml_collections.ConfigDict, workdir: str, write: bool = True,
                    may_change: Iterable[str] = RESUMABLE_KEYS) -> None:
  """Saves ``config`` as ``workdir/config.json`` (+ ``config.py.txt``), refusing a changed resume.

  A workdir that already holds a ``config.json`` and a checkpoint belongs to a run made with that
  config; resuming it with different settings would silently mix two experiments in one
  checkpoint and one metrics log. Only the keys in ``may_change`` may differ. (Without a
  checkpoint nothing was trained yet, e.g. the config failed its checks, so it is overwritten.)
  Nothing is written before the check passes.

  Raises:
    ConfigError: naming the first key whose value differs, with both values.
  """
  from common import metric_writers  # pylint: disable=g-import-not-at-top  (it imports jax)
  path = os.path.join(workdir, "config.json")
  ckpt_dir = os.path.join(workdir, "checkpoints")
  trained = os.path.isdir(ckpt_dir) and bool(os.listdir(ckpt_dir))
  if trained and os.path.exists(path):
    with open(path) as f:
      try:
        saved = flatten(ml_collections.ConfigDict(json.load(f)))
      except json.JSONDecodeError as e:
        raise ConfigError("config.json", f"{path} is not valid JSON ({e})",
                          "delete it, or use a new workdir") from e
    new = _json_leaves(config)
    allowed = tuple(may_change)
    changed = sorted(k for k in set(saved) | set(new)
                     if not any(k == a or (a.endswith(".") and k.startswith(a)) for a in allowed)
                     and saved.get(k, "<absent>") != new.get(k, "<absent>"))
    if changed:
      k = changed[0]
      others = f" (and {len(changed) - 1} more: {', '.join(changed[1:4])})" if len(changed) > 1 else ""
      raise ConfigError(
          k, f"the run in {workdir} was made with {saved.get(k, '<absent>')!r}, this config has "
          f"{new.get(k, '<absent>')!r}{others}",
          "resume with the run's own settings, or start the new experiment in a new workdir")
  if write:
    metric_writers.atomic_write_text(path, json.dumps(config.to_dict(), indent=2, sort_keys=True,
                                                      default=str))
    metric_writers.atomic_write_text(os.path.join(workdir, "config.py.txt"), str(config))


def _suggest(key: str, known: Iterable[str]) -> str:
  known = sorted(known)
  parent, _, leaf = key.rpartition(".")
  siblings = [k for k in known if k.rpartition(".")[0] == parent]
  # Abbreviations (lr -> learning_rate) first, then spelling (batchsize -> batch_size).
  close = [s for s in siblings if "".join(w[0] for w in s.rpartition(".")[2].split("_")) == leaf]
  close = close or difflib.get_close_matches(key, siblings or known, n=1, cutoff=0.6)
  hint = f"did you mean '{close[0]}'?" if close else "remove it or check its spelling"
  if parent and siblings:
    hint += f" Keys under '{parent}': " + ", ".join(s[len(parent) + 1:] for s in siblings)
  return hint


def _article(word: str) -> str:
  return ("an " if word[0] in "aeiou" else "a ") + word


def _type_ok(value: Any, expected: Any) -> bool:
  if expected is None or value is None:
    return True
  if isinstance(expected, bool) or isinstance(value, bool):
    return isinstance(value, bool) == isinstance(expected, bool)
  if isinstance(expected, float):
    return isinstance(value, (int, float))
  if isinstance(expected, (tuple, list)):
    return isinstance(value, (tuple, list))
  return isinstance(value, type(expected))


def check_against(config: ml_collections.ConfigDict,
                  reference: ml_collections.ConfigDict,
                  sections: Optional[Iterable[str]] = None) -> None:
  """Checks that ``config`` has the keys and value types of ``reference``.

  Args:
    config: the config to check (e.g. one a user built in Python).
    reference: a config with every allowed key and a default of the right type.
    sections: only check keys under these top-level sections (default: all).

  Raises:
    ConfigError: naming the first unknown, missing or mistyped key.
  """
  got, want = flatten(config), flatten(reference)
  def keep(k):
    return sections is None or k.split(".", 1)[0] in sections
  for k in sorted(got):
    if keep(k) and k not in want and not any(k.startswith(w + ".") for w in want):
      raise ConfigError(k, "unknown key", _suggest(k, want))
  for k in sorted(want):
    if keep(k) and k not in got and not any(g.startswith(k + ".") for g in got):
      raise ConfigError(k, "missing", f"add it (default: {want[k]!r})")
  for k, v in got.items():
    if keep(k) and k in want and not _type_ok(v, want[k]):
      raise ConfigError(k, f"expects {type(want[k]).__name__}, got "
                        f"{type(v).__name__} {v!r}", f"set --config.{k}=<{type(want[k]).__name__}>"
                        f" (default {want[k]!r})")


def require(cond: bool, key: str, problem: str, fix: str) -> None:
  if not cond:
    raise ConfigError(key, problem, fix)


def require_choice(config: ml_collections.ConfigDict, key: str, choices: Iterable[str]) -> None:
  value = flatten(config).get(key)
  choices = tuple(choices)
  require(value in choices, key, f"{value!r} is not one of {choices}",
          f"set --config.{key}=" + "|".join(choices))


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  """Loads ``path/to/config.py[:arg]`` the way ``config_flags`` does (for diagnostics)."""
  path, _, arg = spec.partition(":")
  if not os.path.exists(path):
    raise ConfigError("--config", f"file {path} does not exist",
                      "pass --config=configs/<method>/<exp>.py[:arg]")
  if os.path.isdir(path):
    raise ConfigError("--config", f"{path} is a directory, not a config file",
                      "pass --config=configs/<method>/<exp>.py[:arg]")
  mod_spec = importlib.util.spec_from_file_location("_cfg_diag", path)
  module = importlib.util.module_from_spec(mod_spec)
  mod_spec.loader.exec_module(module)
  try:
    return module.get_config(arg) if arg else module.get_config()
  except (ValueError, KeyError, TypeError) as e:
    raise ConfigError("--config", f"{spec}: {str(e).rstrip('.')}",
                      "use one of the arguments the config file's docstring lists") from e


def diagnose_overrides(argv: list[str]) -> Optional[ConfigError]:
  """Finds the bad ``--config.key=value`` override in ``argv``, if any.

  Used when absl's flag parsing failed, to replace its terse message with one that names the key,
  the problem and the fix.
  """
  spec = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
  if spec is None:
    return None
  try:
    config = load_config_file(spec)
  except ConfigError as e:
    return e
  known = flatten(config)
  for arg in argv:
    if not arg.startswith("--config."):
      continue
    key, has_value, raw = arg[len("--config."):].partition("=")
    if key not in known:
      parent_is_leaf = any(key.startswith(k + ".") for k in known)
      if not parent_is_leaf:
        return ConfigError(key, f"unknown key in {arg}", _suggest(key, known))
      continue
    default = known[key]
    if has_value and default is not None and not isinstance(default, str):
      try:
        if isinstance(default, bool):
          if raw.lower() not in ("true", "false", "1", "0"):
            raise ValueError(raw)
        elif isinstance(default, (int, float)):
          type(default)(raw)
      except ValueError:
        return ConfigError(key, f"expects {type(default).__name__}, got {raw!r}",
                           f"pass {_article(type(default).__name__)}, e.g. --config.{key}={default!r}")
  return None


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing for the scripts, with config mistakes reported as key + problem + fix.

  Pass it as ``app.run(main, flags_parser=config_checks.parse_flags)``: an unknown key, a value
  of the wrong type or a missing config file exits with status 2 and one line naming them.
  """
  import sys  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  for spec in (a.split("=", 1)[1] for a in argv if a.startswith("--config=")):
    path = spec.partition(":")[0]
    if not os.path.isfile(path):
      problem = "is a directory, not a config file" if os.path.isdir(path) else "does not exist"
      error = ConfigError("--config", f"{path} {problem}",
                          "pass --config=configs/<method>/<exp>.py[:arg]")
      sys.stderr.write(f"Error: {error}\n")
      sys.exit(2)
  try:
    return flags.FLAGS(argv)
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError) as e:
    diagnosis = diagnose_overrides(argv)
    sys.stderr.write(f"Error: {diagnosis or e}\n")
    sys.exit(2)

