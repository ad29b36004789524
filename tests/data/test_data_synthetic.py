"""The synthetic generator: its planted structure is detectable by simple statistics."""

import time

import numpy as np
import pytest

from common import data
from common.data import synthetic

SMALL = {"num_users": 1500, "num_items": 800, "num_categories": 16, "num_tags": 30,
         "mean_length": 30}


def _pairs(raw):
  """(previous item, next item) for consecutive events of the same user."""
  inter = raw.interactions
  same = inter.users[1:] == inter.users[:-1]
  return inter.items[:-1][same], inter.items[1:][same]


def test_next_category_follows_the_planted_markov_chain():
  raw, truth = synthetic.generate(SMALL)
  prev, nxt = _pairs(raw)
  cat = truth["item_category"]
  predicted = np.argmax(truth["transition"][cat[prev]], axis=1)
  accuracy = np.mean(predicted == cat[nxt])
  marginal = np.bincount(cat[nxt]).max() / len(nxt)  # always guess the commonest category
  assert accuracy > 0.3 and accuracy > 4 * marginal, (accuracy, marginal)


def test_within_category_choice_follows_the_previous_tag():
  raw, truth = synthetic.generate(SMALL)
  prev, nxt = _pairs(raw)
  tag, cat = truth["item_tag"], truth["item_category"]
  shared = np.mean(tag[prev] == tag[nxt])
  # Baseline: the same next items, paired with a random earlier item of the same category.
  rng = np.random.default_rng(0)
  shuffled = prev.copy()
  for c in np.unique(cat[nxt]):
    idx = np.flatnonzero(cat[nxt] == c)
    shuffled[idx] = prev[rng.permutation(idx)]
  assert shared > 1.5 * np.mean(tag[shuffled] == tag[nxt]), shared


def test_feature_aware_beats_id_only_beats_popularity():
  """Simple predictors of each user's test item, scored by HR@10 over the full catalogue."""
  ds = data.build_dataset({"name": "s", "source": dict(format="synthetic", **SMALL)})
  n = ds.num_items + 1
  users = np.arange(1, ds.num_users + 1)
  hist = [ds.sequence(u, "train_valid") for u in users]
  prev = np.concatenate([h[:-1] for h in hist])
  nxt = np.concatenate([h[1:] for h in hist])
  last = np.array([h[-1] for h in hist])
  target = np.array([ds.sequence(u)[-1] for u in users])
  pop = np.bincount(nxt, minlength=n).astype(float)
  bigram = np.zeros((n, n))
  np.add.at(bigram, (prev, nxt), 1)
  cat, tag = ds.item_features["category"], ds.item_features["tags"][:, 0]
  trans = np.zeros((cat.max() + 1,) * 2)
  np.add.at(trans, (cat[prev], cat[nxt]), 1)
  trans = (trans + 0.1) / (trans + 0.1).sum(1, keepdims=True)
  within = pop / np.maximum(np.bincount(cat, weights=pop)[cat], 1)

  def hit_rate(scores):
    scores = scores.copy()
    scores[:, 0] = -np.inf
    for r, h in enumerate(hist):
      scores[r, h] = -np.inf  # seen items are not recommended
    top = np.argpartition(-scores, 10, axis=1)[:, :10]
    return np.mean((top == target[:, None]).any(1))

  popularity = hit_rate(np.tile(pop, (len(users), 1)))
  id_only = hit_rate(bigram[last] + 1e-3 * pop)
  features = hit_rate(trans[cat[last]][:, cat] * (within + 1e-6)
                      * np.where(tag[None, :] == tag[last][:, None], 5.0, 1.0))
  assert features > id_only > popularity, (features, id_only, popularity)


def test_seed_determines_the_data():
  a, _ = synthetic.generate(dict(SMALL, num_users=100))
  b, _ = synthetic.generate(dict(SMALL, num_users=100))
  c, _ = synthetic.generate(dict(SMALL, num_users=100, seed=1))
  np.testing.assert_array_equal(a.interactions.items, b.interactions.items)
  np.testing.assert_array_equal(a.interactions.timestamps, b.interactions.timestamps)
  assert not np.array_equal(a.interactions.items[:50], c.interactions.items[:50])


def test_shapes_lengths_and_no_repeats():
  raw, _ = synthetic.generate(dict(SMALL, num_users=200, min_length=4, max_length=50))
  inter = raw.interactions
  lengths = np.bincount(inter.users)[1:]
  assert lengths.min() >= 4 and lengths.max() <= 50 and len(lengths) == 200
  pairs = inter.users * 10**6 + inter.items
  assert len(np.unique(pairs)) == len(pairs)  # categories are big enough never to run out
  ts = inter.timestamps
  same = inter.users[1:] == inter.users[:-1]
  assert (np.diff(ts)[same] > 0).all()


@pytest.mark.slow
def test_a_million_events_in_seconds():
  start = time.time()
  raw, _ = synthetic.generate({"num_users": 25000})
  assert len(raw.interactions) > 900_000
  assert time.time() - start < 30


def _popularity_ndcg10(raw):
  """NDCG@10 of ranking unseen items by their count before each user's last event."""
  inter = raw.interactions
  last = np.r_[inter.users[1:] != inter.users[:-1], True]
  counts = np.bincount(inter.items[~last], minlength=inter.items.max() + 1).astype(float)
  counts[0] = -1
  scores, start = [], 0
  for end in np.flatnonzero(last):
    c = counts.copy()
    c[inter.items[start:end]] = -1  # history masked, as in evaluation
    rank = int(np.sum(c > c[inter.items[end]]))
    scores.append((rank < 10) / np.log2(rank + 2))
    start = end + 1
  return float(np.mean(scores))


def test_oracle_ceiling_is_ordered_and_above_popularity():
  full = synthetic.oracle_metrics(SMALL, "test")
  first_order = synthetic.oracle_metrics(SMALL, "test", know_user=False)
  popularity = _popularity_ndcg10(synthetic.generate(SMALL)[0])
  assert full["num_users"] == SMALL["num_users"]
  # Knowing more of the generator's law ranks better; popularity knows least.
  assert full["ndcg@10"] > first_order["ndcg@10"] > popularity + 0.05, (full, first_order,
                                                                       popularity)
  assert 0 < full["mrr@10"] <= full["ndcg@10"] <= full["hr@10"] <= full["hr@20"] <= 1
  with pytest.raises(ValueError, match="split"):
    synthetic.oracle_metrics(SMALL, "train")
