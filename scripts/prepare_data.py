r"""Prepares a recommendation data set as a tfds array_record data set and prints its statistics.

Usage (from the repository root):

  python scripts/prepare_data.py                                   # synthetic default data
  python scripts/prepare_data.py --config=configs/data/synthetic.py:tiny
  python scripts/prepare_data.py --config=configs/data/ml100k.py \
      --config.source.path=../shared/data/ml-100k --data_dir=workdirs/data --overwrite
  python scripts/prepare_data.py --config=configs/data/ml100k.py --dry_run   # check, no write

The data set lands in ``<data_dir>/rec_data/<config.name>/1.0.0``; read it with
``common.data.load(config.name, data_dir)``. Input problems stop with an error naming the file,
line and column, and nothing is written; a mistyped ``--config.<key>`` stops with the same
one-line message as ``scripts/train.py`` (``common.config_checks``). Warnings (a Latin-1 fallback,
a feature table covering few items) print as ``warning: ...`` lines. Relative paths inside a
config are taken against the repository root; ``--data_dir`` against the current folder.
"""

import json
import os
import sys
import time
import warnings

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

import configs

from common import config_checks
from common import data

_DEFAULT_CONFIG = os.path.join(os.path.dirname(configs.__file__), "data", "synthetic.py")
# No default here: config_flags would parse the overrides while defining the flag, at import time,
# where a mistyped key is a bare traceback. parse_flags names the default instead.
_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Data config file (configs/data/*.py), optionally with ':arg' (default: "
    "configs/data/synthetic.py).", lock_config=True)
_DATA_DIR = flags.DEFINE_string("data_dir", os.path.join("workdirs", "data"),
                                "The tfds data folder to write into.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing prepared data set.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False,
                             "Read, check and summarise the data without writing anything.")
_JSON = flags.DEFINE_bool("json", False, "Also print the statistics as JSON.")


def parse_flags(argv: list[str]) -> list[str]:
  """``config_checks.parse_flags``, which needs ``--config=`` to diagnose an override, with the
  default config named when the command line leaves it out."""
  if not any(a == "--config" or a.startswith("--config=") for a in argv[1:]):
    argv = [argv[0], f"--config={_DEFAULT_CONFIG}", *argv[1:]]
  return config_checks.parse_flags(argv)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  start = time.time()
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", data.DataWarning)
    try:
      where, stats = _build_and_write(_CONFIG.value)
    except data.DataError as e:
      # A data error is the user's to fix; a traceback would bury the file/line/column.
      _print_warnings(caught)
      print(f"error: {e}", file=sys.stderr)
      return 1
  _print_warnings(caught)
  print(data.format_summary(stats))
  print(f"prepared {where} in {time.time() - start:.1f} s")
  if _JSON.value:
    print(json.dumps(stats, indent=2))
  return 0


def _build_and_write(config) -> tuple[str, dict]:
  """Builds (and unless --dry_run writes) the data set: (where it went, its statistics)."""
  if _DRY_RUN.value:
    return "(dry run: nothing written)", data.summarize(data.build_dataset(config))
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  tfds.disable_progress_bar()
  logging.set_verbosity(logging.ERROR)  # tfds' per-split INFO lines hide the summary
  where, _, stats = data.prepare(config, os.path.abspath(_DATA_DIR.value),
                                 overwrite=_OVERWRITE.value)
  return where, stats


def _print_warnings(caught) -> None:
  """Data warnings as one ``warning:`` line each; other warnings as Python prints them."""
  for w in caught:
    if issubclass(w.category, data.DataWarning):
      print(f"warning: {w.message}", file=sys.stderr)
    else:
      warnings.showwarning(w.message, w.category, w.filename, w.lineno)


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)), flags_parser=parse_flags)
