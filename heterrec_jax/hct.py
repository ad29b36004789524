"""HCT: the hierarchical causal transformer, and its token-level attention mask.

Token level: a transformer over the flattened ``L * K`` tokens of HTFL, under one of two masks
(``config.mask``):

* ``causal``: plain causal attention over the flattened sequence. With the item-major layout this
  is exactly "every token of earlier items, and the earlier-or-same slots of its own item".
* ``block_causal``: every token of earlier items and *all* tokens of its own item (full attention
  inside an item's block). An item's tokens are all known once the item is, so this is still
  causal at the item level, and each slot's output sees the whole item.

Each item's block of ``K`` outputs is then pooled into one vector (``config.pooling``: ``last``
slot or ``mean`` of the block), projected to the item width if the widths differ, and an
item-level causal transformer runs over the ``L`` vectors. Both levels are
``common.recsys.transformer.Transformer`` stacks, with the padding rules described there.

With per-value attribute tokens (``token_valid``) some slots of an item are padding: they are
masked as keys (a padding token still sees itself, so no attention row is empty), and pooling
reads only real slots (``last``: the last real slot; ``mean``: their mean). An item none of whose
slots is real pools to zero.
"""

from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp

from common.recsys import transformer
from heterrec_jax.config import HeterRecConfig
from heterrec_jax.config import MASKS

Array = Any


def token_attention_mask(item_valid: Array, num_slots: int, mode: str,
                         token_valid: Optional[Array] = None,
                         segment_ids: Optional[Array] = None) -> Array:
  """The token-level mask ``[B, 1, L*K, L*K]`` (True = may attend).

  Args:
    item_valid: ``[B, L]`` bool, False at padding items.
    num_slots: ``K``, tokens per item.
    mode: ``block_causal`` or ``causal`` (see the module docstring).
    token_valid: ``[B, L*K]`` bool, False at padding slots (per-value tokens); None = every
      slot of a real item is real.
    segment_ids: ``[B, L]``, the packed sequence of each item (training rows holding several
      users' windows); tokens attend only within their item's segment. None = one per row.
  """
  if mode not in MASKS:
    raise ValueError(f"Unknown mask {mode!r}; use one of {MASKS}.")
  length = item_valid.shape[1] * num_slots
  pos = jnp.arange(length)
  if mode == "causal":
    structure = pos[None, :] <= pos[:, None]
  else:
    item = pos // num_slots
    structure = item[None, :] <= item[:, None]
  if segment_ids is not None:
    structure = structure[None] & transformer.same_segment(
        jnp.repeat(segment_ids, num_slots, axis=1))
  key_valid = jnp.repeat(item_valid, num_slots, axis=1)
  if token_valid is not None:
    key_valid = key_valid & token_valid
  return transformer.with_padding(structure, key_valid)


def pool_items(h: Array, mode: str, slot_valid: Optional[Array] = None) -> Array:
  """Pools each item's block ``[B, L, K, d]`` to ``[B, L, d]``.

  Args:
    h: the token outputs, item-major.
    mode: ``last`` (the last slot) or ``mean`` (of the slots).
    slot_valid: ``[B, L, K]`` bool; if given, only real slots count: ``last`` is the last real
      slot and ``mean`` their mean, and an item without one pools to zero (never NaN).
  """
  if slot_valid is None:
    # Under the causal mask only the last slot has seen the whole item; mean pooling mixes in
    # slots that saw less of it (that difference is what the switch ablates).
    return h[:, :, -1] if mode == "last" else jnp.mean(h, axis=2)
  any_valid = jnp.any(slot_valid, axis=2)[..., None]
  if mode == "last":
    slots = jnp.arange(h.shape[2])
    last = jnp.max(jnp.where(slot_valid, slots, 0), axis=2)
    picked = jnp.take_along_axis(h, last[:, :, None, None], axis=2)[:, :, 0]
    return jnp.where(any_valid, picked, 0).astype(h.dtype)
  weight = slot_valid.astype(h.dtype)[..., None]
  total = jnp.sum(h * weight, axis=2)
  return (total / jnp.maximum(jnp.sum(weight, axis=2), 1)).astype(h.dtype)


class HCT(nn.Module):
  """Token-level transformer, per-item pooling, item-level causal transformer.

  Attributes:
    config: the model's settings (both levels' stacks, ``mask``, ``pooling``, ``d_model``).
    num_slots: ``K``, tokens per item.
  """

  config: HeterRecConfig
  num_slots: int

  @nn.compact
  def __call__(self, tokens: Array, item_valid: Array, train: bool = False,
               token_valid: Optional[Array] = None,
               segment_ids: Optional[Array] = None) -> Array:
    """Maps tokens ``[B, L*K, d_token]`` and validity ``[B, L]`` to item states ``[B, L, d]``.

    ``token_valid`` (``[B, L*K]`` bool, optional) marks padding slots of per-value attribute
    tokens: masked as keys and left out of the pooling. ``segment_ids`` (``[B, L]``, optional)
    keeps packed sequences apart at both levels.
    """
    c = self.config
    batch, length = item_valid.shape
    if tokens.shape[1] != length * self.num_slots:
      raise ValueError(f"HCT got {tokens.shape[1]} tokens for {length} items of "
                       f"{self.num_slots} slots.")
    mask = token_attention_mask(item_valid, self.num_slots, c.mask, token_valid, segment_ids)
    if c.norm == "post":
      tokens = nn.LayerNorm(dtype=c.dtype, param_dtype=c.param_dtype,
                            name="token_input_norm")(tokens)
    h = transformer.Transformer(c.token_transformer, name="token_transformer")(tokens, mask, train)
    h = h.reshape(batch, length, self.num_slots, h.shape[-1])
    slot_valid = None if token_valid is None else token_valid.reshape(batch, length, -1)
    h = pool_items(h, c.pooling, slot_valid)
    if h.shape[-1] != c.d_model:
      h = nn.Dense(c.d_model, dtype=c.dtype, param_dtype=c.param_dtype, name="token_to_item")(h)
    return transformer.Transformer(c.item_transformer, name="item_transformer")(
        h, transformer.item_attention_mask(item_valid, causal=True, segment_ids=segment_ids), train)
