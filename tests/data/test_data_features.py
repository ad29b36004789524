"""Feature arrays and vocabularies: kinds, padding row, vocabulary order, buckets, dense files."""

import numpy as np
import pytest

from common.data.errors import DataError
from common.data.features import build_features
from common.data.raw import DenseTable, RawColumn, RawTable


def _ids(*ids):
  out = np.empty(len(ids) + 1, dtype=object)
  out[1:] = ids
  return out


def _table():
  cols = {
      "cat": RawColumn("cat", "token", ["b", "a", "b", ""]),
      "genres": RawColumn("genres", "token_seq", [["x", "y"], ["y"], ["y", "z", "y"], []]),
      "price": RawColumn("price", "float", np.array([1.0, 2.0, 3.0, np.nan])),
      "title": RawColumn("title", "text", ["A", "B", "C", "D"]),
      "vec": RawColumn("vec", "float_seq", [np.array([1.0, 2.0])] * 4),
  }
  return RawTable("items.tsv", np.array([10, 20, 30, 40]), cols, np.arange(2, 6))


def test_kinds_and_padding_row():
  # Item 40 is in the table, 50 is not: it gets all-zero features.
  specs, arrays, vocabs = build_features(_ids(30, 10, 40, 50), _table(),
                                         fields={"price": {"kind": "numeric", "num_buckets": 3}})
  by = {s.name: s for s in specs}
  assert [s.name for s in specs][0] == "item_id" and by["item_id"].vocab_size == 5
  np.testing.assert_array_equal(arrays["item_id"], [0, 1, 2, 3, 4])
  # "b" is on two of the data set's items, "a" on none (item 20 is not in the data set).
  assert vocabs["cat"]["tokens"] == ["[PAD]", "b"]
  np.testing.assert_array_equal(arrays["cat"], [0, 1, 1, 0, 0])
  assert by["genres"].kind == "multi" and by["genres"].max_len == 2
  assert vocabs["genres"]["tokens"] == ["[PAD]", "y", "x", "z"]
  np.testing.assert_array_equal(arrays["genres"], [[0, 0], [1, 3], [2, 1], [0, 0], [0, 0]])
  assert by["price"].vocab_size == len(vocabs["price"]["edges"]) + 2
  assert arrays["price"][0] == 0 and arrays["price"][3] == 0 and arrays["price"][4] == 0
  assert arrays["price"][1] > arrays["price"][2] > 0
  assert arrays["title"] == ["", "C", "A", "D", ""]
  assert by["vec"].dim == 2 and not arrays["vec"][0].any() and not arrays["vec"][4].any()
  for s in specs:
    if s.kind in ("categorical", "multi", "numeric"):
      assert arrays[s.name].max() < s.vocab_size


def test_conversions_drop_and_min_count():
  specs, arrays, vocabs = build_features(
      _ids(10, 20, 30), _table(), auto=False,
      fields={"cat": {"kind": "categorical", "min_count": 2}, "g": {"column": "title",
                                                               "kind": "multi"},
              "tokens_as_text": {"column": "genres", "kind": "text"},
              "vec": {"kind": "drop"}})
  assert [s.name for s in specs] == ["item_id", "cat", "g", "tokens_as_text"]
  np.testing.assert_array_equal(arrays["cat"], [0, 1, 0, 1])
  assert arrays["tokens_as_text"][1] == "x y"


def test_dense_from_file_and_missing_column():
  dense = {"img": DenseTable("v.npz", np.array(["30", "10"]), np.ones((2, 3), np.float32))}
  specs, arrays, _ = build_features(_ids(10, 20, 30), _table(), dense, auto=False)
  assert specs[-1].kind == "dense" and arrays["img"].shape == (4, 3)
  np.testing.assert_array_equal(arrays["img"][:, 0], [0, 1, 0, 1])
  with pytest.raises(DataError, match="nope") as e:
    build_features(_ids(10), _table(), fields={"x": {"column": "nope"}})
  assert e.value.path == "items.tsv" and e.value.column == "nope"


def test_numeric_from_bad_token_names_line():
  table = RawTable("t.csv", np.array([1, 2]), {"p": RawColumn("p", "token", ["1", "abc"])},
                   np.array([2, 3]))
  with pytest.raises(DataError) as e:
    build_features(_ids(1, 2), table, fields={"p": {"kind": "numeric"}})
  assert (e.value.path, e.value.line, e.value.column) == ("t.csv", 3, "p")
