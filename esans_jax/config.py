"""ESANS's config: the one validator, and the frozen config objects the towers and samplers take.

``validate(config)`` checks a run config (``configs/esans/defaults.py`` and the files built on it)
before any data is read and returns ``(TwoTowerConfig, SamplerConfig)``; a ``ConfigError`` names
the key, the problem and the fix. What only the data can tell (K larger than the catalogue, a
modality the data set lacks, a field it does not have) is checked by ``check_data`` once the data
is loaded, before any model is built.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections

from common import config_checks
from common import train_loop
from configs.esans import defaults
from esans_jax import samplers

ConfigError = config_checks.ConfigError
USER_ENCODERS = ("transformer", "mean")
REPRESENTATIONS = ("multimodal", "tower", "both")
MODALITIES = ("text", "behaviour", "image")
SECTIONS = ("method", "data", "data_dir", "model", "mm", "sampler", "input", "eval", "export")


@dataclasses.dataclass(frozen=True)
class TwoTowerConfig:
  """The two towers (esans_jax/models.py).

  Attributes:
    dim: output width of both towers (unit vectors).
    token_dim: width of the item field tokens.
    hidden: the towers' MLP hidden width (0: a linear head).
    max_len: history items the user tower reads.
    user_encoder: ``transformer`` (blocks over the history, read at the last position) or
      ``mean`` (masked mean of the history).
    layers, heads, dropout: the user-tower transformer.
    field_names: item fields (empty: every usable one).
    user_field_names: user fields (empty: every usable one); unused without user features.
    use_user_features: the user tower reads the user's features.
    use_id: the item id is a token.
    use_mm: the item tower reads the projected multimodal vector.
    temperature: scores are cosine / temperature (the initial value when learned).
    learn_temperature: learn ``log(temperature)``.
  """

  dim: int = 64
  token_dim: int = 64
  hidden: int = 128
  max_len: int = 50
  user_encoder: str = "transformer"
  layers: int = 1
  heads: int = 2
  dropout: float = 0.1
  field_names: tuple[str, ...] = ()
  user_field_names: tuple[str, ...] = ()
  use_user_features: bool = True
  use_id: bool = True
  use_mm: bool = True
  temperature: float = 0.07
  learn_temperature: bool = False


def default_config() -> ml_collections.ConfigDict:
  return defaults.get_default_config()


def _choice(key: str, value: Any, choices) -> None:
  choices = tuple(choices)
  config_checks.require(value in choices, key, f"{value!r} is not one of {choices}",
                        f"set --config.{key}=" + "|".join(choices))


def _positive(config, key: str, fix_value, allow_zero: bool = False) -> None:
  section, name = key.split(".")
  value = config[section][name]
  ok = value >= 0 if allow_zero else value >= 1
  config_checks.require(ok, key, f"must be {'>= 0' if allow_zero else '>= 1'}, got {value}",
                        f"set --config.{key}={fix_value}")


def model_config(config: ml_collections.ConfigDict) -> TwoTowerConfig:
  m = config.model
  _choice("model.user_encoder", m.user_encoder, USER_ENCODERS)
  for key, fix in (("dim", 64), ("token_dim", 64), ("max_len", 50), ("heads", 2)):
    _positive(config, f"model.{key}", fix)
  for key in ("hidden", "layers"):
    _positive(config, f"model.{key}", 1, allow_zero=True)
  config_checks.require(m.token_dim % m.heads == 0, "model.heads",
                        f"the history width {m.token_dim} is not divisible by {m.heads} heads",
                        f"set --config.model.heads to a divisor of {m.token_dim}")
  config_checks.require(0.0 <= m.dropout < 1.0, "model.dropout",
                        f"must be in [0, 1), got {m.dropout}", "set --config.model.dropout=0.1")
  config_checks.require(m.temperature > 0, "model.temperature",
                        f"must be > 0, got {m.temperature}",
                        "set --config.model.temperature=0.07")
  return TwoTowerConfig(
      dim=m.dim, token_dim=m.token_dim, hidden=m.hidden, max_len=m.max_len,
      user_encoder=m.user_encoder, layers=m.layers, heads=m.heads, dropout=m.dropout,
      field_names=tuple(m.fields), user_field_names=tuple(m.user_fields),
      use_user_features=m.use_user_features, use_id=m.use_id, use_mm=m.use_mm,
      temperature=m.temperature, learn_temperature=m.learn_temperature)


def sampler_config(config: ml_collections.ConfigDict) -> samplers.SamplerConfig:
  """``config.sampler`` with its preset applied -> the checked ``SamplerConfig``."""
  s = config.sampler
  _choice("sampler.name", s.name, samplers.PRESETS)
  preset = samplers.PRESETS[s.name]
  values = {k: s[k] for k in ("in_batch", "num_uniform", "num_popularity", "hard_k", "msac",
                              "edis")}
  for key, value in preset.items():
    if value == -1:  # "on, with the configured size"
      continue
    values[key] = value
  _choice("sampler.edis", values["edis"], samplers.EDIS_MODES)
  for key in ("num_uniform", "num_popularity", "hard_k", "hard_pool", "m_c", "m_o",
              "refresh_every", "kmeans_iters"):
    _positive(config, f"sampler.{key}", 0, allow_zero=True)
  for key in ("k1", "k2"):
    _positive(config, f"sampler.{key}", 8)
  _choice("sampler.representation", s.representation, REPRESENTATIONS)
  config_checks.require(s.cluster_temperature > 0, "sampler.cluster_temperature",
                        f"must be > 0, got {s.cluster_temperature}",
                        "set --config.sampler.cluster_temperature=1.0")
  config_checks.require(s.beta_min <= s.beta_max, "sampler.beta_min",
                        f"{s.beta_min} > sampler.beta_max = {s.beta_max}",
                        "give a range with beta_min <= beta_max, e.g. 0.1 and 0.3")
  if values["hard_k"]:
    config_checks.require(values["hard_k"] <= s.hard_pool, "sampler.hard_k",
                          f"{values['hard_k']} > sampler.hard_pool = {s.hard_pool}",
                          "mine at most hard_pool items, or enlarge the pool")
  has_shared = values["in_batch"] or values["num_uniform"] or values["num_popularity"]
  config_checks.require(has_shared or values["hard_k"] or values["msac"], "sampler.name",
                        f"{s.name!r} with these switches draws no negatives at all",
                        "turn on in_batch, num_uniform, num_popularity, hard_k or msac")
  if values["edis"] != "none":
    config_checks.require(s.m_o >= 2 or values["edis"] == "hard", "sampler.m_o",
                          f"EDIS simple interpolation mixes 2..m_o negatives; m_o = {s.m_o}",
                          "set --config.sampler.m_o=5")
    config_checks.require(values["msac"] or has_shared, "sampler.edis",
                          "EDIS needs base negatives (MSAC's, or a shared pool)",
                          "turn on msac, in_batch or num_uniform")
    config_checks.require(values["msac"] or s.m_o >= 1, "sampler.m_o",
                          "EDIS without MSAC picks m_o base negatives from the shared pool",
                          "set --config.sampler.m_o=5")
  if values["msac"]:
    config_checks.require(s.m_c + s.m_o >= 1, "sampler.m_c", "MSAC with m_c = m_o = 0 draws "
                          "nothing", "set --config.sampler.m_c=2 and --config.sampler.m_o=5")
  return samplers.SamplerConfig(
      name=s.name, in_batch=bool(values["in_batch"]), num_uniform=int(values["num_uniform"]),
      num_popularity=int(values["num_popularity"]), hard_k=int(values["hard_k"]),
      hard_pool=int(s.hard_pool), msac=bool(values["msac"]), m_c=int(s.m_c), m_o=int(s.m_o),
      cluster_temperature=float(s.cluster_temperature), edis=values["edis"],
      beta_min=float(s.beta_min), beta_max=float(s.beta_max), renormalize=bool(s.renormalize),
      logq=bool(s.logq))


def validate(config: ml_collections.ConfigDict):
  """Checks a whole ESANS run config; returns ``(TwoTowerConfig, SamplerConfig)``.

  Raises:
    ConfigError: an unknown key, a value out of range, or settings that do not fit together.
  """
  train_loop.check_config(config)
  config_checks.check_against(config, default_config(), sections=SECTIONS)
  config_checks.require(bool(config.data), "data", "is empty",
                        "start from a configs/esans/*.py file, which sets a data source")
  model = model_config(config)
  sampler = sampler_config(config)
  for m in config.mm.modalities:
    _choice("mm.modalities", m, MODALITIES)
  needs_mm = model.use_mm or (sampler.msac and config.sampler.representation != "tower")
  config_checks.require(bool(config.mm.modalities) or not needs_mm, "mm.modalities",
                        "is empty, but the item tower (model.use_mm) or MSAC's clustering "
                        "(sampler.representation) reads the multimodal vectors",
                        "name at least one of text, behaviour, image; or set "
                        "--config.model.use_mm=False and --config.sampler.representation=tower")
  for key in ("text_dim", "behaviour_dim"):
    _positive(config, f"mm.{key}", 64)
  _positive(config, "input.min_history", 1, allow_zero=True)
  _positive(config, "eval.batch_size", 256)
  _positive(config, "eval.chunk_size", 0, allow_zero=True)
  for k in config.eval.ks:
    config_checks.require(int(k) >= 1, "eval.ks", f"cut-offs must be >= 1, got {k}",
                          "set --config.eval.ks='(10, 50, 200)'")
  return model, sampler


def check_data(config: ml_collections.ConfigDict, ds, sampler: samplers.SamplerConfig) -> None:
  """What only the data can tell, checked before any model is built.

  Raises:
    ConfigError: K1 or K2 larger than the number of items, hard_pool larger than it.
  """
  n = ds.num_items
  if sampler.msac:
    for key in ("k1", "k2"):
      k = config.sampler[key]
      config_checks.require(k <= n, f"sampler.{key}",
                            f"{k} clusters for a catalogue of {n} items",
                            f"set --config.sampler.{key} to at most {n} (e.g. {max(1, n // 64)})")
  if sampler.num_uniform or sampler.hard_k:
    config_checks.require(n >= 2, "data", f"the catalogue has {n} item(s)",
                          "negative sampling needs at least 2 items")
