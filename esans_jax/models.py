"""ESANS's two towers (Flax Linen): a user tower over the behaviour history, an item tower.

Item tower: the item's field tokens (its id and features, ``common.recsys.embedders``) fused by a
concatenation and a projection, plus the projected multimodal vector (``features["mm"]``, the fused
text/behaviour/image vector of ``esans_jax.modalities``), then an MLP and L2 normalisation.

User tower: the history items' pre-head item representations (shared with the item tower, as
SASRec shares its item table), with position embeddings, through a small pre-LN transformer read at
the newest position (``user_encoder="transformer"``) or their masked mean (``"mean"``); the user's
own features (categorical/bucketized fields of the data set, never the user id) are fused in; an
MLP and L2 normalisation.

A score is ``u . e / temperature``: the cosine of the two unit vectors over a fixed or learned
temperature. ``towers(model)`` gives the ``user_fn``/``item_fn`` pair that the shared sharded
evaluation (``common.recsys.evaluation``) and the export read.
"""

from __future__ import annotations

from collections.abc import Mapping
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from common.data.schema import FieldSpec
from common.recsys import embedders
from common.recsys import transformer
from esans_jax.config import TwoTowerConfig

Array = Any
MM_KEY = "mm"


def l2_normalize(x: Array) -> Array:
  x = x.astype(jnp.float32)
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1, keepdims=True), 1e-12))


class Head(nn.Module):
  """``Dense(hidden) -> gelu -> Dense(out)`` (``hidden = 0``: one ``Dense(out)``)."""

  hidden: int
  out: int

  @nn.compact
  def __call__(self, x: Array) -> Array:
    if self.hidden:
      x = nn.gelu(nn.Dense(self.hidden, name="hidden")(x))
    return nn.Dense(self.out, name="out")(x)


class TwoTower(nn.Module):
  """The two towers.

  Attributes:
    config: the tower settings.
    num_items: real items ``1..num_items`` (0 = padding).
    fields: item feature fields (``embedders.resolve_fields``).
    num_users: real users ``1..num_users``.
    user_fields: user feature fields (empty: none).
    mm_dim: width of ``features["mm"]`` (0: the item tower reads no multimodal vector).
  """

  config: TwoTowerConfig
  num_items: int
  fields: tuple[FieldSpec, ...] = ()
  num_users: int = 0
  user_fields: tuple[FieldSpec, ...] = ()
  mm_dim: int = 0

  def setup(self):
    c = self.config
    self.has_tokens = c.use_id or bool(self.fields)
    if not self.has_tokens and not self.mm_dim:
      raise ValueError("The item tower has nothing to read: model.use_id=False, no item fields "
                       "and no multimodal vector. Turn on model.use_id or model.use_mm.")
    if self.has_tokens:
      self.item_embedder = embedders.FieldEmbedder(
          embedders.EmbedderConfig(dim=c.token_dim, use_id=c.use_id), self.num_items,
          tuple(self.fields), name="item_embedder")
      self.item_fusion = embedders.TokenFusion("concat", c.token_dim, name="item_fusion")
    if self.mm_dim:
      self.mm_proj = nn.Dense(c.token_dim, name="mm_proj")
    self.item_head = Head(c.hidden, c.dim, name="item_head")
    if c.user_encoder == "transformer":
      self.positions = nn.Embed(c.max_len, c.token_dim,
                                embedding_init=embedders.embed_init, name="positions")
      self.encoder = transformer.Transformer(transformer.TransformerConfig(
          layers=c.layers, heads=c.heads, mlp_dim=4 * c.token_dim, dropout=c.dropout,
          attention_dropout=c.dropout, norm="pre"), name="encoder")
    self.dropout = nn.Dropout(c.dropout)
    if self.user_fields:
      self.user_embedder = embedders.FieldEmbedder(
          embedders.EmbedderConfig(dim=c.token_dim, use_id=False), self.num_users,
          tuple(self.user_fields), name="user_embedder")
    self.user_head = Head(c.hidden, c.dim, name="user_head")
    if c.learn_temperature:
      self.log_temperature = self.param(
          "log_temperature", lambda _: jnp.asarray(math.log(c.temperature), jnp.float32))

  def item_repr(self, ids: Array, features: Mapping[str, Array]) -> Array:
    """The pre-head item representation ``[*ids.shape, token_dim]`` (also the history tokens)."""
    out = 0.0
    if self.has_tokens:
      out = self.item_fusion(self.item_embedder(ids, features))
    if self.mm_dim:
      out = out + self.mm_proj(jnp.take(features[MM_KEY], ids, axis=0))
    return out

  def embed_items(self, ids: Array, features: Mapping[str, Array]) -> Array:
    """Unit item vectors ``[*ids.shape, dim]``."""
    return l2_normalize(self.item_head(self.item_repr(ids, features)))

  def embed_users(self, history: Array, user_ids: Array, features: Mapping[str, Array],
                  user_features: Mapping[str, Array], train: bool = False) -> Array:
    """Unit user vectors ``[B, dim]`` from left-padded ``history [B, L]`` and ``user_ids [B]``."""
    c = self.config
    history = history[:, -c.max_len:]
    valid = history > 0
    x = self.item_repr(history, features)
    if c.user_encoder == "transformer":
      x = x + self.positions(jnp.arange(history.shape[1]) + c.max_len - history.shape[1])
      x = self.dropout(x, deterministic=not train)
      x = self.encoder(x, transformer.item_attention_mask(valid, causal=True), train)
      x = x[:, -1]  # left-padded: the newest item is last
    else:
      w = valid.astype(x.dtype)[..., None]
      x = jnp.sum(x * w, axis=1) / jnp.maximum(jnp.sum(w, axis=1), 1.0)
    if self.user_fields:
      u = jnp.sum(self.user_embedder(user_ids, user_features), axis=-2)
      x = jnp.concatenate([x, u], axis=-1)
    return l2_normalize(self.user_head(self.dropout(x, deterministic=not train)))

  def temperature(self) -> Array:
    if self.config.learn_temperature:
      return jnp.clip(jnp.exp(self.log_temperature), 0.01, 1.0)
    return jnp.asarray(self.config.temperature, jnp.float32)

  def __call__(self, history: Array, user_ids: Array, positive_ids: Array,
               features: Mapping[str, Array], user_features: Mapping[str, Array],
               train: bool = False) -> tuple[Array, Array, Array]:
    """``(users, positives, temperature)``: every parameter is created by one call."""
    users = self.embed_users(history, user_ids, features, user_features, train)
    return users, self.embed_items(positive_ids, features), self.temperature()


def towers(model: TwoTower):
  """``(user_fn, item_fn)`` over ``consts = {"features", "user_features"}`` for evaluation."""
  def user_fn(params, consts, batch):
    return model.apply({"params": params}, batch["history_ids"], batch["user_ids"],
                       consts["features"], consts["user_features"],
                       method=TwoTower.embed_users)

  def item_fn(params, consts, ids):
    return model.apply({"params": params}, ids, consts["features"], method=TwoTower.embed_items)

  return user_fn, item_fn
