"""HTFL: heterogeneous token flattening.

An item becomes ``K`` tokens, one per feature field (``common.recsys.embedders.FieldEmbedder``:
its id, each categorical field, a pooled bag for a multi-valued field, a bucketized numeric field,
a projected dense vector). A sequence of ``L`` items with ``K`` tokens each is flattened,
item-major, into ``L * K`` tokens, so token ``l * K + k`` is slot ``k`` of the item at position
``l``.

A multi-valued field (a bag of attributes) is one pooled token by default. With
``config.multi_tokens = "per_value"`` it takes ``max_len`` slots, one per value, so the token
transformer attends to each attribute; ``token_valid`` marks the slots of padding values, which
the HCT masks out of attention and pooling.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

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
    """``K``, tokens per item (``embedders.slot_fields``)."""
    return len(embedders.slot_fields(self.config.embedder, self.fields))

  @property
  def has_padding_slots(self) -> bool:
    """Whether some slots can be empty (a per-value bag), so the HCT needs ``token_valid``."""
    return self.num_slots != int(self.config.use_id) + len(self.fields)

  def setup(self):
    c = self.config
    self.embedder = embedders.FieldEmbedder(c.embedder, self.num_items, self.fields)
    if c.position_embedding:
      self.item_position = nn.Embed(c.max_len, c.token_dim, dtype=c.dtype,
                                    param_dtype=c.param_dtype,
                                    embedding_init=embedders.embed_init)
    self.drop = nn.Dropout(c.dropout)

  def item_tokens(self, ids: Array, features: Mapping[str, Array]) -> Array:
    """The position-free field tokens ``[*ids.shape, K_f, dim]`` of the candidates.

    One token per field (``K_f = use_id + len(fields)``) in either ``multi_tokens`` mode: a bag
    is its masked mean, so the candidate fusion has the same input, and parameters, in both.
    """
    return self.embedder(ids, features, pooled=True)

  def token_valid(self, ids: Array, features: Mapping[str, Array]) -> Array:
    """``[B, L * K]`` bool: the token is of a real item and its slot holds a value."""
    valid = self.embedder.slot_valid(ids, features) & (ids != 0)[..., None]
    return valid.reshape(ids.shape[0], ids.shape[1] * self.num_slots)

  def __call__(self, ids: Array, features: Mapping[str, Array], train: bool = False,
               positions: Optional[Array] = None) -> Array:
    """Returns the flattened tokens ``[B, L * K, dim]`` of the item sequences ``ids [B, L]``.

    ``positions`` (``[B, L]`` int, optional) gives each item's position explicitly (packed rows:
    each window keeps the positions it has when left-padded alone); default, its column.
    """
    embedders.check_sequence_length(ids, self.config.max_len)
    batch, length = ids.shape
    tokens = self.embedder(ids, features)  # [B, L, K, dim]
    if self.config.position_embedding:
      if positions is None:
        tokens = tokens + self.item_position(jnp.arange(length))[None, :, None, :]
      else:
        tokens = tokens + self.item_position(positions)[:, :, None, :]
    tokens = self.drop(tokens, deterministic=not train)
    return tokens.reshape(batch, length * self.num_slots, self.config.token_dim)
