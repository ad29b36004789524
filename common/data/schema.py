"""The contract between the recommendation data layer and the models that read it.

A prepared data set gives, besides the interaction sequences, one array per item feature field,
indexed by the remapped item id (row 0 is the padding item and is all zeros). ``FieldSpec`` says
what a field's array holds, so a model can build an embedding for every field without knowing
where the data came from.
"""

from __future__ import annotations

import dataclasses

KINDS = ("categorical", "multi", "numeric", "dense", "text")


@dataclasses.dataclass(frozen=True)
class FieldSpec:
  """One item feature field.

  Attributes:
    name: the field's name (``item_id`` is the id field itself).
    kind: ``categorical`` (int32 ``[n_items + 1]``), ``multi`` (int32 ``[n_items + 1, max_len]``,
      padded with 0), ``numeric`` (bucketized: int32 ``[n_items + 1]``), ``dense`` (float32
      ``[n_items + 1, dim]``) or ``text`` (a list of ``n_items + 1`` strings, kept for encoders).
    vocab_size: for the integer kinds, ids lie in ``[0, vocab_size)`` and 0 means padding/unknown.
    max_len: for ``multi``, the number of values per item.
    dim: for ``dense``, the vector width.
  """

  name: str
  kind: str
  vocab_size: int = 0
  max_len: int = 1
  dim: int = 0

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(f"FieldSpec {self.name!r}: kind {self.kind!r} is not one of {KINDS}.")
    if self.kind in ("categorical", "multi", "numeric") and self.vocab_size < 1:
      raise ValueError(f"FieldSpec {self.name!r}: an integer field needs vocab_size >= 1.")
    if self.kind == "dense" and self.dim < 1:
      raise ValueError(f"FieldSpec {self.name!r}: a dense field needs dim >= 1.")

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: dict) -> "FieldSpec":
    return cls(**d)
