"""Field selection and the field embedder: order, defaults, shapes and clear errors."""

import jax
import numpy as np
import pytest

from common.data.schema import FieldSpec
from common.recsys import embedders

N = 9
SPECS = (FieldSpec("genre", "multi", vocab_size=7, max_len=3),
         FieldSpec("brand", "categorical", vocab_size=5),
         FieldSpec("price", "numeric", vocab_size=4),
         FieldSpec("image", "dense", dim=5),
         FieldSpec("title", "text"))


def _features(num_items=N):
  rng = np.random.default_rng(0)
  feats = {"genre": rng.integers(0, 7, (num_items + 1, 3)),
           "brand": rng.integers(1, 5, num_items + 1),
           "price": rng.integers(1, 4, num_items + 1),
           "image": rng.normal(size=(num_items + 1, 5)).astype(np.float32)}
  for arr in feats.values():
    arr[0] = 0
  return feats


def test_resolve_fields_defaults_and_order():
  specs = SPECS + (FieldSpec("item_id", "categorical", vocab_size=N + 1),)
  assert [s.name for s in embedders.resolve_fields(specs)] == ["genre", "brand", "price", "image"]
  chosen = embedders.resolve_fields(specs, ("price", "item_id", "genre"))
  assert [s.name for s in chosen] == ["price", "genre"]
  with pytest.raises(ValueError, match="does not have"):
    embedders.resolve_fields(specs, ("colour",))
  with pytest.raises(ValueError, match="twice"):
    embedders.resolve_fields(specs, ("price", "price"))
  with pytest.raises(ValueError, match="encode it into a 'dense' field"):
    embedders.resolve_fields(specs, ("title",))


def test_field_embedder_shapes_and_mask_token_row():
  fields = embedders.resolve_fields(SPECS)
  features = embedders.select_features(fields, _features(), N)
  assert features["image"].dtype == np.float32 and features["genre"].dtype == np.int32
  module = embedders.FieldEmbedder(embedders.EmbedderConfig(dim=6, extra_ids=1), N, fields)
  ids = np.array([[0, 3, N + 1]], np.int32)  # padding, an item, the mask token
  shapes = jax.eval_shape(module.init, jax.random.key(0), ids, features)["params"]
  assert shapes["id"]["embedding"].shape == (N + 2, 6)
  assert shapes["slot"].shape == (5, 6) and shapes["field_type"].shape == (5, 6)
  tokens = jax.eval_shape(module.apply, {"params": shapes}, ids, features)
  assert tokens.shape == (1, 3, 5, 6)
  fused = embedders.TokenFusion(mode="concat", out_dim=4)
  assert jax.eval_shape(fused.init_with_output, jax.random.key(0),
                        np.zeros((2, 5, 6), np.float32))[0].shape == (2, 4)


def test_catalogue_of_the_wrong_size_is_named():
  fields = embedders.resolve_fields(SPECS)
  with pytest.raises(ValueError, match="does not match the model's item count"):
    embedders.select_features(fields, _features(N + 2), N)
  with pytest.raises(ValueError, match="lack field"):
    embedders.select_features(fields, {}, N)
