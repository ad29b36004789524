"""HCT: the hierarchical causal transformer, and the attention masks every model here uses.

Token level: a pre-LN transformer over the flattened ``L * K`` tokens of HTFL, under one of two
masks (a switch):

* ``causal``: plain causal attention over the flattened sequence. With the item-major layout this
  is exactly "every token of earlier items, and the earlier-or-same slots of its own item".
* ``block_causal``: every token of earlier items and *all* tokens of its own item (full attention
  inside an item's block). An item's tokens are all known once the item is, so this is still
  causal at the item level, and each slot's output sees the whole item.

Each item's block of ``K`` outputs is then pooled into one vector (a switch: ``last`` slot or
``mean`` of the block), projected to the item width if the widths differ, and an item-level causal
transformer runs over the ``L`` vectors.

Padding (item id 0) may sit anywhere: padding keys are masked out for every query, and every token
always sees itself, so no attention row is empty (an empty row would spread its weight over the
whole sequence, future included) and padding positions carry finite values that never leak into
real positions.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

Array = Any
MASKS = ("block_causal", "causal")
POOLINGS = ("last", "mean")


def _with_padding(structure: Array, key_valid: Array) -> Array:
  """Combines a ``[T, T]`` structure with ``[B, T]`` key validity into a ``[B, 1, T, T]`` mask."""
  length = structure.shape[-1]
  eye = jnp.eye(length, dtype=bool)
  return (structure & (key_valid[:, None, :] | eye))[:, None, :, :]


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
  return _with_padding(structure, jnp.repeat(item_valid, num_slots, axis=1))


def item_attention_mask(item_valid: Array, causal: bool = True) -> Array:
  """The item-level mask ``[B, 1, L, L]``: causal (or bidirectional) over the valid items."""
  length = item_valid.shape[1]
  pos = jnp.arange(length)
  if causal:
    structure = pos[None, :] <= pos[:, None]
  else:
    structure = jnp.ones((length, length), bool)
  return _with_padding(structure, item_valid)


NORMS = ("pre", "post")


class TransformerBlock(nn.Module):
  """A transformer block, pre-LN or post-LN (a switch).

  * ``pre``: ``x + Attn(LN(x))``, then ``x + MLP(LN(x))``, with dropout on both residual
    branches and on the MLP's hidden layer.
  * ``post`` (BERT, and SASRec as RecBole implements it): ``LN(x + Attn(x))``, then
    ``LN(x + MLP(x))``, with dropout on both residual branches only.

  Attributes:
    heads: attention heads (must divide the width).
    mlp_dim: hidden width of the MLP.
    dropout: dropout on the residual branches (and, pre-LN, inside the MLP).
    attention_dropout: dropout on the attention weights.
    norm: ``pre`` or ``post``.
    dtype: computation dtype (softmax and layer-norm statistics stay in float32).
    param_dtype: parameter dtype.
  """

  heads: int
  mlp_dim: int
  dropout: float = 0.0
  attention_dropout: float = 0.0
  norm: str = "pre"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, mask: Array, train: bool = False) -> Array:
    width = x.shape[-1]
    pre = self.norm == "pre"
    layer_norm = functools.partial(nn.LayerNorm, dtype=self.dtype, param_dtype=self.param_dtype)
    drop = lambda v: nn.Dropout(self.dropout)(v, deterministic=not train)
    y = layer_norm()(x) if pre else x
    y = nn.MultiHeadDotProductAttention(
        num_heads=self.heads, dtype=self.dtype, param_dtype=self.param_dtype,
        dropout_rate=self.attention_dropout, broadcast_dropout=False,
        force_fp32_for_softmax=True, deterministic=not train)(y, y, mask=mask)
    x = x + drop(y)
    x = x if pre else layer_norm()(x)
    y = layer_norm()(x) if pre else x
    y = nn.Dense(self.mlp_dim, dtype=self.dtype, param_dtype=self.param_dtype)(y)
    y = nn.gelu(y)
    y = drop(y) if pre else y
    y = nn.Dense(width, dtype=self.dtype, param_dtype=self.param_dtype)(y)
    x = x + drop(y)
    return x if pre else layer_norm()(x)


class Transformer(nn.Module):
  """A stack of blocks; a pre-LN stack ends with a layer norm.

  A post-LN stack expects a normalised input: BERT and RecBole's SASRec feed it
  ``Dropout(LN(embedding))`` (its callers here do the same).

  Attributes:
    layers: number of blocks (0 leaves only the final layer norm).
    heads: attention heads.
    mlp_dim: MLP hidden width.
    dropout: residual/MLP dropout.
    attention_dropout: attention-weight dropout.
    dtype: computation dtype.
    param_dtype: parameter dtype.
  """

  layers: int
  heads: int
  mlp_dim: int
  dropout: float = 0.0
  attention_dropout: float = 0.0
  norm: str = "pre"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, mask: Array, train: bool = False) -> Array:
    if self.norm not in NORMS:
      raise ValueError(f"Unknown norm {self.norm!r}; use one of {NORMS}.")
    for i in range(self.layers):
      x = TransformerBlock(
          heads=self.heads, mlp_dim=self.mlp_dim, dropout=self.dropout,
          attention_dropout=self.attention_dropout, norm=self.norm, dtype=self.dtype,
          param_dtype=self.param_dtype, name=f"block_{i}")(x, mask, train)
    if self.norm == "post":
      return x
    return nn.LayerNorm(dtype=self.dtype, param_dtype=self.param_dtype, name="final_norm")(x)


class HCT(nn.Module):
  """Token-level transformer, per-item pooling, item-level causal transformer.

  Attributes:
    num_slots: ``K``, tokens per item.
    item_dim: width of the item level (the model's output width).
    token_layers: blocks at the token level.
    token_heads: heads at the token level.
    token_mlp_dim: MLP width at the token level.
    item_layers: blocks at the item level.
    item_heads: heads at the item level.
    item_mlp_dim: MLP width at the item level.
    mask: ``block_causal`` or ``causal`` (token level).
    pooling: ``last`` (the block's last slot) or ``mean`` (mean of the block).
    dropout: residual/MLP dropout.
    norm: ``pre`` or ``post`` layer norm, both levels (``TransformerBlock``).
    attention_dropout: attention-weight dropout.
    dtype: computation dtype.
    param_dtype: parameter dtype.
  """

  num_slots: int
  item_dim: int = 64
  token_layers: int = 2
  token_heads: int = 2
  token_mlp_dim: int = 256
  item_layers: int = 2
  item_heads: int = 2
  item_mlp_dim: int = 256
  mask: str = "block_causal"
  pooling: str = "last"
  dropout: float = 0.0
  attention_dropout: float = 0.0
  norm: str = "pre"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, tokens: Array, item_valid: Array, train: bool = False) -> Array:
    """Maps tokens ``[B, L*K, d_token]`` and validity ``[B, L]`` to item states ``[B, L, d]``."""
    batch, length = item_valid.shape
    if self.pooling not in POOLINGS:
      raise ValueError(f"Unknown pooling {self.pooling!r}; use one of {POOLINGS}.")
    if tokens.shape[1] != length * self.num_slots:
      raise ValueError(f"HCT got {tokens.shape[1]} tokens for {length} items of "
                       f"{self.num_slots} slots.")
    common = dict(dropout=self.dropout, attention_dropout=self.attention_dropout,
                  norm=self.norm, dtype=self.dtype, param_dtype=self.param_dtype)
    mask = token_attention_mask(item_valid, self.num_slots, self.mask)
    if self.norm == "post":
      tokens = nn.LayerNorm(dtype=self.dtype, param_dtype=self.param_dtype,
                            name="token_input_norm")(tokens)
    h = Transformer(layers=self.token_layers, heads=self.token_heads, mlp_dim=self.token_mlp_dim,
                    name="token_transformer", **common)(tokens, mask, train)
    h = h.reshape(batch, length, self.num_slots, h.shape[-1])
    # Under the causal mask only the last slot has seen the whole item; mean pooling mixes in
    # slots that saw less of it (that difference is what the switch ablates).
    h = h[:, :, -1] if self.pooling == "last" else jnp.mean(h, axis=2)
    if h.shape[-1] != self.item_dim:
      h = nn.Dense(self.item_dim, dtype=self.dtype, param_dtype=self.param_dtype,
                   name="token_to_item")(h)
    return Transformer(layers=self.item_layers, heads=self.item_heads, mlp_dim=self.item_mlp_dim,
                       name="item_transformer", **common)(
                           h, item_attention_mask(item_valid, causal=True), train)
