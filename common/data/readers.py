"""Readers for RecBole atomic files, one-line-per-user sequence files, generic CSV/TSV/JSON-lines
tables and dense vectors in ``.npy``/``.npz`` files.

Each reader returns the containers of ``raw.py``; raw MovieLens files are in ``movielens.py``.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import os
import re
from typing import Optional

import numpy as np

from common.data.errors import DataError, check_separator, require_columns, require_file
from common.data.parsing import read_text, split_rows, to_float, to_time
from common.data.raw import (DenseTable, RawColumn, RawData, RawInteractions, RawTable,
                             canonical_ids)

# RecBole's atomic-file types, and how a value of each is split.
_ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")


# ------------------------------------------------------------------------------------------------
# RecBole atomic files.


def _atomic_header(line: str, path: str) -> tuple[list[str], list[str]]:
  names, types = [], []
  for j, field in enumerate(line.split("\t")):
    name, _, typ = field.strip().partition(":")
    if typ not in _ATOMIC_TYPES:
      raise DataError(f"header field {field!r} needs a type suffix, one of "
                      f"{[':' + t for t in _ATOMIC_TYPES]} (RecBole atomic format).", path=path,
                      line=1, column=name or str(j + 1))
    names.append(name)
    types.append(typ)
  return names, types


def _atomic_table(path: str, encoding: str) -> tuple[list[str], list[str], list, list[int]]:
  text = read_text(path, encoding)
  head, _, body = text.partition("\n")
  names, types = _atomic_header(head.rstrip("\r"), path)
  rows, lines = split_rows(body, "\t", path, len(names), names, start_line=2)
  cols = list(zip(*rows)) if rows else [()] * len(names)
  return names, types, cols, lines


def _atomic_column(name: str, typ: str, values, lines, path: str, seq_sep: str) -> RawColumn:
  if typ == "token":
    return RawColumn(name, "token", [v.strip() for v in values])
  if typ == "token_seq":
    return RawColumn(name, "token_seq", [[t for t in v.split(seq_sep) if t] for v in values])
  if typ == "float":
    return RawColumn(name, "float", to_float(values, lines, path, name, allow_missing=True))
  out = []
  for v, line in zip(values, lines):
    toks = [t for t in v.split(seq_sep) if t]
    out.append(to_float(toks, [line] * len(toks), path, name))
  return RawColumn(name, "float_seq", out)


def read_recbole_atomic(path: str, dataset: Optional[str] = None, *, user_field: str = "user_id",
                        item_field: str = "item_id", rating_field: str = "rating",
                        time_field: str = "timestamp", seq_separator: str = " ",
                        encoding: str = "auto") -> RawData:
  """Reads RecBole atomic files ``<path>/<dataset>.inter`` and, where present, ``.item``/``.user``.

  Headers are ``name:type`` with type ``token``, ``token_seq``, ``float`` or ``float_seq``; fields
  are tab-separated and sequence values split on ``seq_separator``.

  Args:
    path: the folder holding the files.
    dataset: the file stem; defaults to the folder's name (RecBole's convention).
    user_field: the user id column of ``.inter`` and ``.user``.
    item_field: the item id column of ``.inter`` and ``.item``.
    rating_field: the rating column of ``.inter``; read when present.
    time_field: the timestamp column of ``.inter``; read when present.
    seq_separator: the separator inside ``token_seq``/``float_seq`` values.
    encoding: text encoding, ``auto`` for UTF-8 with a Latin-1 fallback.

  Returns:
    RawData with the events and the item and user tables.

  Raises:
    DataError: a file or column is missing, a line is malformed, or a value has the wrong type.
  """
  check_separator("source.seq_separator", seq_separator, path)
  if os.path.isfile(path):
    raise DataError("source.path is a file, but format 'recbole_atomic' expects the folder that "
                    "holds <dataset>.inter (and .item, .user); give the folder.", path=path)
  dataset = dataset or os.path.basename(os.path.normpath(path))
  inter_path = require_file(os.path.join(path, dataset + ".inter"), "RecBole .inter file")
  names, types, cols, lines = _atomic_table(inter_path, encoding)
  require_columns(names, {"user_field": user_field, "item_field": item_field}, inter_path)
  col = dict(zip(names, cols))
  ratings = timestamps = None
  if rating_field in col:
    ratings = to_float(col[rating_field], lines, inter_path, rating_field)
  if time_field in col:
    timestamps = to_time(col[time_field], lines, inter_path, time_field)
  users = np.array([v.strip() for v in col[user_field]], dtype=object)
  items = np.array([v.strip() for v in col[item_field]], dtype=object)
  _check_nonempty_ids(users, lines, inter_path, user_field)
  _check_nonempty_ids(items, lines, inter_path, item_field)
  inter = RawInteractions(inter_path, users, items, ratings, timestamps, np.asarray(lines))

  tables = {}
  for suffix, key in ((".item", item_field), (".user", user_field)):
    table_path = os.path.join(path, dataset + suffix)
    if not os.path.exists(table_path):
      tables[suffix] = None
      continue
    names, types, cols, lines = _atomic_table(table_path, encoding)
    require_columns(names, {f"{suffix[1:]}_field": key}, table_path)
    columns = {}
    for name, typ, values in zip(names, types, cols):
      if name != key:
        columns[name] = _atomic_column(name, typ, values, lines, table_path, seq_separator)
    ids = np.array([v.strip() for v in cols[names.index(key)]], dtype=object)
    tables[suffix] = RawTable(table_path, ids, columns, np.asarray(lines))
  return _canonical(RawData(inter, tables[".item"], tables[".user"]))


def _check_nonempty_ids(ids: np.ndarray, lines, path: str, column: str) -> None:
  empty = np.flatnonzero(ids == "")
  if len(empty):
    raise DataError("the id is empty.", path=path, line=int(lines[empty[0]]), column=column)


def _canonical(raw: RawData) -> RawData:
  """Gives interaction and table ids one dtype so that they match (see raw.canonical_ids)."""
  item_ids = [raw.items.ids] if raw.items is not None else []
  items, *rest = canonical_ids(raw.interactions.items, *item_ids)
  raw.interactions.items = items
  if raw.items is not None:
    raw.items.ids = rest[0]
  user_ids = [raw.users.ids] if raw.users is not None else []
  users, *rest = canonical_ids(raw.interactions.users, *user_ids)
  raw.interactions.users = users
  if raw.users is not None:
    raw.users.ids = rest[0]
  return raw


# ------------------------------------------------------------------------------------------------
# One line per user: ``user item item ...`` (the SASRec/BERT4Rec data files).


def read_sequence_text(path: str, *, has_user_id: bool = True, separator: Optional[str] = None,
                       encoding: str = "auto") -> RawData:
  """Reads a file with one user per line: ``user item item ...`` in chronological order.

  There are no timestamps: an item's position on its line is its order, so the chronological
  order is the file order.

  Args:
    path: the file.
    has_user_id: whether the first field is the user id; if not, the line number is the user id.
    separator: the field separator; None splits on whitespace.
    encoding: text encoding.

  Raises:
    DataError: the file is missing, the separator is empty, or a line has no items.
  """
  check_separator("source.separator", separator, path)
  text = read_text(path, encoding)
  users, items, lines = [], [], []
  rows, row_lines = split_rows(text, separator, path, None)
  for fields, line in zip(rows, row_lines):
    fields = [f.strip() for f in fields]
    if has_user_id:
      user, seq = fields[0], fields[1:]
    else:
      user, seq = str(line), fields
    if not seq or any(not f for f in seq):
      raise DataError("malformed line: no item ids after the user id." if not seq else
                      "malformed line: an empty item id (two separators in a row?).",
                      path=path, line=line, column=str(2 if has_user_id else 1))
    users.extend([user] * len(seq))
    items.extend(seq)
    lines.extend([line] * len(seq))
  inter = RawInteractions(path, np.array(users, dtype=object), np.array(items, dtype=object),
                          None, None, np.array(lines, dtype=np.int64))
  return _canonical(RawData(inter))


# ------------------------------------------------------------------------------------------------
# Item attributes as one JSON object, ``{"item_id": [attribute_id, ...]}`` (the ``item2attributes``
# file of S3-Rec and the papers that reuse its Amazon data).

# A plain decimal integer as canonical_ids reads it: "007" or "+7" would not match 7 in the
# sequence file, so they are refused rather than silently joined to nothing.
_INT_ID = re.compile(r"-?(0|[1-9][0-9]*)")
_ATTRIBUTES_FIX = ('the file must be one JSON object mapping each item id to a non-empty list of '
                   'integer attribute ids, e.g. {"1": [3, 17], "2": [3]}')


class _JsonObject(list):
  """A JSON object as its (key, value) pairs, so that a repeated key is seen, not merged."""


def _positions(text: str, offsets: list[Optional[int]]) -> list[tuple]:
  """The 1-based line and column (a str, as DataError's column) of each character offset."""
  newlines = [m.start() for m in re.finditer("\n", text)]
  out = []
  for o in offsets:
    if o is None:
      out.append((None, None))
      continue
    n = bisect.bisect_left(newlines, o)
    out.append((n + 1, str(o - (newlines[n - 1] if n else -1))))
  return out


def _key_offsets(text: str, keys: list[str]) -> list[Optional[int]]:
  """Where each key of the top-level object is in ``text`` (keys in file order), or None.

  One forward scan: each key is searched from where the previous one was found, and only a
  string followed by ``:`` counts (a string in a list is a value). A key written with escapes
  (``"\\u0034"``) is not found; its messages then give no line.
  """
  out, pos = [], 0
  for key in keys:
    quoted = json.dumps(key, ensure_ascii=False)
    at = text.find(quoted, pos)
    while at >= 0 and not text[at + len(quoted):at + len(quoted) + 64].lstrip().startswith(":"):
      at = text.find(quoted, at + 1)
    out.append(None if at < 0 else at)
    pos = pos if at < 0 else at + len(quoted)
  return out


def read_item_attributes(path: str, *, field: str = "attributes",
                         encoding: str = "auto") -> RawTable:
  """Reads an ``item2attributes`` JSON file as an item table with one ``token_seq`` column.

  The file is one JSON object, ``{"item_id": [attribute_id, ...], ...}``: item ids are the
  object's keys, attribute ids the list values, both integers; the order within a list does not
  matter and a repeated attribute counts once (features.py). The column becomes a ``multi`` field.

  Args:
    path: the JSON file.
    field: the column's (and by default the feature field's) name.
    encoding: text encoding.

  Returns:
    The table: int64 item ids, one row per key, and the column ``field`` holding each item's
    attribute ids as strings. ``lines`` are the lines the keys are on.

  Raises:
    DataError: a missing file; malformed JSON (with its line and column); a top level that is
      not an object, or a value that is not a list; an item id or attribute id that is not an
      integer, an empty list, or a repeated item id (each naming the item, with its line and
      column).
  """
  text = read_text(path, encoding)
  try:
    obj = json.loads(text, object_pairs_hook=_JsonObject)
  except json.JSONDecodeError as e:
    raise DataError(f"malformed JSON: {e.msg} (character {e.pos}). Fix: {_ATTRIBUTES_FIX}.",
                    path=path, line=e.lineno, column=str(e.colno)) from None
  if not isinstance(obj, _JsonObject):
    raise DataError(f"the top level is {_json_kind(obj)}, not an object of lists. "
                    f"Fix: {_ATTRIBUTES_FIX}.", path=path, line=1)
  where = _positions(text, _key_offsets(text, [k for k, _ in obj]))
  ids, values, seen = [], [], set()
  for (key, attrs), (line, col) in zip(obj, where):
    bad = lambda problem, fix: DataError(f"item {key!r}: {problem}. Fix: {fix}.", path=path,
                                         line=line, column=col)
    if not _INT_ID.fullmatch(key):
      raise bad("the item id is not an integer", "key the object by the integer item ids of "
                "the sequence file, written as JSON strings without leading zeros, e.g. \"42\"")
    if key in seen:
      raise bad("the item id appears more than once in the object", "merge its lists into one "
                "entry")
    seen.add(key)
    if not isinstance(attrs, list) or isinstance(attrs, _JsonObject):
      raise bad(f"the value is {_json_kind(attrs)}, not a list of attribute ids", _ATTRIBUTES_FIX)
    if not attrs:
      raise bad("the attribute list is empty", "give the item at least one attribute id")
    toks = []
    for a in attrs:
      if isinstance(a, str) and _INT_ID.fullmatch(a):
        a = int(a)
      if not isinstance(a, int) or isinstance(a, bool):
        raise bad(f"attribute id {a!r} is not an integer", "write attribute ids as JSON "
                  "integers, e.g. [3, 17]")
      toks.append(str(a))
    ids.append(int(key))
    values.append(toks)
  lines = [line or 1 for line, _ in where]
  return RawTable(path, np.array(ids, dtype=np.int64),
                  {field: RawColumn(field, "token_seq", values)}, np.array(lines, dtype=np.int64))


def _json_kind(value) -> str:
  """A decoded JSON value's kind, as the file would call it (for messages)."""
  if isinstance(value, _JsonObject):
    return "an object"
  if isinstance(value, list):
    return "an array"
  if isinstance(value, str):
    return "a string"
  if isinstance(value, bool):
    return "a boolean"
  return "null" if value is None else "a number"


def require_item_rows(table: RawTable, inter: RawInteractions, key: str) -> None:
  """Checks that every item of the events has a row in an item table that must cover them all.

  Args:
    table: the item table (e.g. from ``read_item_attributes``).
    inter: the events.
    key: the config key that named the table, for the fix.

  Raises:
    DataError: naming the table, the first missing item (and its line in the events file), how
      many are missing, and the fix.
  """
  items, table_ids = canonical_ids(inter.items, table.ids)
  missing = ~np.isin(items, table_ids)
  if not missing.any():
    return
  first = int(np.argmax(missing))
  distinct = list(dict.fromkeys(items[missing].tolist()))
  n_items = len(np.unique(items))
  examples = ", ".join(repr(v) for v in distinct[:3])
  hint = ""
  if items.dtype.kind not in "iu":
    hint = " (the sequence file's item ids are not all integers, the JSON's keys are)"
  raise DataError(
      f"item {items[first].item()!r} of {inter.path} (line {int(inter.lines[first])}) has no entry "
      f"here; {len(distinct)} of the {n_items} items in the sequences have none (e.g. "
      f"{examples}){hint}. Fix: add an entry for each of them, or set {key} to the JSON that "
      "belongs to this sequence file.", path=table.path)


# ------------------------------------------------------------------------------------------------
# Generic CSV / TSV / JSON lines, mapped by column names.

_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".txt": "tsv"}


def _records(path: str, fmt: Optional[str], delimiter: Optional[str],
             encoding: str) -> tuple[list[str], list[dict], list[int]]:
  """Reads a header-ed table as (column names, one dict per row, line numbers)."""
  require_file(path)  # before the extension is used: a folder is named as such
  fmt = fmt or _FORMATS.get(os.path.splitext(path)[1].lower())
  if fmt not in ("csv", "tsv", "jsonl"):
    raise DataError(f"unknown table format {fmt!r}; set format to 'csv', 'tsv' or 'jsonl'.",
                    path=path)
  text = read_text(path, encoding)
  if fmt == "jsonl":
    names, records, lines = [], [], []
    for lineno, line in enumerate(text.split("\n"), start=1):
      if not line.strip():
        continue
      try:
        rec = json.loads(line)
      except json.JSONDecodeError as e:
        raise DataError(f"malformed JSON: {e.msg}.", path=path, line=lineno,
                        column=str(e.colno)) from None
      if not isinstance(rec, dict):
        raise DataError("malformed line: a JSON object is expected on each line.", path=path,
                        line=lineno)
      for k in rec:
        if k not in names:
          names.append(k)
      records.append(rec)
      lines.append(lineno)
    return names, records, lines
  delim = delimiter or ("," if fmt == "csv" else "\t")  # "" (the config template's) = default
  check_separator("source.delimiter", delim, path, single_char=True)
  reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
  try:
    header = next(reader)
  except StopIteration:
    raise DataError("the file is empty; a header line is expected.", path=path, line=1) from None
  header = [h.strip() for h in header]
  records, lines = [], []
  for fields in reader:
    lineno = reader.line_num
    if not any(f.strip() for f in fields):
      continue
    if len(fields) != len(header):
      col = header[len(fields)] if len(fields) < len(header) else str(len(header) + 1)
      raise DataError(f"malformed line: it has {len(fields)} fields, the header has "
                      f"{len(header)} (is the delimiter {delim!r} right?).", path=path,
                      line=lineno, column=col)
    records.append(dict(zip(header, fields)))
    lines.append(lineno)
  return header, records, lines


def _column(records: list[dict], lines: list[int], name: str, path: str,
            required: bool = True) -> list:
  out = []
  for rec, line in zip(records, lines):
    if name not in rec or rec[name] is None:
      if required:
        raise DataError("the value is missing.", path=path, line=line, column=name)
      out.append("")
    else:
      out.append(rec[name])
  return out


def _ids(values: list, lines: list[int], path: str, column: str) -> np.ndarray:
  out = np.array([str(v).strip() for v in values], dtype=object)
  _check_nonempty_ids(out, lines, path, column)
  return out


def read_table_interactions(path: str, *, user_col: str, item_col: str,
                            rating_col: Optional[str] = None, time_col: Optional[str] = None,
                            format: Optional[str] = None, delimiter: Optional[str] = None,
                            encoding: str = "auto") -> RawInteractions:
  """Reads events from a CSV, TSV or JSON-lines file with named columns.

  Args:
    path: the file.
    user_col: the user id column.
    item_col: the item id column.
    rating_col: the rating column, if any.
    time_col: the timestamp column, if any: numbers, or ISO-8601 strings (read as UTC).
    format: ``csv``, ``tsv`` or ``jsonl``; by default from the file extension.
    delimiter: overrides the format's delimiter (e.g. ``;``).
    encoding: text encoding.

  Raises:
    DataError: a missing file or column, a malformed line or a value of the wrong type.
  """
  header, records, lines = _records(path, format, delimiter, encoding)
  require_columns(header, {"user_col": user_col, "item_col": item_col, "rating_col": rating_col,
                           "time_col": time_col}, path)
  users = _ids(_column(records, lines, user_col, path), lines, path, user_col)
  items = _ids(_column(records, lines, item_col, path), lines, path, item_col)
  ratings = timestamps = None
  if rating_col:
    ratings = to_float(_column(records, lines, rating_col, path), lines, path, rating_col)
  if time_col:
    timestamps = to_time(_column(records, lines, time_col, path), lines, path, time_col)
  return RawInteractions(path, users, items, ratings, timestamps, np.asarray(lines))


_KINDS = ("categorical", "multi", "numeric", "dense", "text", "drop")


def read_table_features(path: str, *, id_col: str, columns: Optional[dict[str, dict]] = None,
                        format: Optional[str] = None, delimiter: Optional[str] = None,
                        encoding: str = "auto") -> RawTable:
  """Reads an item (or user) feature table from a CSV, TSV or JSON-lines file.

  Columns are kept as text (``token``; JSON lists as ``token_seq``) and typed later by the
  feature options (features.py), so one column may feed several fields; ``dense`` columns are
  parsed here into vectors.

  Args:
    path: the file.
    id_col: the id column.
    columns: field name -> feature options (``kind``, optional ``column``, the source column,
      default the field name, and ``sep``, the separator inside dense values, default ``|``).
      Only the columns these name are read. None reads every other column: numbers as ``float``,
      anything else as ``token``.
    format: ``csv``, ``tsv`` or ``jsonl``; by default from the extension.
    delimiter: overrides the format's delimiter.
    encoding: text encoding.

  Returns:
    The table, its columns keyed by source column name.

  Raises:
    DataError: a missing file or column, a malformed line or a value of the wrong type.
  """
  header, records, lines = _records(path, format, delimiter, encoding)
  require_columns(header, {"id_col": id_col}, path)
  out = {}
  if columns is None:
    for name in header:
      if name == id_col:
        continue
      vals = [str(v) for v in _column(records, lines, name, path, required=False)]
      try:
        out[name] = RawColumn(name, "float", to_float(vals, lines, path, name,
                                                      allow_missing=True))
      except DataError:
        out[name] = RawColumn(name, "token", [v.strip() for v in vals])
  for field, opts in (columns or {}).items():
    kind = opts.get("kind", "categorical")
    if kind not in _KINDS:
      raise DataError(f"feature field {field!r}: kind {kind!r} is not one of {_KINDS}.",
                      path=path)
    src = opts.get("column", field)
    if kind == "drop" or (kind == "dense" and opts.get("path")):
      continue  # dropped, or vectors from a separate file (see read_dense)
    if src not in header:
      raise DataError(f"column {src!r} (feature field {field!r}) is not in the header; the file "
                      f"has columns {header}.", path=path, line=1, column=src)
    vals = _column(records, lines, src, path, required=False)
    if kind == "dense":
      sep = opts.get("sep", "|")
      check_separator(f"features.{field}.sep", sep, path)
      dense = []
      for v, line in zip(vals, lines):
        toks = v if isinstance(v, list) else [t for t in str(v).split(sep) if t.strip()]
        dense.append(to_float(toks, [line] * len(toks), path, src))
      out[src] = RawColumn(src, "float_seq", dense)
    elif src not in out:
      if any(isinstance(v, list) for v in vals):
        out[src] = RawColumn(src, "token_seq", [[str(t).strip() for t in v] if isinstance(v, list)
                                                else [str(v).strip()] for v in vals])
      else:
        out[src] = RawColumn(src, "token", ["" if v is None else str(v) for v in vals])
  ids = _ids(_column(records, lines, id_col, path), lines, path, id_col)
  return RawTable(path, ids, out, np.asarray(lines))


def read_table(path: str, *, user_col: str, item_col: str, rating_col: Optional[str] = None,
               time_col: Optional[str] = None, item_path: Optional[str] = None,
               item_id_col: Optional[str] = None, item_columns: Optional[dict] = None,
               user_path: Optional[str] = None, user_id_col: Optional[str] = None,
               user_columns: Optional[dict] = None, format: Optional[str] = None,
               delimiter: Optional[str] = None, encoding: str = "auto") -> RawData:
  """Reads generic events plus optional item and user feature tables (see the two readers above).

  The feature tables use the same format/delimiter as the events unless their extension says
  otherwise. Their id columns default to ``item_col``/``user_col``.
  """
  inter = read_table_interactions(path, user_col=user_col, item_col=item_col,
                                  rating_col=rating_col, time_col=time_col, format=format,
                                  delimiter=delimiter, encoding=encoding)

  def table(p, id_col, cols):
    if not p:
      return None
    ext_fmt = _FORMATS.get(os.path.splitext(p)[1].lower())
    return read_table_features(p, id_col=id_col, columns=cols, format=ext_fmt or format,
                               delimiter=delimiter, encoding=encoding)

  items = table(item_path, item_id_col or item_col, item_columns)
  users = table(user_path, user_id_col or user_col, user_columns)
  return _canonical(RawData(inter, items, users))


# ------------------------------------------------------------------------------------------------
# Dense vectors.


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


def _load_array_file(path: str, what: str):
  """np.load with the file's kind checked first, so a text file named .npy is named as such."""
  require_file(path, what)
  with open(path, "rb") as f:
    head = f.read(6)
  if head != _NPY_MAGIC and not head.startswith(_ZIP_MAGIC):
    kind, magic = (".npz", _ZIP_MAGIC) if path.endswith(".npz") else (".npy", _NPY_MAGIC)
    raise DataError(f"not a NumPy array file: a {kind} file starts with {magic!r}, this one "
                    f"with {head!r}. Fix: write the array with np.save (np.savez for .npz); a "
                    "text list of ids goes in ids_path under a .txt name.", path=path)
  try:
    return np.load(path, allow_pickle=False)
  except (ValueError, OSError, EOFError) as e:
    raise DataError(f"cannot read the array ({e}); write it again with np.save / np.savez.",
                    path=path) from None


def read_dense(path: str, ids_path: Optional[str] = None) -> DenseTable:
  """Reads item vectors keyed by raw item id.

  Three layouts are accepted:
    * ``.npz`` with arrays ``ids`` ``[n]`` and ``vectors`` ``[n, dim]``;
    * ``.npy`` ``[n, dim]`` with ``ids_path``: a ``.npy`` of ``n`` ids or a text file with one
      id per line, row i of the vectors belonging to id i of the list;
    * ``.npy`` ``[n, dim]`` alone: row r belongs to the item whose raw id is the integer r.

  Raises:
    DataError: a missing file, a file that is not a NumPy array file, a wrong shape, ids and rows
      that do not match in number, or a vector holding NaN or inf (the first bad row is named).
  """
  loaded = _load_array_file(path, "dense vector file")
  if isinstance(loaded, np.lib.npyio.NpzFile):
    for key in ("ids", "vectors"):
      if key not in loaded.files:
        raise DataError(f"the .npz has no array {key!r} (it has {loaded.files}).", path=path,
                        column=key)
    ids, vectors = loaded["ids"], loaded["vectors"]
  else:
    vectors = loaded
    if ids_path is None:
      ids = np.arange(len(vectors), dtype=np.int64)
    elif ids_path.endswith(".npy"):
      ids = _load_array_file(ids_path, "dense vector id file")
    else:
      text = read_text(ids_path)
      ids = np.array([line.strip() for line in text.split("\n") if line.strip()], dtype=object)
  if vectors.ndim != 2 or vectors.dtype.kind not in "fiu":
    raise DataError(f"expected a numeric [items, dim] array, found shape {vectors.shape} "
                    f"dtype {vectors.dtype}.", path=path)
  if len(ids) != len(vectors):
    raise DataError(f"{len(ids)} ids for {len(vectors)} vector rows.", path=ids_path or path)
  vectors = vectors.astype(np.float32)
  finite = np.isfinite(vectors)
  if not finite.all():
    row, col = np.argwhere(~finite)[0]
    bad_rows = int(np.sum(~finite.all(axis=1)))
    item = np.asarray(ids)[row]
    item = item.item() if isinstance(item, np.generic) else item
    raise DataError(f"row {row} (item id {item!r}) holds {vectors[row, col]} at position {col} "
                    f"({bad_rows} of {len(vectors)} rows are not finite); dense vectors must be "
                    "finite. Fix: recompute or drop those rows.", path=path)
  return DenseTable(path, np.asarray(ids), vectors)
