"""Round trip through the tfds builder (array_record, no TensorFlow) returns identical arrays."""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from common import data
from data_fixtures import write


def _assert_same(a, b):
  for name in ("offsets", "items", "timestamps", "n_train", "n_valid"):
    x, y = getattr(a, name), getattr(b, name)
    assert x.dtype == y.dtype and np.array_equal(x, y), name
  assert list(a.item_raw_ids) == list(b.item_raw_ids)
  assert list(a.user_raw_ids) == list(b.user_raw_ids)
  assert a.field_specs == b.field_specs and a.user_field_specs == b.user_field_specs
  for fa, fb in ((a.item_features, b.item_features), (a.user_features, b.user_features)):
    assert fa.keys() == fb.keys()
    for k in fa:
      if isinstance(fa[k], np.ndarray):
        assert fa[k].dtype == fb[k].dtype and np.array_equal(fa[k], fb[k]), k
      else:
        assert fa[k] == fb[k], k
  assert a.vocabs == b.vocabs and a.user_vocabs == b.user_vocabs
  assert a.counts == b.counts and a.name == b.name


def _synthetic():
  return {"name": "syn", "source": {"format": "synthetic", "num_users": 120, "num_items": 80,
                                    "num_categories": 5, "num_tags": 8, "mean_length": 12},
          "preprocess": {"split": "time", "valid_frac": 0.1, "test_frac": 0.1}}


@pytest.mark.parametrize("reader", ["fast", "tfds"])
def test_round_trip_synthetic(tmp_path, reader):
  path, ds, stats = data.prepare(_synthetic(), str(tmp_path))
  assert path == data.dataset_dir(str(tmp_path), "syn")
  _assert_same(ds, data.load_prepared(path, reader))
  assert data.load("syn", str(tmp_path), reader).num_users == ds.num_users
  assert stats["interactions"] == ds.num_interactions


def test_round_trip_string_ids_and_missing_features(tmp_path):
  write(tmp_path / "src" / "ev.csv", "u,i,t\nalice,x,1\nalice,y,2\nbob,x,3\nbob,z,4\nbob,y,5\n")
  write(tmp_path / "src" / "items.csv", "i,genres,price,title\nx,a|b,1.5,Ex\ny,b,,Why\n")
  np.savez(tmp_path / "src" / "v.npz", ids=np.array(["z", "x"]),
           vectors=np.arange(4, dtype=np.float32).reshape(2, 2))
  config = {"name": "strings", "source": {
      "format": "table", "path": str(tmp_path / "src" / "ev.csv"), "user_col": "u",
      "item_col": "i", "time_col": "t", "item_path": str(tmp_path / "src" / "items.csv")},
            "item_features": {"genres": {"kind": "multi"}, "price": {"kind": "numeric"},
                              "title": {"kind": "text"},
                              "vec": {"kind": "dense", "path": str(tmp_path / "src" / "v.npz")}}}
  path, ds, _ = data.prepare(config, str(tmp_path / "out"))
  assert list(ds.item_raw_ids) == [None, "x", "y", "z"]
  np.testing.assert_array_equal(ds.item_features["vec"], [[0, 0], [2, 3], [0, 0], [0, 1]])
  genres = ds.vocabs["genres"]["tokens"]
  assert [[genres[j] for j in row if j] for row in ds.item_features["genres"]] == [
      [], ["a", "b"], ["b"], []]
  assert ds.item_features["price"][2] == 0 and ds.item_features["price"][1] > 0  # y: missing
  assert ds.item_features["title"] == ["", "Ex", "Why", ""]
  _assert_same(ds, data.load_prepared(path))


def test_tfds_data_source_reads_the_splits(tmp_path):
  _, ds, _ = data.prepare(_synthetic(), str(tmp_path))
  sources = tfds.data_source("rec_data/syn", data_dir=str(tmp_path))
  assert len(sources["users"]) == ds.num_users and len(sources["items"]) == ds.num_items
  u = sources["users"][3]
  assert u["id"] == 4
  np.testing.assert_array_equal(u["items"], ds.sequence(4))
  it = sources["items"][0]
  np.testing.assert_array_equal(it["item_features"]["tags"], ds.item_features["tags"][1])
  meta = tfds.builder_from_directory(data.dataset_dir(str(tmp_path), "syn")).info.metadata
  assert meta["field_specs"][0]["name"] == "item_id" and "stats" in meta


def test_load_missing_folder(tmp_path):
  with pytest.raises(data.DataError, match="prepare_data"):
    data.load_prepared(str(tmp_path / "nothing"))
  assert not os.path.exists(tmp_path / "nothing")
