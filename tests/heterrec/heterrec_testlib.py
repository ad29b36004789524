"""Shared tiny test data: a catalogue with one field of every usable kind (and a text field)."""

import jax
import numpy as np

from common.data.schema import FieldSpec
from heterrec_jax import config as config_lib
from tests.recsys import recsys_testlib

fast_key = recsys_testlib.fast_key
jit = recsys_testlib.jit

NUM_ITEMS = 30
MAX_LEN = 6


def make_specs():
  return (
      FieldSpec("genre", "multi", vocab_size=7, max_len=3),
      FieldSpec("brand", "categorical", vocab_size=5),
      FieldSpec("price", "numeric", vocab_size=4),
      FieldSpec("image", "dense", dim=5),
      FieldSpec("title", "text"),
  )


def make_features(seed=0, num_items=NUM_ITEMS):
  rng = np.random.default_rng(seed)
  feats = {
      "genre": rng.integers(0, 7, (num_items + 1, 3)).astype(np.int32),
      "brand": rng.integers(1, 5, num_items + 1).astype(np.int32),
      "price": rng.integers(1, 4, num_items + 1).astype(np.int32),
      "image": rng.normal(size=(num_items + 1, 5)).astype(np.float32),
  }
  for arr in feats.values():
    arr[0] = 0  # the padding item's row is all zeros, as the data layer writes it
  feats["title"] = [""] + [f"item {i}" for i in range(1, num_items + 1)]
  return feats


def tiny_model_config(**overrides):
  """A tiny ``config.model`` section (a dict of the keys that differ from the defaults)."""
  config = dict(max_len=MAX_LEN, d_model=16, heads=2, mlp_ratio=2, token_layers=1,
                item_layers=1, dropout=0.1, attention_dropout=0.1)
  config.update(overrides)
  return config


def model_config(**overrides):
  """The checked model config object of ``tiny_model_config(**overrides)``."""
  return config_lib.model_config(tiny_model_config(**overrides))


def random_params(model, ids, features, seed=0, scale=0.3):
  """Random variables shaped like ``model.init``'s, without compiling the initialisers.

  Tests of structure (causality, padding) hold for any parameters; this keeps them fast.
  """
  shapes = jax.eval_shape(model.init, jax.random.key(0), {"item_ids": ids}, features)
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: np.asarray(rng.normal(size=s.shape) * scale, s.dtype), shapes)
