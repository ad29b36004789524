"""Item ids -> field tokens: the embedders every model here builds its item representations from.

An item becomes a small set of tokens, one per feature field: its id, each categorical field, a
pooled bag for a multi-valued field, a bucketized numeric field, a projected dense vector.
``FieldEmbedder`` returns them stacked ``[..., K, dim]``; ``TokenFusion`` fuses them into one
vector (a sum, or a concatenation and a projection). With ``multi_tokens = "per_value"`` a
multi-valued field gives one token per value slot instead of one pooled token (``max_len`` slots,
``slot_valid`` says which hold a value), for models that attend over an item's tokens.

Item features are *inputs*, not module constants or parameters: every call takes ``features``, a
dict from field name to the field's catalogue array indexed by item id (row 0 = padding). Passed as
jit arguments they are ordinary device buffers: they are never baked into the compiled program as
constants (a large catalogue would bloat it and recompile per data set), the optimizer never sees
them, checkpoints do not carry them, and the caller decides their placement (replicated for pmap or
a mesh). The static description of the fields (``FieldSpec``) sets the parameter shapes and is a
module attribute.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import dataclasses
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from common.data.schema import FieldSpec

# The id token is slot 0 when present; its type gets its own row in the field-type table.
ID_FIELD = "item_id"
FIELD_TYPES = ("id", "categorical", "multi", "numeric", "dense")
USABLE_KINDS = ("categorical", "multi", "numeric", "dense")
FUSIONS = ("sum", "concat", "id")
# How a multi-valued field becomes tokens: one pooled token, or one token per value slot.
MULTI_TOKENS = ("pooled", "per_value")

Array = Any
embed_init = nn.initializers.normal(stddev=0.02)


def resolve_fields(field_specs: Sequence[FieldSpec],
                   names: Sequence[str] | None = None) -> tuple[FieldSpec, ...]:
  """Picks the feature fields a model turns into tokens, in the order given.

  Args:
    field_specs: every field the data set provides.
    names: the field names to use; ``None`` or empty means every usable field (all but ``text``
      fields and the ``item_id`` field, which is always embedded from the ids themselves).

  Returns:
    The chosen specs, without ``item_id``.

  Raises:
    ValueError: a name that is not in ``field_specs``, a repeated name, or a ``text`` field (text
      must first be encoded into a ``dense`` field).
  """
  by_name = {spec.name: spec for spec in field_specs}
  if not names:
    return tuple(s for s in field_specs if s.kind in USABLE_KINDS and s.name != ID_FIELD)
  missing = [n for n in names if n not in by_name and n != ID_FIELD]
  if missing:
    raise ValueError(f"Config names fields {missing} that the data set does not have; its fields "
                     f"are {sorted(by_name)}.")
  if len(set(names)) != len(names):
    raise ValueError(f"Config names a field twice: {list(names)}.")
  chosen = []
  for name in names:
    if name == ID_FIELD:
      continue
    spec = by_name[name]
    if spec.kind not in USABLE_KINDS:
      raise ValueError(f"Field {name!r} has kind {spec.kind!r}, which cannot be embedded as a "
                       f"token; encode it into a 'dense' field first (usable kinds: "
                       f"{USABLE_KINDS}).")
    chosen.append(spec)
  return tuple(chosen)


def select_features(fields: Sequence[FieldSpec], item_features: Mapping[str, Any],
                    num_items: int) -> dict[str, Array]:
  """Checks and converts the catalogue arrays of the chosen fields to model inputs.

  Args:
    fields: the specs a model was built with (from ``resolve_fields``).
    item_features: field name -> array indexed by item id (row 0 = padding); extra keys are
      ignored.
    num_items: number of real items; every array must have ``num_items + 1`` rows.

  Returns:
    Field name -> ``jnp`` array (int32 for integer kinds, float32 for ``dense``).

  Raises:
    ValueError: a missing field or an array whose shape does not match its spec.
  """
  out = {}
  for spec in fields:
    if spec.name not in item_features:
      raise ValueError(f"Item features lack field {spec.name!r}; given: {sorted(item_features)}.")
    arr = np.asarray(item_features[spec.name])
    check_feature_shape(spec, arr.shape, num_items)
    out[spec.name] = jnp.asarray(arr, jnp.float32 if spec.kind == "dense" else jnp.int32)
  return out


def check_feature_shape(spec: FieldSpec, shape: tuple[int, ...], num_items: int) -> None:
  """Raises a clear error for a catalogue array that does not fit ``spec`` and ``num_items``."""
  expected = {"categorical": (num_items + 1,), "numeric": (num_items + 1,),
              "multi": (num_items + 1, spec.max_len), "dense": (num_items + 1, spec.dim)}
  if tuple(shape) != expected[spec.kind]:
    raise ValueError(f"Field {spec.name!r} ({spec.kind}) has shape {tuple(shape)}, expected "
                     f"{expected[spec.kind]} for {num_items} items (row 0 = padding). A catalogue "
                     "that does not match the model's item count is the usual cause.")


def check_sequence_length(ids: Array, max_len: int) -> None:
  """Raises a clear error for a sequence array that is not ``[B, L]`` with ``1 <= L <= max_len``."""
  if ids.ndim != 2:
    raise ValueError(f"item_ids must be [batch, length], got shape {ids.shape}.")
  if ids.shape[1] < 1:
    raise ValueError("item_ids has sequence length 0; a sequence needs at least one position.")
  if ids.shape[1] > max_len:
    raise ValueError(f"item_ids has length {ids.shape[1]} > the model's max_len {max_len}.")


@dataclasses.dataclass(frozen=True)
class EmbedderConfig:
  """How ``FieldEmbedder`` embeds an item.

  Attributes:
    dim: token width.
    use_id: whether the item id is a token (slot 0).
    type_embedding: add the field-type embedding (one per kind: id, categorical, multi, numeric,
      dense).
    slot_embedding: add the slot embedding (one per slot, so it also names the field).
    extra_ids: extra rows in the id table past ``num_items`` (BERT4Rec's mask token); such ids
      read the padding row of every feature array.
    multi_tokens: a multi-valued field is one token, the masked mean of its values' embeddings
      (``pooled``), or one token per value slot (``per_value``: ``max_len`` slots, padding
      values marked invalid by ``FieldEmbedder.slot_valid``).
    dtype: computation dtype of the output.
    param_dtype: parameter dtype.
  """

  dim: int = 64
  use_id: bool = True
  type_embedding: bool = True
  slot_embedding: bool = True
  extra_ids: int = 0
  multi_tokens: str = "pooled"
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32


def slot_fields(config: EmbedderConfig, fields: Sequence[FieldSpec]) -> tuple[int, ...]:
  """For each token slot of an item, the index of its field token (0 = the id when ``use_id``).

  One slot per field, except that with ``multi_tokens = "per_value"`` a multi-valued field has
  ``max_len`` slots. ``len(slot_fields(...))`` is the number of tokens per item, ``K``; the
  number of distinct entries, ``use_id + len(fields)``, is the number of slot embeddings (the
  value slots of one field share its slot embedding: the values of a bag have no order).
  """
  out = [0] if config.use_id else []
  for i, spec in enumerate(fields, start=len(out)):
    repeat = spec.max_len if config.multi_tokens == "per_value" and spec.kind == "multi" else 1
    out.extend([i] * repeat)
  return tuple(out)


class FieldEmbedder(nn.Module):
  """Embeds item ids as ``K`` field tokens: value + field-type + slot embeddings.

  Slot 0 is the id token (when ``config.use_id``), then one slot per field in ``fields`` order
  (``max_len`` slots for a multi-valued field with ``config.multi_tokens = "per_value"``; see
  ``slot_fields``). The field-type embedding is shared by fields of the same kind; the slot
  embedding tells the fields apart (a field's value slots share it). The parameters are the same
  in both ``multi_tokens`` modes.

  Attributes:
    config: the embedding settings.
    num_items: number of real items (ids ``1..num_items``; 0 is padding).
    fields: the feature fields, from ``resolve_fields``.
  """

  config: EmbedderConfig
  num_items: int
  fields: tuple[FieldSpec, ...] = ()

  @property
  def num_fields(self) -> int:
    """Field tokens with every bag pooled: ``use_id + len(fields)`` (slot embeddings)."""
    return int(self.config.use_id) + len(self.fields)

  @property
  def num_slots(self) -> int:
    """Tokens per item, ``K``, in ``config.multi_tokens`` mode."""
    return len(slot_fields(self.config, self.fields))

  def _per_value(self, spec: FieldSpec, pooled: bool) -> bool:
    return not pooled and self.config.multi_tokens == "per_value" and spec.kind == "multi"

  @nn.compact
  def __call__(self, ids: Array, features: Mapping[str, Array], pooled: bool = False) -> Array:
    """Returns the tokens ``[*ids.shape, K, dim]`` of the items ``ids`` (any shape).

    Args:
      ids: item ids, any shape.
      features: field name -> catalogue array.
      pooled: one token per field even in ``per_value`` mode (``K = num_fields``): the bag's
        masked mean, as in ``pooled`` mode, with the same parameters.
    """
    c = self.config
    if self.num_fields == 0:
      raise ValueError("FieldEmbedder needs the id token or at least one field.")
    ids = jnp.asarray(ids, jnp.int32)
    # Ids past the catalogue (mask token) read the padding row of every feature array.
    feat_ids = jnp.where(ids > self.num_items, 0, ids)
    tokens, types, slots = [], [], []
    if c.use_id:
      table = nn.Embed(self.num_items + 1 + c.extra_ids, c.dim, dtype=c.dtype,
                       param_dtype=c.param_dtype, embedding_init=embed_init, name="id")
      tokens.append(table(ids)[..., None, :])
      types.append(FIELD_TYPES.index("id"))
      slots.append(0)
    for spec in self.fields:
      if spec.name not in features:
        raise ValueError(f"Item features lack field {spec.name!r}; given: {sorted(features)}.")
      arr = features[spec.name]
      check_feature_shape(spec, arr.shape, self.num_items)
      values = jnp.take(arr, feat_ids, axis=0)
      per_value = self._per_value(spec, pooled)
      block = self._embed_field(spec, values, per_value)  # [..., n, dim]
      tokens.append(block)
      types.extend([FIELD_TYPES.index(spec.kind)] * block.shape[-2])
      slots.extend([len(tokens) - 1] * block.shape[-2])
    out = jnp.concatenate(tokens, axis=-2)  # [..., K, dim]
    if c.type_embedding:
      table = self.param("field_type", embed_init, (len(FIELD_TYPES), c.dim), c.param_dtype)
      out = out + jnp.asarray(table[np.array(types)], c.dtype)
    if c.slot_embedding:
      table = self.param("slot", embed_init, (self.num_fields, c.dim), c.param_dtype)
      if len(slots) != self.num_fields:
        table = table[np.array(slots)]
      out = out + jnp.asarray(table, c.dtype)
    return out.astype(c.dtype)

  def slot_valid(self, ids: Array, features: Mapping[str, Array]) -> Array:
    """Which token slots hold something, ``[*ids.shape, K]`` bool.

    All True except a ``per_value`` field's slots whose value is 0 (padding). Padding items are
    not marked here: their validity is the caller's (``ids != 0``).
    """
    ids = jnp.asarray(ids, jnp.int32)
    feat_ids = jnp.where(ids > self.num_items, 0, ids)
    parts = [jnp.ones((*ids.shape, 1), bool)] if self.config.use_id else []
    for spec in self.fields:
      if self._per_value(spec, pooled=False):
        parts.append(jnp.take(features[spec.name], feat_ids, axis=0) != 0)
      else:
        parts.append(jnp.ones((*ids.shape, 1), bool))
    return jnp.concatenate(parts, axis=-1)

  def _embed_field(self, spec: FieldSpec, values: Array, per_value: bool) -> Array:
    """One field's tokens ``[..., n, dim]``: ``n = max_len`` for a per-value bag, else 1."""
    c = self.config
    name = f"field_{spec.name}"
    if spec.kind == "dense":
      return nn.Dense(c.dim, dtype=c.dtype, param_dtype=c.param_dtype, name=name)(
          values.astype(jnp.float32))[..., None, :]
    table = nn.Embed(spec.vocab_size, c.dim, dtype=c.dtype, param_dtype=c.param_dtype,
                     embedding_init=embed_init, name=name)
    values = values.astype(jnp.int32)
    if spec.kind != "multi":
      return table(values)[..., None, :]
    present = (values != 0).astype(c.dtype)[..., None]
    if per_value:
      # One token per value; a padding slot carries no value embedding (the model masks it).
      return table(values) * present
    # A bag of values: masked mean over the non-zero ids; an empty bag is the zero vector.
    total = jnp.sum(table(values) * present, axis=-2)
    return (total / jnp.maximum(jnp.sum(present, axis=-2), 1.0))[..., None, :]


class TokenFusion(nn.Module):
  """Fuses an item's ``K`` field tokens ``[..., K, d_in]`` into one vector ``[..., out_dim]``.

  Attributes:
    mode: ``sum`` (sum of the tokens, projected only if widths differ), ``concat`` (concatenation
      then a linear projection) or ``id`` (slot 0 alone, i.e. the id token).
    out_dim: output width.
    dtype: computation dtype.
    param_dtype: parameter dtype.
  """

  mode: str = "sum"
  out_dim: int = 64
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, tokens: Array) -> Array:
    if self.mode == "concat":
      flat = tokens.reshape(*tokens.shape[:-2], -1)
      return nn.Dense(self.out_dim, dtype=self.dtype, param_dtype=self.param_dtype,
                      name="proj")(flat)
    if self.mode == "sum":
      fused = jnp.sum(tokens, axis=-2)
    elif self.mode == "id":
      fused = tokens[..., 0, :]
    else:
      raise ValueError(f"Unknown fusion mode {self.mode!r}; use one of {FUSIONS}.")
    if fused.shape[-1] != self.out_dim:
      fused = nn.Dense(self.out_dim, dtype=self.dtype, param_dtype=self.param_dtype,
                       name="proj")(fused)
    return fused
