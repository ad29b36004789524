"""LMP (full and sampled) and the cloze loss against plain float64 numpy references.

These are the functions ``objectives.make_loss_fn`` (the trainer's loss) calls.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from common import config_checks
from common.recsys import losses
from heterrec_jax import config as config_lib
from heterrec_jax import objectives
from tests.heterrec import heterrec_testlib as lib

B, L, D, N = 3, 6, 8, 12
# Jitted, as in training (and one compile is cheaper than many eager op dispatches). Each loss
# returns (loss, aux); these tests read the loss.
lmp_loss = lib.jit(lambda *a, **kw: objectives.lmp_loss(*a, **kw)[0],
                   static_argnames=("k", "gamma", "normalize", "softmax_chunk"))


@functools.partial(lib.jit, static_argnames=("k", "gamma", "normalize"))
def sampled_lmp_loss(hidden, ids, emb, neg_ids, **kw):
  return objectives.sampled_lmp_loss(hidden, ids, neg_ids, lambda i: emb[i], **kw)[0]


def _inputs(seed=0):
  rng = np.random.default_rng(seed)
  hidden = rng.normal(size=(B, L, D)).astype(np.float32)
  emb = rng.normal(size=(N + 1, D)).astype(np.float32)
  ids = np.array([[0, 0, 3, 7, 7, 1],  # left padding, a repeated item
                  [5, 2, 9, 12, 4, 8],
                  [6, 11, 0, 10, 3, 0]], np.int32)  # padding inside and at the end
  return hidden, emb, ids


def _lse(x):
  m = max(x)
  return m + math.log(sum(math.exp(v - m) for v in x))


def _ref_terms(ids, k, counted=None):
  """Yields (b, t, j, target) for every valid LMP term, written out plainly."""
  for b in range(ids.shape[0]):
    for t in range(ids.shape[1]):
      for j in range(1, k + 1):
        if ids[b, t] != 0 and t + j < ids.shape[1] and ids[b, t + j] != 0:
          if counted is None or counted[b, t + j]:
            yield b, t, j, int(ids[b, t + j])


def _ref_reduce(terms, gamma, normalize):
  total = sum(gamma ** (j - 1) * nll for j, nll in terms)
  denom = sum(gamma ** (j - 1) for j, _ in terms) if normalize == "weight" else len(terms)
  return total / denom


def ref_full_lmp(hidden, emb, ids, k, gamma, normalize="weight", counted=None):
  h, e = hidden.astype(np.float64), emb.astype(np.float64)
  terms = []
  for b, t, j, target in _ref_terms(ids, k, counted):
    logits = [float(h[b, t] @ e[i]) for i in range(1, N + 1)]  # item 0 is never a candidate
    terms.append((j, _lse(logits) - logits[target - 1]))
  return _ref_reduce(terms, gamma, normalize)


def ref_sampled_lmp(hidden, emb, ids, k, gamma, neg_ids, log_q, counted=None):
  h, e = hidden.astype(np.float64), emb.astype(np.float64)
  terms = []
  for b, t, j, target in _ref_terms(ids, k, counted):
    corr = (lambda i: float(log_q[i])) if log_q is not None else (lambda i: 0.0)
    pos = float(h[b, t] @ e[target]) - corr(target)
    negs = [float(h[b, t] @ e[n]) - corr(n) for n in neg_ids if n != target and n != 0]
    terms.append((j, _lse([pos] + negs) - pos))
  return _ref_reduce(terms, gamma, "weight")


# Strided training windows: only some items count as targets.
COUNTED = np.array([[0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 1], [1, 1, 0, 0, 1, 0]], bool)


@pytest.mark.parametrize("k,gamma,normalize,counted", [
    (1, 1.0, "weight", None), (3, 0.5, "weight", None), (3, 0.7, "count", None),
    (2, 0.5, "weight", COUNTED)])
@pytest.mark.parametrize("softmax_chunk", [0, 2])  # dense, and only the positions with a target
def test_full_lmp_matches_numpy(k, gamma, normalize, counted, softmax_chunk):
  hidden, emb, ids = _inputs()
  got = lmp_loss(hidden, emb, ids, k=k, gamma=gamma, normalize=normalize, target_mask=counted,
                 softmax_chunk=softmax_chunk)
  np.testing.assert_allclose(float(got),
                             ref_full_lmp(hidden, emb, ids, k, gamma, normalize, counted),
                             rtol=1e-5)


def test_aux_sums_and_target_count():
  hidden, emb, ids = _inputs()
  loss, aux = lib.jit(functools.partial(objectives.lmp_loss, k=2, gamma=0.5, normalize="count"))(
      hidden, emb, ids, target_mask=COUNTED)
  terms = list(_ref_terms(ids, 2, COUNTED))
  assert float(aux["loss_weight"]) == len(terms)
  np.testing.assert_allclose(float(aux["loss_sum"]) / float(aux["loss_weight"]), float(loss),
                             rtol=1e-6)
  assert int(aux["num_targets"]) == sum(j == 1 for _, _, j, _ in terms)


def test_k1_is_next_item_cross_entropy():
  hidden, emb, ids = _inputs()

  @lib.jit
  def expected_fn(hidden, emb, ids):
    logits = jnp.einsum("bld,nd->bln", hidden[:, :-1], emb).at[..., 0].set(-jnp.inf)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, ids[:, 1:])
    valid = (ids[:, :-1] != 0) & (ids[:, 1:] != 0)
    return jnp.sum(jnp.where(valid, ce, 0.0)) / jnp.sum(valid)

  expected = expected_fn(hidden, emb, ids)
  got = lmp_loss(hidden, emb, ids, k=1, gamma=0.3)
  np.testing.assert_allclose(float(got), float(expected), rtol=1e-6)


@pytest.mark.parametrize("k,logq,counted", [(1, False, None), (3, True, None),
                                             (2, True, COUNTED)])
def test_sampled_lmp_matches_numpy(k, logq, counted):
  hidden, emb, ids = _inputs(1)
  # Shared negatives with a repeat, an accidental hit on real targets and the padding item.
  neg_ids = np.array([2, 5, 5, 11, 0, 7, 9], np.int32)
  counts = np.arange(N + 1, dtype=np.float32)
  log_q = np.asarray(losses.popularity_log_q(counts)) if logq else None
  got = sampled_lmp_loss(hidden, ids, emb, neg_ids, k=k, gamma=0.5, log_q=log_q,
                         target_mask=counted)
  expected = ref_sampled_lmp(hidden, emb, ids, k, 0.5, neg_ids, log_q, counted)
  np.testing.assert_allclose(float(got), expected, rtol=1e-5)


def test_sampled_over_the_whole_catalogue_is_the_full_softmax():
  hidden, emb, ids = _inputs(2)
  everything = np.arange(N + 1, dtype=np.int32)  # item 0 and each target's hit are masked
  sampled = sampled_lmp_loss(hidden, ids, emb, everything, k=2, gamma=0.5)
  full = lmp_loss(hidden, emb, ids, k=2, gamma=0.5)
  np.testing.assert_allclose(float(sampled), float(full), rtol=1e-5)


def test_cloze_loss_and_masking():
  hidden, emb, ids = _inputs(3)
  inputs, labels = lib.jit(objectives.mask_items, static_argnums=(2, 3))(
      jax.random.key(1), ids, 0.5, N + 1)
  inputs, labels = np.asarray(inputs), np.asarray(labels)
  assert np.all(labels[ids == 0] == 0) and np.all(inputs[ids == 0] == 0)
  masked = labels != 0
  assert masked.any() and np.all(inputs[masked] == N + 1) and np.all(labels[masked] == ids[masked])
  assert np.all(inputs[~masked] == ids[~masked])

  h, e = hidden.astype(np.float64), emb.astype(np.float64)
  nlls = []
  for b, t in zip(*np.nonzero(masked)):
    logits = [float(h[b, t] @ e[i]) for i in range(1, N + 1)]
    nlls.append(_lse(logits) - logits[labels[b, t] - 1])
  got, aux = lib.jit(objectives.masked_item_loss)(hidden, emb, labels)
  np.testing.assert_allclose(float(got), np.mean(nlls), rtol=1e-5)
  assert int(aux["num_targets"]) == masked.sum()
  # Sampled over the whole catalogue without correction, the cloze loss is the full one.
  sampled, _ = lib.jit(lambda h, l, n, e: objectives.sampled_masked_item_loss(
      h, l, n, lambda i: e[i]))(hidden, labels, np.arange(N + 1, dtype=np.int32), emb)
  np.testing.assert_allclose(float(sampled), float(got), rtol=1e-5)
  # Only the counted positions of a strided window are targets.
  counted = masked & (np.arange(L)[None] >= 3)
  got_counted, aux = lib.jit(objectives.masked_item_loss)(hidden, emb, labels, counted)
  np.testing.assert_allclose(float(got_counted), np.mean(
      [nll for nll, (b, t) in zip(nlls, zip(*np.nonzero(masked))) if t >= 3]), rtol=1e-5)
  assert int(aux["num_targets"]) == counted.sum()


def test_cloze_next_item_rows_mask_only_the_last_item():
  _, _, ids = _inputs(3)
  ids = ids.copy()
  ids[0, -1] = 0  # a row that does not end at the last column
  mask = lib.jit(objectives.mask_items, static_argnums=(2, 3, 4))
  inputs, labels = (np.asarray(a) for a in mask(jax.random.key(1), ids, 0.5, N + 1, 1.0))
  expected = np.zeros_like(ids, bool)
  for b, row in enumerate(ids):
    if row.any():
      expected[b, np.nonzero(row)[0].max()] = True
  np.testing.assert_array_equal(labels != 0, expected)
  np.testing.assert_array_equal(inputs, np.where(expected, N + 1, ids))
  # A share of rows: each row is either all-random or last-only; both kinds occur.
  big = np.tile(ids, (40, 1))
  _, labels = (np.asarray(a) for a in mask(jax.random.key(2), big, 0.5, N + 1, 0.5))
  last_only = np.array([np.array_equal(l != 0, e) for l, e in zip(labels, np.tile(expected, (40, 1)))])
  assert 0.3 < last_only.mean() < 0.8
  # Off by default: the masks are the plain BERT4Rec ones, bit for bit.
  np.testing.assert_array_equal(np.asarray(mask(jax.random.key(1), ids, 0.5, N + 1, 0.0)[1]),
                                np.asarray(objectives.mask_items(jax.random.key(1), ids, 0.5,
                                                                 N + 1)[1]))
  with pytest.raises(config_checks.ConfigError, match="loss.mask_last_prob"):
    config_lib.loss_config({"mask_last_prob": 1.5}, model="bert4rec")


def test_no_valid_target_gives_zero_not_nan():
  hidden, emb, _ = _inputs()
  ids = np.zeros((B, L), np.int32)
  ids[:, -1] = 4  # one item per row: nothing to predict
  loss, grad = lib.jit(jax.value_and_grad(lambda h: objectives.lmp_loss(h, emb, ids, k=2)[0]))(
      hidden)
  assert float(loss) == 0.0 and np.all(np.isfinite(np.asarray(grad)))
