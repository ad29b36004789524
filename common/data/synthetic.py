"""A synthetic data set with planted structure in item features and order (the default data).

Items have a ``category`` (categorical), ``tags`` (multi-valued; the first is the item's primary
tag), a ``price`` (numeric, bucketized by the pipeline), an ``embedding`` (dense: its category's
centroid plus its primary tag's vector plus noise, like a content embedding) and a ``title``
(text naming the category and tags). Users have a ``segment`` (their price level), a hidden
favourite tag and a hidden starting category.

Each user's sequence is generated step by step:

  * the next item's category follows a Markov chain over categories whose rows are drawn from a
    Dirichlet(``transition_concentration``): small concentrations make the next category very
    predictable from the current one (order AND features matter);
  * within that category, item j is drawn with probability proportional to
    ``exp(log pop_j + tag_continuation * [tag_j == tag_prev] + tag_affinity * [tag_j == fav_u]
    - price_affinity * |level_j - level_u|)``, where ``pop`` is Zipf with exponent
    ``popularity_exponent`` (a long tail whose rare items an id-only model sees too rarely,
    while their category and tag are shared with popular items), and never an item the user
    already has (unless the category is exhausted).

So popularity explains some of the data, item-to-item transitions (ids only) more, and a model that
reads category, tags and price the most. The generator is vectorised over users: 3-5 s per
million events on one core.
"""

from __future__ import annotations

import numpy as np

from common.data.errors import DataError
from common.data.raw import DenseTable, RawColumn, RawData, RawInteractions, RawTable

DEFAULTS = {
    "num_users": 6000,
    "num_items": 3000,
    "num_categories": 30,
    "num_tags": 60,
    "max_tags_per_item": 3,
    "mean_length": 40,
    "min_length": 5,
    "max_length": 200,
    "dense_dim": 16,
    "num_price_levels": 5,
    "transition_concentration": 0.1,
    "popularity_exponent": 1.0,
    "tag_continuation": 2.0,
    "tag_affinity": 1.0,
    "price_affinity": 1.0,
    "with_text": True,
    "seed": 0,
}
# Keys of the source config that are not the generator's.
_IGNORED = ("format", "path", "encoding")
_PATH = "<synthetic>"


def options(cfg: dict) -> dict:
  """The generator's settings: DEFAULTS updated by ``cfg``.

  Raises:
    DataError: an unknown key (a typo would otherwise be silently ignored) or a bad value.
  """
  cfg = {k: v for k, v in dict(cfg or {}).items() if k not in _IGNORED and v is not None}
  unknown = sorted(set(cfg) - set(DEFAULTS))
  if unknown:
    raise DataError(f"unknown synthetic data keys {unknown}; the keys are {sorted(DEFAULTS)}.")
  o = dict(DEFAULTS, **cfg)
  for key in ("num_users", "num_items", "num_categories", "num_tags", "max_tags_per_item",
              "min_length", "dense_dim", "num_price_levels"):
    if int(o[key]) < 1:
      raise DataError(f"data.source.{key} must be >= 1, got {o[key]}.")
  if o["num_categories"] > o["num_items"]:
    raise DataError(f"data.source.num_categories ({o['num_categories']}) exceeds num_items "
                    f"({o['num_items']}).")
  if not o["min_length"] <= o["mean_length"] <= o["max_length"]:
    raise DataError("data.source needs min_length <= mean_length <= max_length, got "
                    f"{o['min_length']}, {o['mean_length']}, {o['max_length']}.")
  return o


def generate(cfg: dict) -> tuple[RawData, dict]:
  """Generates events and item/user tables.

  Args:
    cfg: generator settings (see DEFAULTS); other source keys are ignored.

  Returns:
    (raw data, truth): raw ids are integers 1..num_users and 1..num_items; ``truth`` holds the
    hidden structure as numpy arrays indexed by raw id (index 0 unused): ``transition``
    ``[C, C]``, ``item_category``, ``item_tag`` (primary tag), ``item_level`` (price level),
    ``popularity``, ``user_tag``, ``user_level``, ``user_start``.
  """
  o = options(cfg)
  rng = np.random.default_rng(int(o["seed"]))
  n_users, n_items = int(o["num_users"]), int(o["num_items"])
  n_cat, n_tags, n_lvl = int(o["num_categories"]), int(o["num_tags"]), int(o["num_price_levels"])

  # Items (index 0 is unused so arrays are indexed by raw id).
  cat = np.concatenate([[-1], rng.permutation(
      np.concatenate([np.arange(n_cat), rng.integers(n_cat, size=n_items - n_cat)]))])
  tag = np.concatenate([[-1], rng.integers(n_tags, size=n_items)])
  popularity = np.zeros(n_items + 1)
  popularity[1:] = 1.0 / (rng.permutation(n_items) + 1.0) ** float(o["popularity_exponent"])
  cat_price = rng.normal(3.0, 1.0, size=n_cat)
  price = np.zeros(n_items + 1)
  price[1:] = np.round(np.exp(cat_price[cat[1:]] + 0.5 * rng.normal(size=n_items)), 2)
  level = np.zeros(n_items + 1, dtype=np.int64)
  level[1:] = np.searchsorted(np.quantile(price[1:], np.arange(1, n_lvl) / n_lvl), price[1:],
                              side="right")
  extra = rng.integers(0, int(o["max_tags_per_item"]), size=n_items + 1)
  tags = [[f"t{tag[i]}"] + [f"t{t}" for t in rng.choice(n_tags, size=extra[i]) if t != tag[i]]
          for i in range(1, n_items + 1)]
  dim = int(o["dense_dim"])
  cat_vec, tag_vec = rng.normal(size=(n_cat, dim)), rng.normal(size=(n_tags, dim))
  emb = (cat_vec[cat[1:]] + 0.5 * tag_vec[tag[1:]] + 0.3 * rng.normal(size=(n_items, dim)))
  item_ids = np.arange(1, n_items + 1)
  columns = {
      "category": RawColumn("category", "token", [f"c{c}" for c in cat[1:]]),
      "tags": RawColumn("tags", "token_seq", tags),
      "price": RawColumn("price", "float", price[1:].copy()),
  }
  if o["with_text"]:
    columns["title"] = RawColumn("title", "text", [f"c{c} {' '.join(t)} item {i}" for i, c, t in
                                                   zip(item_ids, cat[1:], tags)])
  items = RawTable(_PATH, item_ids, columns, item_ids)
  dense = {"embedding": DenseTable(_PATH, item_ids, emb.astype(np.float32))}

  # Users.
  transition = rng.dirichlet(np.full(n_cat, float(o["transition_concentration"])), size=n_cat)
  user_tag = np.concatenate([[-1], rng.integers(n_tags, size=n_users)])
  user_level = np.concatenate([[-1], rng.integers(n_lvl, size=n_users)])
  user_start = np.concatenate([[-1], rng.integers(n_cat, size=n_users)])
  lo, hi, mean = int(o["min_length"]), int(o["max_length"]), float(o["mean_length"])
  lengths = np.clip(lo + np.round(rng.exponential(max(mean - lo, 1e-9), size=n_users)), lo,
                    hi).astype(np.int64)
  users_tbl = RawTable(_PATH, np.arange(1, n_users + 1),
                       {"segment": RawColumn("segment", "token",
                                             [f"p{v}" for v in user_level[1:]])},
                       np.arange(1, n_users + 1))

  seq_items = _sample_sequences(rng, o, lengths, cat, tag, level, popularity, transition,
                                user_tag, user_level, user_start)
  users = np.repeat(np.arange(1, n_users + 1), lengths)
  # Users are active at overlapping times so a global time split cuts through their sequences.
  gaps = rng.exponential(3600.0, size=len(users)).astype(np.int64) + 1
  starts = rng.integers(0, 10 * 86400 * max(1, int(mean)), size=n_users)
  first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
  csum = np.cumsum(gaps)
  ts = np.repeat(starts, lengths) + csum - np.repeat(csum[first] - gaps[first], lengths)
  inter = RawInteractions(_PATH, users, seq_items, None, ts.astype(np.float64),
                          np.arange(1, len(users) + 1))
  truth = {"transition": transition, "item_category": cat, "item_tag": tag, "item_level": level,
           "popularity": popularity, "user_tag": user_tag, "user_level": user_level,
           "user_start": user_start}
  return RawData(inter, items, users_tbl, dense), truth


def _sample_sequences(rng, o, lengths, cat, tag, level, popularity, transition, user_tag,
                      user_level, user_start) -> np.ndarray:
  """Samples every user's items; returns them concatenated user by user."""
  n_users, n_items = len(lengths), len(cat) - 1
  n_cat, n_lvl = transition.shape[0], int(level.max()) + 1
  # Items of each category in a padded [C, M] table; entries past a category's size are 0, and
  # every per-item quantity is laid out the same way so a step gathers whole rows (fast) instead
  # of single elements.
  order = np.argsort(cat[1:], kind="stable") + 1
  sizes = np.bincount(cat[1:], minlength=n_cat)
  width = int(sizes.max())
  table = np.zeros((n_cat, width), dtype=np.int32)
  col = np.arange(n_items) - np.repeat(np.cumsum(sizes) - sizes, sizes)
  table[cat[order], col] = order
  tag_table = np.where(table > 0, tag[table], -1).astype(np.int32)
  # Weight of each candidate given the user's price level: popularity * exp(-delta * |level gap|).
  gap = np.abs(level[table][None] - np.arange(n_lvl)[:, None, None])
  weight = np.where(table[None] > 0, popularity[table][None] *
                    np.exp(-float(o["price_affinity"]) * gap), 0).astype(np.float32)
  cum_transition = np.cumsum(transition, axis=1)
  bonus_prev = np.float32(np.exp(float(o["tag_continuation"])))
  bonus_user = np.float32(np.exp(float(o["tag_affinity"])))

  out = np.zeros(int(lengths.sum()), dtype=np.int64)
  starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
  # Users in chunks so the "already seen" bitmap stays under ~64 MB whatever the catalogue size.
  chunk = max(1, min(n_users, (1 << 26) // (n_cat * width)))
  for c0 in range(0, n_users, chunk):
    users = np.arange(c0, min(n_users, c0 + chunk))
    users = users[np.argsort(-lengths[users], kind="stable")]  # active users form a prefix
    uid = users + 1
    # Seen flags in the same [category, column] layout, so a step reads one row per user.
    seen = np.zeros((len(users), n_cat, width), dtype=bool)
    prev_tag = np.full(len(users), -2, dtype=np.int32)
    cur_cat = user_start[uid].copy()
    u_tag = user_tag[uid].astype(np.int32)[:, None]
    u_lvl = user_level[uid]
    for t in range(int(lengths[users].max())):
      k = int(np.searchsorted(-lengths[users], -t, side="left"))  # users with length > t
      rows = np.arange(k)
      if t > 0:
        u01 = rng.random(k)
        cur_cat[:k] = np.minimum((cum_transition[cur_cat[:k]] < u01[:, None]).sum(1), n_cat - 1)
      cc = cur_cat[:k]
      cand = table[cc]
      ct = tag_table[cc]
      w = weight[u_lvl[:k], cc]
      w *= np.where(ct == prev_tag[:k, None], bonus_prev, np.float32(1))
      w *= np.where(ct == u_tag[:k], bonus_user, np.float32(1))
      fresh = np.where(seen[rows, cc], np.float32(0), w)
      # A user who has every item of the category already may repeat one.
      exhausted = fresh.sum(1) <= 0
      if exhausted.any():
        fresh[exhausted] = w[exhausted]
      # Inverse-CDF sampling needs one uniform per row, not one per candidate.
      cum = np.cumsum(fresh, axis=1)
      thr = rng.random(k) * cum[:, -1]
      pick_col = np.minimum((cum <= thr[:, None]).sum(1), width - 1)
      pick = cand[rows, pick_col]
      seen[rows, cc, pick_col] = True
      prev_tag[:k] = tag[pick]
      out[starts[users[:k]] + t] = pick
  return out


def oracle_metrics(cfg: dict, split: str = "test", ks: tuple[int, ...] = (5, 10, 20),
                   know_user: bool = True) -> dict:
  """The ceiling of the generated data: HR/NDCG/MRR@K of ranking by the generator's own law.

  Regenerates the data of ``cfg`` (same seed, so the same events) and, for each user's
  leave-one-out target (``test``: the last event; ``valid``: the one before), scores every item by
  its true probability of being drawn next given the previous item (its category and primary
  tag), the user's hidden favourite tag and price level, and the items already drawn:
  ``transition[c_prev, c_j] * w_j / sum(w of unseen items in c_j)``. Ranking and history masking
  follow ``common.recsys.metrics`` (strict ranks among unseen items; 0 = top). No model can beat
  this in expectation; what is left above a model's score is what it has not learned. (The rare
  repeat of a user who has drawn a whole category is not modelled: such targets count as seen.)
  With ``know_user=False`` the oracle does not know the user's hidden tag and price level (a
  first-order ceiling: the previous item and the seen items only).

  Returns:
    ``{"hr@K": ..., "ndcg@K": ..., "mrr@K": ..., "num_users": ...}`` as floats.
  """
  if split not in ("valid", "test"):
    raise ValueError(f"split must be 'valid' or 'test', got {split!r}.")
  o = options(cfg)
  raw, truth = generate(cfg)
  users = np.asarray(raw.interactions.users)
  items = np.asarray(raw.interactions.items)
  cat, tag, level = truth["item_category"], truth["item_tag"], truth["item_level"]
  n_items, n_cat = len(cat) - 1, truth["transition"].shape[0]
  starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
  ends = np.r_[starts[1:], len(users)]
  offset = 1 if split == "test" else 2
  ranks = []
  for s, e in zip(starts, ends):
    t = e - offset  # the target's index
    if t - s < 1:
      continue  # no previous item
    u = users[s]
    prev, target, seen = items[t - 1], items[t], items[s:t]
    w = truth["popularity"][1:] * np.exp(float(o["tag_continuation"]) * (tag[1:] == tag[prev]))
    if know_user:
      w = w * np.exp(-float(o["price_affinity"]) * np.abs(level[1:] - truth["user_level"][u]))
      w = w * np.exp(float(o["tag_affinity"]) * (tag[1:] == truth["user_tag"][u]))
    w[seen - 1] = 0.0
    per_cat = np.bincount(cat[1:], weights=w, minlength=n_cat)
    p = truth["transition"][cat[prev], cat[1:]] * w / np.maximum(per_cat[cat[1:]], 1e-300)
    eligible = np.ones(n_items, bool)
    eligible[seen - 1] = False
    eligible[target - 1] = True
    ranks.append(int(np.sum(eligible & (p > p[target - 1]))))
  ranks = np.asarray(ranks)
  out = {"num_users": float(len(ranks))}
  for k in ks:
    hit = ranks < k
    out[f"hr@{k}"] = float(hit.mean())
    out[f"ndcg@{k}"] = float(np.mean(hit / np.log2(ranks + 2)))
    out[f"mrr@{k}"] = float(np.mean(hit / (ranks + 1)))
  return out
