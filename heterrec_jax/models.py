"""HeterRec and its baselines (SASRec, feature-fusion SASRec, BERT4Rec) behind one interface.

Every model here is a Flax Linen module with

* ``__call__(batch, features, train=False) -> [B, L, d_model]``: the state after each position
  (zero at padding positions). ``batch["item_ids"]`` is int32 ``[B, L]``, 0 = padding (anywhere;
  left padding is the expected layout); BERT4Rec's inputs may hold its mask token
  ``num_items + 1``.
* ``item_embeddings(features, ids) -> [*ids.shape, d_model]``: candidate embeddings; a score is
  ``state . embedding``.

``features`` maps each field name in ``model.fields`` to its catalogue array (see
``htfl.select_features``); SASRec needs none. Build models with ``get_model``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from common.data.schema import FieldSpec
from heterrec_jax import hct
from heterrec_jax import htfl

Array = Any
MODEL_NAMES = ("heterrec", "sasrec", "fusion_sasrec", "bert4rec")
_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def default_model_config() -> ml_collections.ConfigDict:
  """The ``config.model`` keys ``get_model`` reads, with their defaults."""
  c = ml_collections.ConfigDict()
  c.name = "heterrec"  # heterrec | sasrec | fusion_sasrec | bert4rec
  c.max_len = 50  # L, items per sequence (position table size)
  c.d_model = 64  # item-level width = scoring width
  c.heads = 2
  c.mlp_ratio = 4  # MLP width = mlp_ratio * block width
  c.dropout = 0.2
  c.attention_dropout = 0.2
  c.norm = "pre"  # pre | post: layer-norm placement (post = BERT / RecBole's SASRec)
  c.dtype = "float32"  # compute dtype: float32 | bfloat16 (params stay float32)
  c.fields = ()  # feature fields to use; empty = every usable field of the data set
  # HeterRec.
  c.token_dim = 0  # token-level width; 0 = d_model
  c.token_heads = 0  # 0 = heads
  c.token_layers = 2
  c.item_heads = 0  # 0 = heads
  c.item_layers = 2  # also the depth of the baselines' single transformer
  c.mask = "block_causal"  # block_causal | causal
  c.pooling = "last"  # last | mean
  c.candidate_fusion = "concat"  # concat | sum | id: candidate embedding from the field tokens
  c.use_id = True  # the item id is a token
  c.type_embedding = True
  c.slot_embedding = True
  c.position_embedding = True
  # Baselines.
  c.fusion = "sum"  # fusion_sasrec (and bert4rec with fields): sum | concat
  c.bert4rec_use_fields = False  # BERT4Rec is ids-only unless this is set
  return c


class HeterRec(nn.Module):
  """HTFL tokens -> HCT -> item states, scored against fused field-token embeddings.

  Attributes (``get_model`` resolves them from ``default_model_config``; see README.md):
    num_items: number of real items.
    fields: the feature fields, one token each after the id token.
    max_len: L.
    d_model: item-level and scoring width.
    token_dim: token-level width.
    token_layers, token_heads, token_mlp_dim: the token-level transformer.
    item_layers, item_heads, item_mlp_dim: the item-level transformer.
    mask: token mask, ``block_causal`` or ``causal``.
    pooling: item block pooling, ``last`` or ``mean``.
    candidate_fusion: candidate embedding from the field tokens, ``concat``, ``sum`` or ``id``.
    use_id: the id is a token.
    type_embedding, slot_embedding, position_embedding: HTFL's additive embeddings.
    dropout: token/residual/MLP dropout.
    attention_dropout: attention-weight dropout.
    norm: ``pre`` or ``post`` layer norm (``hct.TransformerBlock``).
    dtype: computation dtype.
    param_dtype: parameter dtype.
  """

  num_items: int
  fields: tuple[FieldSpec, ...] = ()
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
  use_id: bool = True
  type_embedding: bool = True
  slot_embedding: bool = True
  position_embedding: bool = True
  dropout: float = 0.0
  attention_dropout: float = 0.0
  norm: str = "pre"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  mask_token_id = None  # causal: never fed a mask token (see ItemSequenceTransformer)

  def setup(self):
    self.htfl = htfl.HTFL(
        num_items=self.num_items, fields=self.fields, dim=self.token_dim, max_len=self.max_len,
        use_id=self.use_id, type_embedding=self.type_embedding,
        slot_embedding=self.slot_embedding, position_embedding=self.position_embedding,
        dropout=self.dropout, dtype=self.dtype, param_dtype=self.param_dtype)
    self.hct = hct.HCT(
        num_slots=int(self.use_id) + len(self.fields), item_dim=self.d_model,
        token_layers=self.token_layers, token_heads=self.token_heads,
        token_mlp_dim=self.token_mlp_dim, item_layers=self.item_layers,
        item_heads=self.item_heads, item_mlp_dim=self.item_mlp_dim, mask=self.mask,
        pooling=self.pooling, dropout=self.dropout, attention_dropout=self.attention_dropout,
        norm=self.norm, dtype=self.dtype, param_dtype=self.param_dtype)
    self.candidate = htfl.TokenFusion(mode=self.candidate_fusion, out_dim=self.d_model,
                                      dtype=self.dtype, param_dtype=self.param_dtype)

  def __call__(self, batch: Mapping[str, Array], features: Mapping[str, Array],
               train: bool = False) -> Array:
    """States ``[B, L, d_model]`` after each item of ``batch["item_ids"] [B, L]``."""
    ids = jnp.asarray(batch["item_ids"], jnp.int32)
    valid = ids != 0
    tokens = self.htfl(ids, features, train)
    h = self.hct(tokens, valid, train)
    if self.is_initializing():
      # init only runs __call__; the candidate fusion's parameters must exist too.
      self.item_embeddings(features, ids)
    return jnp.where(valid[..., None], h, 0).astype(self.dtype)

  def item_embeddings(self, features: Mapping[str, Array], ids: Array) -> Array:
    """Candidate embeddings ``[*ids.shape, d_model]``: the fusion of each item's field tokens."""
    return self.candidate(self.htfl.item_tokens(ids, features))


class ItemSequenceTransformer(nn.Module):
  """One token per item, one transformer: SASRec, feature-fusion SASRec and BERT4Rec.

  The item token is the ``fusion`` of its field tokens (only the id for SASRec) and is tied to
  the candidate embedding, as in SASRec. ``bidirectional`` with ``mask_token`` gives BERT4Rec:
  id ``num_items + 1`` is the learned mask token.

  Attributes:
    num_items: number of real items.
    fields: feature fields fused into the item token (empty for ids only).
    max_len: L.
    d_model: width.
    layers: transformer blocks.
    heads: attention heads.
    mlp_dim: MLP width.
    fusion: ``sum`` or ``concat`` (concatenation + projection) of the field tokens.
    bidirectional: attend to both sides (BERT4Rec) instead of causally.
    mask_token: add the mask-token row to the id table.
    dropout: embedding/residual dropout.
    attention_dropout: attention-weight dropout.
    norm: ``pre`` or ``post`` layer norm; ``post`` with its embedding layer norm is RecBole's
      SASRec block for block.
    dtype: computation dtype.
    param_dtype: parameter dtype.
  """

  num_items: int
  fields: tuple[FieldSpec, ...] = ()
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
  def mask_token_id(self) -> int | None:
    return self.num_items + 1 if self.mask_token else None

  def setup(self):
    # Per-slot type/slot offsets are constant over items, so they would only add a bias here.
    self.embedder = htfl.FieldEmbedder(
        num_items=self.num_items, fields=self.fields, dim=self.d_model, use_id=True,
        type_embedding=False, slot_embedding=False, extra_ids=int(self.mask_token),
        dtype=self.dtype, param_dtype=self.param_dtype)
    self.fuse = htfl.TokenFusion(mode=self.fusion, out_dim=self.d_model, dtype=self.dtype,
                                 param_dtype=self.param_dtype)
    self.position = nn.Embed(self.max_len, self.d_model, dtype=self.dtype,
                             param_dtype=self.param_dtype, embedding_init=htfl.embed_init)
    self.drop = nn.Dropout(self.dropout)
    if self.norm == "post":
      self.input_norm = nn.LayerNorm(dtype=self.dtype, param_dtype=self.param_dtype)
    self.encoder = hct.Transformer(
        layers=self.layers, heads=self.heads, mlp_dim=self.mlp_dim, dropout=self.dropout,
        attention_dropout=self.attention_dropout, norm=self.norm, dtype=self.dtype,
        param_dtype=self.param_dtype)

  def __call__(self, batch: Mapping[str, Array], features: Mapping[str, Array],
               train: bool = False) -> Array:
    """States ``[B, L, d_model]`` for ``batch["item_ids"] [B, L]`` (mask tokens allowed)."""
    ids = jnp.asarray(batch["item_ids"], jnp.int32)
    htfl.check_sequence_length(ids, self.max_len)
    valid = ids != 0
    x = self.item_embeddings(features, ids) + self.position(jnp.arange(ids.shape[1]))[None]
    if self.norm == "post":
      x = self.input_norm(x)
    x = self.drop(x, deterministic=not train)
    mask = hct.item_attention_mask(valid, causal=not self.bidirectional)
    h = self.encoder(x, mask, train)
    return jnp.where(valid[..., None], h, 0).astype(self.dtype)

  def item_embeddings(self, features: Mapping[str, Array], ids: Array) -> Array:
    """Item tokens ``[*ids.shape, d_model]``, which are also the candidate embeddings."""
    return self.fuse(self.embedder(ids, features))


def _config_with_defaults(config: Mapping[str, Any]) -> ml_collections.ConfigDict:
  merged = default_model_config()
  unknown = sorted(set(config.keys()) - set(merged.keys()))
  if unknown:
    raise ValueError(f"Unknown model config keys {unknown}; known: {sorted(merged.keys())}.")
  for key in config.keys():
    merged[key] = config[key]
  return merged


def get_model(config: Mapping[str, Any], *, num_items: int,
              field_specs: Sequence[FieldSpec] = ()) -> nn.Module:
  """Builds the model named by ``config.name`` (a ``config.model`` section).

  Args:
    config: a ConfigDict (or mapping) with keys of ``default_model_config``; missing keys take
      their defaults, unknown keys are an error.
    num_items: number of real items (ids ``1..num_items``).
    field_specs: the data set's item fields.

  Returns:
    An unbound Flax module (``HeterRec`` or ``ItemSequenceTransformer``).

  Raises:
    ValueError: an unknown model name or switch, a field not in ``field_specs``, a sequence length
      below 1, widths not divisible by the heads.
  """
  c = _config_with_defaults(config)
  if c.name not in MODEL_NAMES:
    raise ValueError(f"Unknown model name {c.name!r}; use one of {MODEL_NAMES}.")
  if c.max_len < 1:
    raise ValueError(f"model.max_len is {c.max_len}; a sequence needs at least one position.")
  if num_items < 1:
    raise ValueError(f"num_items is {num_items}; the catalogue needs at least one item.")
  if c.dtype not in _DTYPES:
    raise ValueError(f"Unknown dtype {c.dtype!r}; use one of {sorted(_DTYPES)}.")
  # Validate the names for every model, so a typo fails even where the fields go unused.
  fields = htfl.resolve_fields(field_specs, tuple(c.fields))
  _check_choice("norm", c.norm, hct.NORMS)
  common = dict(num_items=num_items, max_len=c.max_len, d_model=c.d_model, dropout=c.dropout,
                attention_dropout=c.attention_dropout, norm=c.norm, dtype=_DTYPES[c.dtype])
  if c.name == "heterrec":
    token_dim = c.token_dim or c.d_model
    token_heads, item_heads = c.token_heads or c.heads, c.item_heads or c.heads
    _check_heads("token", token_dim, token_heads)
    _check_heads("item", c.d_model, item_heads)
    _check_choice("mask", c.mask, hct.MASKS)
    _check_choice("pooling", c.pooling, hct.POOLINGS)
    _check_choice("candidate_fusion", c.candidate_fusion, ("concat", "sum", "id"))
    if not c.use_id and (not fields or c.candidate_fusion == "id"):
      raise ValueError("use_id=False needs feature fields and a candidate_fusion other than 'id'.")
    return HeterRec(
        fields=fields, token_dim=token_dim, token_layers=c.token_layers, token_heads=token_heads,
        token_mlp_dim=c.mlp_ratio * token_dim, item_layers=c.item_layers, item_heads=item_heads,
        item_mlp_dim=c.mlp_ratio * c.d_model, mask=c.mask, pooling=c.pooling,
        candidate_fusion=c.candidate_fusion, use_id=c.use_id, type_embedding=c.type_embedding,
        slot_embedding=c.slot_embedding, position_embedding=c.position_embedding, **common)
  _check_heads("item", c.d_model, c.heads)
  _check_choice("fusion", c.fusion, ("sum", "concat"))
  if c.name == "fusion_sasrec" and not fields:
    raise ValueError("fusion_sasrec needs at least one feature field; the data set has none.")
  use_fields = c.name == "fusion_sasrec" or (c.name == "bert4rec" and c.bert4rec_use_fields)
  bert = c.name == "bert4rec"
  return ItemSequenceTransformer(
      fields=fields if use_fields else (), layers=c.item_layers, heads=c.heads,
      mlp_dim=c.mlp_ratio * c.d_model, fusion=c.fusion if use_fields else "sum",
      bidirectional=bert, mask_token=bert, **common)


def _check_heads(level: str, width: int, heads: int) -> None:
  if heads < 1 or width % heads:
    raise ValueError(f"{level}-level width {width} is not divisible by {heads} heads.")


def _check_choice(key: str, value: str, choices: Sequence[str]) -> None:
  if value not in choices:
    raise ValueError(f"Unknown model.{key} {value!r}; use one of {tuple(choices)}.")


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


def score_catalogue(user: Array, items: Array) -> Array:
  """Scores ``[B, num_items + 1]`` of users ``[B, d]`` against candidates ``[N + 1, d]``."""
  return jnp.einsum("bd,nd->bn", user, items, preferred_element_type=jnp.float32)
