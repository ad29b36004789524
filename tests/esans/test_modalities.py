"""esans_jax.modalities: the text, behaviour and image item vectors MSAC clusters, their fusion,
and the errors for what a data set cannot give. Numbers are checked against plain references
(a dict-and-loop TF-IDF and co-occurrence count, LAPACK's exact SVD)."""

import collections
import copy
import math

import numpy as np
import pytest

import configs.data.synthetic as synthetic_config
from common import data
from common.config_checks import ConfigError
from common.data.dataset import RecDataset
from common.data.schema import FieldSpec
from esans_jax import modalities as mm


def make_ds(seqs, n_train, n_valid=None, num_items=None, text=None, extra_fields=()):
  """A hand-made RecDataset: user u+1 has ``seqs[u]``, its first ``n_train[u]`` events train."""
  num_items = num_items or max(max(s) for s in seqs)
  n_valid = n_valid if n_valid is not None else [0] * len(seqs)
  offsets = np.concatenate([[0, 0], np.cumsum([len(s) for s in seqs])]).astype(np.int64)
  items = np.concatenate([np.asarray(s, np.int32) for s in seqs])
  specs = [FieldSpec("item_id", "categorical", vocab_size=num_items + 1)]
  feats = {"item_id": np.arange(num_items + 1, dtype=np.int32)}
  if text is not None:
    specs.append(FieldSpec("title", "text"))
    feats["title"] = [""] + list(text)
  for spec, values in extra_fields:
    specs.append(spec)
    feats[spec.name] = values
  return RecDataset(
      name="hand", offsets=offsets, items=items, timestamps=np.arange(len(items), dtype=float),
      n_train=np.asarray([0] + list(n_train), np.int32),
      n_valid=np.asarray([0] + list(n_valid), np.int32),
      item_raw_ids=np.asarray([None] + list(range(1, num_items + 1)), object),
      user_raw_ids=np.asarray([None] + list(range(1, len(seqs) + 1)), object),
      field_specs=specs, item_features=feats, user_field_specs=[], user_features={}, vocabs={},
      user_vocabs={}, counts={}, config={})


@pytest.fixture(scope="module")
def tiny():
  return data.build_dataset(synthetic_config.get_config("tiny"))


def cosine(x):
  n = np.linalg.norm(x, axis=1, keepdims=True)
  x = x / np.where(n > 0, n, 1)
  return x @ x.T


# ---------------------------------------------------------------------------------------- text


def test_tfidf_matches_a_plain_reference():
  texts = ["Red apple, red PIE", "red apple tart", "Blue car", "blue car wheel", "apple", "",
           "unique words only"]
  x, vocab = mm._tfidf(texts, min_df=2, max_features=100)
  assert vocab == ["apple", "blue", "car", "red"]
  n = len(texts)
  df = collections.Counter(w for t in texts for w in set(mm.tokenize(t)))
  for i, t in enumerate(texts):
    counts = collections.Counter(w for w in mm.tokenize(t) if w in vocab)
    row = np.array([(1 + math.log(counts[w])) * (math.log((1 + n) / (1 + df[w])) + 1)
                    if counts[w] else 0.0 for w in vocab])
    if row.any():
      row /= np.linalg.norm(row)
    np.testing.assert_allclose(x[i].toarray().ravel(), row, rtol=1e-12)
  # max_features keeps the words in most texts (ties by the word).
  assert mm._tfidf(texts, min_df=1, max_features=2)[1] == ["apple", "blue"]
  assert mm.tokenize("Amélie (2001) Sci-Fi_x") == ["amélie", "2001", "sci", "fi", "x"]


def test_text_vectors_shape_zero_rows_and_determinism():
  texts = ["red apple pie", "red apple tart", "blue car engine", "blue car wheel", "", "zzz"]
  v = mm.text_vectors(texts, 16, min_df=2)
  assert v.shape == (6, 16) and v.dtype == np.float32
  assert not v[4].any() and not v[5].any()  # no text, no kept word
  assert not v[:, 2:].any()  # rank 2 (two word groups): the other columns are zero
  np.testing.assert_array_equal(v, mm.text_vectors(texts, 16, min_df=2))
  with pytest.raises(ValueError, match="min_df"):
    mm.text_vectors(["a b", "c d"], 4, min_df=2)
  with pytest.raises(ValueError, match="dim"):
    mm.text_vectors(texts, 0)


def test_text_vectors_put_shared_words_closer():
  texts = ["red apple pie", "red apple tart", "green apple pie", "blue car engine",
           "blue car wheel", "fast car wheel"]
  sim = cosine(mm.text_vectors(texts, 4, min_df=2))
  assert sim[0, 1] > 0.5 and sim[3, 4] > 0.5
  for i in range(3):
    for j in range(3, 6):
      assert sim[i, j] < min(sim[0, 1], sim[3, 4]) - 0.3, (i, j)


def test_text_vectors_group_synthetic_items_by_category(tiny):
  # The synthetic titles name the item's category ("c3 t12 t7 item 5").
  v, report = mm.build(tiny, {"modalities": ("text",), "text_fields": ("title",),
                              "text_dim": 16})
  sim = cosine(v[1:])
  cat = tiny.item_features["category"][1:]
  same = cat[:, None] == cat[None, :]
  off = ~np.eye(len(cat), dtype=bool)
  assert sim[same & off].mean() > sim[~same].mean() + 0.2
  assert report["text"]["fields"] == ["title"] and report["text"]["coverage"] == 1.0


def test_truncated_svd_randomized_matches_exact():
  rng = np.random.default_rng(0)
  n, m, k = 240, 200, 12
  x = (rng.standard_normal((n, 30)) * 0.8 ** np.arange(30)) @ rng.standard_normal((30, m))
  x += 0.01 * rng.standard_normal((n, m))
  u, s, vt = mm._truncated_svd(x, k, seed=0, exact=False)
  ue, se, vte = np.linalg.svd(x, full_matrices=False)
  np.testing.assert_allclose(s, se[:k], rtol=1e-6)
  ue = ue[:, :k]
  signs = np.sign(ue[np.abs(ue).argmax(0), np.arange(k)])
  np.testing.assert_allclose(u, ue * signs, atol=1e-5)
  np.testing.assert_allclose(vt, vte[:k] * signs[:, None], atol=1e-5)
  u2, _, _ = mm._truncated_svd(x, k, seed=1, exact=False)  # another seed: the same, signs included
  np.testing.assert_allclose(u2, u, atol=1e-5)


# ----------------------------------------------------------------------------------- behaviour


def reference_cooccurrence(ds, window):
  c = np.zeros((ds.num_items, ds.num_items))
  for u in range(1, ds.num_users + 1):
    seq = list(ds.sequence(u, "train"))
    if window == 0:
      for i in set(seq):
        for j in set(seq):
          c[i - 1, j - 1] += i != j
    else:
      for p in range(len(seq)):
        for q in range(p + 1, min(len(seq), p + window + 1)):
          if seq[p] != seq[q]:
            c[seq[p] - 1, seq[q] - 1] += 1
            c[seq[q] - 1, seq[p] - 1] += 1
  return c


def test_cooccurrence_and_ppmi_match_plain_references():
  ds = make_ds([[1, 2, 3, 2, 4, 9], [2, 3, 5, 6], [5, 6, 1, 7], [8]], n_train=[5, 3, 2, 1],
               n_valid=[1, 1, 1, 0], num_items=9)
  for window in (0, 1, 2):
    np.testing.assert_array_equal(mm.cooccurrence(ds, window).toarray(),
                                  reference_cooccurrence(ds, window))
  c = reference_cooccurrence(ds, 0)
  with np.errstate(divide="ignore", invalid="ignore"):
    pmi = np.log(c * c.sum() / np.outer(c.sum(1), c.sum(1)))
  np.testing.assert_allclose(mm.ppmi(mm.cooccurrence(ds, 0)).toarray(),
                             np.where(c > 0, np.maximum(pmi, 0), 0), rtol=1e-12)


def test_behaviour_vectors_shape_zeros_and_groups():
  # Users 1-3 buy within {1..4}, users 4-6 within {5..8}; item 9 is only ever a test item.
  seqs = [[1, 2, 3, 9], [2, 3, 4, 9], [1, 4, 2, 9], [5, 6, 7, 9], [6, 7, 8, 9], [5, 8, 6, 9]]
  ds = make_ds(seqs, n_train=[3] * 6, n_valid=[0] * 6, num_items=9)
  v = mm.behaviour_vectors(ds, 8)
  assert v.shape == (10, 8) and v.dtype == np.float32
  assert not v[0].any() and not v[9].any() and mm.coverage(v) == 8 / 9
  np.testing.assert_array_equal(v, mm.behaviour_vectors(ds, 8))
  sim = cosine(v[1:9])
  assert sim[:4, :4].min() > sim[:4, 4:].max() and sim[4:, 4:].min() > sim[:4, 4:].max()


def test_behaviour_uses_training_events_only(tiny):
  base = mm.behaviour_vectors(tiny, 16, window=0)
  base_w = mm.behaviour_vectors(tiny, 16, window=3)
  changed = copy.deepcopy(tiny)
  user, pos, train = mm._train_events(tiny)
  held_out = np.flatnonzero(~train)
  assert len(held_out) > 250  # a valid and a test event for (almost) every user
  rng = np.random.default_rng(0)
  changed.items[held_out] = rng.integers(1, tiny.num_items + 1, size=len(held_out))
  assert (changed.items != tiny.items).any()
  np.testing.assert_array_equal(mm.behaviour_vectors(changed, 16, window=0), base)
  np.testing.assert_array_equal(mm.behaviour_vectors(changed, 16, window=3), base_w)
  # A training event does change them.
  changed.items[np.flatnonzero(train)[:40]] = 1
  assert not np.array_equal(mm.behaviour_vectors(changed, 16, window=0), base)


# --------------------------------------------------------------------------- image and .npy


def test_image_from_npy_through_the_data_config_and_load_npy_vectors(tiny, tmp_path):
  raw_ids = tiny.item_raw_ids[1:].astype(int)
  rng = np.random.default_rng(0)
  table = rng.standard_normal((raw_ids.max() + 1, 6)).astype(np.float32)
  path = tmp_path / "images.npy"
  np.save(path, table)
  cfg = synthetic_config.get_config("tiny")
  cfg.item_features.image = {"kind": "dense", "path": str(path)}
  ds = data.build_dataset(cfg)
  img = mm.image_vectors(ds, "image")
  assert img.shape == (ds.num_items + 1, 6) and not img[0].any()
  np.testing.assert_array_equal(img[1:], table[ds.item_raw_ids[1:].astype(int)])
  np.testing.assert_array_equal(mm.load_npy_vectors(path, num_rows=len(table)), table)
  np.testing.assert_array_equal(mm.load_npy_vectors(str(path)), table)
  v, report = mm.build(ds, {"modalities": ("text", "behaviour", "image"), "text_dim": 8,
                            "behaviour_dim": 8})
  assert v.shape == (ds.num_items + 1, 8 + 8 + 6) and not v[0].any()
  assert report["image"] == {"dim": 6, "coverage": 1.0, "field": "image",
                             "seconds": report["image"]["seconds"]}


def _save(path, array, **kw):
  np.save(path, array, **kw)
  return path


@pytest.mark.parametrize("case, match", [
    ("missing", "does not exist"),
    ("directory", "is a directory"),
    ("text_named_npy", "not a .npy file"),
    ("npz", "is a .npz"),
    ("one_d", "1-D"),
    ("three_d", "3-D"),
    ("empty", "holds no vectors"),
    ("object", "object"),
    ("str", "str"),
    ("bool", "bool"),
    ("complex", "complex"),
    ("nan", "row 3 holds nan"),
    ("inf", "row 5 holds inf"),
    ("too_big", "row 1 holds values beyond float32"),
    ("rows", "has 10 rows, 11 were expected"),
])
def test_load_npy_vectors_errors(tmp_path, case, match):
  good = np.ones((10, 4), np.float32)
  p = tmp_path / f"{case}.npy"
  if case == "directory":
    p.mkdir()
  elif case == "text_named_npy":
    p.write_text("1 2 3\n")
  elif case == "npz":
    with open(p, "wb") as f:  # a .npz under a .npy name
      np.savez(f, ids=np.arange(10), vectors=good)
  elif case != "missing":
    array = {
        "one_d": np.ones(10), "three_d": np.ones((10, 2, 2)), "empty": np.ones((0, 4)),
        "object": np.array([[1, "a"]], dtype=object), "str": np.array([["a", "b"]]),
        "bool": np.ones((10, 4), bool), "complex": np.ones((10, 4), complex),
        "nan": np.where(np.arange(10)[:, None] == 3, np.nan, good),
        "inf": np.where(np.arange(10)[:, None] == 5, np.inf, good),
        "too_big": np.where(np.arange(10)[:, None] == 1, 1e300, good.astype(np.float64)),
        "rows": good}[case]
    _save(p, array, allow_pickle=case == "object")
  with pytest.raises(ValueError, match=match) as e:
    mm.load_npy_vectors(p, num_rows=11 if case == "rows" else None)
  assert str(p) in str(e.value) and "Fix:" in str(e.value)


# ------------------------------------------------------------------- normalisation and fusion


def test_normalize_centres_and_unit_rows():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((20, 5)) + 3.0
  x[0] = 0.0
  x[7] = 0.0  # an item without a vector
  y = mm.normalize(x)
  assert y.dtype == np.float32 and not y[0].any() and not y[7].any()
  have = np.r_[1:7, 8:20]
  np.testing.assert_allclose(np.linalg.norm(y[have], axis=1), 1.0, rtol=1e-6)
  centred = x[have] - x[have].mean(0)
  np.testing.assert_allclose(y[have], centred / np.linalg.norm(centred, axis=1, keepdims=True),
                             rtol=1e-5)
  # Centred before scaling: the centred rows sum to zero.
  np.testing.assert_allclose((y[have] * np.linalg.norm(centred, axis=1)[:, None]).sum(0), 0,
                             atol=1e-4)


def test_fuse_weights_blocks():
  rng = np.random.default_rng(1)
  a, b = rng.standard_normal((12, 3)), rng.standard_normal((12, 5))
  a[0] = b[0] = 0.0
  f = mm.fuse({"text": a, "behaviour": b}, {"text": 2.0, "behaviour": 0.5})
  assert f.shape == (12, 8) and f.dtype == np.float32 and not f[0].any()
  np.testing.assert_allclose(f[:, :3], 2.0 / math.sqrt(2) * mm.normalize(a), rtol=1e-6)
  np.testing.assert_allclose(f[:, 3:], 0.5 / math.sqrt(2) * mm.normalize(b), rtol=1e-6)
  unit = mm.fuse({"text": a, "behaviour": b}, {})  # absent weights are 1: unit rows
  np.testing.assert_allclose(np.linalg.norm(unit[1:], axis=1), 1.0, rtol=1e-6)
  assert not mm.fuse({"text": a, "behaviour": b}, {"text": 0.0})[:, :3].any()
  with pytest.raises(ValueError, match="different numbers of rows"):
    mm.fuse({"text": a, "behaviour": b[:5]}, {})
  with pytest.raises(ValueError, match="'text' must be a finite number >= 0"):
    mm.fuse({"text": a}, {"text": -1.0})
  with pytest.raises(ValueError, match="no modality"):
    mm.fuse({}, {})


def test_build_tiny_report_and_determinism(tiny):
  cfg = mm.get_config()
  cfg.text_dim, cfg.behaviour_dim = 8, 12
  v, report = mm.build(tiny, cfg)
  assert v.shape == (tiny.num_items + 1, 20) and v.dtype == np.float32 and not v[0].any()
  np.testing.assert_array_equal(v, mm.build(tiny, cfg)[0])
  assert set(report) == {"text", "behaviour", "fused"}
  assert report["text"]["fields"] == ["tags", "title"]  # () = every text and multi field
  assert report["behaviour"]["dim"] == 12 and 0 < report["behaviour"]["energy"] <= 1
  assert report["fused"]["coverage"] == 1.0 and report["fused"]["dim"] == 20
  assert "behaviour" in mm.format_report(report)
  # Token fields alone (like Amazon Toys' attribute ids): their vocab names are the words.
  v_tags, rep = mm.build(tiny, {"modalities": ("text",), "text_fields": ("tags",),
                                "text_dim": 8})
  assert rep["text"]["coverage"] == 1.0 and v_tags.shape == (tiny.num_items + 1, 8)
  # A dense field of precomputed text vectors is used as is.
  v_emb, rep = mm.build(tiny, {"modalities": ("text",), "text_fields": ("embedding",)})
  np.testing.assert_allclose(v_emb, mm.normalize(tiny.item_features["embedding"]), rtol=1e-6)
  assert rep["text"]["encoder"] == "precomputed (dense field)"


# ------------------------------------------------------------------------------ config errors


def _hand_with_fields():
  fields = [(FieldSpec("price", "numeric", vocab_size=5), np.zeros(5, np.int32)),
            (FieldSpec("emb", "dense", dim=2), np.zeros((5, 2), np.float32))]
  return make_ds([[1, 2, 3, 4], [2, 3]], n_train=[3, 1], num_items=4,
                 text=["", " ", "", "--"], extra_fields=fields)


@pytest.mark.parametrize("override, key, match", [
    ({"modalities": ()}, "mm.modalities", "is empty"),
    ({"modalities": ("audio",)}, "mm.modalities", "'audio' is not a modality"),
    ({"modalities": ("behavior",)}, "mm.modalities", "did you mean 'behaviour'"),
    ({"modalities": "text"}, "mm.modalities", r"set it to \('text',\)"),
    ({"modalities": ("text", "text")}, "mm.modalities", "twice"),
    ({"modalities": ("image",)}, "mm.image_field",
     r"does not have; its dense fields are \['emb'\].*drop 'image' from mm.modalities.*'path'"),
    ({"modalities": ("image",), "image_field": "price"}, "mm.image_field", "not 'dense'"),
    ({"text_dim": 0}, "mm.text_dim", "integer >= 1"),
    ({"behaviour_dim": -4}, "mm.behaviour_dim", "integer >= 1"),
    ({"min_df": 0}, "mm.min_df", "integer >= 1"),
    ({"behaviour_window": -1}, "mm.behaviour_window", "integer >= 0"),
    ({"text_fields": ("nope",)}, "mm.text_fields", "'nope' is not an item field"),
    ({"text_fields": ("price",)}, "mm.text_fields", "kind 'numeric'"),
    ({"text_fields": ("item_id",)}, "mm.text_fields", "the id itself"),
    ({"text_fields": ("title",)}, "mm.text_fields", "holds no words"),
    ({"text_fields": ("title", "emb")}, "mm.text_fields", "mixes the dense field"),
    ({"weights": {"text": -1.0}}, "mm.weights.text", ">= 0"),
    ({"weights": {"txt": 1.0}}, "mm.weights.txt", "did you mean 'text'"),
    ({"weights": {"text": 0.0, "behaviour": 0}}, "mm.weights", "every weight"),
    ({"text_dims": 8}, "mm.text_dims", "did you mean 'text_dim'"),
])
def test_check_config_errors_name_key_and_fix(override, key, match):
  ds = _hand_with_fields()
  with pytest.raises(ConfigError, match=match) as e:
    mm.check_config(override, ds)
  assert e.value.key == key and e.value.fix


def test_check_config_data_set_without_text_or_cooccurrence():
  ds = make_ds([[1, 2], [3, 4]], n_train=[1, 1], num_items=4)
  with pytest.raises(ConfigError, match="has none") as e:
    mm.check_config({"modalities": ("text",)}, ds)
  assert e.value.key == "mm.text_fields" and "drop 'text'" in e.value.fix
  with pytest.raises(ConfigError, match="no user .* has two training events") as e:
    mm.check_config({"modalities": ("behaviour",)}, ds)
  assert e.value.key == "mm.modalities" and "drop 'behaviour'" in e.value.fix
  # Words that no two items share: a config error at build time, naming mm.min_df.
  ds = make_ds([[1, 2, 3]], n_train=[3], num_items=3, text=["a", "b", "c"])
  with pytest.raises(ConfigError, match="min_df=2") as e:
    mm.build(ds, {"modalities": ("text",)})
  assert e.value.key == "mm.min_df"
