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
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from common.recsys import transformer
from heterrec_jax.config import HeterRecConfig
from heterrec_jax.config import MASKS

Array = Any


def token_attention_mask(item_valid: Array, num_slots: int, mode: str) -> Array:
  """The token-level mask ``[B, 1, L*K, L*K]`` (True = may attend).

  Args:
    item_valid: ``[B, L]`` bool, False at padding items.
    num_slots: ``K``, tokens per item.
    mode: ``block_causal`` or ``causal`` (see the module docstring).
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
  return transformer.with_padding(structure, jnp.repeat(item_valid, num_slots, axis=1))


class HCT(nn.Module):
  """Token-level transformer, per-item pooling, item-level causal transformer.

  Attributes:
    config: the model's settings (both levels' stacks, ``mask``, ``pooling``, ``d_model``).
    num_slots: ``K``, tokens per item.
  """

  config: HeterRecConfig
  num_slots: int

  @nn.compact
  def __call__(self, tokens: Array, item_valid: Array, train: bool = False) -> Array:
    """Maps tokens ``[B, L*K, d_token]`` and validity ``[B, L]`` to item states ``[B, L, d]``."""
    c = self.config
    batch, length = item_valid.shape
    if tokens.shape[1] != length * self.num_slots:
      raise ValueError(f"HCT got {tokens.shape[1]} tokens for {length} items of "
                       f"{self.num_slots} slots.")
    mask = token_attention_mask(item_valid, self.num_slots, c.mask)
    if c.norm == "post":
      tokens = nn.LayerNorm(dtype=c.dtype, param_dtype=c.param_dtype,
                            name="token_input_norm")(tokens)
    h = transformer.Transformer(c.token_transformer, name="token_transformer")(tokens, mask, train)
    h = h.reshape(batch, length, self.num_slots, h.shape[-1])
    # Under the causal mask only the last slot has seen the whole item; mean pooling mixes in
    # slots that saw less of it (that difference is what the switch ablates).
    h = h[:, :, -1] if c.pooling == "last" else jnp.mean(h, axis=2)
    if h.shape[-1] != c.d_model:
      h = nn.Dense(c.d_model, dtype=c.dtype, param_dtype=c.param_dtype, name="token_to_item")(h)
    return transformer.Transformer(c.item_transformer, name="item_transformer")(
        h, transformer.item_attention_mask(item_valid, causal=True), train)
