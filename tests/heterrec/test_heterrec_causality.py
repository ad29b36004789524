"""Changing the item at t+1 (its id, or any one of its feature tokens) never moves outputs <= t."""

import numpy as np
import pytest

from common.recsys import embedders
from heterrec_jax import models
from tests.heterrec import heterrec_testlib as lib

CASES = [
    dict(name="heterrec", mask="block_causal", pooling="last"),
    dict(name="heterrec", mask="block_causal", pooling="mean"),
    dict(name="heterrec", mask="causal", pooling="last"),
    dict(name="heterrec", mask="causal", pooling="mean"),
    dict(name="heterrec", mask="causal", pooling="mean", norm="post"),
    dict(name="heterrec", mask="block_causal", pooling="last", multi_tokens="per_value"),
    dict(name="heterrec", mask="causal", pooling="mean", multi_tokens="per_value"),
    dict(name="sasrec"),
    dict(name="sasrec", norm="post"),
    dict(name="fusion_sasrec", fusion="sum"),
    dict(name="fusion_sasrec", fusion="concat"),
]
T = 2  # positions <= T must not move; the item at T + 1 is perturbed


def _sequences():
  # Distinct ids within a row, so the item at T + 1 occurs nowhere earlier and editing its
  # catalogue row touches only that position. Row 0 is left-padded, row 1 full, row 2 has
  # padding in the middle (after T + 1) and at the end, row 3 is all padding.
  return np.array([[0, 3, 4, 5, 6, 7],
                   [8, 9, 10, 11, 12, 13],
                   [14, 15, 16, 17, 0, 0],
                   [0, 0, 0, 0, 0, 0]], np.int32)


def _perturb_feature(features, name, item):
  out = {k: np.array(v) for k, v in features.items()}
  arr = out[name]
  if arr.dtype == np.float32:
    arr[item] = arr[item] + 1.5
  elif arr.ndim == 2:  # a multi-valued bag: a new set of values
    arr[item] = (arr[item] + np.array([1, 2, 3])) % 6 + 1
  else:
    arr[item] = arr[item] % 3 + 1
  return out


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_future_items_do_not_change_the_past(case):
  specs, raw = lib.make_specs(), lib.make_features()
  model = models.get_model(lib.model_config(**case), num_items=lib.NUM_ITEMS,
                           field_specs=specs)
  features = embedders.select_features(model.fields, raw, lib.NUM_ITEMS)
  ids = _sequences()
  params = lib.random_params(model, ids, features)
  apply = lambda f, i: model.apply(params, {"item_ids": i}, f)
  base = np.asarray(apply(features, ids))
  assert np.all(np.isfinite(base))

  variants = []
  new_id = ids.copy()
  new_id[:3, T + 1] = [25, 26, 27]  # a different item, with different features
  variants.append(("id", features, new_id))
  future = ids.copy()
  future[:, T + 1:] = np.where(ids[:, T + 1:] != 0, 28, 0)
  variants.append(("all later items", features, future))
  for spec in model.fields:
    raw_changed = raw
    for item in ids[:3, T + 1]:
      raw_changed = _perturb_feature(raw_changed, spec.name, item)
    variants.append((spec.name, embedders.select_features(model.fields, raw_changed,
                                                     lib.NUM_ITEMS), ids))

  moved_at_t1 = False
  for what, feats, seq in variants:
    out = np.asarray(apply(feats, seq))
    np.testing.assert_allclose(out[:, :T + 1], base[:, :T + 1], rtol=0, atol=1e-6,
                               err_msg=f"changing {what} at t+1 moved an earlier output")
    moved_at_t1 |= bool(np.abs(out[1, T + 1] - base[1, T + 1]).max() > 1e-4)
  # Not vacuous: the perturbations do reach position t+1 itself.
  assert moved_at_t1


def test_bert4rec_sees_both_sides():
  model = models.get_model(lib.model_config(name="bert4rec"), num_items=lib.NUM_ITEMS)
  ids = _sequences()
  params = lib.random_params(model, ids, {})
  apply = lambda i: model.apply(params, {"item_ids": i}, {})
  changed = ids.copy()
  changed[1, T + 1] = 25
  delta = np.abs(np.asarray(apply(changed)) - np.asarray(apply(ids)))
  assert delta[1, :T + 1].max() > 1e-4


def test_padding_row_features_never_reach_real_positions():
  specs, raw = lib.make_specs(), lib.make_features()
  model = models.get_model(lib.model_config(name="heterrec", mask="causal", pooling="mean"),
                           num_items=lib.NUM_ITEMS, field_specs=specs)
  features = embedders.select_features(model.fields, raw, lib.NUM_ITEMS)
  ids = _sequences()
  params = lib.random_params(model, ids, features)
  apply = lambda f: model.apply(params, {"item_ids": ids}, f)
  garbage = {k: np.array(v) for k, v in features.items()}
  for v in garbage.values():
    v[0] = 3 if v.dtype == np.int32 else 9.0
  base, out = np.asarray(apply(features)), np.asarray(apply(garbage))
  np.testing.assert_allclose(out, base, rtol=0, atol=1e-6)
  assert np.all(np.isfinite(base)) and np.all(base[ids == 0] == 0)
