"""Transformer blocks configured by one ``TransformerConfig``, and the attention masks they take.

Padding may sit anywhere in a sequence: padding keys are masked out for every query, and every
position always sees itself, so no attention row is empty (an empty row would spread its weight
over the whole sequence, future included) and padding positions carry finite values that never
leak into real positions. Callers zero the outputs at padding positions.

As in flax's ``examples/wmt/models.py``, every module of a stack reads its settings from the one
frozen ``TransformerConfig`` it is given; a model with several stacks (HeterRec's token and item
levels, a two-tower retriever's towers) holds one config per stack.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Optional

import flax.linen as nn
import jax.numpy as jnp

Array = Any
NORMS = ("pre", "post")


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  """One transformer stack.

  Attributes:
    layers: number of blocks (0 leaves only a pre-LN stack's final layer norm).
    heads: attention heads (must divide the input width).
    mlp_dim: hidden width of each block's MLP.
    dropout: dropout on the residual branches (and, pre-LN, inside the MLP).
    attention_dropout: dropout on the attention weights.
    norm: ``pre`` or ``post`` layer norm (``TransformerBlock``).
    dtype: computation dtype (softmax and layer-norm statistics stay in float32).
    param_dtype: parameter dtype.
  """

  layers: int = 2
  heads: int = 2
  mlp_dim: int = 256
  dropout: float = 0.0
  attention_dropout: float = 0.0
  norm: str = "pre"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def __post_init__(self):
    # Anything but "pre" would otherwise silently build post-LN blocks.
    if self.norm not in NORMS:
      raise ValueError(f"Unknown norm {self.norm!r}; use one of {NORMS}.")


def with_padding(structure: Array, key_valid: Array) -> Array:
  """A ``[T, T]`` (or per-row ``[B, T, T]``) structure and ``[B, T]`` key validity -> a
  ``[B, 1, T, T]`` mask.

  A key is visible where the structure allows it and it is valid; a position always sees itself.
  """
  length = structure.shape[-1]
  eye = jnp.eye(length, dtype=bool)
  return (structure & (key_valid[:, None, :] | eye))[:, None, :, :]


def same_segment(segment_ids: Array) -> Array:
  """``[B, T, T]``: query and key are in the same packed segment (``segment_ids [B, T]``)."""
  return segment_ids[:, :, None] == segment_ids[:, None, :]


def item_attention_mask(item_valid: Array, causal: bool = True,
                        segment_ids: Optional[Array] = None) -> Array:
  """The mask ``[B, 1, L, L]`` (True = may attend): causal or bidirectional over valid items.

  With ``segment_ids [B, L]`` (several sequences packed into one row), a position attends only
  within its own segment.
  """
  length = item_valid.shape[1]
  pos = jnp.arange(length)
  if causal:
    structure = pos[None, :] <= pos[:, None]
  else:
    structure = jnp.ones((length, length), bool)
  if segment_ids is not None:
    structure = structure[None] & same_segment(segment_ids)
  return with_padding(structure, item_valid)


class TransformerBlock(nn.Module):
  """A transformer block, pre-LN or post-LN (``config.norm``).

  * ``pre``: ``x + Attn(LN(x))``, then ``x + MLP(LN(x))``, with dropout on both residual
    branches and on the MLP's hidden layer.
  * ``post`` (BERT, and SASRec as RecBole implements it): ``LN(x + Attn(x))``, then
    ``LN(x + MLP(x))``, with dropout on both residual branches only.
  """

  config: TransformerConfig

  @nn.compact
  def __call__(self, x: Array, mask: Array, train: bool = False) -> Array:
    c = self.config
    width = x.shape[-1]
    pre = c.norm == "pre"
    layer_norm = functools.partial(nn.LayerNorm, dtype=c.dtype, param_dtype=c.param_dtype)
    drop = lambda v: nn.Dropout(c.dropout)(v, deterministic=not train)
    y = layer_norm()(x) if pre else x
    y = nn.MultiHeadDotProductAttention(
        num_heads=c.heads, dtype=c.dtype, param_dtype=c.param_dtype,
        dropout_rate=c.attention_dropout, broadcast_dropout=False,
        force_fp32_for_softmax=True, deterministic=not train)(y, y, mask=mask)
    x = x + drop(y)
    x = x if pre else layer_norm()(x)
    y = layer_norm()(x) if pre else x
    y = nn.Dense(c.mlp_dim, dtype=c.dtype, param_dtype=c.param_dtype)(y)
    y = nn.gelu(y)
    y = drop(y) if pre else y
    y = nn.Dense(width, dtype=c.dtype, param_dtype=c.param_dtype)(y)
    x = x + drop(y)
    return x if pre else layer_norm()(x)


class Transformer(nn.Module):
  """``config.layers`` blocks; a pre-LN stack ends with a layer norm.

  A post-LN stack expects a normalised input: BERT and RecBole's SASRec feed it
  ``Dropout(LN(embedding))``.
  """

  config: TransformerConfig

  @nn.compact
  def __call__(self, x: Array, mask: Array, train: bool = False) -> Array:
    c = self.config
    for i in range(c.layers):
      x = TransformerBlock(c, name=f"block_{i}")(x, mask, train)
    if c.norm == "post":
      return x
    return nn.LayerNorm(dtype=c.dtype, param_dtype=c.param_dtype, name="final_norm")(x)
