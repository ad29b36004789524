"""Bad input a new user might give: each case fails early with a one-line message naming the
file, line or key and the fix, or warns where the input is usable; nothing is written on failure.

These pin the table "What happens when" in docs/data.md.
"""

import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

from common import config_checks
from common import data
from common.data import movielens, readers, tfds_builder
from common.data.errors import DataError, DataWarning
from data_fixtures import REPO, write

HEADER = "user_id:token\titem_id:token\ttimestamp:float\n"


def _where(e):
  return os.path.basename(e.value.path) if e.value.path else None, e.value.line, e.value.column


def _one_line(e):
  assert "\n" not in str(e.value)


def _events(tmp_path, n_users=3, n_items=10):
  return write(tmp_path / "ev.csv", "u,i\n" + "".join(
      f"{u},{i}\n" for u in range(1, n_users + 1) for i in range(1, n_items + 1)))


def _table_config(tmp_path, **extra):
  source = {"format": "table", "path": _events(tmp_path), "user_col": "u", "item_col": "i"}
  source.update(extra.pop("source", {}))
  return {"name": "bad", "source": source, **extra}


# Timestamps and vectors.

@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e400"])
def test_non_finite_timestamp_names_file_and_line(tmp_path, value):
  write(tmp_path / "x" / "x.inter", HEADER + f"1\t2\t5\n1\t3\t{value}\n")
  with pytest.raises(DataError, match="not a finite number") as e:
    readers.read_recbole_atomic(str(tmp_path / "x"))
  assert _where(e) == ("x.inter", 3, "timestamp")
  _one_line(e)


def test_non_finite_timestamp_csv_jsonl_movielens(tmp_path):
  p = write(tmp_path / "ev.csv", "u,i,t\n1,2,5\n1,3,inf\n")
  with pytest.raises(DataError, match="not a finite number") as e:
    readers.read_table(p, user_col="u", item_col="i", time_col="t")
  assert _where(e) == ("ev.csv", 3, "t")
  p = write(tmp_path / "ev.jsonl", '{"u": 1, "i": 2, "t": 5}\n{"u": 1, "i": 3, "t": NaN}\n')
  with pytest.raises(DataError, match="not a finite number") as e:
    readers.read_table(p, user_col="u", item_col="i", time_col="t")
  assert _where(e) == ("ev.jsonl", 2, "t")
  write(tmp_path / "m" / "ratings.dat", "1::2::5::100\n1::3::4::Infinity\n")
  write(tmp_path / "m" / "movies.dat", "2::A (1990)::Drama\n3::B (1991)::Drama\n")
  with pytest.raises(DataError, match="not a finite number") as e:
    movielens.read_movielens(str(tmp_path / "m"), "ml-10m")
  assert _where(e) == ("ratings.dat", 2, "timestamp")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_dense_npy_names_file_and_row_and_writes_nothing(tmp_path, bad):
  vectors = np.ones((6, 2), np.float32)
  vectors[4, 1] = bad
  np.save(tmp_path / "v.npy", vectors)
  cfg = _table_config(tmp_path, item_features={"emb": {"kind": "dense",
                                                       "path": str(tmp_path / "v.npy")}})
  out = tmp_path / "out"
  with pytest.raises(DataError, match=r"row 4 \(item id 4\) holds (nan|inf)") as e:
    data.prepare(cfg, str(out))
  assert e.value.path.endswith("v.npy") and "must be finite" in str(e.value)
  _one_line(e)
  assert not out.exists()


def test_non_finite_dense_npz_and_text_columns(tmp_path):
  np.savez(tmp_path / "v.npz", ids=np.array(["a", "b"]), vectors=np.array([[1.0], [np.inf]]))
  with pytest.raises(DataError, match=r"row 1 \(item id 'b'\)"):
    readers.read_dense(str(tmp_path / "v.npz"))
  d = tmp_path / "x"
  write(d / "x.inter", HEADER + "1\t2\t5\n")
  write(d / "x.item", "item_id:token\tv:float_seq\n2\t0.5 inf\n")
  with pytest.raises(DataError, match="finite") as e:
    readers.read_recbole_atomic(str(d))
  assert _where(e) == ("x.item", 2, "v")
  write(tmp_path / "items.csv", "i,v\n1,0.5|-inf\n")
  with pytest.raises(DataError, match="finite") as e:
    readers.read_table_features(str(tmp_path / "items.csv"), id_col="i",
                                columns={"v": {"kind": "dense"}})
  assert _where(e) == ("items.csv", 2, "v")


# Encodings.

def test_auto_encoding_refuses_mixed_utf8_and_bad_bytes(tmp_path):
  p = tmp_path / "items.csv"
  p.write_bytes("i,title\n1,café\n".encode() + b"2,na\xefve\xff\n")
  with pytest.raises(DataError, match=r"byte 0xef at byte offset 20 is not UTF-8") as e:
    readers.read_table_features(str(p), id_col="i")
  assert _where(e)[:2] == ("items.csv", 3) and "encoding=" in str(e.value)
  _one_line(e)
  # Naming the encoding explicitly is the fix.
  table = readers.read_table_features(str(p), id_col="i", encoding="latin-1")
  assert table.columns["title"].values[1] == "na\xefve\xff"


def test_auto_encoding_latin1_fallback_warns_with_line_and_offset(tmp_path):
  p = tmp_path / "items.csv"
  p.write_bytes(b"i,title\n1,plain\n2,caf\xe9\n")
  with pytest.warns(DataWarning, match=r"line 3: byte 0xe9 at byte offset 21 is not UTF-8; "
                    r"reading the whole file as Latin-1"):
    table = readers.read_table_features(str(p), id_col="i")
  assert table.columns["title"].values[1] == "café"
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    readers.read_table_features(str(p), id_col="i", encoding="latin-1")  # explicit: silent
    # The GroupLens files are Latin-1 by design: no warning for them.
    write(tmp_path / "m" / "ratings.dat", "1::2::5::100\n")
    (tmp_path / "m" / "movies.dat").write_bytes(b"2::Caf\xe9 (1990)::Drama\n")
    raw = movielens.read_movielens(str(tmp_path / "m"), "ml-10m")
  assert raw.items.columns["title"].values[0].startswith("Café")


# Joining item tables.

def test_item_table_matching_no_ids_is_an_error(tmp_path):
  write(tmp_path / "items.csv", "i,c\n100,a\n101,b\n")
  cfg = _table_config(tmp_path, source={"item_path": str(tmp_path / "items.csv")},
                      item_features={"c": {"kind": "categorical"}})
  with pytest.raises(DataError, match="none of the data set's 10 item ids") as e:
    data.prepare(cfg, str(tmp_path / "out"))
  assert e.value.path.endswith("items.csv")
  assert not (tmp_path / "out").exists()
  # A .npy alone is keyed by row number: string item ids match none of it.
  np.save(tmp_path / "v.npy", np.ones((3, 2), np.float32))
  write(tmp_path / "s.csv", "u,i\nx,a\nx,b\n")
  cfg = {"name": "bad", "source": {"format": "table", "path": str(tmp_path / "s.csv"),
                                   "user_col": "u", "item_col": "i"},
         "item_features": {"emb": {"kind": "dense", "path": str(tmp_path / "v.npy")}}}
  with pytest.raises(DataError, match="none of the data set's 2 item ids"):
    data.build_dataset(cfg)


def test_item_table_partial_match_warns_with_count_and_examples(tmp_path):
  write(tmp_path / "items.csv", "i,c\n" + "".join(f"{i},c{i % 3}\n" for i in range(1, 8)))
  cfg = _table_config(tmp_path, source={"item_path": str(tmp_path / "items.csv")},
                      item_features={"c": {"kind": "categorical"}})
  with pytest.warns(DataWarning, match=r"only 7 of 10 items \(70%\) have a row in this table, "
                    r"below min_feature_match=0.9; the other 3 get all-zero features "
                    r"\(e.g. ids 8, 9, 10\)"):
    ds = data.build_dataset(cfg)
  assert ds.item_features["c"][8:].tolist() == [0, 0, 0]
  cfg["min_feature_match"] = 0.7  # the config key accepts it
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    data.build_dataset(cfg)
  cfg["min_feature_match"] = 1.5
  with pytest.raises(DataError, match="config key 'min_feature_match'"):
    data.build_dataset(cfg)


# Other formats.

def test_directory_given_as_file_path(tmp_path):
  folder = tmp_path / "events.csv"
  folder.mkdir()
  for fn in (lambda: readers.read_table(str(folder), user_col="u", item_col="i"),
             lambda: readers.read_sequence_text(str(folder)),
             lambda: readers.read_dense(str(folder))):
    with pytest.raises(DataError, match="is a directory, not a file") as e:
      fn()
    assert e.value.path == str(folder)
  with pytest.raises(DataError, match="source.path is a directory, but format 'table'"):
    data.build_dataset({"source": {"format": "table", "path": str(folder), "user_col": "u",
                                   "item_col": "i"}})
  inter = write(tmp_path / "x" / "x.inter", HEADER + "1\t2\t5\n")
  with pytest.raises(DataError, match="source.path is a file, but format 'recbole_atomic'"):
    data.build_dataset({"source": {"format": "recbole_atomic", "path": inter}})


@pytest.mark.parametrize("source, features, key", [
    ({"format": "sequence_text", "separator": ""}, {}, "source.separator"),
    ({"format": "recbole_atomic", "seq_separator": ""}, {}, "source.seq_separator"),
    ({"format": "table", "delimiter": ";;"}, {}, "source.delimiter"),
    ({"format": "table"}, {"c": {"kind": "multi", "sep": ""}}, "item_features.c.sep"),
])
def test_empty_separator_is_a_config_error(tmp_path, source, features, key):
  write(tmp_path / "x" / "x.inter", HEADER + "1\t2\t5\n")
  write(tmp_path / "seq.txt", "u1 1 2\n")
  write(tmp_path / "items.csv", "i,c\n1,a|b\n")
  path = {"sequence_text": tmp_path / "seq.txt", "recbole_atomic": tmp_path / "x",
          "table": _events(tmp_path)}[source["format"]]
  cfg = {"name": "bad", "source": {"path": str(path), "user_col": "u", "item_col": "i",
                                   "item_path": str(tmp_path / "items.csv"), **source},
         "item_features": features}
  with pytest.raises(DataError, match=f"config key '{key}'.* Fix: ") as e:
    data.build_dataset(cfg)
  _one_line(e)


def test_text_file_named_npy(tmp_path):
  p = write(tmp_path / "v.npy", "0.1 0.2\n0.3 0.4\n")
  with pytest.raises(DataError, match="not a NumPy array file.*np.save") as e:
    readers.read_dense(p)
  assert e.value.path == p
  np.save(tmp_path / "w.npy", np.ones((2, 2)))
  with pytest.raises(DataError, match="not a NumPy array file"):
    readers.read_dense(str(tmp_path / "w.npy"), write(tmp_path / "ids.npy", "a\nb\n"))


def test_truncated_array_record_names_file_and_rerun(tmp_path):
  final, _, _ = data.prepare(_table_config(tmp_path), str(tmp_path / "out"))
  shard = next(f for f in sorted(os.listdir(final)) if "users.array_record" in f)
  with open(os.path.join(final, shard), "r+b") as f:
    f.truncate(os.path.getsize(os.path.join(final, shard)) // 2)
  for reader in ("fast", "tfds"):
    with pytest.raises(DataError, match="truncated.*re-run scripts/prepare_data.py") as e:
      data.load_prepared(final, reader)
    assert e.value.path.endswith(shard)
    _one_line(e)


def test_leftover_temp_folder_of_a_killed_prepare_is_removed(tmp_path):
  out = tmp_path / "out"
  out.mkdir()
  # A prepare killed with -9 while writing: its temporary folder is made and locked the way
  # write_prepared does it, then the process dies without cleaning up.
  code = ("import sys, time; from common.data import tfds_builder; "
          "tmp, _ = tfds_builder.make_temp_dir(sys.argv[1]); print(tmp, flush=True); "
          "time.sleep(60)")
  proc = subprocess.Popen([sys.executable, "-c", code, str(out)], cwd=REPO,
                          stdout=subprocess.PIPE, text=True)
  leftover = proc.stdout.readline().strip()
  proc.send_signal(signal.SIGKILL)
  proc.wait(timeout=30)
  assert os.path.isdir(leftover) and os.path.basename(leftover).startswith(".rec_data_tmp_")
  # A prepare still running in another process keeps its folder.
  running, fd = tfds_builder.make_temp_dir(str(out))
  try:
    data.prepare(_table_config(tmp_path), str(out))
    assert not os.path.exists(leftover)
    assert os.path.isdir(running)
  finally:
    os.close(fd)
  # Without a lock file (an older prepare's folder) it goes once it is old enough.
  old = out / ".rec_data_tmp_old"
  old.mkdir()
  past = time.time() - 2 * tfds_builder._UNLOCKED_GRACE_S  # pylint: disable=protected-access
  os.utime(old, (past, past))
  assert str(old) in tfds_builder.remove_stale_temp_dirs(str(out))
  assert sorted(os.listdir(out)) == ["rec_data"]


# Config keys.

def test_negative_k_core_and_unknown_preprocess_key(tmp_path):
  with pytest.raises(DataError, match=r"config key 'preprocess.user_core': .* got -3\. Fix: "):
    data.prepare(_table_config(tmp_path, preprocess={"user_core": -3}), str(tmp_path / "out"))
  assert not (tmp_path / "out").exists()
  with pytest.raises(DataError, match="config key 'preprocess.item_core'"):
    data.build_dataset(_table_config(tmp_path, preprocess={"item_core": 2.5}))
  with pytest.raises(DataError, match="'preprocess.usr_core': unknown key. Fix: did you mean "
                     "'user_core'"):
    data.build_dataset(_table_config(tmp_path, preprocess={"usr_core": 3}))
  with pytest.raises(DataError, match="'auto_feature': unknown data config key. Fix: did you "
                     "mean 'auto_features'"):
    data.build_dataset(_table_config(tmp_path, auto_feature=False))


def _prepare_script(*args):
  return subprocess.run([sys.executable, os.path.join(REPO, "scripts", "prepare_data.py"), *args],
                        capture_output=True, text=True, cwd=REPO, timeout=120, check=False)


def test_prepare_script_unknown_key_reads_like_train(tmp_path):
  synthetic = os.path.join(REPO, "configs", "data", "synthetic.py")
  expected = config_checks.diagnose_overrides(
      ["prepare_data.py", f"--config={synthetic}", "--config.preprocess.usr_core=3"])
  assert expected is not None
  # With the default config left implicit, as a new user types it.
  out = _prepare_script("--config.preprocess.usr_core=3", f"--data_dir={tmp_path}")
  assert out.returncode == 2
  assert out.stderr.strip().splitlines()[-1] == f"Error: {expected}"
  assert "did you mean 'preprocess.user_core'?" in out.stderr
  out = _prepare_script(f"--config={synthetic}:tiny", "--config.preprocess.user_core=-3",
                        f"--data_dir={tmp_path}")
  assert out.returncode == 1 and "Traceback" not in out.stderr
  assert "error: config key 'preprocess.user_core'" in out.stderr
  assert not os.listdir(tmp_path)
