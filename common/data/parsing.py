"""Low-level text parsing shared by the readers, with exact error locations.

Conversions try the fast vectorised path first and only walk the rows one by one when it fails,
to find and report the first bad value with its line and column.
"""

from __future__ import annotations

import datetime
import os
import re
from typing import Iterator, Optional, Sequence
import warnings

import numpy as np

from common.data.errors import DataError, DataWarning, require_file


def read_text(path: str, encoding: str = "auto", latin1_expected: bool = False) -> str:
  """Reads a whole text file.

  ``auto`` reads UTF-8. A file that is not valid UTF-8 is read as Latin-1 (which decodes any byte
  string) only when that cannot garble it: if the file also holds valid multi-byte UTF-8
  characters, Latin-1 would turn each of them into two wrong ones, so that is an error naming the
  first bad line and byte offset. Otherwise the fallback warns (a ``DataWarning`` with the line and
  offset), unless ``latin1_expected`` (the GroupLens files, which are Latin-1 by design).

  Args:
    path: the file.
    encoding: a codec name, or ``auto`` (above).
    latin1_expected: do not warn when ``auto`` falls back to Latin-1.

  Raises:
    DataError: the file is missing, does not decode with the given encoding, or (``auto``) mixes
      UTF-8 characters with bytes that are not UTF-8.
  """
  require_file(path)
  with open(path, "rb") as f:
    data = f.read()
  if encoding == "auto":
    try:
      return data.decode("utf-8")
    except UnicodeDecodeError as e:
      line = data[:e.start].count(b"\n") + 1
      where = f"byte {data[e.start]:#x} at byte offset {e.start} is not UTF-8"
      if _has_utf8_multibyte(data):
        raise DataError(
            f"{where}, but the file also holds UTF-8 characters, so reading it as Latin-1 "
            "(encoding 'auto') would garble them. Fix: repair the bytes on this line, or set the "
            "source's encoding key explicitly (e.g. encoding='cp1252') if that is the file's "
            "encoding.", path=path, line=line) from None
      if not latin1_expected:
        warnings.warn(DataWarning(
            f"file {path}, line {line}: {where}; reading the whole file as Latin-1 (encoding "
            "'auto'). If that is wrong, set the source's encoding key explicitly (e.g. "
            "encoding='cp1252'); encoding='latin-1' silences this warning."), stacklevel=2)
      return data.decode("latin-1")
  try:
    return data.decode(encoding)
  except UnicodeDecodeError as e:
    line = data[:e.start].count(b"\n") + 1
    raise DataError(f"cannot decode byte {data[e.start]:#x} at byte offset {e.start} as "
                    f"{encoding} (set the source's encoding key, e.g. 'latin-1').", path=path,
                    line=line) from None
  except LookupError:
    raise DataError(f"unknown encoding {encoding!r}; set the source's encoding key to 'auto' or a "
                    "Python codec name such as 'utf-8' or 'latin-1'.", path=path) from None


# A character decoded from a multi-byte UTF-8 sequence: anything above U+007F other than the lone
# surrogates U+DC80..U+DCFF that ``surrogateescape`` uses for undecodable bytes.
_UTF8_CHAR = re.compile("[\u0080-\udc7f\udd00-\U0010ffff]")


def _has_utf8_multibyte(data: bytes) -> bool:
  return _UTF8_CHAR.search(data.decode("utf-8", errors="surrogateescape")) is not None


def iter_lines(text: str, start_line: int = 1) -> Iterator[tuple[int, str]]:
  """Yields (1-based line number, line without its newline), skipping blank lines."""
  for i, line in enumerate(text.split("\n"), start=start_line):
    line = line.rstrip("\r")
    if line.strip():
      yield i, line


def split_rows(text: str, sep: Optional[str], path: str, num_fields: Optional[int],
               names: Optional[Sequence[str]] = None,
               start_line: int = 1) -> tuple[list[list[str]], list[int]]:
  """Splits lines into fields, checking every line has the expected number of fields.

  Args:
    text: the file's text (without any header already consumed).
    sep: the field separator; None splits on runs of whitespace.
    path: the file, for messages.
    num_fields: the number of fields each line must have; None accepts any number >= 1.
    names: the column names, to name the first missing column in a short line.
    start_line: the line number of the first line of ``text``.

  Returns:
    (rows, line numbers).

  Raises:
    DataError: a line has the wrong number of fields.
  """
  rows, lines = [], []
  for lineno, line in iter_lines(text, start_line):
    fields = line.split(sep)
    if num_fields is not None and len(fields) != num_fields:
      if len(fields) < num_fields:
        col = names[len(fields)] if names else str(len(fields) + 1)
        why = f"has {len(fields)} fields, expected {num_fields}; the value for it is missing"
      else:
        col = str(num_fields + 1)
        why = f"has {len(fields)} fields, expected {num_fields} (is the separator {sep!r} right?)"
      raise DataError(f"malformed line: it {why}.", path=path, line=lineno, column=col)
    rows.append(fields)
    lines.append(lineno)
  return rows, lines


def to_float(values: Sequence, lines: Sequence[int], path: str, column: str,
             allow_missing: bool = False) -> np.ndarray:
  """Converts strings to float64, naming the line of the first value that is not a number.

  Args:
    values: strings (or numbers).
    lines: the line of each value.
    path: the file, for messages.
    column: the column name, for messages.
    allow_missing: map empty strings (and NaN) to NaN, meaning missing, instead of failing; an
      infinite value is then kept. Without it every value must be finite.

  Raises:
    DataError: a value is not a number (or is not finite, or empty, when missing is not allowed).
  """
  if allow_missing:
    values = ["nan" if isinstance(v, str) and not v.strip() else v for v in values]
  try:
    out = np.asarray(values, dtype=np.float64)
    if allow_missing or np.isfinite(out).all():
      return out
  except (ValueError, TypeError):
    pass
  for v, line in zip(values, lines):
    try:
      f = float(v)
    except (ValueError, TypeError):
      raise DataError(f"expected a number, found {v!r}.", path=path, line=int(line),
                      column=column) from None
    if not allow_missing and not np.isfinite(f):
      raise DataError(f"expected a finite number, found {v!r}; fix the value or remove the line.",
                      path=path, line=int(line), column=column)
  raise AssertionError("unreachable")


def to_time(values: Sequence, lines: Sequence[int], path: str, column: str) -> np.ndarray:
  """Converts timestamps to float64 seconds: numbers as they are, ISO-8601 strings to epoch time.

  Raises:
    DataError: a value is neither a finite number nor an ISO-8601 date/time (``inf`` and ``nan``
      would sort every event after them or at random, so they are errors too).
  """
  try:
    out = np.asarray(values, dtype=np.float64)
    if np.isfinite(out).all():
      return out
  except (ValueError, TypeError):
    pass
  out = np.empty(len(values), dtype=np.float64)
  for i, (v, line) in enumerate(zip(values, lines)):
    try:
      out[i] = float(v)
    except (ValueError, TypeError):
      pass
    else:
      if np.isfinite(out[i]):
        continue
      raise DataError(f"the timestamp {v!r} is not a finite number; fix the value or remove the "
                      "line.", path=path, line=int(line), column=column)
    try:
      t = datetime.datetime.fromisoformat(str(v).strip())
    except ValueError:
      raise DataError(f"expected a timestamp (a number or an ISO-8601 date/time), found {v!r}.",
                      path=path, line=int(line), column=column) from None
    if t.tzinfo is None:
      # Naive times are read as UTC so the result does not depend on this machine's time zone.
      t = t.replace(tzinfo=datetime.timezone.utc)
    out[i] = t.timestamp()
  return out


def fast_numeric_table(text: str, sep: str, num_fields: int, path: str,
                       names: Sequence[str]) -> Optional[np.ndarray]:
  """Parses an all-numeric delimited text in one numpy call (MovieLens ratings files).

  Returns:
    A float64 ``[rows, num_fields]`` array, or None when the text is not a clean numeric table
    (the caller then parses line by line, which finds and reports the bad line).
  """
  del path, names  # Only the slow path reports errors.
  body = text.replace(sep, " ").replace("\r", "")
  if not body.strip():
    return np.zeros((0, num_fields))
  lines = [line for line in body.split("\n") if line.strip()]
  # A line with a missing field next to one with an extra field would still reshape, so every
  # line's field count is checked, not just the total.
  if any(len(line.split()) != num_fields for line in lines):
    return None
  try:
    flat = np.array(body.split(), dtype=np.float64)
  except ValueError:
    return None
  if not np.isfinite(flat).all():
    return None
  return flat.reshape(len(lines), num_fields)


def resolve_path(path: str, base: Optional[str] = None) -> str:
  """Makes a config path absolute: relative paths are taken against ``base`` (the repo root)."""
  path = os.path.expanduser(os.fspath(path))
  if os.path.isabs(path):
    return path
  if base is None:
    base = repo_root()
  return os.path.normpath(os.path.join(base, path))


def repo_root() -> str:
  """The repository root (the folder holding ``common/``)."""
  return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
