"""HTFL: heterogeneous token flattening.

An item becomes ``K`` tokens, one per feature field (``common.recsys.embedders.FieldEmbedder``:
its id, each categorical field, a pooled bag for a multi-valued field, a bucketized numeric field,
a projected dense vector). A sequence of ``L`` items with ``K`` tokens each is flattened,
item-major, into ``L * K`` tokens, so token ``l * K + k`` is slot ``k`` of the item at position
``l``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from common.data.schema import FieldSpec
from common.recsys import embedders
from heterrec_jax.config import HeterRecConfig

Array = Any


class HTFL(nn.Module):
  """Item ids ``[B, L]`` -> flattened heterogeneous token sequence ``[B, L * K, token_dim]``.

  Each token is its field embedding (see ``FieldEmbedder``) plus, when
  ``config.position_embedding``, the embedding of its item's position ``l`` in the array (the same
  for the ``K`` tokens of an item). Positions count from the left of the array, so sequences
  should always be padded to the same length (``max_len``) for a position to mean the same
  recency at training and evaluation.

  Attributes:
    config: the model's settings (``token_dim``, ``max_len``, the additive embeddings, dropout).
    num_items: number of real items.
    fields: the feature fields (from ``embedders.resolve_fields``).
  """

  config: HeterRecConfig
  num_items: int
  fields: tuple[FieldSpec, ...] = ()

  @property
  def num_slots(self) -> int:
    return int(self.config.use_id) + len(self.fields)

  def setup(self):
    c = self.config
    self.embedder = embedders.FieldEmbedder(c.embedder, self.num_items, self.fields)
    if c.position_embedding:
      self.item_position = nn.Embed(c.max_len, c.token_dim, dtype=c.dtype,
                                    param_dtype=c.param_dtype,
                                    embedding_init=embedders.embed_init)
    self.drop = nn.Dropout(c.dropout)

  def item_tokens(self, ids: Array, features: Mapping[str, Array]) -> Array:
    """The position-free field tokens ``[*ids.shape, K, dim]`` (also used for candidates)."""
    return self.embedder(ids, features)

  def __call__(self, ids: Array, features: Mapping[str, Array], train: bool = False) -> Array:
    """Returns the flattened tokens ``[B, L * K, dim]`` of the item sequences ``ids [B, L]``."""
    embedders.check_sequence_length(ids, self.config.max_len)
    batch, length = ids.shape
    tokens = self.embedder(ids, features)  # [B, L, K, dim]
    if self.config.position_embedding:
      tokens = tokens + self.item_position(jnp.arange(length))[None, :, None, :]
    tokens = self.drop(tokens, deterministic=not train)
    return tokens.reshape(batch, length * self.num_slots, self.config.token_dim)
