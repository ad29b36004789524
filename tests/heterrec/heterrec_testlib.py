"""Shared tiny test data: a catalogue with one field of every usable kind (and a text field)."""

import jax
import numpy as np

from common.data.schema import FieldSpec

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
  config = dict(max_len=MAX_LEN, d_model=16, heads=2, mlp_ratio=2, token_layers=1,
                item_layers=1, dropout=0.1, attention_dropout=0.1)
  config.update(overrides)
  return config


def random_params(model, ids, features, seed=0, scale=0.3):
  """Random variables shaped like ``model.init``'s, without compiling the initialisers.

  Tests of structure (causality, padding) hold for any parameters; this keeps them fast.
  """
  shapes = jax.eval_shape(model.init, jax.random.key(0), {"item_ids": ids}, features)
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: np.asarray(rng.normal(size=s.shape) * scale, s.dtype), shapes)


def fast_key(seed):
  """A PRNG key whose random bits compile fast on CPU.

  Threefry (the default) makes every dropout mask a large unrolled hash that XLA's CPU backend
  takes seconds to compile; the models draw randomness the same way with either kind of key.
  """
  return jax.random.key(seed, impl="rbg")


def jit(fun, **kwargs):
  """``jax.jit`` with XLA's backend optimisation off: half the CPU compile time, same numbers.

  These tests compile many tiny programs once each, so compile time is their whole cost.
  """
  return jax.jit(fun, compiler_options={"xla_backend_optimization_level": 0}, **kwargs)
