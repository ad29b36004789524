"""scripts/prepare_data.py end to end: writes the data set and prints the summary."""

import os
import subprocess
import sys

from common import data
from data_fixtures import REPO


def _run(*args):
  return subprocess.run([sys.executable, os.path.join(REPO, "scripts", "prepare_data.py"), *args],
                        capture_output=True, text=True, cwd=REPO, timeout=120, check=False)


def test_prepare_synthetic_tiny_and_reload(tmp_path):
  out = _run("--config=" + os.path.join(REPO, "configs", "data", "synthetic.py") + ":tiny",
             f"--data_dir={tmp_path}")
  assert out.returncode == 0, out.stderr
  assert "interactions" in out.stdout and "item field category" in out.stdout
  ds = data.load("synthetic_tiny", str(tmp_path))
  assert ds.num_users == 300 and [s.name for s in ds.field_specs][0] == "item_id"
  # A bad path fails with the file named and writes nothing.
  bad = _run("--config=" + os.path.join(REPO, "configs", "data", "ml100k.py"),
             "--config.source.path=" + str(tmp_path / "missing"), f"--data_dir={tmp_path}")
  assert bad.returncode == 1 and "missing/ml-100k.inter" in bad.stderr
  assert sorted(os.listdir(tmp_path / "rec_data")) == ["synthetic_tiny"]
