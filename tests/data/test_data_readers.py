"""Each reader on small fixture files written by the test."""

import json
import os

import numpy as np

from common import data
from common.data import movielens, readers
from data_fixtures import write


def _atomic(tmp_path):
  d = tmp_path / "toy"
  write(d / "toy.inter", "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "u1\ti1\t5\t10\nu1\ti2\t3\t20\nu2\ti1\t4\t15\n")
  write(d / "toy.item", "item_id:token\ttitle:token_seq\tgenre:token\tprice:float\t"
        "vec:float_seq\ni1\tThe Film\tdrama\t9.5\t0.1 0.2\ni2\tOther\tcomedy\t\t0.3 0.4\n")
  write(d / "toy.user", "user_id:token\tage:token\nu1\t20\nu2\t30\n")
  return str(d)


def test_recbole_atomic(tmp_path):
  raw = readers.read_recbole_atomic(_atomic(tmp_path))
  inter = raw.interactions
  assert list(inter.users) == ["u1", "u1", "u2"]
  assert list(inter.items) == ["i1", "i2", "i1"]
  np.testing.assert_array_equal(inter.ratings, [5, 3, 4])
  np.testing.assert_array_equal(inter.timestamps, [10, 20, 15])
  np.testing.assert_array_equal(inter.lines, [2, 3, 4])
  cols = raw.items.columns
  assert cols["title"].type == "token_seq" and cols["title"].values[0] == ["The", "Film"]
  assert cols["genre"].values == ["drama", "comedy"]
  assert np.isnan(cols["price"].values[1]) and cols["price"].values[0] == 9.5
  np.testing.assert_allclose(cols["vec"].values[1], [0.3, 0.4])
  assert list(raw.users.ids) == ["u1", "u2"]


def test_recbole_integer_ids_become_int(tmp_path):
  d = tmp_path / "n"
  write(d / "n.inter", "user_id:token\titem_id:token\n1\t10\n2\t9\n")
  write(d / "n.item", "item_id:token\tc:token\n10\ta\n9\tb\n")
  raw = readers.read_recbole_atomic(str(d))
  assert raw.interactions.items.dtype == np.int64 and raw.items.ids.dtype == np.int64
  assert raw.interactions.timestamps is None and raw.interactions.ratings is None


def test_movielens_100k(tmp_path):
  d = tmp_path / "ml-100k"
  write(d / "u.data", "1\t10\t5\t881250949\n2\t10\t3\t881250950\n1\t20\t4\t881250951\n")
  flags = ["0"] * 19
  flags[1] = flags[5] = "1"  # Action, Comedy
  write(d / "u.item", "10|Film A (1995)|01-Jan-1995||http://x|" + "|".join(flags) + "\n"
        "20|Film B (1997)|||http://y|" + "|".join(["1"] + ["0"] * 18) + "\n",
        encoding="latin-1")
  write(d / "u.user", "1|24|M|technician|85711\n2|53|F|other|94043\n")
  raw = movielens.read_movielens(str(d))
  assert list(raw.interactions.users) == [1, 2, 1]
  assert raw.items.columns["genres"].values == [["Action", "Comedy"], ["unknown"]]
  assert raw.items.columns["year"].values == ["1995", "1997"]
  assert raw.items.columns["title"].values[0] == "Film A (1995)"
  np.testing.assert_array_equal(raw.users.columns["age"].values, [24, 53])


def test_movielens_1m_and_10m(tmp_path):
  d = tmp_path / "ml-1m"
  write(d / "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n")
  write(d / "movies.dat", "1193::One Flew (1975)::Drama\n661::James (1996)::Animation|Musical\n",
        encoding="latin-1")
  write(d / "users.dat", "1::F::1::10::48067\n")
  raw = movielens.read_movielens(str(d))
  assert movielens.detect_variant(str(d)) == "ml-1m"
  assert raw.items.columns["genres"].values == [["Drama"], ["Animation", "Musical"]]
  assert raw.users.columns["age"].values == ["1"]
  os.remove(d / "users.dat")
  assert movielens.detect_variant(str(d)) == "ml-10m"
  raw = movielens.read_movielens(str(d))
  assert raw.users is None and list(raw.interactions.items) == [1193, 661]


def test_sequence_text(tmp_path):
  p = write(tmp_path / "seq.txt", "u1 5 3 9\n\nu2 3\n")
  raw = readers.read_sequence_text(p)
  assert list(raw.interactions.users) == ["u1"] * 3 + ["u2"]
  assert list(raw.interactions.items) == [5, 3, 9, 3]
  assert raw.interactions.timestamps is None
  p = write(tmp_path / "noid.txt", "5 3\n9\n")
  raw = readers.read_sequence_text(p, has_user_id=False)
  assert list(raw.interactions.users) == [1, 1, 2]


def test_csv_tsv_jsonl(tmp_path):
  csv_path = write(tmp_path / "ev.csv", 'uid,iid,when\na,x,2024-01-02T00:00:00\nb,"y",5\n')
  items = write(tmp_path / "items.csv", "iid,genres,price,name\nx,a|b,1.5,\"X, the item\"\n"
                "y,b,,Y\n")
  raw = readers.read_table(csv_path, user_col="uid", item_col="iid", time_col="when",
                           item_path=items, item_columns={
                               "genres": {"kind": "multi"}, "price": {"kind": "numeric"},
                               "name": {"kind": "text"}})
  assert raw.interactions.timestamps[0] == 1704153600.0 and raw.interactions.timestamps[1] == 5
  # Columns stay text here; the feature options type them (see test_data_features).
  assert raw.items.columns["genres"].values == ["a|b", "b"]
  assert raw.items.columns["name"].values[0] == "X, the item"
  assert raw.items.columns["price"].values == ["1.5", ""]

  tsv = write(tmp_path / "ev.tsv", "u\ti\tr\n1\t2\t4.5\n")
  inter = readers.read_table_interactions(tsv, user_col="u", item_col="i", rating_col="r")
  assert inter.ratings[0] == 4.5

  jl = write(tmp_path / "ev.jsonl", "\n".join(json.dumps(r) for r in [
      {"u": 1, "i": "a", "t": 3}, {"u": 2, "i": "b", "t": 1}]) + "\n")
  feats = write(tmp_path / "it.jsonl", json.dumps({"i": "a", "tags": ["p", "q"],
                                                   "v": [1.0, 2.0]}) + "\n")
  raw = readers.read_table(jl, user_col="u", item_col="i", time_col="t", item_path=feats,
                           item_columns={"tags": {"kind": "multi"}, "v": {"kind": "dense"}})
  assert list(raw.interactions.users) == [1, 2]
  assert raw.items.columns["tags"].type == "token_seq"
  assert raw.items.columns["tags"].values == [["p", "q"]]
  np.testing.assert_array_equal(raw.items.columns["v"].values[0], [1.0, 2.0])


def test_table_infers_column_types(tmp_path):
  items = write(tmp_path / "items.csv", "id,color,size\n1,red,3\n2,blue,4.5\n")
  table = readers.read_table_features(items, id_col="id")
  assert table.columns["color"].type == "token" and table.columns["size"].type == "float"


def test_dense_layouts(tmp_path):
  vecs = np.arange(6, dtype=np.float32).reshape(3, 2)
  np.savez(tmp_path / "v.npz", ids=np.array(["a", "b", "c"]), vectors=vecs)
  t = readers.read_dense(str(tmp_path / "v.npz"))
  assert list(t.ids) == ["a", "b", "c"] and t.vectors.shape == (3, 2)
  np.save(tmp_path / "v.npy", vecs)
  write(tmp_path / "ids.txt", "x\ny\nz\n")
  t = readers.read_dense(str(tmp_path / "v.npy"), str(tmp_path / "ids.txt"))
  assert list(t.ids) == ["x", "y", "z"]
  t = readers.read_dense(str(tmp_path / "v.npy"))
  np.testing.assert_array_equal(t.ids, [0, 1, 2])


def test_sequence_text_with_item_table_through_the_pipeline(tmp_path):
  seq = write(tmp_path / "seq.txt", "u1 a b c\nu2 b c a d\n")
  items = write(tmp_path / "items.tsv", "item\tkind\tlabel\na\tx\tAy\nb\ty\tBee\nd\tx\tDee\n")
  ds = data.build_dataset({
      "name": "seq", "source": {"format": "sequence_text", "path": seq, "item_path": items,
                                "item_id_col": "item"},
      "item_features": {"kind": {"kind": "categorical"},
                        "label": {"kind": "text"},
                        "label_words": {"kind": "multi", "column": "label", "sep": "e"}}})
  assert list(ds.item_raw_ids) == [None, "a", "b", "c", "d"]
  np.testing.assert_array_equal(ds.sequence(2), [2, 3, 1, 4])
  assert ds.item_features["label"] == ["", "Ay", "Bee", "", "Dee"]
  kinds = ds.vocabs["kind"]["tokens"]
  assert [kinds[j] for j in ds.item_features["kind"]] == ["[PAD]", "x", "y", "[PAD]", "x"]
  words = ds.vocabs["label_words"]["tokens"]
  assert [words[j] for j in ds.item_features["label_words"][2] if j] == ["B"]
