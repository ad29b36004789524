"""Per-modality item vectors for ESANS's MSAC clustering, and their fusion.

MSAC clusters items on multimodal representations (PAPERS.md section 2). This module builds one
vector per item and modality from a ``common.data.RecDataset``, row ``i`` for item id ``i`` and
row 0 (the padding item) all zeros, and fuses them into the matrix that ``kmeans.py`` clusters:

* **text**: TF-IDF over the words of the item's text fields, reduced by a truncated SVD (LSA);
* **behaviour**: positive PMI of item co-occurrence in the users' *training* segments, reduced by
  a truncated SVD (scaled by the square roots of the singular values, as in word2vec-style
  PMI factorisations);
* **image**: vectors the user gives in a dense item field (a ``.npy`` read by the data layer).

Each modality is normalised on its own (centred over the items that have a vector, rows scaled to
unit length), weighted and concatenated; ``build`` does all of it as the ``mm`` config section
says and returns a report (dimension, captured energy, coverage, time per modality).

Everything runs on the host in numpy/scipy: it is a one-off preprocessing step (about a second on
ML-100K), and sparse co-occurrence counting has no good accelerator form.
"""

from __future__ import annotations

import collections
import difflib
import math
import os
import re
import time
from typing import Any, Mapping, Optional, Sequence

import ml_collections
import numpy as np
from scipy import sparse

from common.config_checks import ConfigError

MODALITIES = ("text", "behaviour", "image")
# Field kinds whose values are words: text (a string per item) and token fields (vocab names).
TOKEN_KINDS = ("multi", "categorical")
# Below this many rows or columns an exact LAPACK SVD costs less than the randomized one.
_DENSE_SVD_MAX = 500
_MIN_OVERSAMPLE = 10
# Unicode letters and digits: "Amélie" is one word, "Sci-Fi" two, "t12" one.
_WORD = re.compile(r"[^\W_]+")
_NPY_MAGIC = b"\x93NUMPY"


def get_config() -> ml_collections.ConfigDict:
  """A fresh copy of the ``mm`` section of the ESANS config, with its defaults."""
  mm = ml_collections.ConfigDict()
  # Which modalities to build, any of MODALITIES; fused in this order.
  mm.modalities = ("text", "behaviour")
  # Item fields whose words make the text modality: kind text, multi or categorical (their vocab
  # names become words), or a single dense field of precomputed text vectors (e.g. a sentence
  # encoder's). () = every text and multi field of the data set.
  mm.text_fields = ()
  mm.text_dim = 64
  mm.behaviour_dim = 64
  # The dense item field holding image vectors (see docs/data.md, "Dense vectors from a file").
  mm.image_field = "image"
  mm.weights = ml_collections.ConfigDict({"text": 1.0, "behaviour": 1.0, "image": 1.0})
  # TF-IDF vocabulary: words in at least min_df items, the max_features most frequent of them.
  mm.min_df = 2
  mm.max_features = 20000
  # 0: items co-occur anywhere in a user's training segment; w > 0: at most w positions apart.
  mm.behaviour_window = 0
  return mm


# The defaults. Take ``get_config()`` (a copy) to change values; this object is shared.
DEFAULT_CONFIG = get_config()


# ----------------------------------------------------------------------------------------------
# Config checks.


def _plain(x) -> Any:
  return x.to_dict() if hasattr(x, "to_dict") else x


def _close(name: str, known: Sequence[str]) -> str:
  close = difflib.get_close_matches(str(name), list(known), n=1, cutoff=0.6)
  return f"did you mean {close[0]!r}? " if close else ""


def _options(mm) -> dict:
  """``mm`` as a plain dict with the defaults filled in; an unknown key is an error."""
  out = get_config().to_dict()
  given = dict(_plain(mm) or {})
  for key, value in given.items():
    if key not in out:
      raise ConfigError(f"mm.{key}", "unknown key",
                        _close(key, list(out)) + "valid keys: " + ", ".join(sorted(out)))
    if key == "weights":
      weights = dict(out["weights"])
      for name, w in dict(_plain(value) or {}).items():
        if name not in MODALITIES:
          raise ConfigError(f"mm.weights.{name}", "not a modality",
                            _close(name, MODALITIES) + f"use keys among {MODALITIES}")
        weights[name] = w
      value = weights
    out[key] = value
  return out


def _field_list(ds) -> str:
  return ", ".join(f"{s.name} ({s.kind})" for s in ds.field_specs)


def _require_int(o: dict, key: str, low: int) -> None:
  value = o[key]
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
    raise ConfigError(f"mm.{key}", f"an integer >= {low} is expected, got {value!r}",
                      f"set it to e.g. {get_config()[key]} (the default)")


def check_config(mm, ds) -> None:
  """Checks the ``mm`` config section against a data set, before anything is computed.

  A modality the data set cannot give is a config choice to make, not a crash: the error says
  which key is wrong and what to set instead.

  Args:
    mm: the ``mm`` section (a ConfigDict or dict; missing keys take ``DEFAULT_CONFIG``'s values).
    ds: the ``common.data.RecDataset`` the vectors are for.

  Raises:
    ConfigError: (a ValueError) an unknown key or modality, an empty or repeated modality, a dim
      or count out of range, a bad weight, a text field that does not exist or holds no words, no
      training co-occurrence for ``behaviour``, or no dense field ``mm.image_field`` for
      ``image``. The message names the key (``mm.modalities``, ...) and the fix.
  """
  o = _options(mm)
  mods = o["modalities"]
  if isinstance(mods, str):
    raise ConfigError("mm.modalities", f"a tuple of modality names is expected, got the string "
                      f"{mods!r}", f"set it to ({mods!r},)")
  mods = tuple(mods)
  if not mods:
    raise ConfigError("mm.modalities", "is empty: MSAC needs at least one item vector to cluster",
                      f"name one or more of {MODALITIES}, e.g. ('text', 'behaviour')")
  for m in mods:
    if m not in MODALITIES:
      raise ConfigError("mm.modalities", f"{m!r} is not a modality",
                        _close(m, MODALITIES) + f"use names among {MODALITIES}")
  if len(set(mods)) != len(mods):
    raise ConfigError("mm.modalities", f"{mods} names a modality twice",
                      "name each modality once")
  for key in ("text_dim", "behaviour_dim", "min_df", "max_features"):
    _require_int(o, key, 1)
  _require_int(o, "behaviour_window", 0)
  weights = o["weights"]
  for m in mods:
    w = weights.get(m, 1.0)
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
      raise ConfigError(f"mm.weights.{m}", f"a finite number >= 0 is expected, got {w!r}",
                        "set it to e.g. 1.0 (each modality then weighs the same)")
  if all(weights.get(m, 1.0) == 0 for m in mods):
    raise ConfigError("mm.weights", f"every weight of {mods} is 0, so the fused vectors are all "
                      "zero", "give at least one of them a positive weight (e.g. 1.0)")
  if "text" in mods:
    _text_sources(ds, o["text_fields"], check_words=True)
  if "behaviour" in mods and int(np.max(ds.lengths("train"), initial=0)) < 2:
    raise ConfigError("mm.modalities", f"'behaviour' needs items that co-occur in a user's "
                      f"training segment, but no user of data set {ds.name!r} has two training "
                      "events", "drop 'behaviour' from mm.modalities, or use a split that keeps "
                      "more than one training event per user")
  if "image" in mods:
    _dense_spec(ds, o["image_field"], "mm.image_field", modality="image")


def _dense_spec(ds, field: str, key: str, modality: str):
  """The FieldSpec of dense field ``field``, or a ConfigError naming ``key`` and the fix."""
  specs = {s.name: s for s in ds.field_specs}
  dense = [s.name for s in ds.field_specs if s.kind == "dense"]
  have = (f"its dense fields are {dense}" if dense else "it has no dense field") + \
         f" (all item fields: {_field_list(ds)})"
  add = (f"add the field to the data config's item_features, e.g. {field!r}: "
         "{'kind': 'dense', 'path': '<vectors>.npy'} (docs/data.md, 'Dense vectors from a file')")
  if field not in specs:
    fix = (f"set {key} to one of {dense}, " if dense else "") + \
          f"drop {modality!r} from mm.modalities, or {add}"
    raise ConfigError(key, f"{modality!r} reads the dense item field {field!r}, which data set "
                      f"{ds.name!r} does not have; {have}", fix)
  if specs[field].kind != "dense":
    raise ConfigError(key, f"field {field!r} is of kind {specs[field].kind!r}, not 'dense'; "
                      f"{have}", (f"set {key} to one of {dense}, or " if dense else "") +
                      f"drop {modality!r} from mm.modalities")
  return specs[field]


# ----------------------------------------------------------------------------------------------
# Text.


def _field_texts(ds, name: str) -> list[str]:
  """Field ``name`` as one string per item id (row 0 included): text as is, tokens by name."""
  spec = ds.feature_spec(name)
  values = ds.item_features[name]
  if spec.kind == "text":
    return ["" if t is None else str(t) for t in values]
  tokens = (ds.vocabs.get(name) or {}).get("tokens")
  def word(v):
    # Without a vocabulary (a hand-made data set) the id itself, made a word by the field name.
    return str(tokens[v]) if tokens is not None and v < len(tokens) else f"{name}{v}"
  rows = np.asarray(values)
  rows = rows[:, None] if rows.ndim == 1 else rows
  return [" ".join(word(int(v)) for v in row if v > 0) for row in rows]


def tokenize(text: str) -> list[str]:
  """Lower-cased runs of Unicode letters and digits (``"Sci-Fi (1995)"`` -> sci, fi, 1995)."""
  return _WORD.findall(text.lower())


def _text_sources(ds, fields, check_words: bool = False) -> tuple[list[str], Optional[str]]:
  """Resolves ``mm.text_fields``: ``(token fields, None)`` or ``([], dense field)``."""
  if isinstance(fields, str):
    raise ConfigError("mm.text_fields", f"a tuple of field names is expected, got the string "
                      f"{fields!r}", f"set it to ({fields!r},)")
  specs = {s.name: s for s in ds.field_specs}
  fields = tuple(fields)
  fix_drop = "or drop 'text' from mm.modalities"
  if not fields:
    fields = tuple(s.name for s in ds.field_specs if s.kind in ("text", "multi"))
    if not fields:
      raise ConfigError("mm.text_fields", f"is () (every text and multi field), but data set "
                        f"{ds.name!r} has none; its item fields: {_field_list(ds)}",
                        "name categorical fields to read in mm.text_fields, give precomputed "
                        f"text vectors as a dense field and name it there, {fix_drop}")
  usable = [s.name for s in ds.field_specs
            if s.kind in ("text",) + TOKEN_KINDS + ("dense",) and s.name != "item_id"]
  for f in fields:
    if f not in specs:
      raise ConfigError("mm.text_fields", f"{f!r} is not an item field of data set {ds.name!r}; "
                        f"its item fields: {_field_list(ds)}",
                        _close(f, list(specs)) + f"name fields among {usable}, {fix_drop}")
    if f == "item_id" or specs[f].kind not in ("text", "dense") + TOKEN_KINDS:
      raise ConfigError("mm.text_fields", f"field {f!r} is of kind {specs[f].kind!r}"
                        + (" (the id itself)" if f == "item_id" else "") + ", which holds no "
                        "words", f"name fields of kind text, multi or categorical ({usable}), "
                        f"{fix_drop}")
  dense = [f for f in fields if specs[f].kind == "dense"]
  if dense:
    if len(fields) > 1:
      raise ConfigError("mm.text_fields", f"{fields} mixes the dense field {dense[0]!r} "
                        "(precomputed text vectors) with other fields",
                        f"give the dense field alone, ({dense[0]!r},), or only word fields")
    return [], dense[0]
  if check_words:
    for f in fields:
      if not any(tokenize(t) for t in _field_texts(ds, f)[1:]):
        raise ConfigError("mm.text_fields", f"field {f!r} holds no words for any item (kind "
                          f"{specs[f].kind!r})", f"name fields that hold text, {fix_drop}")
  return list(fields), None


def _tfidf(texts: Sequence[str], min_df: int, max_features: int):
  """TF-IDF rows ``[len(texts), V]`` (CSR, float64) and the vocabulary (sorted words).

  tf = 1 + ln(count), idf = ln((1 + n) / (1 + df)) + 1 (smoothed, as if one extra document held
  every word), rows scaled to unit L2 norm (rows without a kept word stay zero). The vocabulary is
  the words in at least ``min_df`` texts, the ``max_features`` of highest document frequency
  (ties by the word).
  """
  docs = [collections.Counter(tokenize(t)) for t in texts]
  df = collections.Counter()
  for d in docs:
    df.update(d.keys())
  kept = sorted((w for w, c in df.items() if c >= min_df), key=lambda w: (-df[w], w))
  vocab = sorted(kept[:max_features])
  index = {w: j for j, w in enumerate(vocab)}
  n = len(texts)
  idf = np.array([math.log((1 + n) / (1 + df[w])) + 1.0 for w in vocab])
  indptr, cols, vals = [0], [], []
  for d in docs:
    row = sorted((index[w], c) for w, c in d.items() if w in index)
    cols.extend(j for j, _ in row)
    vals.extend(1.0 + math.log(c) for _, c in row)
    indptr.append(len(cols))
  cols = np.asarray(cols, np.int64)
  x = sparse.csr_matrix((np.asarray(vals, np.float64) * idf[cols], cols, indptr),
                        shape=(n, len(vocab)))
  norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
  x = sparse.diags(np.where(norms > 0, 1.0 / np.maximum(norms, 1e-300), 0.0)) @ x
  return x.tocsr(), vocab


def _text_vectors(texts, dim, *, min_df, max_features, seed) -> tuple[np.ndarray, dict]:
  for key, value, low in (("dim", dim, 1), ("min_df", min_df, 1),
                          ("max_features", max_features, 1)):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
      raise ValueError(f"text_vectors: {key} must be an integer >= {low}, got {value!r}.")
  x, vocab = _tfidf(texts, min_df, max_features)
  if not vocab:
    raise ValueError(f"text_vectors: no word occurs in at least min_df={min_df} of the "
                     f"{len(texts)} texts, so there is nothing to encode. Fix: lower min_df "
                     "(mm.min_df) or give fields with more shared words (mm.text_fields).")
  u, s, _ = _truncated_svd(x, dim, seed)
  out = np.zeros((len(texts), dim), np.float64)
  out[:, :len(s)] = u * s  # = x @ V: the LSA projection
  out[np.diff(x.indptr) == 0] = 0.0
  total = float(x.multiply(x).sum())
  info = {"vocab_size": len(vocab), "rank": len(s),
          "energy": float(np.sum(s ** 2) / total) if total > 0 else 0.0}
  return out.astype(np.float32), info


def text_vectors(texts: list[str], dim: int, *, min_df: int = 2, max_features: int = 20000,
                 seed: int = 0) -> np.ndarray:
  """LSA vectors of texts: TF-IDF, then a truncated SVD.

  The words are lower-cased runs of letters and digits (``tokenize``); TF-IDF has sublinear tf
  (1 + ln count), smoothed idf and unit L2 rows (``_tfidf``); the SVD keeps the ``dim`` largest
  components (``x @ V``, as scikit-learn's TruncatedSVD would, each component's sign fixed so
  that its largest entry is positive).

  This is the offline default text encoder: it needs no network and no weights to download, only
  packages that are installed (numpy, scipy), and is deterministic. For a stronger encoder,
  compute its vectors elsewhere (e.g. a sentence encoder), give them to the data layer as a dense
  item field (``{"kind": "dense", "path": "<vectors>.npy"}``) and name that field alone in
  ``mm.text_fields``. Token fields (multi, categorical) enter ``build`` as their vocabulary names,
  so a data set with attribute ids only (Amazon Toys' ``attributes``) gets LSA vectors of its
  attribute ids.

  Args:
    texts: one string per row (``""`` for a row without text).
    dim: the vector width; columns past the rank of the TF-IDF matrix are zero.
    min_df: keep the words that occur in at least this many texts.
    max_features: keep at most this many words, those in most texts.
    seed: seeds the randomized SVD (used above ``_DENSE_SVD_MAX`` rows and columns).

  Returns:
    float32 ``[len(texts), dim]``; a text without a kept word gets a zero row.

  Raises:
    ValueError: a bad ``dim``/``min_df``/``max_features``, or no word kept at all.
  """
  return _text_vectors(texts, dim, min_df=min_df, max_features=max_features, seed=seed)[0]


# ----------------------------------------------------------------------------------------------
# Truncated SVD.


def _truncated_svd(x, k: int, seed: int, n_iter: Optional[int] = None,
                   exact: Optional[bool] = None):
  """The top-``k`` SVD ``(u [n, r], s [r], vt [r, m])``, r <= min(k, n, m), signs fixed.

  Exact (LAPACK) when the matrix is small (or ``exact``), else randomized (Halko, Martinsson and
  Tropp 2011: ``k + max(k, 10)`` Gaussian probes from ``seed``, ``n_iter`` power iterations with
  QR re-orthonormalisation; 7 when k < min(n, m) / 10, else 4, as scikit-learn does). On ML-100K's
  PPMI matrix (k = 64) its singular values are within 1e-5 of LAPACK's and its subspace the
  same (smallest principal-angle cosine 0.9999); with scikit-learn's 10 extra probes the tail
  components were visibly off (cosine 0.71) for about the same time. Each
  component's sign makes the largest-magnitude entry of its ``u`` column positive, so the result
  does not depend on LAPACK's or the probes' sign choices. Components whose singular value is
  zero to machine precision are dropped (r is then the numerical rank).
  """
  n, m = x.shape
  r = min(k, n, m)
  probes = r + max(r, _MIN_OVERSAMPLE)
  if exact is None:
    exact = min(n, m) <= max(_DENSE_SVD_MAX, 2 * probes)
  if exact:
    dense = x.toarray() if sparse.issparse(x) else np.asarray(x)
    u, s, vt = np.linalg.svd(dense.astype(np.float64), full_matrices=False)
  else:
    rng = np.random.default_rng(seed)
    if n_iter is None:
      n_iter = 7 if k < 0.1 * min(n, m) else 4
    q, _ = np.linalg.qr(x @ rng.standard_normal((m, probes)))
    for _ in range(n_iter):
      z, _ = np.linalg.qr(x.T @ q)
      q, _ = np.linalg.qr(x @ z)
    ub, s, vt = np.linalg.svd(np.asarray((x.T @ q).T), full_matrices=False)
    u = q @ ub
  # Components of (numerically) zero singular value are noise in arbitrary directions: drop them.
  tol = (s[0] if len(s) else 0.0) * max(n, m) * np.finfo(np.float64).eps
  r = min(r, int(np.sum(s > tol)))
  u, s, vt = u[:, :r], s[:r], vt[:r]
  signs = np.sign(u[np.argmax(np.abs(u), axis=0), np.arange(r)])
  signs[signs == 0] = 1.0
  return u * signs, s, vt * signs[:, None]


# ----------------------------------------------------------------------------------------------
# Behaviour.


def _train_events(ds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Per event: its user, its position in the user's sequence, and whether it is training."""
  sizes = np.diff(ds.offsets)
  user = np.repeat(np.arange(len(sizes)), sizes)
  pos = np.arange(len(ds.items)) - ds.offsets[:-1][user]
  return user, pos, pos < ds.lengths("train")[user]


def cooccurrence(ds, window: int = 0) -> sparse.csr_matrix:
  """Item co-occurrence in the users' training segments, ``[num_items, num_items]``.

  Index ``i`` is item id ``i + 1``. Only training events count (``ds.lengths("train")``): valid
  and test items never enter. The diagonal is zero.

  Args:
    ds: the data set.
    window: 0: entry (i, j) is the number of users whose training segment holds both items;
      w > 0: the number of (event, event) pairs of one user's training segment at most ``w``
      positions apart holding i and j (symmetric). Whole segments make O(sum of squared lengths)
      pairs; a window bounds them by ``2 * w * events``.

  Returns:
    A symmetric CSR float64 matrix of counts.
  """
  n = ds.num_items
  user, pos, train = _train_events(ds)
  items = np.asarray(ds.items, np.int64) - 1
  if window == 0:
    b = sparse.csr_matrix((np.ones(int(train.sum())), (user[train], items[train])),
                          shape=(len(ds.offsets) - 1, n))
    b.sum_duplicates()
    b.data[:] = 1.0  # a user counts once per pair, however often they repeat an item
    c = (b.T @ b).tocsr()
  else:
    rows, cols = [], []
    first = np.flatnonzero(train)
    for d in range(1, window + 1):
      second = first + d
      ok = second < len(items)
      a, b2 = first[ok], second[ok]
      ok = train[b2] & (user[b2] == user[a])
      rows.append(items[a[ok]])
      cols.append(items[b2[ok]])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    c = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    c = (c + c.T).tocsr()
  c = (c - sparse.diags(c.diagonal())).tocsr()  # an item does not co-occur with itself
  c.eliminate_zeros()
  return c


def ppmi(c: sparse.csr_matrix) -> sparse.csr_matrix:
  """Positive pointwise mutual information ``max(0, ln(c_ij * total / (row_i * row_j)))``."""
  c = c.tocoo()
  total = c.sum()
  marg = np.asarray(c.sum(axis=1)).ravel()
  pmi = np.log(c.data * total / (marg[c.row] * marg[c.col]))
  keep = pmi > 0
  return sparse.csr_matrix((pmi[keep], (c.row[keep], c.col[keep])), shape=c.shape)


def _behaviour_vectors(ds, dim, *, window, seed) -> tuple[np.ndarray, dict]:
  for key, value, low in (("dim", dim, 1), ("window", window, 0)):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
      raise ValueError(f"behaviour_vectors: {key} must be an integer >= {low}, got {value!r}.")
  c = cooccurrence(ds, window)
  if c.nnz == 0:
    raise ValueError(f"behaviour_vectors: no two distinct items co-occur in a training segment "
                     f"of data set {ds.name!r} (window={window}). Fix: drop 'behaviour' from "
                     "mm.modalities, or widen mm.behaviour_window.")
  p = ppmi(c)
  u, s, _ = _truncated_svd(p, dim, seed)
  out = np.zeros((ds.num_items + 1, dim), np.float64)
  out[1:, :len(s)] = u * np.sqrt(s)
  out[1:][np.diff(p.indptr) == 0] = 0.0
  total = float(p.multiply(p).sum())
  info = {"window": int(window), "pairs": int(c.nnz // 2), "ppmi_nonzeros": int(p.nnz),
          "rank": len(s), "energy": float(np.sum(s ** 2) / total) if total > 0 else 0.0}
  return out.astype(np.float32), info


def behaviour_vectors(ds, dim: int, *, window: int = 0, seed: int = 0) -> np.ndarray:
  """Item vectors from co-occurrence in the training segments: PPMI, then a truncated SVD.

  ``cooccurrence`` counts pairs within each user's training segment only, so no valid or test
  item can leak into MSAC's clusters. The PPMI matrix's top ``dim`` singular vectors, scaled by
  the square roots of the singular values (``U sqrt(S)``), are the vectors.

  Args:
    ds: the data set.
    dim: the vector width; columns past the PPMI matrix's rank are zero.
    window: 0 for the whole training segment, else pairs at most this many positions apart.
    seed: seeds the randomized SVD.

  Returns:
    float32 ``[num_items + 1, dim]``; row 0 and items without any training co-occurrence are zero.

  Raises:
    ValueError: a bad ``dim`` or ``window``, or no co-occurrence at all.
  """
  return _behaviour_vectors(ds, dim, window=window, seed=seed)[0]


# ----------------------------------------------------------------------------------------------
# Image (and any dense vectors).


def _dense_vectors(ds, field: str, key: str, modality: str) -> np.ndarray:
  spec = _dense_spec(ds, field, key, modality)
  x = np.asarray(ds.item_features[field])
  if x.ndim != 2 or x.shape[0] != ds.num_items + 1:
    raise ValueError(f"item field {field!r} has shape {x.shape}; [num_items + 1, dim] = "
                     f"[{ds.num_items + 1}, {spec.dim}] was expected. Fix: rebuild the data set.")
  if x.dtype.kind not in "fiu":
    raise ValueError(f"item field {field!r} has dtype {x.dtype}, not a real number type. Fix: "
                     "give float vectors (np.float32).")
  x = x.astype(np.float32)
  bad = ~np.isfinite(x).all(axis=1)
  if bad.any():
    raise ValueError(f"item field {field!r}: item id {int(np.argmax(bad))} has a NaN or inf "
                     f"({int(bad.sum())} rows do). Fix: recompute those vectors.")
  x[0] = 0.0
  return x


def image_vectors(ds, field: str) -> np.ndarray:
  """Image vectors from the dense item field ``field`` (float32 ``[num_items + 1, d]``).

  The data layer reads a user's ``.npy``/``.npz`` into such a field (docs/data.md, "Dense vectors
  from a file"); items the file has no row for are all zeros, and count as having no vector.

  Raises:
    ConfigError: (a ValueError, key ``mm.image_field``) no such field, or not a dense one; the
      message lists the dense fields and says to drop ``image`` from ``mm.modalities`` or add the
      field with a path.
    ValueError: a wrong shape or dtype, or a NaN/inf.
  """
  return _dense_vectors(ds, field, "mm.image_field", "image")


def _npy_error(path: str, problem: str, fix: str) -> ValueError:
  return ValueError(f"vector file {path}: {problem}. Fix: {fix}.")


def load_npy_vectors(path: str, num_rows: Optional[int] = None) -> np.ndarray:
  """Reads and checks a user-given ``.npy`` of item vectors.

  Args:
    path: a ``.npy`` file holding a 2-D ``[rows, dim]`` array of real numbers (float or int).
    num_rows: if given, the number of rows it must have.

  Returns:
    The array as float32 ``[rows, dim]``.

  Raises:
    ValueError: naming the file and the fix: it does not exist (or is a directory), is not a
      ``.npy`` (a ``.npz`` or another file), is not 2-D or is empty, has a dtype that is not a
      real number (object, str, bool, complex, structured), holds NaN or inf or values too large
      for float32 (the first bad row is named), or has not ``num_rows`` rows.
  """
  path = os.fspath(path)
  save = "write it with np.save(path, np.asarray(vectors, np.float32))"
  if not os.path.exists(path):
    raise _npy_error(path, "does not exist", "give the path of an existing .npy file")
  if os.path.isdir(path):
    raise _npy_error(path, "is a directory, not a file", "give the .npy file inside it")
  with open(path, "rb") as f:
    head = f.read(len(_NPY_MAGIC))
    if head != _NPY_MAGIC:
      kind = "a .npz (zip) archive" if head.startswith(b"PK\x03\x04") else \
             f"not a .npy file (it starts with {head!r}, a .npy with {_NPY_MAGIC!r})"
      raise _npy_error(path, f"is {kind}", save + "; a .npz with 'ids' and 'vectors' goes "
                       "through the data config's dense field instead")
    f.seek(0)
    try:
      version = np.lib.format.read_magic(f)
      read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                     else np.lib.format.read_array_header_2_0)
      shape, _, dtype = read_header(f)
    except (ValueError, OSError, EOFError) as e:
      raise _npy_error(path, f"has an unreadable .npy header ({e})", save) from None
  if dtype.kind not in "fiu":
    what = {"O": "object", "U": "str", "S": "bytes", "b": "bool", "c": "complex",
            "V": "structured"}.get(dtype.kind, dtype.kind)
    raise _npy_error(path, f"has dtype {dtype} ({what}); vectors must be real numbers (float or "
                     "int)", save)
  if len(shape) != 2:
    fix = ("a 1-D array holds one number per row: reshape it to [rows, 1], or save the "
           "[rows, dim] matrix" if len(shape) == 1 else "save a 2-D [rows, dim] array "
           "(e.g. x.reshape(len(x), -1))")
    raise _npy_error(path, f"has shape {shape}, {len(shape)}-D; item vectors are 2-D "
                     "[rows, dim]", fix)
  if 0 in shape:
    raise _npy_error(path, f"has shape {shape}, which holds no vectors", save)
  if num_rows is not None and shape[0] != num_rows:
    raise _npy_error(path, f"has {shape[0]} rows, {num_rows} were expected", "write one row per "
                     "item in the expected order (for a data config dense field, row r is the item "
                     "with raw id r, or give ids_path)")
  try:
    x = np.load(path, allow_pickle=False)
  except (ValueError, OSError, EOFError) as e:
    raise _npy_error(path, f"cannot be read ({e})", save) from None
  bad = ~np.isfinite(x).all(axis=1) if x.dtype.kind == "f" else np.zeros(len(x), bool)
  if bad.any():
    row = int(np.argmax(bad))
    raise _npy_error(path, f"row {row} holds {x[row][~np.isfinite(x[row])][0]} "
                     f"({int(bad.sum())} of {len(x)} rows are not finite)",
                     "recompute or drop those rows; vectors must be finite")
  with np.errstate(over="ignore"):
    out = x.astype(np.float32)
  big = ~np.isfinite(out).all(axis=1)
  if big.any():
    raise _npy_error(path, f"row {int(np.argmax(big))} holds values beyond float32's range "
                     f"(|x| > {np.finfo(np.float32).max:.3g})", "rescale the vectors")
  return out


# ----------------------------------------------------------------------------------------------
# Normalisation and fusion.


def normalize(x: np.ndarray) -> np.ndarray:
  """One modality's vectors centred and scaled to unit rows.

  The mean is taken over the real items that have a vector (a non-zero row); each of them is
  centred and scaled to unit L2 norm. Row 0 and all-zero rows (items the modality has no vector
  for) stay zero, so they do not all collapse onto minus the mean.

  Args:
    x: ``[num_items + 1, d]``, row 0 the padding item.

  Returns:
    float32 ``[num_items + 1, d]``.
  """
  x = np.asarray(x, np.float64)
  if x.ndim != 2:
    raise ValueError(f"normalize: expected a 2-D [num_items + 1, d] array, got shape {x.shape}.")
  out = np.zeros_like(x)
  have = np.any(x != 0, axis=1)
  have[:1] = False
  if have.any():
    c = x[have] - x[have].mean(axis=0)
    norms = np.linalg.norm(c, axis=1, keepdims=True)
    out[have] = np.where(norms > 0, c / np.maximum(norms, 1e-300), 0.0)
  return out.astype(np.float32)


def fuse(vectors: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
  """Concatenates ``weight * normalize(v) / sqrt(number of modalities)`` in ``vectors``' order.

  With unit weights every item that has all modalities gets a unit row, each modality a block of
  squared norm ``1 / M``: a modality's weight, not its width, sets its share of the distances
  k-means sees.

  Args:
    vectors: modality name -> ``[num_items + 1, d_m]``.
    weights: modality name -> weight >= 0 (a ConfigDict works; an absent name weighs 1.0).

  Returns:
    float32 ``[num_items + 1, sum d_m]``, row 0 zeros.

  Raises:
    ValueError: no modality, different row counts, or a negative or non-finite weight.
  """
  if not vectors:
    raise ValueError("fuse: no modality vectors given.")
  rows = {name: np.shape(v)[0] for name, v in vectors.items()}
  if len(set(rows.values())) != 1:
    raise ValueError(f"fuse: the modalities have different numbers of rows: {rows}.")
  weights = dict(_plain(weights) or {})
  blocks = []
  for name, v in vectors.items():
    w = weights.get(name, 1.0)
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
      raise ValueError(f"fuse: the weight of {name!r} must be a finite number >= 0, got {w!r}.")
    blocks.append(float(w) / math.sqrt(len(vectors)) * normalize(v))
  return np.concatenate(blocks, axis=1).astype(np.float32)


def coverage(x: np.ndarray) -> float:
  """The share of real items (rows 1..) with a non-zero vector."""
  x = np.asarray(x)
  return float(np.mean(np.any(x[1:] != 0, axis=1))) if len(x) > 1 else 0.0


# ----------------------------------------------------------------------------------------------
# Everything, as the config says.


def _build_text(ds, o, seed) -> tuple[np.ndarray, dict]:
  fields, dense = _text_sources(ds, o["text_fields"])
  if dense is not None:
    return _dense_vectors(ds, dense, "mm.text_fields", "text"), {
        "fields": [dense], "encoder": "precomputed (dense field)"}
  per_field = [_field_texts(ds, f)[1:] for f in fields]
  texts = [" ".join(t for t in parts if t) for parts in zip(*per_field)]
  try:
    v, info = _text_vectors(texts, o["text_dim"], min_df=o["min_df"],
                            max_features=o["max_features"], seed=seed)
  except ValueError as e:
    raise ConfigError("mm.min_df", str(e).removeprefix("text_vectors: "),
                      "lower mm.min_df or add fields to mm.text_fields") from None
  out = np.zeros((ds.num_items + 1, v.shape[1]), np.float32)
  out[1:] = v
  return out, {"fields": fields, "encoder": "tfidf+svd", **info}


def build(ds, mm, seed: int = 0) -> tuple[np.ndarray, dict]:
  """The fused multimodal item vectors MSAC clusters, as the ``mm`` config section says.

  Args:
    ds: the ``common.data.RecDataset``.
    mm: the ``mm`` config section (see ``DEFAULT_CONFIG``; missing keys take its values).
    seed: seeds the randomized SVDs.

  Returns:
    ``(vectors, report)``: float32 ``[num_items + 1, D]`` with row 0 zeros (``fuse`` of the
    modalities, in ``mm.modalities`` order), and per modality a dict with ``dim``, ``coverage``
    (the share of items with a non-zero vector), ``seconds`` and, for the SVD-reduced ones,
    ``energy`` (the share of the TF-IDF or PPMI matrix's squared Frobenius norm its components
    keep), ``rank`` and sizes; plus ``"fused"`` with ``dim``, ``coverage``, ``weights`` and
    ``seconds`` (the whole build).

  Raises:
    ConfigError: see ``check_config``.
  """
  start = time.perf_counter()
  check_config(mm, ds)
  o = _options(mm)
  vectors, report = {}, {}
  for m in o["modalities"]:
    t0 = time.perf_counter()
    if m == "text":
      v, info = _build_text(ds, o, seed)
    elif m == "behaviour":
      v, info = _behaviour_vectors(ds, o["behaviour_dim"], window=o["behaviour_window"],
                                   seed=seed)
    else:
      v, info = image_vectors(ds, o["image_field"]), {"field": o["image_field"]}
    vectors[m] = v
    report[m] = {"dim": int(v.shape[1]), "coverage": coverage(v), **info,
                 "seconds": time.perf_counter() - t0}
  weights = {m: float(o["weights"].get(m, 1.0)) for m in vectors}
  fused = fuse(vectors, weights)
  report["fused"] = {"dim": int(fused.shape[1]), "coverage": coverage(fused), "weights": weights,
                     "seconds": time.perf_counter() - start}
  return fused, report


def format_report(report: dict) -> str:
  """``build``'s report as a small text table."""
  lines = [f"{'modality':<10} {'dim':>5} {'coverage':>9} {'energy':>7} {'seconds':>8}  details"]
  for name, r in report.items():
    energy = f"{r['energy']:.3f}" if "energy" in r else "-"
    skip = ("dim", "coverage", "energy", "seconds")
    details = ", ".join(f"{k}={v}" for k, v in r.items() if k not in skip)
    lines.append(f"{name:<10} {r['dim']:>5} {r['coverage']:>9.3f} {energy:>7} "
                 f"{r['seconds']:>8.2f}  {details}")
  return "\n".join(lines)
