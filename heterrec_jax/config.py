"""HeterRec's config: the one validator, and the frozen config objects the models and losses take.

A run config (``configs/heterrec/defaults.py`` and the files built on it) is checked once, here:
``validate(config)`` raises a ``ConfigError`` naming the key, the problem and the fix, and returns
the config objects:

- ``HeterRecConfig`` or ``SequenceTransformerConfig`` (``model_config(config.model)``): every
  model setting resolved (``token_dim = 0`` -> ``d_model``, heads, MLP widths, dtypes), passed down
  the module tree as one ``config`` attribute, as in flax's ``examples/wmt/models.py``;
- ``LossConfig`` (``loss_config(config.loss, model=...)``) for ``objectives.make_loss_fn``.

The defaults of every key are plain data in ``configs/heterrec/defaults.py``.

Models and objectives trust these objects and do not check them again. What only the data can
tell (a field name the data set lacks, a catalogue of the wrong size) is checked where the data
meets the model (``models.get_model``, ``embedders.select_features``).
"""

from __future__ import annotations

from collections.abc import Mapping
import dataclasses
from typing import Any, Optional, Union

import jax.numpy as jnp
import ml_collections

from common import config_checks
from common import train_loop
from common.recsys import losses
from common.recsys.embedders import EmbedderConfig
from common.recsys.embedders import MULTI_TOKENS
from common.recsys.transformer import NORMS, TransformerConfig
from configs.heterrec import defaults

MODEL_NAMES = ("heterrec", "sasrec", "fusion_sasrec", "bert4rec")
MASKS = ("block_causal", "causal")
POOLINGS = ("last", "mean")
CANDIDATE_FUSIONS = ("concat", "sum", "id")
SEQUENCE_FUSIONS = ("sum", "concat")
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
OBJECTIVES = ("lmp", "cloze")
SAMPLERS = ("uniform", "popularity")
ConfigError = config_checks.ConfigError


@dataclasses.dataclass(frozen=True)
class HeterRecConfig:
  """HeterRec: HTFL tokens -> HCT -> item states (heterrec_jax/README.md).

  Attributes:
    field_names: the fields to tokenize; empty = every usable field of the data set.
    max_len: size of the position table (the longest sequence).
    d_model: item-level and scoring width.
    token_dim: token-level width.
    token_layers, token_heads, token_mlp_dim: the token-level transformer.
    item_layers, item_heads, item_mlp_dim: the item-level transformer.
    mask: token mask, ``block_causal`` or ``causal``.
    pooling: item block pooling, ``last`` or ``mean``.
    candidate_fusion: candidate embedding from the field tokens, ``concat``, ``sum`` or ``id``.
    multi_tokens: a multi-valued field in the token sequence: one ``pooled`` token, or one token
      per value (``per_value``; padding values masked). Candidates always pool.
    use_id: the id is a token.
    type_embedding, slot_embedding, position_embedding: HTFL's additive embeddings.
    dropout: token/residual/MLP dropout.
    attention_dropout: attention-weight dropout.
    norm: ``pre`` or ``post`` layer norm, both levels.
    dtype: computation dtype.
    param_dtype: parameter dtype.
  """

  field_names: tuple[str, ...] = ()
  max_len: int = 50
  d_model: int = 64
  token_dim: int = 64
  token_layers: int = 2
  token_heads: int = 2
  token_mlp_dim: int = 256
  item_layers: int = 2
  item_heads: int = 2
  item_mlp_dim: int = 256
  mask: str = "block_causal"
  pooling: str = "last"
  candidate_fusion: str = "concat"
  multi_tokens: str = "pooled"
  use_id: bool = True
  type_embedding: bool = True
  slot_embedding: bool = True
  position_embedding: bool = True
  dropout: float = 0.0
  attention_dropout: float = 0.0
  norm: str = "pre"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  name = "heterrec"

  @property
  def embedder(self) -> EmbedderConfig:
    return EmbedderConfig(dim=self.token_dim, use_id=self.use_id,
                          type_embedding=self.type_embedding, slot_embedding=self.slot_embedding,
                          multi_tokens=self.multi_tokens, dtype=self.dtype,
                          param_dtype=self.param_dtype)

  def _stack(self, layers: int, heads: int, mlp_dim: int) -> TransformerConfig:
    return TransformerConfig(layers=layers, heads=heads, mlp_dim=mlp_dim, dropout=self.dropout,
                             attention_dropout=self.attention_dropout, norm=self.norm,
                             dtype=self.dtype, param_dtype=self.param_dtype)

  @property
  def token_transformer(self) -> TransformerConfig:
    return self._stack(self.token_layers, self.token_heads, self.token_mlp_dim)

  @property
  def item_transformer(self) -> TransformerConfig:
    return self._stack(self.item_layers, self.item_heads, self.item_mlp_dim)


@dataclasses.dataclass(frozen=True)
class SequenceTransformerConfig:
  """One token per item, one transformer: SASRec, feature-fusion SASRec, BERT4Rec.

  Attributes:
    name: ``sasrec``, ``fusion_sasrec`` or ``bert4rec``.
    field_names: the fields to fuse into the item token (with ``use_fields``).
    use_fields: fuse the fields (``fusion_sasrec``; ``bert4rec`` with ``bert4rec_use_fields``).
    max_len: size of the position table.
    d_model: width.
    layers, heads, mlp_dim: the transformer.
    fusion: ``sum`` or ``concat`` (concatenation + projection) of the field tokens.
    bidirectional: attend to both sides (BERT4Rec) instead of causally.
    mask_token: add the mask-token row (id ``num_items + 1``) to the id table.
    dropout: embedding/residual dropout.
    attention_dropout: attention-weight dropout.
    norm: ``pre`` or ``post``; ``post`` with its embedding layer norm is RecBole's SASRec block.
    dtype: computation dtype.
    param_dtype: parameter dtype.
  """

  name: str = "sasrec"
  field_names: tuple[str, ...] = ()
  use_fields: bool = False
  max_len: int = 50
  d_model: int = 64
  layers: int = 2
  heads: int = 2
  mlp_dim: int = 256
  fusion: str = "sum"
  bidirectional: bool = False
  mask_token: bool = False
  dropout: float = 0.0
  attention_dropout: float = 0.0
  norm: str = "pre"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @property
  def embedder(self) -> EmbedderConfig:
    # Per-slot type/slot offsets are constant over items, so they would only add a bias here.
    return EmbedderConfig(dim=self.d_model, use_id=True, type_embedding=False,
                          slot_embedding=False, extra_ids=int(self.mask_token), dtype=self.dtype,
                          param_dtype=self.param_dtype)

  @property
  def transformer(self) -> TransformerConfig:
    return TransformerConfig(layers=self.layers, heads=self.heads, mlp_dim=self.mlp_dim,
                             dropout=self.dropout, attention_dropout=self.attention_dropout,
                             norm=self.norm, dtype=self.dtype, param_dtype=self.param_dtype)


ModelConfig = Union[HeterRecConfig, SequenceTransformerConfig]


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """The training objective (``configs/heterrec/defaults.py``, ``loss`` section)."""

  objective: str = "lmp"
  k: int = 1
  gamma: float = 1.0
  normalize: str = "weight"
  num_negatives: int = 0
  sampler: str = "uniform"
  logq_correction: bool = True
  mask_prob: float = 0.2
  mask_last_prob: float = 0.0
  softmax_chunk: int = 256


# -- the validator -------------------------------------------------------------------------------

def default_config() -> ml_collections.ConfigDict:
  """Every key the trainer reads (``configs/heterrec/defaults.py``)."""
  return defaults.get_default_config()


def validate(config: ml_collections.ConfigDict) -> tuple[ModelConfig, LossConfig]:
  """Checks a whole HeterRec run config; returns its model and loss config objects.

  Raises:
    ConfigError: naming the first unknown, missing, mistyped or bad key, and the fix.
  """
  train_loop.check_config(config)
  config_checks.check_against(config, default_config(),
                              sections=("model", "loss", "input", "eval"))
  config_checks.require(bool(config.data), "data", "is empty",
                        "start from a configs/heterrec/*.py file, which sets a data source")
  model = model_config(config.model)
  loss = loss_config(config.loss, model=config.model.name)
  max_len = config.model.max_len
  config_checks.require(0 <= config.input.stride <= max_len, "input.stride",
                        f"must be in [0, model.max_len = {max_len}], got {config.input.stride}",
                        "set --config.input.stride=0 (one window per user) or a value in "
                        "[1, model.max_len]")
  for key in ("input.pack_multiple", "eval.pack_multiple"):
    section, name = key.split(".")
    config_checks.require(config[section][name] >= 1, key,
                          f"must be >= 1, got {config[section][name]}",
                          f"set --config.{key}=8")
  config_checks.require(not (config.input.pack and loss.mask_last_prob > 0), "input.pack",
                        "packed rows cannot take loss.mask_last_prob > 0 (it masks the last item "
                        "of each row, which is then only the last packed window's)",
                        "set --config.input.pack=False, or --config.loss.mask_last_prob=0")
  config_checks.require(config.eval.chunk_size >= 0, "eval.chunk_size",
                        f"must be >= 0, got {config.eval.chunk_size}",
                        "set --config.eval.chunk_size=0 (all at once) or a positive int")
  return model, loss


def _section(name: str, given: Optional[Mapping[str, Any]]) -> ml_collections.ConfigDict:
  """``given`` (a whole section or some of its keys) over the defaults, checked key by key."""
  reference = default_config()
  if isinstance(given, ml_collections.ConfigDict):
    given = given.to_dict()
  merged = ml_collections.ConfigDict({name: {**reference[name].to_dict(), **dict(given or {})}})
  config_checks.check_against(merged, reference, sections=(name,))
  return merged[name]


def _choice(key: str, value: Any, choices) -> None:
  choices = tuple(choices)
  config_checks.require(value in choices, key, f"{value!r} is not one of {choices}",
                        f"set --config.{key}=" + "|".join(choices))


def _heads(key: str, level: str, width: int, heads: int) -> None:
  config_checks.require(heads >= 1 and width % heads == 0, key,
                        f"the {level}-level width {width} is not divisible by {heads} heads",
                        f"set --config.{key} to a divisor of {width}")


def model_config(model: Optional[Mapping[str, Any]] = None) -> ModelConfig:
  """A ``config.model`` section (missing keys take their defaults) -> its checked config object.

  Raises:
    ConfigError: an unknown key or value, a length below 1, widths not divisible by the heads.
  """
  c = _section("model", model)
  _choice("model.name", c.name, MODEL_NAMES)
  config_checks.require(c.max_len >= 1, "model.max_len",
                        f"must be >= 1 (the history length; a sequence needs at least one "
                        f"position), got {c.max_len}", "set --config.model.max_len=50")
  config_checks.require(c.d_model >= 1, "model.d_model", f"must be >= 1, got {c.d_model}",
                        "set --config.model.d_model=64")
  config_checks.require(c.mlp_ratio >= 1, "model.mlp_ratio", f"must be >= 1, got {c.mlp_ratio}",
                        "set --config.model.mlp_ratio=4")
  _choice("model.dtype", c.dtype, DTYPES)
  _choice("model.norm", c.norm, NORMS)
  for key in ("dropout", "attention_dropout"):
    config_checks.require(0.0 <= c[key] < 1.0, f"model.{key}", f"must be in [0, 1), got {c[key]}",
                          f"set --config.model.{key}=0.2")
  common = dict(field_names=tuple(c.fields), max_len=c.max_len, d_model=c.d_model,
                dropout=c.dropout, attention_dropout=c.attention_dropout, norm=c.norm,
                dtype=DTYPES[c.dtype])
  if c.name == "heterrec":
    token_dim = c.token_dim or c.d_model
    token_heads, item_heads = c.token_heads or c.heads, c.item_heads or c.heads
    _heads("model.token_heads" if c.token_heads else "model.heads", "token", token_dim,
           token_heads)
    _heads("model.item_heads" if c.item_heads else "model.heads", "item", c.d_model, item_heads)
    _choice("model.mask", c.mask, MASKS)
    _choice("model.pooling", c.pooling, POOLINGS)
    _choice("model.candidate_fusion", c.candidate_fusion, CANDIDATE_FUSIONS)
    _choice("model.multi_tokens", c.multi_tokens, MULTI_TOKENS)
    config_checks.require(
        c.use_id or c.candidate_fusion != "id", "model.candidate_fusion",
        "is 'id', but use_id=False leaves no id token to score with",
        "set --config.model.candidate_fusion=concat or sum, or --config.model.use_id=True")
    return HeterRecConfig(
        token_dim=token_dim, token_layers=c.token_layers, token_heads=token_heads,
        token_mlp_dim=c.mlp_ratio * token_dim, item_layers=c.item_layers, item_heads=item_heads,
        item_mlp_dim=c.mlp_ratio * c.d_model, mask=c.mask, pooling=c.pooling,
        candidate_fusion=c.candidate_fusion, multi_tokens=c.multi_tokens, use_id=c.use_id,
        type_embedding=c.type_embedding, slot_embedding=c.slot_embedding,
        position_embedding=c.position_embedding, **common)
  _heads("model.heads", "item", c.d_model, c.heads)
  _choice("model.fusion", c.fusion, SEQUENCE_FUSIONS)
  bert = c.name == "bert4rec"
  use_fields = c.name == "fusion_sasrec" or (bert and c.bert4rec_use_fields)
  return SequenceTransformerConfig(
      name=c.name, use_fields=use_fields, layers=c.item_layers, heads=c.heads,
      mlp_dim=c.mlp_ratio * c.d_model, fusion=c.fusion if use_fields else "sum",
      bidirectional=bert, mask_token=bert, **common)


def loss_config(loss: Optional[Mapping[str, Any]] = None, *, model: str = "heterrec") -> LossConfig:
  """A ``config.loss`` section (missing keys take their defaults) -> its checked config object.

  Args:
    loss: the section, or some of its keys.
    model: ``config.model.name``; the cloze objective needs BERT4Rec's mask token, and LMP a
      causal model.

  Raises:
    ConfigError: an unknown key or value, or an objective that does not fit the model.
  """
  c = _section("loss", loss)
  _choice("loss.objective", c.objective, OBJECTIVES)
  _choice("loss.sampler", c.sampler, SAMPLERS)
  _choice("loss.normalize", c.normalize, losses.NORMALIZATIONS)
  config_checks.require(c.k >= 1, "loss.k", f"must be >= 1, got {c.k}", "set --config.loss.k=1")
  config_checks.require(c.num_negatives >= 0, "loss.num_negatives",
                        f"must be >= 0, got {c.num_negatives}",
                        "set --config.loss.num_negatives=0 (full softmax) or a positive int")
  config_checks.require(c.softmax_chunk >= 0, "loss.softmax_chunk",
                        f"must be >= 0, got {c.softmax_chunk}",
                        "set --config.loss.softmax_chunk=256 (skip padding) or 0 (dense)")
  for key in ("mask_prob", "mask_last_prob"):
    config_checks.require(0.0 <= c[key] <= 1.0, f"loss.{key}", f"must be in [0, 1], got {c[key]}",
                          f"set --config.loss.{key} to a probability")
  if c.objective == "cloze":
    config_checks.require(model == "bert4rec", "loss.objective",
                          f"the cloze objective needs a model with a mask token, and {model!r} "
                          "has none", "set --config.model.name=bert4rec, or "
                          "--config.loss.objective=lmp")
  else:
    config_checks.require(model != "bert4rec", "loss.objective",
                          "LMP needs a causal model; bert4rec attends both ways and would see "
                          "its targets", "set --config.loss.objective=cloze")
  return LossConfig(**c.to_dict())
