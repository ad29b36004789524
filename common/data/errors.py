"""Errors raised by the data layer.

Every problem with a user's input is reported as a ``DataError`` that names where it is: the file,
the 1-based line number and the column, as far as they are known. A user fixing a 10-million-line
file needs the line, not a traceback from deep inside numpy.
"""

from __future__ import annotations

import os
from typing import Optional


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
    raise DataError(f"the {what} is a directory, expected a file.", path=path)
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
