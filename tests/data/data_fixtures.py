"""Helpers the data-layer tests share: repository paths and a fixture-file writer."""

import os

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ML100K = os.path.join(REPO, "..", "shared", "data", "ml-100k")


def write(path, text, encoding="utf-8"):
  """Writes a fixture file (creating folders) and returns its path as a str."""
  path = os.fspath(path)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", encoding=encoding, newline="") as f:
    f.write(text)
  return path
