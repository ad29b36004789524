"""What every reader returns: interactions and feature tables as read, before any preprocessing.

Readers differ in file formats only; everything after them (filtering, ordering, splitting,
features) works on these containers, so a new format needs nothing but a new reader.

Column types follow RecBole's atomic files, plus ``text``:

  ``token``      one string per row ("" when missing)
  ``token_seq``  a list of strings per row (e.g. genres)
  ``float``      one float per row (NaN when missing)
  ``float_seq``  a list of floats per row (e.g. a pre-computed embedding)
  ``text``       free text, kept whole for text encoders
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import numpy as np

from common.data.errors import DataError

COLUMN_TYPES = ("token", "token_seq", "float", "float_seq", "text")


@dataclasses.dataclass
class RawColumn:
  """One feature column of a table, as read.

  Attributes:
    name: the column name.
    type: one of COLUMN_TYPES.
    values: ``token``/``text``: a list of str; ``token_seq``: a list of lists of str; ``float``:
      a float64 array; ``float_seq``: a list of float64 arrays.
  """

  name: str
  type: str
  values: Any

  def __post_init__(self):
    if self.type not in COLUMN_TYPES:
      raise ValueError(f"column {self.name!r}: type {self.type!r} is not one of {COLUMN_TYPES}.")


@dataclasses.dataclass
class RawTable:
  """Rows keyed by a raw id (an item or a user file).

  Attributes:
    path: the file the table was read from (used in error messages).
    ids: the raw id of each row (str or int64 array).
    columns: name -> RawColumn, in file order.
    lines: the 1-based line of each row in ``path``.
  """

  path: str
  ids: np.ndarray
  columns: dict[str, RawColumn]
  lines: np.ndarray

  def __post_init__(self):
    self.ids = np.asarray(self.ids)
    self.lines = np.asarray(self.lines, dtype=np.int64)
    for col in self.columns.values():
      if len(col.values) != len(self.ids):
        raise ValueError(f"{self.path}: column {col.name!r} has {len(col.values)} rows, the ids "
                         f"have {len(self.ids)}.")
    check_unique_ids(self.ids, self.lines, self.path)


@dataclasses.dataclass
class RawInteractions:
  """User-item interactions, one row per event, in file order.

  Attributes:
    path: the file the events were read from.
    users: raw user id per event (str or int64 array).
    items: raw item id per event.
    ratings: float64 per event, or None when the source has no rating.
    timestamps: float64 per event, or None when the source has none (order is then file order).
    lines: the 1-based line each event came from; its order is the file order, which breaks
      timestamp ties (see preprocess.py).
  """

  path: str
  users: np.ndarray
  items: np.ndarray
  ratings: Optional[np.ndarray]
  timestamps: Optional[np.ndarray]
  lines: np.ndarray

  def __post_init__(self):
    self.users = np.asarray(self.users)
    self.items = np.asarray(self.items)
    self.lines = np.asarray(self.lines, dtype=np.int64)
    n = len(self.users)
    for name in ("items", "ratings", "timestamps", "lines"):
      v = getattr(self, name)
      if v is not None and len(v) != n:
        raise ValueError(f"{self.path}: {name} has {len(v)} rows, users has {n}.")

  def __len__(self) -> int:
    return len(self.users)

  def take(self, keep: np.ndarray) -> "RawInteractions":
    """Returns the events selected by a boolean mask or index array."""
    sel = lambda a: None if a is None else a[keep]
    return RawInteractions(self.path, self.users[keep], self.items[keep], sel(self.ratings),
                           sel(self.timestamps), self.lines[keep])


@dataclasses.dataclass
class DenseTable:
  """Vectors keyed by raw item id (e.g. text or image embeddings from a ``.npy``).

  Attributes:
    path: the file the vectors came from.
    ids: raw item id per row.
    vectors: float32 ``[rows, dim]``.
  """

  path: str
  ids: np.ndarray
  vectors: np.ndarray


@dataclasses.dataclass
class RawData:
  """Everything a reader found.

  Attributes:
    interactions: the events.
    items: the item feature table, or None.
    users: the user feature table, or None.
    dense: field name -> DenseTable, for vectors read from separate files.
  """

  interactions: RawInteractions
  items: Optional[RawTable] = None
  users: Optional[RawTable] = None
  dense: dict[str, DenseTable] = dataclasses.field(default_factory=dict)


def check_unique_ids(ids: np.ndarray, lines: np.ndarray, path: str) -> None:
  """Raises a DataError naming the line of the first repeated id in a feature table."""
  if len(ids) == 0:
    return
  _, first, counts = np.unique(ids, return_index=True, return_counts=True)
  if counts.max() > 1:
    dup = ids[first[np.argmax(counts > 1)]]
    rows = np.flatnonzero(ids == dup)
    raise DataError(f"id {dup!r} appears more than once (also on line {lines[rows[0]]}); "
                    "a feature table needs one row per id.", path=path, line=int(lines[rows[1]]),
                    column="id")


def canonical_ids(*arrays: np.ndarray) -> list[np.ndarray]:
  """Gives raw id arrays one common dtype, so ids from different files compare equal.

  Ids become int64 when every id in every array is a plain decimal integer (so "7" and 7 match and
  sort numerically), and str otherwise ("007" stays distinct from "7").

  Args:
    *arrays: raw id arrays (str, object or integer dtype).

  Returns:
    The arrays converted to one dtype, in the same order.
  """
  arrays = [np.asarray(a) for a in arrays]
  if all(a.dtype.kind in "iu" for a in arrays):
    return [a.astype(np.int64) for a in arrays]
  as_str = [a.astype(str) if a.dtype.kind in "iu" else a for a in arrays]
  try:
    ints = [a.astype(np.int64) for a in as_str]
  except (ValueError, OverflowError):
    return [a.astype(str) for a in as_str]
  # "007" -> 7 would merge distinct ids; only convert when the text is the canonical form.
  for a, i in zip(as_str, ints):
    if len(a) and not np.array_equal(a.astype(str), i.astype(str)):
      return [b.astype(str) for b in as_str]
  return ints
