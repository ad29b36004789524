"""Readers for the raw MovieLens releases as GroupLens distributes them.

  ML-100K  ``u.data`` (user, item, rating, time; tab), ``u.item`` and ``u.user`` (``|``),
           ``u.genre`` (optional: genre names)
  ML-1M    ``ratings.dat``, ``movies.dat``, ``users.dat`` (``::``)
  ML-10M   ``ratings.dat``, ``movies.dat`` (``::``; no user file)

Item fields: ``title`` (text), ``year`` (token, from the release date or the "(1995)" suffix of
the title) and ``genres`` (token_seq). User fields: ML-100K ``age`` (float), ``gender``,
``occupation``, ``zip_code``; ML-1M ``gender``, ``age`` (GroupLens' age-group code, a token),
``occupation`` (a code), ``zip_code``. Ids are integers in every release.
"""

from __future__ import annotations

import os
import re
from typing import Optional

import numpy as np

from common.data.errors import DataError, require_file
from common.data.parsing import fast_numeric_table, read_text, split_rows, to_float, to_time
from common.data.raw import RawColumn, RawData, RawInteractions, RawTable, canonical_ids

VARIANTS = ("ml-100k", "ml-1m", "ml-10m")

# ML-100K's genre flags, in column order, used when u.genre is absent.
_ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
                  "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
                  "Romance", "Sci-Fi", "Thriller", "War", "Western")
_RATING_NAMES = ("user_id", "item_id", "rating", "timestamp")
_YEAR = re.compile(r"\((\d{4})\)\s*$")


def _read(path: str, encoding: str) -> str:
  # The GroupLens files are Latin-1 by design: ``auto`` falls back to it without a warning.
  return read_text(path, encoding, latin1_expected=True)


def detect_variant(path: str) -> str:
  """Tells the release from the files in ``path``.

  Raises:
    DataError: none of the known rating files is there.
  """
  if os.path.exists(os.path.join(path, "u.data")):
    return "ml-100k"
  if os.path.exists(os.path.join(path, "ratings.dat")):
    return "ml-1m" if os.path.exists(os.path.join(path, "users.dat")) else "ml-10m"
  raise DataError("no MovieLens rating file here (expected u.data for ML-100K or ratings.dat for "
                  "ML-1M/ML-10M).", path=path)


def read_movielens(path: str, variant: Optional[str] = None, encoding: str = "auto") -> RawData:
  """Reads a raw MovieLens release.

  Args:
    path: the unpacked release folder (e.g. ``ml-100k/``, ``ml-1m/``, ``ml-10M100K/``).
    variant: ``ml-100k``, ``ml-1m`` or ``ml-10m``; detected from the files by default.
    encoding: text encoding; ``auto`` is UTF-8 with the Latin-1 fallback these files need.

  Returns:
    RawData with events, an item table and (except ML-10M) a user table.

  Raises:
    DataError: a missing file, a malformed line or a value of the wrong type.
  """
  variant = variant or detect_variant(path)
  if variant not in VARIANTS:
    raise DataError(f"unknown MovieLens variant {variant!r}; use one of {VARIANTS}.", path=path)
  if variant == "ml-100k":
    inter = _ratings(os.path.join(path, "u.data"), "\t", encoding)
    items = _ml100k_items(os.path.join(path, "u.item"), os.path.join(path, "u.genre"), encoding)
    users = _ml100k_users(os.path.join(path, "u.user"), encoding)
  else:
    inter = _ratings(os.path.join(path, "ratings.dat"), "::", encoding)
    items = _dat_movies(os.path.join(path, "movies.dat"), encoding)
    users = _ml1m_users(os.path.join(path, "users.dat"), encoding) if variant == "ml-1m" else None
  inter.users, *u = canonical_ids(inter.users, *([users.ids] if users else []))
  inter.items, items.ids = canonical_ids(inter.items, items.ids)
  if users:
    users.ids = u[0]
  return RawData(inter, items, users)


def _ratings(path: str, sep: str, encoding: str) -> RawInteractions:
  text = _read(require_file(path, "MovieLens ratings file"), encoding)
  table = fast_numeric_table(text, sep, 4, path, _RATING_NAMES)
  if table is not None:
    lines = np.array([i for i, line in enumerate(text.split("\n"), 1) if line.strip()])
    users, items, ratings, times = table.T
    for name, col in (("user_id", users), ("item_id", items)):
      bad = np.flatnonzero(col != np.round(col))
      if len(bad):
        raise DataError(f"expected an integer id, found {col[bad[0]]}.", path=path,
                        line=int(lines[bad[0]]), column=name)
    return RawInteractions(path, users.astype(np.int64), items.astype(np.int64), ratings, times,
                           lines)
  # The slow path: find and report the first bad line.
  rows, lines = split_rows(text, sep, path, 4, _RATING_NAMES)
  cols = list(zip(*rows))
  ids = [to_float(cols[j], lines, path, _RATING_NAMES[j]) for j in (0, 1)]
  ratings = to_float(cols[2], lines, path, "rating")
  times = to_time(cols[3], lines, path, "timestamp")
  return RawInteractions(path, ids[0].astype(np.int64), ids[1].astype(np.int64), ratings, times,
                         np.asarray(lines))


def _year(title: str, date: str = "") -> str:
  if len(date) >= 4 and date[-4:].isdigit():
    return date[-4:]
  m = _YEAR.search(title)
  return m.group(1) if m else ""


def _int_ids(values, lines, path: str, column: str) -> np.ndarray:
  return to_float(values, lines, path, column).astype(np.int64)


def _ml100k_items(path: str, genre_path: str, encoding: str) -> RawTable:
  genres = list(_ML100K_GENRES)
  if os.path.exists(genre_path):
    rows, _ = split_rows(_read(genre_path, encoding), "|", genre_path, 2, ("genre", "index"))
    genres = [name for name, _ in sorted(rows, key=lambda r: int(r[1]))]
  names = ["item_id", "title", "release_date", "video_release_date", "url"] + genres
  text = _read(require_file(path, "MovieLens u.item file"), encoding)
  rows, lines = split_rows(text, "|", path, len(names), names)
  ids = _int_ids([r[0] for r in rows], lines, path, "item_id")
  flags = [[g for g, f in zip(genres, r[5:]) if f.strip() == "1"] for r in rows]
  for r, line in zip(rows, lines):
    for g, f in zip(genres, r[5:]):
      if f.strip() not in ("0", "1"):
        raise DataError(f"a genre flag must be 0 or 1, found {f!r}.", path=path, line=line,
                        column=g)
  columns = {
      "title": RawColumn("title", "text", [r[1] for r in rows]),
      "year": RawColumn("year", "token", [_year(r[1], r[2].strip()) for r in rows]),
      "genres": RawColumn("genres", "token_seq", flags),
  }
  return RawTable(path, ids, columns, np.asarray(lines))


def _ml100k_users(path: str, encoding: str) -> RawTable:
  names = ("user_id", "age", "gender", "occupation", "zip_code")
  rows, lines = split_rows(_read(require_file(path, "MovieLens u.user file"), encoding), "|",
                           path, 5, names)
  cols = list(zip(*rows))
  columns = {
      "age": RawColumn("age", "float", to_float(cols[1], lines, path, "age")),
      "gender": RawColumn("gender", "token", [v.strip() for v in cols[2]]),
      "occupation": RawColumn("occupation", "token", [v.strip() for v in cols[3]]),
      "zip_code": RawColumn("zip_code", "token", [v.strip() for v in cols[4]]),
  }
  return RawTable(path, _int_ids(cols[0], lines, path, "user_id"), columns, np.asarray(lines))


def _dat_movies(path: str, encoding: str) -> RawTable:
  names = ("item_id", "title", "genres")
  rows, lines = split_rows(_read(require_file(path, "MovieLens movies.dat file"), encoding),
                           "::", path, 3, names)
  columns = {
      "title": RawColumn("title", "text", [r[1] for r in rows]),
      "year": RawColumn("year", "token", [_year(r[1]) for r in rows]),
      "genres": RawColumn("genres", "token_seq",
                          [[g for g in r[2].strip().split("|")
                            if g and g != "(no genres listed)"] for r in rows]),
  }
  return RawTable(path, _int_ids([r[0] for r in rows], lines, path, "item_id"), columns,
                  np.asarray(lines))


def _ml1m_users(path: str, encoding: str) -> RawTable:
  names = ("user_id", "gender", "age", "occupation", "zip_code")
  rows, lines = split_rows(_read(require_file(path, "MovieLens users.dat file"), encoding),
                           "::", path, 5, names)
  cols = list(zip(*rows))
  columns = {name: RawColumn(name, "token", [v.strip() for v in cols[j]])
             for j, name in enumerate(names) if j}
  return RawTable(path, _int_ids(cols[0], lines, path, "user_id"), columns, np.asarray(lines))
