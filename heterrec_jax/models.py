"""HeterRec and its baselines (SASRec, feature-fusion SASRec, BERT4Rec) behind one interface.

Every model here is a Flax Linen module with

* ``__call__(batch, features, train=False) -> [B, L, d_model]``: the state after each position
  (zero at padding positions). ``batch["item_ids"]`` is int32 ``[B, L]``, 0 = padding (anywhere;
  left padding is the expected layout); BERT4Rec's inputs may hold its mask token
  ``num_items + 1``. Packed rows (several sequences in one row, ``common.recsys.packing``) add
  ``batch["segment_ids"]`` (attention stays inside a segment) and ``batch["positions"]`` (each
  item's position as in its own left-padded row), so a packed row computes what its sequences
  would alone.
* ``item_embeddings(features, ids) -> [*ids.shape, d_model]``: candidate embeddings; a score is
  ``state . embedding``.

Each takes its settings as one frozen ``config`` (``config.HeterRecConfig`` or
``config.SequenceTransformerConfig``, from ``config.model_config``) and the data-dependent
``num_items`` and ``fields``. ``features`` maps each field name in ``model.fields`` to its
catalogue array (see ``embedders.select_features``); SASRec needs none. Build models with
``get_model``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from common import config_checks
from common.data.schema import FieldSpec
from common.recsys import embedders
from common.recsys import transformer
from heterrec_jax import hct
from heterrec_jax import htfl
from heterrec_jax.config import HeterRecConfig
from heterrec_jax.config import ModelConfig
from heterrec_jax.config import SequenceTransformerConfig

Array = Any


class HeterRec(nn.Module):
  """HTFL tokens -> HCT -> item states, scored against fused field-token embeddings.

  Attributes:
    config: the model's settings.
    num_items: number of real items.
    fields: the feature fields, one token each after the id token (a multi-valued field one
      token per value with ``config.multi_tokens = "per_value"``).
  """

  config: HeterRecConfig
  num_items: int
  fields: tuple[FieldSpec, ...] = ()

  mask_token_id = None  # causal: never fed a mask token (see ItemSequenceTransformer)

  @property
  def max_len(self) -> int:
    return self.config.max_len

  def setup(self):
    c = self.config
    self.htfl = htfl.HTFL(c, self.num_items, self.fields)
    self.hct = hct.HCT(c, num_slots=self.htfl.num_slots)
    self.candidate = embedders.TokenFusion(mode=c.candidate_fusion, out_dim=c.d_model,
                                           dtype=c.dtype, param_dtype=c.param_dtype)

  def __call__(self, batch: Mapping[str, Array], features: Mapping[str, Array],
               train: bool = False) -> Array:
    """States ``[B, L, d_model]`` after each item of ``batch["item_ids"] [B, L]``."""
    ids = jnp.asarray(batch["item_ids"], jnp.int32)
    valid = ids != 0
    tokens = self.htfl(ids, features, train, batch.get("positions"))
    token_valid = self.htfl.token_valid(ids, features) if self.htfl.has_padding_slots else None
    h = self.hct(tokens, valid, train, token_valid, batch.get("segment_ids"))
    if self.is_initializing():
      # init only runs __call__; the candidate fusion's parameters must exist too.
      self.item_embeddings(features, ids)
    return jnp.where(valid[..., None], h, 0).astype(self.config.dtype)

  def item_embeddings(self, features: Mapping[str, Array], ids: Array) -> Array:
    """Candidate embeddings ``[*ids.shape, d_model]``: the fusion of each item's field tokens."""
    return self.candidate(self.htfl.item_tokens(ids, features))


class ItemSequenceTransformer(nn.Module):
  """One token per item, one transformer: SASRec, feature-fusion SASRec and BERT4Rec.

  The item token is the fusion of its field tokens (only the id for SASRec) and is tied to the
  candidate embedding, as in SASRec. ``config.bidirectional`` with ``config.mask_token`` gives
  BERT4Rec: id ``num_items + 1`` is the learned mask token.

  Attributes:
    config: the model's settings.
    num_items: number of real items.
    fields: feature fields fused into the item token (empty for ids only).
  """

  config: SequenceTransformerConfig
  num_items: int
  fields: tuple[FieldSpec, ...] = ()

  @property
  def max_len(self) -> int:
    return self.config.max_len

  @property
  def mask_token_id(self) -> Optional[int]:
    return self.num_items + 1 if self.config.mask_token else None

  def setup(self):
    c = self.config
    self.embedder = embedders.FieldEmbedder(c.embedder, self.num_items, self.fields)
    self.fuse = embedders.TokenFusion(mode=c.fusion, out_dim=c.d_model, dtype=c.dtype,
                                      param_dtype=c.param_dtype)
    self.position = nn.Embed(c.max_len, c.d_model, dtype=c.dtype, param_dtype=c.param_dtype,
                             embedding_init=embedders.embed_init)
    self.drop = nn.Dropout(c.dropout)
    if c.norm == "post":
      self.input_norm = nn.LayerNorm(dtype=c.dtype, param_dtype=c.param_dtype)
    self.encoder = transformer.Transformer(c.transformer)

  def __call__(self, batch: Mapping[str, Array], features: Mapping[str, Array],
               train: bool = False) -> Array:
    """States ``[B, L, d_model]`` for ``batch["item_ids"] [B, L]`` (mask tokens allowed)."""
    c = self.config
    ids = jnp.asarray(batch["item_ids"], jnp.int32)
    embedders.check_sequence_length(ids, c.max_len)
    valid = ids != 0
    positions = batch.get("positions")
    positions = jnp.arange(ids.shape[1])[None] if positions is None else positions
    x = self.item_embeddings(features, ids) + self.position(positions)
    if c.norm == "post":
      x = self.input_norm(x)
    x = self.drop(x, deterministic=not train)
    mask = transformer.item_attention_mask(valid, causal=not c.bidirectional,
                                           segment_ids=batch.get("segment_ids"))
    h = self.encoder(x, mask, train)
    return jnp.where(valid[..., None], h, 0).astype(c.dtype)

  def item_embeddings(self, features: Mapping[str, Array], ids: Array) -> Array:
    """Item tokens ``[*ids.shape, d_model]``, which are also the candidate embeddings."""
    return self.fuse(self.embedder(ids, features))


def get_model(config: ModelConfig, *, num_items: int,
              field_specs: Sequence[FieldSpec] = ()) -> nn.Module:
  """Builds the model of a config object for a catalogue.

  Args:
    config: from ``config.model_config`` (or ``config.validate``).
    num_items: number of real items (ids ``1..num_items``).
    field_specs: the data set's item fields.

  Returns:
    An unbound Flax module (``HeterRec`` or ``ItemSequenceTransformer``).

  Raises:
    ConfigError: a field the data set does not have or cannot embed, or a model that needs
      feature fields on a data set without any (what only the data can tell).
    ValueError: an empty catalogue.
  """
  if num_items < 1:
    raise ValueError(f"num_items is {num_items}; the catalogue needs at least one item.")
  # Resolve the names for every model, so a typo fails even where the fields go unused.
  try:
    fields = embedders.resolve_fields(field_specs, config.field_names)
  except ValueError as e:
    raise config_checks.ConfigError(
        "model.fields", str(e).rstrip("."),
        "name fields of this data set, or leave model.fields empty for every usable one") from e
  if isinstance(config, HeterRecConfig):
    config_checks.require(config.use_id or bool(fields), "model.use_id",
                          "is False, but the data set has no feature fields to make tokens of",
                          "set --config.model.use_id=True")
    return HeterRec(config, num_items, fields)
  config_checks.require(config.name != "fusion_sasrec" or bool(fields), "model.name",
                        "fusion_sasrec needs at least one feature field; the data set has none",
                        "use --config.model.name=sasrec, or a data set with item features")
  return ItemSequenceTransformer(config, num_items, fields if config.use_fields else ())


def catalogue_embeddings(model: nn.Module, variables: Mapping[str, Any],
                         features: Mapping[str, Array], *, chunk_size: int = 0) -> Array:
  """Embeddings of the whole catalogue, ``[num_items + 1, d_model]`` (row 0 = padding item).

  Args:
    model: a model from ``get_model``.
    variables: its variables (``{"params": ...}``).
    features: the catalogue features.
    chunk_size: if positive, compute ``chunk_size`` items at a time under ``lax.map`` so the
      intermediate field tokens of the whole catalogue never live at once.

  Returns:
    The candidate embeddings; jittable.
  """
  n = model.num_items + 1

  def embed(ids):
    return model.apply(variables, features, ids, method="item_embeddings")

  if chunk_size <= 0 or chunk_size >= n:
    return embed(jnp.arange(n))
  num_chunks = -(-n // chunk_size)
  ids = jnp.arange(num_chunks * chunk_size).reshape(num_chunks, chunk_size)
  out = jax.lax.map(embed, jnp.where(ids < n, ids, 0))
  return out.reshape(num_chunks * chunk_size, -1)[:n]


def append_mask_token(item_ids: Array, mask_id: int) -> Array:
  """BERT4Rec's inference input: the mask token placed after the last item of each row.

  A row whose last position is taken (left padding, or full) is shifted left by one, dropping its
  oldest position; otherwise the mask goes right after the last non-padding item.
  """
  length = item_ids.shape[1]
  pos = jnp.arange(length)
  last = jnp.max(jnp.where(item_ids != 0, pos, -1), axis=1)
  shifted = jnp.concatenate([item_ids[:, 1:], jnp.full_like(item_ids[:, :1], mask_id)], axis=1)
  placed = jnp.where(pos[None] == (last + 1)[:, None], mask_id, item_ids)
  return jnp.where((last == length - 1)[:, None], shifted, placed)


def last_valid_state(hidden: Array, item_ids: Array) -> Array:
  """``hidden [B, L, d]`` at each row's last non-padding position -> ``[B, d]``."""
  pos = jnp.arange(item_ids.shape[1])
  last = jnp.maximum(jnp.max(jnp.where(item_ids != 0, pos, -1), axis=1), 0)
  return jnp.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]


def user_embeddings(model: nn.Module, variables: Mapping[str, Any], batch: Mapping[str, Array],
                    features: Mapping[str, Array]) -> Array:
  """The vector that scores the next item for each history in ``batch``, ``[B, d_model]``.

  For BERT4Rec the mask token is appended first and its output is the user vector. A history
  shorter than the model's length (evaluation's ``L`` against training windows of ``L + 1``) gets
  one padding column on the right first, so the mask lands where training windows hold their
  most recent item (position ``L``), after all ``L`` history items; without it the mask sat at
  position ``L - 1``, which training almost always shows with an item to its right.
  """
  ids = jnp.asarray(batch["item_ids"], jnp.int32)
  if model.mask_token_id is not None:
    if ids.shape[1] < model.max_len:
      ids = jnp.concatenate([ids, jnp.zeros_like(ids[:, :1])], axis=1)
    ids = append_mask_token(ids, model.mask_token_id)
  hidden = model.apply(variables, {"item_ids": ids}, features, train=False)
  return last_valid_state(hidden, ids)


def towers(model: nn.Module):
  """``(user_fn, item_fn)`` of ``model`` for ``common.recsys.evaluation``.

  ``user_fn(params, features, batch) -> [B, d]`` encodes ``batch["history_ids"]``
  (``user_embeddings``); ``item_fn(params, features, ids) -> [*ids.shape, d]`` embeds candidates.
  A batch of packed histories (``common.recsys.packing.pack_histories``: ``segment_ids``,
  ``positions``, ``user_row``, ``user_col``; causal models only) is encoded row by row and each
  user's vector read at its last item.
  """
  def user_fn(params, features, batch):
    if "user_row" in batch:
      rows = {k: jnp.asarray(batch[k], jnp.int32) for k in ("segment_ids", "positions")}
      hidden = model.apply({"params": params}, {"item_ids": batch["history_ids"], **rows},
                           features, train=False)
      return hidden[batch["user_row"], batch["user_col"]]
    return user_embeddings(model, {"params": params}, {"item_ids": batch["history_ids"]},
                           features)

  def item_fn(params, features, ids):
    return model.apply({"params": params}, features, ids, method="item_embeddings")

  return user_fn, item_fn
