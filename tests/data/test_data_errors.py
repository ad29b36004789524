"""Bad input gives a DataError naming file, line and column; nothing half-written is left."""

import os

import numpy as np
import pytest

from common import data
from common.data import movielens, readers
from common.data.errors import DataError
from data_fixtures import write

HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"


def _where(e):
  return os.path.basename(e.value.path) if e.value.path else None, e.value.line, e.value.column


def _atomic(tmp_path, inter, item=None):
  d = tmp_path / "bad"
  write(d / "bad.inter", inter)
  if item is not None:
    write(d / "bad.item", item)
  return str(d)


def _config(path, **pre):
  return {"name": "bad", "source": {"format": "recbole_atomic", "path": path},
          "preprocess": pre}


# Missing file.

@pytest.mark.parametrize("fn", [
    lambda p: readers.read_recbole_atomic(p),
    lambda p: movielens.read_movielens(p, "ml-100k"),
    lambda p: readers.read_table(os.path.join(p, "ev.csv"), user_col="u", item_col="i"),
    lambda p: readers.read_sequence_text(os.path.join(p, "seq.txt")),
    lambda p: readers.read_dense(os.path.join(p, "v.npy")),
])
def test_missing_file(tmp_path, fn):
  with pytest.raises(DataError, match="does not exist") as e:
    fn(str(tmp_path / "nowhere"))
  assert "nowhere" in e.value.path


def test_movielens_missing_item_file(tmp_path):
  write(tmp_path / "m" / "u.data", "1\t2\t3\t4\n")
  with pytest.raises(DataError, match="u.item") as e:
    movielens.read_movielens(str(tmp_path / "m"))
  assert e.value.path.endswith("u.item")


# Missing column.

def test_missing_column_recbole(tmp_path):
  path = _atomic(tmp_path, "user_id:token\titem:token\n1\t2\n")
  with pytest.raises(DataError, match="item_id") as e:
    readers.read_recbole_atomic(path)
  assert _where(e) == ("bad.inter", 1, "item_id")


def test_missing_column_csv(tmp_path):
  p = write(tmp_path / "ev.csv", "user,item\n1,2\n")
  with pytest.raises(DataError) as e:
    readers.read_table(p, user_col="user", item_col="item", time_col="ts")
  assert _where(e) == ("ev.csv", 1, "ts")


def test_missing_feature_column(tmp_path):
  path = _atomic(tmp_path, HEADER + "1\t2\t3\t4\n", "item_id:token\tgenre:token\n2\tx\n")
  cfg = _config(path)
  cfg["item_features"] = {"genres": {"kind": "multi"}}
  with pytest.raises(DataError) as e:
    data.build_dataset(cfg)
  assert _where(e) == ("bad.item", 1, "genres")


def test_missing_json_key(tmp_path):
  p = write(tmp_path / "ev.jsonl", '{"u": 1, "i": 2}\n{"u": 1}\n')
  with pytest.raises(DataError, match="missing") as e:
    readers.read_table(p, user_col="u", item_col="i")
  assert _where(e) == ("ev.jsonl", 2, "i")


# Wrong type.

def test_wrong_type_recbole_float(tmp_path):
  path = _atomic(tmp_path, HEADER + "1\t2\t3\t4\n1\t3\tgood\t5\n")
  with pytest.raises(DataError, match="'good'") as e:
    readers.read_recbole_atomic(path)
  assert _where(e) == ("bad.inter", 3, "rating")


def test_wrong_type_time(tmp_path):
  p = write(tmp_path / "ev.csv", "u,i,t\n1,2,2024-01-01\n1,3,yesterday\n")
  with pytest.raises(DataError, match="timestamp") as e:
    readers.read_table(p, user_col="u", item_col="i", time_col="t")
  assert _where(e) == ("ev.csv", 3, "t")


def test_wrong_type_movielens_rating(tmp_path):
  write(tmp_path / "m" / "ratings.dat", "1::2::5::100\n1::3::five::101\n")
  write(tmp_path / "m" / "movies.dat", "2::A (1990)::Drama\n3::B (1991)::Drama\n")
  with pytest.raises(DataError) as e:
    movielens.read_movielens(str(tmp_path / "m"), "ml-10m")
  assert _where(e) == ("ratings.dat", 2, "rating")


def test_wrong_type_item_float_seq(tmp_path):
  path = _atomic(tmp_path, HEADER + "1\t2\t3\t4\n", "item_id:token\tv:float_seq\n2\t0.1 x\n")
  with pytest.raises(DataError) as e:
    readers.read_recbole_atomic(path)
  assert _where(e) == ("bad.item", 2, "v")


def test_dense_file_wrong_rows(tmp_path):
  np.save(tmp_path / "v.npy", np.zeros((3, 2)))
  write(tmp_path / "ids.txt", "a\nb\n")
  with pytest.raises(DataError, match="2 ids for 3"):
    readers.read_dense(str(tmp_path / "v.npy"), str(tmp_path / "ids.txt"))


# Malformed line.

def test_malformed_recbole_line(tmp_path):
  path = _atomic(tmp_path, HEADER + "1\t2\t3\t4\n1\t2\t3\n")
  with pytest.raises(DataError, match="malformed") as e:
    readers.read_recbole_atomic(path)
  assert _where(e) == ("bad.inter", 3, "timestamp")


def test_malformed_recbole_header(tmp_path):
  path = _atomic(tmp_path, "user_id\titem_id:token\n1\t2\n")
  with pytest.raises(DataError, match="type suffix") as e:
    readers.read_recbole_atomic(path)
  assert _where(e) == ("bad.inter", 1, "user_id")


def test_malformed_movielens_line(tmp_path):
  write(tmp_path / "m" / "u.data", "1\t2\t3\t4\n1\t2\t3\n")
  with pytest.raises(DataError, match="malformed") as e:
    movielens.read_movielens(str(tmp_path / "m"))
  assert _where(e) == ("u.data", 2, "timestamp")


def test_malformed_sequence_line(tmp_path):
  p = write(tmp_path / "seq.txt", "u1 1 2\nu2\n")
  with pytest.raises(DataError, match="no item") as e:
    readers.read_sequence_text(p)
  assert _where(e) == ("seq.txt", 2, "2")


def test_malformed_csv_and_json(tmp_path):
  p = write(tmp_path / "ev.csv", "u,i\n1,2\n3,4,5\n")
  with pytest.raises(DataError, match="malformed") as e:
    readers.read_table(p, user_col="u", item_col="i")
  assert _where(e)[:2] == ("ev.csv", 3)
  p = write(tmp_path / "ev.jsonl", '{"u": 1, "i": 2}\n{"u": 1, "i": \n')
  with pytest.raises(DataError, match="JSON") as e:
    readers.read_table(p, user_col="u", item_col="i")
  assert _where(e)[:2] == ("ev.jsonl", 2)


def test_duplicate_item_row(tmp_path):
  path = _atomic(tmp_path, HEADER + "1\t2\t3\t4\n", "item_id:token\tc:token\n2\tx\n2\ty\n")
  with pytest.raises(DataError, match="more than once") as e:
    readers.read_recbole_atomic(path)
  assert _where(e) == ("bad.item", 3, "id")


# Empty after filtering, and nothing half-written.

def test_empty_after_filtering_writes_nothing(tmp_path):
  path = _atomic(tmp_path, HEADER + "1\t2\t3\t4\n1\t3\t2\t5\n")
  out = tmp_path / "out"
  with pytest.raises(DataError, match="k-core") as e:
    data.prepare(_config(path, user_core=3), str(out))
  assert e.value.path.endswith("bad.inter")
  assert not out.exists() or not os.listdir(out)


def test_failure_while_writing_leaves_nothing(tmp_path, monkeypatch):
  from common.data import tfds_builder
  path = _atomic(tmp_path, HEADER + "1\t2\t3\t4\n1\t3\t2\t5\n2\t2\t3\t6\n")
  out = tmp_path / "out"
  final, _, _ = data.prepare(_config(path), str(out))
  before = sorted(os.listdir(final))

  original = tfds_builder.RecData._users

  def broken(self):  # writes one record, then fails
    yield next(original(self))
    raise RuntimeError("disk full")

  monkeypatch.setattr(tfds_builder.RecData, "_users", broken)
  with pytest.raises(RuntimeError, match="disk full"):
    data.prepare(_config(path), str(out), overwrite=True)
  # The old version is intact and no temporary folder is left.
  assert sorted(os.listdir(final)) == before
  assert sorted(os.listdir(out)) == ["rec_data"]
  assert data.load_prepared(final).num_interactions == 3


def test_existing_dataset_needs_overwrite(tmp_path):
  path = _atomic(tmp_path, HEADER + "1\t2\t3\t4\n")
  data.prepare(_config(path), str(tmp_path / "out"))
  with pytest.raises(DataError, match="overwrite"):
    data.prepare(_config(path), str(tmp_path / "out"))


def test_bad_config_values(tmp_path):
  with pytest.raises(DataError, match="format"):
    data.build_dataset({"source": {"format": "parquet"}})
  with pytest.raises(DataError, match="unknown synthetic data keys"):
    data.build_dataset({"source": {"format": "synthetic", "num_user": 5}})
  path = _atomic(tmp_path, HEADER + "1\t2\t3\t4\n")
  with pytest.raises(DataError, match="tie_break"):
    data.build_dataset(_config(path, tie_break="random"))
