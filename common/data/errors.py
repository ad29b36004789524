"""Errors raised by the data layer.

Every problem with a user's input is reported as a ``DataError`` that names where it is: the file,
the 1-based line number and the column, as far as they are known. A user fixing a 10-million-line
file needs the line, not a traceback from deep inside numpy.
"""

from __future__ import annotations

import difflib
import os
from typing import Iterable, Optional


class DataError(ValueError):
  """Bad input data or configuration, located as precisely as possible.

  Attributes:
    path: the file the problem is in, or None when it is not about one file.
    line: the 1-based line number in ``path`` (the header is line 1 where a file has one).
    column: the column name (or 1-based column number as a string) the problem is in.
    reason: the bare message, without the location.
  """

  def __init__(self, reason: str, *, path: Optional[str] = None, line: Optional[int] = None,
               column: Optional[str] = None):
    self.path = None if path is None else os.fspath(path)
    self.line = line
    self.column = column
    self.reason = reason
    super().__init__(self._format())

  def _format(self) -> str:
    where = []
    if self.path is not None:
      where.append(f"file {self.path}")
    if self.line is not None:
      where.append(f"line {self.line}")
    if self.column is not None:
      where.append(f"column {self.column!r}")
    if not where:
      return self.reason
    return ", ".join(where) + ": " + self.reason


class DataWarning(UserWarning):
  """Input that was read, but maybe not as the user meant (a fallback encoding, a feature table
  that covers only part of the items). The message names the file and the setting that decides.
  """


def config_error(key: str, problem: str, fix: str, path: Optional[str] = None) -> DataError:
  """A DataError about one data config key, worded like ``common.config_checks.ConfigError``.

  Args:
    key: the dotted key inside the data config (``preprocess.user_core``).
    problem: what is wrong with its value.
    fix: what to set instead.
    path: the file the key applies to, if any.
  """
  return DataError(f"config key '{key}': {problem}. Fix: {fix}.", path=path)


def check_separator(key: str, sep: Optional[str], path: Optional[str] = None,
                    single_char: bool = False) -> None:
  """Refuses an empty separator (``str.split("")`` cannot split) or, for csv, a long one.

  Args:
    key: the config key that set it, for the message (``source.separator``).
    sep: the separator; None means the reader's default and is fine.
    path: the file it applies to.
    single_char: the csv module needs exactly one character.

  Raises:
    DataError: a config error naming ``key``.
  """
  if sep is None:
    return
  if not isinstance(sep, str) or sep == "":
    raise config_error(key, f"the separator is {sep!r}, which cannot split anything",
                       "remove the key for the default, or set one or more characters, e.g. ','",
                       path)
  if single_char and len(sep) != 1:
    raise config_error(key, f"the delimiter {sep!r} is not one character, which csv needs",
                       "set one character, e.g. ',' or ';'", path)


def suggest(key: str, known: Iterable[str]) -> str:
  """``did you mean 'x'?`` for a mistyped key, or the list of valid keys."""
  known = sorted(known)
  close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
  hint = f"did you mean '{close[0]}'? " if close else ""
  return hint + "valid keys: " + ", ".join(known)


def require_file(path: str, what: str = "data file") -> str:
  """Returns ``path`` if it is an existing file, else raises a DataError naming it.

  Args:
    path: the file to check.
    what: what the file is for, to make the message useful ("item feature file").

  Raises:
    DataError: the file does not exist or is a directory.
  """
  if not os.path.exists(path):
    raise DataError(f"the {what} does not exist (give an existing path in the data config).",
                    path=path)
  if os.path.isdir(path):
    raise DataError(f"the {what} is a directory, not a file; give the file's path in the data "
                    "config.", path=path)
  return path


def require_columns(header: list[str], needed: dict[str, str], path: str, line: int = 1) -> None:
  """Checks that every needed column is in a file's header.

  Args:
    header: the column names found in the file.
    needed: config key -> column name, for each column the config asks for.
    path: the file, for the message.
    line: the line the header is on.

  Raises:
    DataError: a needed column is absent; the message names it and the columns that exist.
  """
  for key, name in needed.items():
    if name and name not in header:
      raise DataError(
          f"column {name!r} (config key {key!r}) is not in the header; the file has columns "
          f"{header}.", path=path, line=line, column=name)
