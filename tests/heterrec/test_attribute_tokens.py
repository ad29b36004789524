"""Attribute sets as tokens: ``model.multi_tokens = "per_value"`` against the pooled field.

A multi-valued field (an item's attributes) enters HeterRec as one pooled token (the masked mean
of its values' embeddings) or as one token per value slot, padding slots masked out of attention
and pooling. With one attribute per item the mean is the identity, so the two must give the same
model: these tests build that case and compare states and scores with the same parameters.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common.data.schema import FieldSpec
from common.recsys import embedders
from configs.heterrec import options
from configs.heterrec import synthetic
from heterrec_jax import config as config_lib
from heterrec_jax import hct
from heterrec_jax import models
from tests.heterrec import heterrec_testlib as lib

N = lib.NUM_ITEMS
VOCAB = 9


def _specs(bag_len):
  # The bag sits between two single-token fields, so a wrong slot layout after it would show.
  return (FieldSpec("brand", "categorical", vocab_size=5),
          FieldSpec("attrs", "multi", vocab_size=VOCAB, max_len=bag_len),
          FieldSpec("image", "dense", dim=4))


def _features(bag_len, values_per_item, seed=0):
  """Catalogue arrays; each item's ``values_per_item`` attributes at random columns of its bag."""
  rng = np.random.default_rng(seed)
  attrs = np.zeros((N + 1, bag_len), np.int32)
  for item in range(1, N + 1):
    cols = rng.choice(bag_len, size=values_per_item, replace=False)
    attrs[item, cols] = rng.choice(np.arange(1, VOCAB), size=values_per_item, replace=False)
  feats = {"brand": rng.integers(1, 5, N + 1).astype(np.int32), "attrs": attrs,
           "image": rng.normal(size=(N + 1, 4)).astype(np.float32)}
  for arr in feats.values():
    arr[0] = 0
  return feats


def _ids():
  # Left-padded, full, padding in the middle, all padding.
  return np.array([[0, 0, 3, 4, 5, 6],
                   [7, 8, 9, 10, 11, 12],
                   [13, 0, 14, 15, 0, 16],
                   [0, 0, 0, 0, 0, 0]], np.int32)


def _model(specs, **overrides):
  overrides = dict(dict(token_layers=2, dropout=0.0, attention_dropout=0.0), **overrides)
  return models.get_model(lib.model_config(**overrides), num_items=N, field_specs=specs)


def _outputs(model, params, features, ids):
  """States at every position, candidate embeddings, and the scores of the user vectors."""
  feats = embedders.select_features(model.fields, features, N)
  hidden = model.apply(params, {"item_ids": ids}, feats)
  items = models.catalogue_embeddings(model, params, feats)
  users = models.user_embeddings(model, params, {"item_ids": ids}, feats)
  return np.asarray(hidden), np.asarray(items), np.asarray(users @ items.T)


@pytest.mark.parametrize("mask", ["block_causal", "causal"])
@pytest.mark.parametrize("pooling", ["last", "mean"])
@pytest.mark.parametrize("bag_len", [1, 4])
def test_one_attribute_per_item_matches_the_pooled_field(mask, pooling, bag_len):
  specs, features = _specs(bag_len), _features(bag_len, values_per_item=1)
  pooled = _model(specs, mask=mask, pooling=pooling)
  per_value = _model(specs, mask=mask, pooling=pooling, multi_tokens="per_value")
  ids = _ids()
  feats = embedders.select_features(pooled.fields, features, N)
  params = pooled.init(jax.random.key(0), {"item_ids": ids}, feats)
  # The same parameters fit both: the switch changes the token block, not the parameters.
  shapes = jax.eval_shape(per_value.init, jax.random.key(0), {"item_ids": ids}, feats)
  assert (jax.tree.map(lambda a: (a.shape, a.dtype), shapes)
          == jax.tree.map(lambda a: (a.shape, a.dtype), params))
  # Id, brand, one slot per bag column, image.
  assert len(embedders.slot_fields(per_value.config.embedder, per_value.fields)) == 3 + bag_len

  want = _outputs(pooled, params, features, ids)
  got = _outputs(per_value, params, features, ids)
  for name, a, b in zip(("hidden", "items", "scores"), got, want):
    assert np.all(np.isfinite(a)), name
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5, err_msg=name)
  assert np.abs(want[0]).max() > 1e-2  # not a trivially zero model


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_padding_slots_are_invisible(pooling):
  # Widening every bag with empty slots changes the token block, not the model.
  specs, features = _specs(3), _features(3, values_per_item=2, seed=1)
  wide_specs = _specs(6)
  wide = dict(features, attrs=np.pad(features["attrs"], ((0, 0), (0, 3))))
  narrow_model = _model(specs, pooling=pooling, multi_tokens="per_value")
  wide_model = _model(wide_specs, pooling=pooling, multi_tokens="per_value")
  ids = _ids()
  params = lib.random_params(narrow_model, ids,
                             embedders.select_features(narrow_model.fields, features, N))
  for a, b in zip(_outputs(wide_model, params, wide, ids),
                  _outputs(narrow_model, params, features, ids)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_per_value_tokens_differ_from_the_pooled_field_with_several_attributes():
  specs, features = _specs(4), _features(4, values_per_item=3, seed=2)
  pooled = _model(specs)
  per_value = _model(specs, multi_tokens="per_value")
  ids = _ids()
  params = lib.random_params(pooled, ids, embedders.select_features(pooled.fields, features, N))
  hidden_pooled = _outputs(pooled, params, features, ids)[0]
  hidden_per_value = _outputs(per_value, params, features, ids)[0]
  assert np.abs(hidden_pooled - hidden_per_value).max() > 1e-3


@pytest.mark.parametrize("use_id", [True, False])
@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_items_without_attributes_give_no_nan(use_id, pooling):
  # Only the bag as a field: without the id, an item with no attributes has no real slot at all.
  specs = (FieldSpec("attrs", "multi", vocab_size=VOCAB, max_len=3),)
  features = {"attrs": _features(3, values_per_item=1)["attrs"]}
  features["attrs"][[3, 5, 8, 12, 14]] = 0
  model = _model(specs, use_id=use_id, pooling=pooling, multi_tokens="per_value",
                 candidate_fusion="concat")
  ids = _ids()
  feats = embedders.select_features(model.fields, features, N)
  params = lib.random_params(model, ids, feats)

  def loss(p):
    hidden = model.apply(p, {"item_ids": ids}, feats)
    items = model.apply(p, feats, jnp.arange(N + 1), method="item_embeddings")
    return jnp.sum(jnp.tanh(hidden @ items.T))

  value, grads = jax.value_and_grad(loss)(params)
  assert np.isfinite(float(value))
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
  if not use_id:  # an item with no real slot pools to zero before the item level
    h = model.apply(params, {"item_ids": ids}, feats)
    assert np.all(np.isfinite(np.asarray(h)))


def test_pooling_reads_real_slots_only():
  h = jnp.arange(2 * 1 * 4 * 1, dtype=jnp.float32).reshape(2, 1, 4, 1) + 1.0
  valid = jnp.array([[[True, True, False, True]], [[False, False, False, False]]])
  np.testing.assert_allclose(hct.pool_items(h, "last", valid)[:, 0, 0], [4.0, 0.0])
  np.testing.assert_allclose(hct.pool_items(h, "mean", valid)[:, 0, 0], [(1 + 2 + 4) / 3, 0.0])


def test_switch_in_the_config_and_options():
  assert config_lib.model_config({}).multi_tokens == "pooled"
  config = synthetic.get_config("runlocal,pervalue")
  assert config.model.multi_tokens == "per_value"
  assert config_lib.validate(config)[0].multi_tokens == "per_value"
  assert "pervalue" in options.KNOWN
  with pytest.raises(config_lib.ConfigError, match=r"model\.multi_tokens"):
    config_lib.model_config({"multi_tokens": "per_attribute"})
