"""Shared code lives below the methods: only HeterRec's own files import ``heterrec_jax``."""

import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# HeterRec's package, its configs, its tests and its benchmark script.
ALLOWED = ("heterrec_jax/", "configs/heterrec/", "tests/heterrec/", "scripts/bench_heterrec.py")
SKIP_DIRS = {".venv", ".git", "workdirs", "__pycache__", "node_modules", "shared"}
IMPORT = re.compile(r"^\s*(?:from\s+heterrec_jax[\s.]|import\s+heterrec_jax\b)", re.MULTILINE)


def _python_files():
  for root, dirs, files in os.walk(REPO):
    dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith(".")]
    for name in files:
      if name.endswith(".py"):
        path = os.path.join(root, name)
        yield os.path.relpath(path, REPO).replace(os.sep, "/"), path


def test_no_import_of_heterrec_jax_outside_its_own_files():
  offenders, scanned = [], 0
  for rel, path in _python_files():
    if rel.startswith(ALLOWED):
      continue
    scanned += 1
    with open(path, encoding="utf-8") as f:
      if IMPORT.search(f.read()):
        offenders.append(rel)
  assert scanned > 20  # the scan really walked the repository
  assert not offenders, f"import heterrec_jax outside HeterRec's files: {offenders}"


def test_the_scan_would_catch_an_import():
  for line in ("from heterrec_jax import models", "import heterrec_jax",
               "  from heterrec_jax.models import HeterRec"):
    assert IMPORT.search(line), line
  assert not IMPORT.search('REGISTRY = {"heterrec": "heterrec_jax.train"}')
