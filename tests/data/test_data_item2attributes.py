"""A ``sequence_text`` file with an ``item2attributes`` JSON (``source.attributes_path``): the
attributes become a ``multi`` item field; each bad JSON fails with a one-line DataError naming the
file, the item and the fix, before anything is written. The last test reads the real Amazon
Toys and Games files when the shared data folder is there.

These pin the item2attributes rows of docs/data.md (formats and "What happens when").
"""

import json
import os

import numpy as np
import pytest

from common import data
from common.data import readers
from common.data.errors import DataError
from data_fixtures import REPO, write

AMAZON_TOYS = os.path.join(REPO, "..", "shared", "data", "amazon-toys")
SEQ = "1 1 2 3\n2 2 3 4 1\n3 4 5\n"
# Item 6 is in no sequence (ignored); item 5 lists attribute 10 twice (counted once).
ATTRS = {"1": [10, 20], "2": [20], "3": [20, 30, 10], "4": [40], "5": [10, 10], "6": [99]}


def _config(tmp_path, attrs=None, text=None, **source):
  """A data config over the fixture files; ``text`` is written as the JSON verbatim."""
  seq = write(tmp_path / "seq.txt", SEQ)
  js = write(tmp_path / "attrs.json", text if text is not None else json.dumps(attrs or ATTRS))
  src = {"format": "sequence_text", "path": seq, "attributes_path": js}
  src.update(source)
  return {"name": "toys_fixture", "source": src,
          "preprocess": {"user_core": 0, "item_core": 0, "split": "leave_one_out"}}


def _fails(tmp_path, config, match):
  """Runs the prepare on ``config``; checks it raises a one-line DataError and writes nothing."""
  out = tmp_path / "out"
  with pytest.raises(DataError, match=match) as e:
    data.prepare(config, str(out))
  assert "\n" not in str(e.value) and "Fix:" in str(e.value)
  assert not out.exists()
  return e.value


def test_item2attributes_counts_and_multi_field(tmp_path):
  ds = data.build_dataset(_config(tmp_path))
  assert (ds.num_users, ds.num_items, ds.num_interactions) == (3, 5, 9)
  assert ds.item_raw_ids[1:].tolist() == [1, 2, 3, 4, 5]
  # Leave-one-out in file order; user 3, with 2 items, has train and test only.
  np.testing.assert_array_equal(ds.n_train[1:], [1, 2, 1])
  np.testing.assert_array_equal(ds.n_valid[1:], [1, 1, 0])
  spec = ds.feature_spec("attributes")
  assert (spec.kind, spec.vocab_size, spec.max_len) == ("multi", 5, 3)
  # By frequency over the data set's items (10 and 20 on three each, ties by value); 99 is only
  # on item 6, which is in no sequence.
  assert ds.vocabs["attributes"]["tokens"] == ["[PAD]", "10", "20", "30", "40"]
  np.testing.assert_array_equal(ds.item_features["attributes"],
                                [[0, 0, 0], [1, 2, 0], [2, 0, 0], [2, 3, 1], [4, 0, 0],
                                 [1, 0, 0]])
  assert [s.name for s in ds.field_specs] == ["item_id", "attributes"]


def test_item2attributes_field_name_options_and_prepare_round_trip(tmp_path):
  config = _config(tmp_path, attributes_field="brand_cat")
  config["auto_features"] = False  # the attributes field is built all the same
  config["item_features"] = {"brand_cat": {"max_len": 2}}
  path, ds, stats = data.prepare(config, str(tmp_path / "out"))
  spec = ds.feature_spec("brand_cat")
  assert (spec.kind, spec.max_len) == ("multi", 2)
  np.testing.assert_array_equal(ds.item_features["brand_cat"][3], [2, 3])
  loaded = data.load_prepared(path)
  np.testing.assert_array_equal(loaded.item_features["brand_cat"], ds.item_features["brand_cat"])
  assert loaded.vocabs["brand_cat"]["tokens"] == ds.vocabs["brand_cat"]["tokens"]
  assert stats["interactions"] == 9
  assert stats["item_fields"]["brand_cat"]["kind"] == "multi"
  # Attribute ids written as JSON strings of integers read the same.
  as_str = {k: [str(a) for a in v] for k, v in ATTRS.items()}
  again = data.build_dataset(_config(tmp_path / "s", as_str))
  np.testing.assert_array_equal(again.item_features["attributes"],
                                data.build_dataset(_config(tmp_path)).item_features["attributes"])


def test_item_missing_from_json_names_item_line_and_both_files(tmp_path):
  attrs = {k: v for k, v in ATTRS.items() if k not in ("4", "5")}
  e = _fails(tmp_path, _config(tmp_path, attrs), r"item 4 of .*seq\.txt \(line 2\) has no entry")
  assert e.path.endswith("attrs.json")
  assert "2 of the 5 items" in str(e) and "e.g. 4, 5" in str(e)
  assert "source.attributes_path" in str(e)


def test_malformed_json_gives_line_and_column(tmp_path):
  text = '{\n  "1": [10, 20],\n  "2": [20,, 30]\n}\n'
  e = _fails(tmp_path, _config(tmp_path, text=text), "malformed JSON: Expecting value")
  assert e.path.endswith("attrs.json") and (e.line, e.column) == (3, "12")
  assert str(e).startswith("file ") and "line 3, column '12'" in str(e)


@pytest.mark.parametrize("text,key,what", [
    ('{"1": [10], "a7": [20]}', "a7", "the item id is not an integer"),
    ('{"1": [10], "007": [20]}', "007", "the item id is not an integer"),
    ('{"1": [10], "2": [20, "x"]}', "2", "attribute id 'x' is not an integer"),
    ('{"1": [10], "2": [1.5]}', "2", "attribute id 1.5 is not an integer"),
    ('{"1": [10], "2": [true]}', "2", "attribute id True is not an integer"),
    ('{"1": [10], "2": [null]}', "2", "attribute id None is not an integer"),
])
def test_non_integer_ids_name_the_key(tmp_path, text, key, what):
  e = _fails(tmp_path, _config(tmp_path, text=text), f"item {key!r}: {what}")
  assert e.path.endswith("attrs.json") and (e.line, e.column) == (1, "13")


def test_empty_attribute_list_names_the_item(tmp_path):
  text = '{\n"1": [10],\n"2": [],\n"3": [5], "4": [1], "5": [2]}'
  e = _fails(tmp_path, _config(tmp_path, text=text), r"item '2': the attribute list is empty")
  assert e.path.endswith("attrs.json") and (e.line, e.column) == (3, "1")


@pytest.mark.parametrize("text,match", [
    ('[[10], [20]]', "the top level is an array, not an object of lists"),
    ('"items"', "the top level is a string, not an object of lists"),
    ('{"1": {"brand": 3}}', "item '1': the value is an object, not a list"),
    ('{"1": 10}', "item '1': the value is a number, not a list"),
    ('{"1": "10 20"}', "item '1': the value is a string, not a list"),
    ('{"1": [10], "1": [20]}', "item '1': the item id appears more than once"),
])
def test_json_not_an_object_of_lists(tmp_path, text, match):
  e = _fails(tmp_path, _config(tmp_path, text=text), match)
  assert e.path.endswith("attrs.json")


def test_attributes_config_errors(tmp_path):
  cases = [
      ({"format": "table", "user_col": "u", "item_col": "i"}, "format 'table' does not read"),
      ({"item_path": "items.csv"}, "source.item_path is set too"),
      ({"attributes_field": "item_id"}, "source.attributes_field"),
  ]
  for source, match in cases:
    e = _fails(tmp_path, _config(tmp_path, **source), match)
    assert str(e).startswith("config key 'source.attributes_")
  with pytest.raises(DataError, match="does not exist"):
    readers.read_item_attributes(str(tmp_path / "none.json"))


def test_amazon_toys_real_files():
  """The real S3-Rec files through configs/data/amazon_toys.py (about 1 s on one core)."""
  files = ("Toys_and_Games.txt", "Toys_and_Games_item2attributes.json")
  if not all(os.path.isfile(os.path.join(AMAZON_TOYS, f)) for f in files):
    pytest.skip(f"Amazon Toys and Games not found in {os.path.normpath(AMAZON_TOYS)} (the "
                "shared data folder is absent on this machine).")
  from configs.data import amazon_toys  # pylint: disable=g-import-not-at-top
  ds = data.build_dataset(amazon_toys.get_config())
  # No k-core in the config: the file is already 5-core, and 0-core keeps every event.
  assert (ds.num_users, ds.num_items, ds.num_interactions) == (19412, 11924, 167597)
  assert ds.counts == {"read": 167597, "final": 167597}
  assert ds.lengths()[1:].min() == 5 and np.bincount(ds.items)[1:].min() >= 5
  np.testing.assert_array_equal(ds.n_valid[1:], 1)  # leave-one-out: one valid, one test each
  spec = ds.feature_spec("attributes")
  assert (spec.kind, spec.vocab_size) == ("multi", 1028)  # 1,027 attribute ids + padding
  values = (ds.item_features["attributes"][1:] > 0).sum(axis=1)
  assert values.min() >= 1 and abs(values.mean() - 4.27) < 0.01  # 4.28 before in-list repeats
  with pytest.raises(ValueError, match="unknown arg"):
    amazon_toys.get_config("x")
