"""Item and user feature arrays, indexed by remapped id, with their vocabularies.

A field's options (the ``item_features``/``user_features`` entries of the data config):

  ``kind``        categorical | multi | numeric | dense | text | drop (leave the column out).
                  Default by column type: token -> categorical, token_seq -> multi,
                  float -> numeric, float_seq -> dense, text -> text.
  ``column``      the source column (default: the field name).
  ``min_count``   categorical/multi: values seen on fewer items map to 0 (unknown). Default 1.
  ``max_len``     multi: values kept per item (the first ones); default the most any item has.
  ``sep``         multi from a plain token column: the separator to split on (default ``|``).
  ``num_buckets`` numeric: the number of equal-frequency buckets (default 10).
  ``boundaries``  numeric: explicit bucket boundaries instead of quantiles.
  ``path``        dense: a ``.npy``/``.npz`` of vectors keyed by raw id (see readers.read_dense),
  ``ids_path``    with an optional id list.

Vocabularies: token ids are assigned by descending frequency over the data set's items, ties by
token, starting at 1; 0 is padding/unknown. Bucket ``b`` of a numeric field holds values ``v`` with
``edges[b-2] <= v < edges[b-1]`` (bucket 1 is below the first edge); 0 means missing. Values and
vocabularies are computed over the items (users) that survive filtering only.
"""

from __future__ import annotations

import collections
from typing import Optional
import warnings

import numpy as np

from common.data.errors import DataError, DataWarning, check_separator
from common.data.raw import DenseTable, RawColumn, RawTable, canonical_ids
from common.data.schema import FieldSpec

DEFAULT_KIND = {"token": "categorical", "token_seq": "multi", "float": "numeric",
                "float_seq": "dense", "text": "text"}
PAD_TOKEN = "[PAD]"
# The data config's ``min_feature_match``: the share of a data set's items (users) a feature table
# must have rows for before a warning says the rest get all-zero features.
DEFAULT_MIN_FEATURE_MATCH = 0.9


def build_features(raw_ids: np.ndarray, table: Optional[RawTable],
                   dense: Optional[dict[str, DenseTable]] = None,
                   fields: Optional[dict[str, dict]] = None, auto: bool = True,
                   id_field: str = "item_id",
                   min_match: float = DEFAULT_MIN_FEATURE_MATCH
                   ) -> tuple[list[FieldSpec], dict, dict]:
  """Builds the feature arrays of one entity (items or users).

  Args:
    raw_ids: raw id per remapped id, index 0 the padding entity.
    table: the feature table as read, or None.
    dense: field name -> vectors keyed by raw id, read from separate files.
    fields: field name -> options (see the module docstring); fields come out in this order.
    auto: also add every table column not named in ``fields``, with its default kind.
    id_field: the name of the id field, which comes first.
    min_match: warn (``DataWarning``) when a table or vector file has rows for fewer than this
      share of the entities; none at all is an error.

  Returns:
    (field specs, name -> array, name -> vocabulary dict). The id field maps id i to i.

  Raises:
    DataError: a configured column is absent, a value has the wrong type, or a feature table
      matches none of the ids.
  """
  fields = dict(fields or {})
  dense = dense or {}
  n = len(raw_ids)
  specs = [FieldSpec(id_field, "categorical", vocab_size=n)]
  arrays = {id_field: np.arange(n, dtype=np.int32)}
  vocabs = {}
  row_of = np.full(n, -1, dtype=np.int64)
  columns: dict[str, RawColumn] = {}
  if table is not None:
    index = {k: r for r, k in enumerate(table.ids.tolist())}
    row_of[1:] = [index.get(k, -1) for k in raw_ids[1:].tolist()]
    check_join(row_of[1:] >= 0, raw_ids[1:], table.ids, table.path, id_field, min_match)
    columns = table.columns
    if auto:
      taken = {o.get("column", f) for f, o in fields.items()}
      for name, col in columns.items():
        if name not in taken and name not in fields:
          fields[name] = {"kind": DEFAULT_KIND[col.type]}
  for name in dense:  # vectors handed over separately are always wanted, unless dropped
    fields.setdefault(name, {"kind": "dense"})

  for name, opts in fields.items():
    opts = dict(opts)
    if name == id_field:
      raise DataError(f"feature field name {name!r} is reserved for the id field.")
    if opts.get("kind") == "drop":
      continue
    if name in dense:
      spec, arr = _dense_from_table(name, dense[name], raw_ids, min_match)
      specs.append(spec)
      arrays[name] = arr
      continue
    src = opts.get("column", name)
    if src not in columns:
      where = table.path if table is not None else None
      raise DataError(f"feature field {name!r} reads column {src!r}, which the "
                      f"{id_field.split('_')[0]} table does not have (it has "
                      f"{list(columns)}).", path=where, line=1 if where else None, column=src)
    col = columns[src]
    kind = opts.get("kind", DEFAULT_KIND[col.type])
    if kind == "drop":
      continue
    values = [None if r < 0 else col.values[r] for r in row_of[1:]]
    lines = [None if r < 0 else int(table.lines[r]) for r in row_of[1:]]
    check_separator(f"{id_field.split('_')[0]}_features.{name}.sep", opts.get("sep"),
                    table.path)
    builder = _BUILDERS.get(kind)
    if builder is None:
      raise DataError(f"feature field {name!r}: kind {kind!r} is not one of "
                      f"{sorted(_BUILDERS) + ['drop']}.", path=table.path, column=src)
    spec, arr, vocab = builder(name, col, values, lines, opts, table.path)
    specs.append(spec)
    arrays[name] = arr
    if vocab is not None:
      vocab["column"] = src
      vocabs[name] = vocab
  return specs, arrays, vocabs


def check_join(found: np.ndarray, raw_ids: np.ndarray, table_ids: np.ndarray, path: str,
               id_field: str, min_match: float) -> None:
  """Checks how many of a data set's ids a feature table (or vector file) has rows for.

  A table that matches none of them is almost always keyed by other ids (another column, another
  data set, 0- vs 1-based rows): every feature would be silently zero, so that is an error. Fewer
  than ``min_match`` is a warning with the count and three of the ids that have no row.

  Args:
    found: bool per entity (padding excluded): the table has a row for it.
    raw_ids: the entities' raw ids, in the same order.
    table_ids: the table's ids, for the message.
    path: the table's file.
    id_field: ``item_id`` or ``user_id``.
    min_match: the share below which to warn.

  Raises:
    DataError: no entity has a row.
  """
  n, matched = len(found), int(np.sum(found))
  if n == 0 or matched >= min_match * n:
    return
  what = id_field.split("_")[0]
  missing = [str(v) for v in np.asarray(raw_ids)[~found][:3]]
  if matched == 0:
    raise DataError(
        f"none of the data set's {n} {what} ids has a row in this table (its ids look like "
        f"{[str(v) for v in np.asarray(table_ids)[:3]]}, the data set's like {missing}); check "
        f"the table's id column and that both files use the same {what} ids.", path=path)
  warnings.warn(DataWarning(
      f"file {path}: only {matched} of {n} {what}s ({matched / n:.0%}) have a row in this table, "
      f"below min_feature_match={min_match:g}; the other {n - matched} get all-zero features "
      f"(e.g. ids {', '.join(missing)}). Fix the ids, or lower the data config's "
      "min_feature_match to accept this."), stacklevel=3)


def _tokens(col: RawColumn, values, lines, path, multi: bool, sep: str) -> list[list[str]]:
  """Each entity's values as a list of tokens (empty where missing)."""
  out = []
  for v, line in zip(values, lines):
    if v is None:
      out.append([])
    elif col.type == "token_seq":
      out.append(list(dict.fromkeys(t for t in v if t)))
    elif col.type in ("token", "text"):
      v = v.strip()
      parts = [t.strip() for t in v.split(sep)] if multi else [v]
      out.append(list(dict.fromkeys(t for t in parts if t)))
    elif col.type == "float":
      out.append([] if np.isnan(v) else [f"{v:g}"])
    else:
      raise DataError(f"a {col.type} column cannot be a {'multi' if multi else 'categorical'} "
                      "field.", path=path, line=line, column=col.name)
  return out


def _vocab(token_lists: list[list[str]], min_count: int) -> tuple[list[str], dict[str, int]]:
  counts = collections.Counter(t for toks in token_lists for t in toks)
  kept = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
  return [PAD_TOKEN] + kept, {t: j + 1 for j, t in enumerate(kept)}


def _categorical(name, col, values, lines, opts, path):
  toks = _tokens(col, values, lines, path, multi=False, sep="")
  for t, line in zip(toks, lines):
    if len(t) > 1:
      raise DataError(f"field {name!r} is categorical but the value has {len(t)} tokens; use "
                      "kind 'multi'.", path=path, line=line, column=col.name)
  vocab, index = _vocab(toks, opts.get("min_count", 1))
  arr = np.zeros(len(values) + 1, dtype=np.int32)
  arr[1:] = [index.get(t[0], 0) if t else 0 for t in toks]
  return FieldSpec(name, "categorical", vocab_size=len(vocab)), arr, {"tokens": vocab}


def _multi(name, col, values, lines, opts, path):
  toks = _tokens(col, values, lines, path, multi=True, sep=opts.get("sep", "|"))
  vocab, index = _vocab(toks, opts.get("min_count", 1))
  ids = [[index[t] for t in ts if t in index] for ts in toks]
  max_len = int(opts.get("max_len") or max([len(x) for x in ids] + [1]))
  arr = np.zeros((len(values) + 1, max_len), dtype=np.int32)
  for r, x in enumerate(ids, start=1):
    x = x[:max_len]
    arr[r, :len(x)] = x
  spec = FieldSpec(name, "multi", vocab_size=len(vocab), max_len=max_len)
  return spec, arr, {"tokens": vocab}


def _numeric(name, col, values, lines, opts, path):
  x = np.full(len(values), np.nan)
  for r, (v, line) in enumerate(zip(values, lines)):
    if v is None:
      continue
    if col.type == "float":
      x[r] = v
    elif col.type in ("token", "text"):
      if v.strip():
        try:
          x[r] = float(v)
        except ValueError:
          raise DataError(f"field {name!r} is numeric but the value {v!r} is not a number.",
                          path=path, line=line, column=col.name) from None
    else:
      raise DataError(f"a {col.type} column cannot be a numeric field.", path=path, line=line,
                      column=col.name)
  present = x[~np.isnan(x)]
  if opts.get("boundaries") is not None:
    edges = np.unique(np.asarray(opts["boundaries"], dtype=np.float64))
  else:
    nb = int(opts.get("num_buckets", 10))
    if nb < 1:
      raise DataError(f"field {name!r}: num_buckets must be >= 1, got {nb}.", path=path,
                      column=col.name)
    qs = np.quantile(present, np.arange(1, nb) / nb) if len(present) else np.zeros(0)
    edges = np.unique(qs)
  arr = np.zeros(len(values) + 1, dtype=np.int32)
  ok = ~np.isnan(x)
  arr[1:][ok] = np.searchsorted(edges, x[ok], side="right") + 1
  spec = FieldSpec(name, "numeric", vocab_size=len(edges) + 2)
  return spec, arr, {"edges": edges.tolist()}


def _dense(name, col, values, lines, opts, path):
  if col.type not in ("float_seq", "float"):
    raise DataError(f"a {col.type} column cannot be a dense field.", path=path, column=col.name)
  dims = {len(np.atleast_1d(v)) for v in values if v is not None}
  if len(dims) > 1:
    dim = min(dims, key=lambda d: -sum(1 for v in values if v is not None and len(v) == d))
    r = next(r for r, v in enumerate(values) if v is not None and len(np.atleast_1d(v)) != dim)
    raise DataError(f"field {name!r}: vectors have different lengths ({sorted(dims)}); this one "
                    f"has {len(np.atleast_1d(values[r]))}, most have {dim}.", path=path,
                    line=lines[r], column=col.name)
  dim = dims.pop() if dims else 1
  arr = np.zeros((len(values) + 1, dim), dtype=np.float32)
  for r, v in enumerate(values, start=1):
    if v is None:
      continue
    v = np.atleast_1d(np.asarray(v, np.float32))
    # A float column's NaN means missing (zeros); anything else that is not finite is bad data.
    bad = ~np.isfinite(v) & ~(np.isnan(v) if col.type == "float" else False)
    if bad.any():
      raise DataError(f"field {name!r}: the vector holds {v[bad][0]}; dense vectors must be "
                      "finite. Fix the value or remove the line.", path=path, line=lines[r - 1],
                      column=col.name)
    arr[r] = np.nan_to_num(v)
  return FieldSpec(name, "dense", dim=dim), arr, None


def _text(name, col, values, lines, opts, path):
  del lines, opts, path
  out = [""]
  for v in values:
    if v is None:
      out.append("")
    elif col.type == "token_seq":
      out.append(" ".join(v))
    elif col.type == "float":
      out.append("" if np.isnan(v) else f"{v:g}")
    elif col.type == "float_seq":
      out.append(" ".join(f"{f:g}" for f in v))
    else:
      out.append(v)
  return FieldSpec(name, "text"), out, None


def _dense_from_table(name: str, table: DenseTable, raw_ids: np.ndarray, min_match: float):
  ids, keys = canonical_ids(table.ids, np.array(raw_ids[1:].tolist()))
  index = {k: r for r, k in enumerate(ids.tolist())}
  rows = np.array([index.get(k, -1) for k in keys.tolist()], dtype=np.int64)
  check_join(rows >= 0, raw_ids[1:], table.ids, table.path, "item_id", min_match)
  arr = np.zeros((len(raw_ids), table.vectors.shape[1]), dtype=np.float32)
  found = rows >= 0
  arr[1:][found] = table.vectors[rows[found]]
  return FieldSpec(name, "dense", dim=table.vectors.shape[1]), arr


_BUILDERS = {"categorical": _categorical, "multi": _multi, "numeric": _numeric, "dense": _dense,
             "text": _text}
