r"""Prepares a recommendation data set as a tfds array_record data set and prints its statistics.

Usage (from the repository root):

  python scripts/prepare_data.py                                   # synthetic default data
  python scripts/prepare_data.py --config=configs/data/synthetic.py:tiny
  python scripts/prepare_data.py --config=configs/data/ml100k.py \
      --config.source.path=../shared/data/ml-100k --data_dir=workdirs/data --overwrite
  python scripts/prepare_data.py --config=configs/data/ml100k.py --dry_run   # check, no write

The data set lands in ``<data_dir>/rec_data/<config.name>/1.0.0``; read it with
``common.data.load(config.name, data_dir)``. Input problems stop with an error naming the file,
line and column, and nothing is written. Relative paths inside a config are taken against the
repository root; ``--data_dir`` against the current folder.
"""

import json
import os
import sys
import time

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

import configs

from common import data

_CONFIG = config_flags.DEFINE_config_file(
    "config", os.path.join(os.path.dirname(configs.__file__), "data", "synthetic.py"),
    "Data config file (configs/data/*.py), optionally with ':arg'.", lock_config=True)
_DATA_DIR = flags.DEFINE_string("data_dir", os.path.join("workdirs", "data"),
                                "The tfds data folder to write into.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing prepared data set.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False,
                             "Read, check and summarise the data without writing anything.")
_JSON = flags.DEFINE_bool("json", False, "Also print the statistics as JSON.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  config = _CONFIG.value
  start = time.time()
  try:
    if _DRY_RUN.value:
      ds = data.build_dataset(config)
      stats = data.summarize(ds)
      where = "(dry run: nothing written)"
    else:
      import tensorflow_datasets as tfds
      tfds.disable_progress_bar()
      logging.set_verbosity(logging.ERROR)  # tfds' per-split INFO lines hide the summary
      where, ds, stats = data.prepare(config, os.path.abspath(_DATA_DIR.value),
                                      overwrite=_OVERWRITE.value)
  except data.DataError as e:
    # A data error is the user's to fix; a traceback would bury the file/line/column.
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(data.format_summary(stats))
  print(f"prepared {where} in {time.time() - start:.1f} s")
  if _JSON.value:
    print(json.dumps(stats, indent=2))
  return 0


if __name__ == "__main__":
  app.run(lambda argv: sys.exit(main(argv)))
