"""ML-100K (RecBole atomic, ../shared/data/ml-100k): counts and the leave-one-out split agree
with an independent computation written plainly with dicts and lists."""

import os

import pytest

from common import data


def _plain(path, threshold, core):
  """The protocol, done the obvious way: filter, k-core to a fixed point, sort, split."""
  rows = []
  with open(os.path.join(path, "ml-100k.inter"), encoding="utf-8") as f:
    header = f.readline().rstrip("\n").split("\t")
    assert header[:4] == ["user_id:token", "item_id:token", "rating:float", "timestamp:float"]
    for line_no, line in enumerate(f):
      user, item, rating, ts = line.rstrip("\n").split("\t")
      if threshold is None or float(rating) >= threshold:
        rows.append((int(user), int(item), float(ts), line_no))
  while True:
    users, items = {}, {}
    for u, i, _, _ in rows:
      users[u] = users.get(u, 0) + 1
      items[i] = items.get(i, 0) + 1
    kept = [r for r in rows if users[r[0]] >= core and items[r[1]] >= core]
    if len(kept) == len(rows):
      break
    rows = kept
  per_user = {}
  for u, i, ts, line_no in rows:
    per_user.setdefault(u, []).append((ts, line_no, i))  # ties: file order
  split = {}
  for u, events in per_user.items():
    seq = [i for _, _, i in sorted(events)]
    split[u] = (seq[:-2], seq[-2], seq[-1])
  return len(rows), len(per_user), len({r[1] for r in rows}), split


@pytest.mark.parametrize("threshold", [None, 4.0])
def test_counts_and_leave_one_out_match_plain_computation(ml100k_path, threshold):
  config = {"name": "ml100k", "source": {"format": "recbole_atomic", "path": ml100k_path},
            "preprocess": {"rating_threshold": threshold, "user_core": 5, "item_core": 5}}
  ds = data.build_dataset(config)
  n_events, n_users, n_items, split = _plain(ml100k_path, threshold, 5)
  assert (ds.num_interactions, ds.num_users, ds.num_items) == (n_events, n_users, n_items)
  if threshold is None:
    assert (n_events, n_users, n_items) == (99287, 943, 1349)
  assert ds.counts["read"] == 100000
  assert all(len(v[0]) >= 1 for v in split.values())  # every user has >= 3 events after 5-core
  for u in range(1, ds.num_users + 1):
    raw_user = ds.user_raw_ids[u]
    train, valid, test = split[raw_user]
    items = [ds.item_raw_ids[i] for i in ds.sequence(u, "all")]
    n_train, n_valid = int(ds.n_train[u]), int(ds.n_valid[u])
    assert items[:n_train] == train, raw_user
    assert items[n_train:n_train + n_valid] == [valid]
    assert items[n_train + n_valid:] == [test]


def test_features_follow_the_schema(ml100k_path):
  config = {"name": "ml100k", "source": {"format": "recbole_atomic", "path": ml100k_path},
            "preprocess": {"user_core": 5, "item_core": 5},
            "item_features": {"movie_title": {"kind": "text"}}}
  ds = data.build_dataset(config)
  specs = {s.name: s for s in ds.field_specs}
  assert ds.field_specs[0].name == "item_id" and specs["item_id"].vocab_size == ds.num_items + 1
  assert specs["class"].kind == "multi" and specs["class"].vocab_size == 20  # 19 genres + pad
  assert specs["movie_title"].kind == "text" and specs["release_year"].kind == "categorical"
  for s in ds.field_specs:
    arr = ds.item_features[s.name]
    assert len(arr) == ds.num_items + 1
    if s.kind != "text":
      assert not arr[0].any()
    else:
      assert arr[0] == ""
  # Item 1 is Toy Story, an Animation/Children's/Comedy film of 1995.
  toy = int(ds.item_raw_ids.tolist().index(1))
  assert ds.item_features["movie_title"][toy] == "Toy Story"
  tokens = ds.vocabs["class"]["tokens"]
  assert sorted(tokens[j] for j in ds.item_features["class"][toy] if j) == [
      "Animation", "Children's", "Comedy"]
  assert ds.vocabs["release_year"]["tokens"][ds.item_features["release_year"][toy]] == "1995"
