"""benchmarks/recbole_atomic.py and the pure-Python parts of benchmarks/recbole_sasrec.py.

The RecBole runner turns a one-line-per-user sequence file and an item2attributes JSON into
RecBole atomic files, and checks RecBole's split against the leave-one-out split the project's
data layer makes of the same file. These tests need neither RecBole nor torch: they check the
writer, the expected split (its fingerprint equals the project data layer's), the attribute cap
(the same values as the project's ``max_len``), the runner's options and RecBole config, and the
rebuilding of a split from RecBole-shaped rows. The last test reads the real Amazon Toys files
when the shared data folder is there.
"""

import json
import os
import sys

import numpy as np
import pytest

from common import data

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import recbole_atomic  # pylint: disable=g-import-not-at-top,wrong-import-position
import recbole_sasrec  # pylint: disable=g-import-not-at-top,wrong-import-position
import split_fingerprint  # pylint: disable=g-import-not-at-top,wrong-import-position

AMAZON_TOYS = os.path.join(REPO, "..", "shared", "data", "amazon-toys")
# Toys' fingerprint (configs/data/amazon_toys.py), as benchmarks/README.md gives it.
TOYS_FINGERPRINT = "d0387d367f8b6ecb814352188c54661e407dcfe4612ab4b640710337f6597656"
# User 7 is on two lines (concatenated); user 9 has 2 items (train and test), user 8 one.
SEQ = "1 1 2 3 4\n2 2 3 4 1 5\n7 5 1\n9 4 2\n8 3\n7 2 3\n"
# Item 3 lists 10 distinct values (20 twice), item 5 repeats 10; item 6 is in no sequence.
ATTRS = {"1": [10, 20], "2": [20], "3": [20, 30, 20, 31, 32, 33, 34, 35, 36, 37, 38],
         "4": [40], "5": [10, 10, 41], "6": [99]}


def _files(tmp_path, attrs=None):
  seq = tmp_path / "seq.txt"
  seq.write_text(SEQ)
  js = tmp_path / "attrs.json"
  js.write_text(json.dumps(ATTRS if attrs is None else attrs))
  return str(seq), str(js)


def _project_dataset(seq, js, slots):
  """The project's data layer over the fixture, as configs/data/amazon_toys.py reads Toys."""
  return data.build_dataset({
      "name": "fixture",
      "source": {"format": "sequence_text", "path": seq, "attributes_path": js},
      "preprocess": {"user_core": 0, "item_core": 0, "dedup": False, "tie_break": "file_order",
                     "split": "leave_one_out"},
      "item_features": {"attributes": {"kind": "multi", "max_len": slots}}})


def _project_attributes(ds):
  """Raw item id -> the attribute tokens the project's data layer keeps, in slot order."""
  tokens = ds.vocabs["attributes"]["tokens"]
  feats = ds.item_features["attributes"]
  return {str(ds.item_raw_ids[i]): [tokens[j] for j in feats[i] if j]
          for i in range(1, ds.num_items + 1)}


def _read_atomic(path):
  with open(path) as f:
    rows = [line.rstrip("\n").split("\t") for line in f]
  return rows[0], rows[1:]


def test_writer_files_and_counts(tmp_path):
  seq, js = _files(tmp_path)
  seqs = recbole_atomic.read_sequences(seq)
  assert seqs["7"] == ["5", "1", "2", "3"]  # two lines, concatenated in file order
  info = recbole_atomic.write_atomic(str(tmp_path / "atomic"), "toys", seqs,
                                     recbole_atomic.read_item_attributes(js), attribute_slots=3)
  header, rows = _read_atomic(tmp_path / "atomic" / "toys" / "toys.inter")
  assert header == ["user_id:token", "item_id:token", "timestamp:float"]
  assert [r[2] for r in rows] == [str(i) for i in range(len(rows))]  # file positions
  assert [(r[0], r[1]) for r in rows[:5]] == [("1", "1"), ("1", "2"), ("1", "3"), ("1", "4"),
                                              ("2", "2")]
  header, rows = _read_atomic(tmp_path / "atomic" / "toys" / "toys.item")
  assert header == ["item_id:token", "attributes:token_seq"]
  items = dict(rows)
  assert "6" not in items  # in no sequence
  assert items["3"] == "20 30 31"  # first 3 distinct values, in list order
  assert items["5"] == "10 41"
  assert info == {"users": 5, "items": 5, "interactions": 16, "attribute_vocab": 6,
                  "attributes_per_item": 9 / 5, "items_capped": 1, "max_attributes": 10}


def test_expected_split_and_attributes_match_the_data_layer(tmp_path):
  seq, js = _files(tmp_path)
  seqs = recbole_atomic.read_sequences(seq)
  splits = recbole_atomic.expected_splits(seqs)
  assert splits["2"] == (["2", "3", "4", "1", "5"], 3, 1)
  assert splits["9"] == (["4", "2"], 1, 0) and splits["8"] == (["3"], 1, 0)
  ds = _project_dataset(seq, js, slots=8)
  assert split_fingerprint.fingerprint(splits) == split_fingerprint.from_rec_dataset(ds)
  recbole_atomic.write_atomic(str(tmp_path), "toys", seqs,
                              recbole_atomic.read_item_attributes(js), attribute_slots=8)
  _, rows = _read_atomic(tmp_path / "toys" / "toys.item")
  assert {i: v.split() for i, v in rows} == _project_attributes(ds)


def test_bad_input(tmp_path):
  seq, js = _files(tmp_path, attrs={"1": [1], "2": [2]})
  seqs = recbole_atomic.read_sequences(seq)
  with pytest.raises(recbole_atomic.AtomicDataError, match="3 of the 5 items .* no attributes"):
    recbole_atomic.write_atomic(str(tmp_path), "toys", seqs,
                                recbole_atomic.read_item_attributes(js))
  bad = tmp_path / "bad.json"
  for text, match in (("{", "malformed JSON"), ('{"x": [1]}', "not an integer"),
                      ('{"1": []}', "non-empty list"), ('{"1": ["a"]}', "'a' is not an integer"),
                      ("[1]", "top level")):
    bad.write_text(text)
    with pytest.raises(recbole_atomic.AtomicDataError, match=match):
      recbole_atomic.read_item_attributes(str(bad))
  (tmp_path / "short.txt").write_text("1 2\n3\n")
  with pytest.raises(recbole_atomic.AtomicDataError, match="line 2: no item ids"):
    recbole_atomic.read_sequences(str(tmp_path / "short.txt"))
  with pytest.raises(recbole_atomic.AtomicDataError, match="not found"):
    recbole_atomic.read_sequences(str(tmp_path / "none.txt"))


def test_runner_options_and_recbole_config():
  toys = recbole_sasrec.parse_args(["--dataset", "amazon-toys", "--model", "SASRecF",
                                    "--out", "x.json"])
  assert toys.from_sequences and toys.history_masking and toys.attribute_slots == 8
  assert toys.seq_file.endswith(os.path.join("amazon-toys", "Toys_and_Games.txt"))
  assert recbole_sasrec._display_path(toys.seq_file) == os.path.join(
      "..", "shared", "data", "amazon-toys", "Toys_and_Games.txt")
  cfg = recbole_sasrec.build_config_dict(toys, "atomic")
  assert cfg["selected_features"] == ["attributes"] and cfg["pooling_mode"] == "mean"
  assert cfg["load_col"]["item"] == ["item_id", "attributes"]
  assert cfg["user_inter_num_interval"] is None and cfg["item_inter_num_interval"] is None
  assert cfg["eval_args"] == {"split": {"LS": "valid_and_test"}, "group_by": "user",
                              "order": "TO", "mode": "full"}
  sasrec = recbole_sasrec.build_config_dict(recbole_sasrec.parse_args(
      ["--dataset", "amazon-toys", "--out", "x.json"]), "atomic")
  assert "selected_features" not in sasrec and "item" not in sasrec["load_col"]
  # ML-100K as before: 5-core, no masking, no item file.
  ml = recbole_sasrec.parse_args(["--out", "x.json"])
  assert not ml.from_sequences and not ml.history_masking
  ml_cfg = recbole_sasrec.build_config_dict(ml, "data")
  assert ml_cfg["user_inter_num_interval"] == ml_cfg["item_inter_num_interval"] == "[5,inf)"
  assert ml_cfg["load_col"] == {"inter": ["user_id", "item_id", "timestamp"]}
  assert "History not masked" in recbole_sasrec.protocol_notes(ml)[0]
  assert "History masked by this runner" in recbole_sasrec.protocol_notes(toys)[0]
  assert recbole_sasrec.parse_args(["--out", "x.json", "--mask_history", "on"]).history_masking
  for bad in (["--model", "SASRecF"], ["--dataset", "amazon-toys", "--data_path", "d"],
              ["--attributes_file", "a.json"]):
    with pytest.raises(SystemExit):
      recbole_sasrec.parse_args(bad + ["--out", "x.json"])


class _Tensor(np.ndarray):
  """A numpy array with torch's ``.numpy()``, standing in for RecBole's tensors."""

  def numpy(self):
    return np.asarray(self)


class _Rows:
  """RecBole-shaped sequential rows: user, left-aligned prefix, its length, target."""

  def __init__(self, rows, max_len=3):
    prefixes = np.zeros((len(rows), max_len), dtype=np.int64)
    for r, (_, prefix, _) in enumerate(rows):
      prefix = prefix[-max_len:]
      prefixes[r, :len(prefix)] = prefix
    self.inter_feat = {
        "user_id": np.array([u for u, _, _ in rows]).view(_Tensor),
        "item_id_list": prefixes.view(_Tensor),
        "item_length": np.array([min(len(p), max_len) for _, p, _ in rows]).view(_Tensor),
        "item_id": np.array([t for _, _, t in rows]).view(_Tensor)}


def test_reconstruct_splits_from_recbole_rows():
  # Internal user 1 = raw "u1" with items (internal) 1 2 3 4 5; user 2 = "u2" with 2 1 3.
  train = _Rows([(1, [1], 2), (1, [1, 2], 3), (1, [1, 2, 3], 4), (2, [2], 1)])
  valid = _Rows([(1, [1, 2, 3, 4], 5), (2, [2, 1], 3)])
  test = _Rows([(1, [1, 2, 3, 4, 5], 6)])
  uid_tokens = ["[PAD]", "u1", "u2"]
  iid_tokens = ["[PAD]", "a", "b", "c", "d", "e", "f"]
  splits, bad, internal = recbole_sasrec.reconstruct_splits(train, valid, test, uid_tokens,
                                                           iid_tokens)
  assert bad == 0
  assert splits == {"u1": (["a", "b", "c", "d", "e", "f"], 4, 1), "u2": (["b", "a", "c"], 2, 1)}
  assert internal[1] == ([1, 2, 3, 4, 5, 6], 4, 1)
  wrong = _Rows([(1, [1, 9, 3, 4], 5), (2, [2, 1], 3)])  # a prefix that is not the history
  assert recbole_sasrec.reconstruct_splits(train, wrong, test, uid_tokens, iid_tokens)[1] == 1


def test_amazon_toys_fingerprint_and_attributes(tmp_path):
  """The real files (about 5 s on one core): RecBole's input equals the project's Toys data."""
  seq = os.path.join(AMAZON_TOYS, "Toys_and_Games.txt")
  js = os.path.join(AMAZON_TOYS, "Toys_and_Games_item2attributes.json")
  if not (os.path.isfile(seq) and os.path.isfile(js)):
    pytest.skip(f"Amazon Toys and Games not found in {os.path.normpath(AMAZON_TOYS)} (the "
                "shared data folder is absent on this machine).")
  from configs.heterrec import amazon_toys  # pylint: disable=g-import-not-at-top
  config = amazon_toys.get_config("sasrec").data
  config.source.path, config.source.attributes_path = seq, js
  ds = data.build_dataset(config)
  seqs = recbole_atomic.read_sequences(seq)
  expected = split_fingerprint.fingerprint(recbole_atomic.expected_splits(seqs))
  assert expected == split_fingerprint.from_rec_dataset(ds) == TOYS_FINGERPRINT
  info = recbole_atomic.write_atomic(str(tmp_path), "amazon-toys", seqs,
                                     recbole_atomic.read_item_attributes(js),
                                     attribute_slots=amazon_toys.ATTRIBUTE_SLOTS)
  assert (info["users"], info["items"], info["interactions"]) == (19412, 11924, 167597)
  assert info["items_capped"] == 9 and info["max_attributes"] == 16
  _, rows = _read_atomic(tmp_path / "amazon-toys" / "amazon-toys.item")
  assert {i: v.split() for i, v in rows} == _project_attributes(ds)
